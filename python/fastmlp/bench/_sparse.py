"""The sparse part of the bench (``--only sparse``, and ``bench/bench_sparse.py``): training and
prediction on a synthetic text-like CSR matrix (TF-IDF-like rows), fastmlp's native sparse first
layer against densifying each batch inside fastmlp and against PyTorch with a ``torch.sparse`` CSR
first layer (``torch.sparse.mm``), plain SGD and Adam. Needs scipy; torch is used when installed.

Deliberately simple timing: a warm-up, then the best of `rounds` runs of a fixed amount of work per
backend; the slow baselines run a prefix of the epoch and are reported per row, so every figure is
rows per second and the ratios compare like with like.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import fastmlp

from ._machine import import_optional


@dataclass(frozen=True)
class SparseCase:
    n_rows: int = 100_000
    n_cols: int = 50_000
    density: float = 0.001
    hidden: int = 256
    n_classes: int = 20
    batch_size: int = 128
    densify_batches: int = 8  # the densified baseline is slow: a prefix of the epoch, per row
    torch_batches: int = 100
    predict_rows: int = 20_000
    rounds: int = 2


FULL_CASE = SparseCase()
QUICK_CASE = SparseCase(n_rows=20_000, densify_batches=4, torch_batches=40, predict_rows=5_000, rounds=1)
LR, ADAM_LR = 0.1, 1e-3


ZIPF_EXPONENT = 1.1  # word frequencies in text fall off about as 1/rank (Zipf); numpy's zipf needs > 1


def _tokens_per_row(n_cols: int, distinct_wanted: float, rng: np.random.Generator) -> float:
    """The mean number of Zipf-drawn tokens per row whose distinct columns average `distinct_wanted`:
    repeated words add up into one stored value, so a row stores fewer columns than it draws. Three
    corrections on 2,000 sample rows bring the mean within about 1 % of the density asked for."""
    tokens = distinct_wanted
    for _ in range(3):
        rows = 2000
        per_row = rng.poisson(tokens, size=rows).clip(1)
        row_of = np.repeat(np.arange(rows), per_row)
        columns = rng.zipf(ZIPF_EXPONENT, size=len(row_of)) % n_cols
        distinct = len(np.unique(row_of * n_cols + columns)) / rows
        tokens *= distinct_wanted / distinct
    return tokens


def text_like_csr(case: SparseCase, seed: int) -> tuple[Any, np.ndarray]:
    """A (n_rows, n_cols) float32 CSR of TF-IDF-like rows: Zipf-distributed words, each row's repeated
    words summed into a term count, stored as (1 + log count) times an idf, rows of unit norm; on
    average n_cols * density distinct columns (stored values) per row; labels that depend on the columns."""
    import scipy.sparse as sp  # the bench needs scipy; the package does not

    rng = np.random.default_rng(seed)
    per_row = rng.poisson(_tokens_per_row(case.n_cols, case.n_cols * case.density, rng), size=case.n_rows).clip(1)
    indptr = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
    nnz = int(indptr[-1])
    ranks = rng.zipf(ZIPF_EXPONENT, size=nnz) % case.n_cols  # frequent "words" get the low columns
    columns = rng.permutation(case.n_cols)[ranks].astype(np.int32)
    X = sp.csr_matrix((np.ones(nnz, np.float32), columns, indptr), shape=(case.n_rows, case.n_cols))
    X.sum_duplicates()  # each stored value is now the word's count in its row
    idf = np.log(case.n_rows / (1.0 + np.bincount(X.indices, minlength=case.n_cols))).astype(np.float32) + 1
    X.data = (1 + np.log(X.data)) * idf[X.indices]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel()).astype(np.float32)
    X = sp.diags(1 / np.maximum(norms, 1e-12)).dot(X).tocsr().astype(np.float32)
    y = (X @ rng.standard_normal((case.n_cols, case.n_classes)).astype(np.float32)).argmax(axis=1)
    return X, np.asarray(y, dtype=np.int64)


def _best(rounds: int, run: Callable[[], float]) -> float:
    """The best (largest) rows/s of `rounds` runs after one warm-up run."""
    run()
    return max(run() for _ in range(rounds))


def _network(case: SparseCase, seed: int) -> fastmlp.Network:
    return fastmlp.Network([case.n_cols, case.hidden, case.n_classes], dtype="float32", seed=seed)


def _fastmlp_epoch(case: SparseCase, X: Any, y: np.ndarray, make_opt: Callable[[], Any], seed: int) -> float:
    net = _network(case, seed)
    trainer = fastmlp.Trainer(net, optimizer=make_opt(), batch_size=case.batch_size, seed=seed)
    t0 = time.perf_counter()
    trainer.fit(X, y, epochs=1)
    return case.n_rows / (time.perf_counter() - t0)


def _fastmlp_densified(case: SparseCase, X: Any, y: np.ndarray, make_opt: Callable[[], Any], seed: int) -> float:
    net = _network(case, seed)
    trainer = fastmlp.Trainer(net, optimizer=make_opt(), batch_size=case.batch_size, seed=seed)
    order = np.random.default_rng(seed).permutation(case.n_rows)
    t0 = time.perf_counter()
    for k in range(case.densify_batches):
        rows = order[k * case.batch_size:(k + 1) * case.batch_size]
        trainer.step(X[rows].toarray(), y[rows])
    return case.densify_batches * case.batch_size / (time.perf_counter() - t0)


def _torch_model(torch: Any, case: SparseCase, seed: int) -> tuple[Any, list[Any]]:
    net = _network(case, seed)
    params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in net.weights + net.biases]
    return net, params


def _torch_forward(torch: Any, params: list[Any], Xb: Any) -> Any:
    W1, W2, b1, b2 = params
    h = torch.relu(torch.sparse.mm(Xb, W1.t()) + b1)
    return h @ W2.t() + b2


def _torch_csr(torch: Any, X: Any) -> Any:
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state", once per batch otherwise
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(X.indptr.astype(np.int64)),
                                       torch.from_numpy(X.indices.astype(np.int64)), torch.from_numpy(X.data),
                                       size=X.shape)


def _torch_train(torch: Any, case: SparseCase, X: Any, y: np.ndarray, adam: bool, seed: int) -> float:
    _, params = _torch_model(torch, case, seed)
    opt = torch.optim.Adam(params, lr=ADAM_LR) if adam else torch.optim.SGD(params, lr=LR)
    order = np.random.default_rng(seed).permutation(case.n_rows)
    t0 = time.perf_counter()
    for k in range(case.torch_batches):
        rows = order[k * case.batch_size:(k + 1) * case.batch_size]
        Xb, yb = _torch_csr(torch, X[rows]), torch.from_numpy(y[rows])
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(_torch_forward(torch, params, Xb), yb)
        loss.backward()
        opt.step()
    return case.torch_batches * case.batch_size / (time.perf_counter() - t0)


def _torch_predict(torch: Any, case: SparseCase, X: Any, seed: int) -> float:
    _, params = _torch_model(torch, case, seed)
    Xp = X[:case.predict_rows]
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, case.predict_rows, 1024):
            torch.softmax(_torch_forward(torch, params, _torch_csr(torch, Xp[start:start + 1024])), dim=1)
    return case.predict_rows / (time.perf_counter() - t0)


def run_sparse(quick: bool, seed: int, native_threads: int, say: Callable[[str], None],
               case: SparseCase | None = None) -> tuple[dict[str, Any], list[str]]:
    """Measure the sparse case; return (JSON value, report lines)."""
    case = case or (QUICK_CASE if quick else FULL_CASE)
    if importlib.util.find_spec("scipy") is None:
        why = "scipy is not installed (pip install scipy)"
        return {"skipped": why}, [f"Sparse input: skipped ({why})"]
    torch, torch_why = import_optional("torch")
    fastmlp.set_num_threads(native_threads)
    say(f"  sparse: building a {case.n_rows} x {case.n_cols} CSR at density {case.density:g}")
    X, y = text_like_csr(case, seed)
    sgd = lambda: fastmlp.optim.SGD(lr=LR)  # noqa: E731
    adam = lambda: fastmlp.optim.Adam(lr=ADAM_LR)  # noqa: E731
    rates: dict[str, float] = {}
    say("  sparse: fastmlp, one epoch of plain SGD")
    rates["fastmlp_sgd"] = _best(case.rounds, lambda: _fastmlp_epoch(case, X, y, sgd, seed))
    say("  sparse: fastmlp, one epoch of Adam")
    rates["fastmlp_adam"] = _best(case.rounds, lambda: _fastmlp_epoch(case, X, y, adam, seed))
    say("  sparse: fastmlp on each batch densified")
    rates["densified_sgd"] = _best(case.rounds, lambda: _fastmlp_densified(case, X, y, sgd, seed))
    net = _network(case, seed)
    Xp = X[:case.predict_rows]

    def predict_sparse() -> float:
        t0 = time.perf_counter()
        net.predict_proba(Xp)
        return case.predict_rows / (time.perf_counter() - t0)

    def predict_dense() -> float:  # densified 1024 rows at a time, as a user without sparse input would
        n = min(case.predict_rows, 4096)
        t0 = time.perf_counter()
        for start in range(0, n, 1024):
            net.predict_proba(Xp[start:start + 1024].toarray())
        return n / (time.perf_counter() - t0)

    say("  sparse: prediction")
    rates["fastmlp_predict"] = _best(case.rounds, predict_sparse)
    rates["densified_predict"] = _best(case.rounds, predict_dense)
    torch_threads: dict[str, int] = {}
    if torch is not None:
        for name, run in (("torch_sgd", lambda: _torch_train(torch, case, X, y, False, seed)),
                          ("torch_adam", lambda: _torch_train(torch, case, X, y, True, seed)),
                          ("torch_predict", lambda: _torch_predict(torch, case, X, seed))):
            best = 0.0
            for threads in sorted({1, native_threads}):  # torch at its best thread count
                say(f"  sparse: {name} at {threads} thread(s)")
                torch.set_num_threads(threads)
                rate = _best(case.rounds, run)
                if rate > best:
                    best, torch_threads[name] = rate, threads
            rates[name] = best
    ratios = {"sgd_vs_densified": rates["fastmlp_sgd"] / rates["densified_sgd"],
              "predict_vs_densified": rates["fastmlp_predict"] / rates["densified_predict"]}
    if torch is not None:
        ratios.update(sgd_vs_torch=rates["fastmlp_sgd"] / rates["torch_sgd"],
                      adam_vs_torch=rates["fastmlp_adam"] / rates["torch_adam"],
                      predict_vs_torch=rates["fastmlp_predict"] / rates["torch_predict"])
    lines = [f"Sparse input: {case.n_rows} x {case.n_cols} CSR, density {case.density:g} ({X.nnz / case.n_rows:.1f} "
             f"nonzeros per row), {case.n_cols}-{case.hidden}-{case.n_classes} relu, batch {case.batch_size}, "
             f"float32, {native_threads} native thread(s); rows/s, best of {case.rounds}",
             f"  {'backend':<34}{'rows/s':>12}"]
    for name, rate in rates.items():
        lines.append(f"  {name:<34}{rate:>12,.0f}")
    lines.append("  ratios (fastmlp sparse over): " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))
    if torch is None:
        lines.append(f"  torch: skipped ({torch_why})")
    document = {"case": case.__dict__, "rows_per_second": rates, "ratios": ratios, "torch_threads": torch_threads,
                "nonzeros": int(X.nnz), "native_threads": native_threads}
    return document, lines
