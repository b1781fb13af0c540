"""gradcheck: compare a network's analytic gradients (the native backward pass) with central
finite differences of its loss, block by block, and report the errors beside the backprop
equation each block comes from. A debugging and teaching tool: it runs two forward passes
per checked entry, so large layers are checked on a seeded sample of entries."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._sparse import Rows, check_input
from ._validation import check_dtype, check_int, check_positive_float, check_seed
from .network import Network

# Relative errors are |analytic - numeric| / max(|analytic|, |numeric|, floor). Without a floor
# an entry whose true gradient is ~0 turns the rounding noise of the difference quotient
# (about 1e-16 * loss / eps ~ 1e-10 for eps=1e-6 and a loss of order 1, the scale of a
# cross-entropy) into a relative error of order 1. With it, any error above ~1e-9 in absolute
# terms still fails the default tolerance of 1e-6.
REL_ERROR_FLOOR = 1e-3


@dataclass(frozen=True)
class GradcheckRow:
    """The check of one parameter block (``W_k`` or ``b_k``) of one layer.

    Attributes
    ----------
    layer : int
        k, 1-based: layer k maps ``h_{k-1}`` to ``a_k`` (``h_0 = X``).
    block : {"W", "b"}
    shape : tuple of int
        The block's shape: ``(n_out, n_in)`` for W, ``(n_out,)`` for b.
    checked : int
        How many entries were compared (all, or ``n_checks`` sampled ones).
    size : int
        How many entries the block has.
    max_abs_error : float
        Largest ``|analytic - numeric|`` over the checked entries.
    max_rel_error : float
        Largest ``|analytic - numeric| / max(|analytic|, |numeric|, REL_ERROR_FLOOR)``.
    worst_index : tuple of int
        Index (into the block) of the entry with the largest relative error.
    equation : str
        The backprop equation the analytic gradient of this block implements.
    sampled_indices : tuple of int or None
        Flat (C-order) indices of the checked entries when a sample was drawn; None when every
        entry was checked.
    """

    layer: int
    block: str
    shape: tuple[int, ...]
    checked: int
    size: int
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    equation: str
    sampled_indices: Optional[tuple[int, ...]] = None

    @property
    def name(self) -> str:
        """str: ``W_k`` or ``b_k``."""
        return f"{self.block}_{self.layer}"


@dataclass(frozen=True)
class GradcheckReport:
    """What :func:`gradcheck` found: one :class:`GradcheckRow` per parameter block.

    Attributes
    ----------
    rows : list of GradcheckRow
        ``W_1, b_1, W_2, b_2, ...`` in layer order.
    network : str
        The checked network's repr.
    dtype : str
        The network's dtype; a float32 network is checked through a float64 copy.
    n_samples : int
        Rows of the batch the loss is averaged over.
    eps : float
        The central-difference step.
    loss : float
        The float64 loss at the unperturbed weights.
    """

    rows: list[GradcheckRow]
    network: str
    dtype: str
    n_samples: int
    eps: float
    loss: float

    @property
    def max_rel_error(self) -> float:
        """float: the largest relative error of all rows (NaN if any row's is NaN)."""
        return _nan_aware_max(row.max_rel_error for row in self.rows)

    @property
    def max_abs_error(self) -> float:
        """float: the largest absolute error of all rows (NaN if any row's is NaN)."""
        return _nan_aware_max(row.max_abs_error for row in self.rows)

    @property
    def worst_row(self) -> GradcheckRow:
        """GradcheckRow: the row with the largest relative error (a NaN one first)."""
        return max(self.rows, key=lambda r: math.inf if math.isnan(r.max_rel_error) else r.max_rel_error)

    def passed(self, tol: float = 1e-6) -> bool:
        """Whether every checked entry has a relative error <= `tol` (False for any NaN)."""
        tol = check_positive_float(tol, "tol")
        return self.max_rel_error <= tol  # NaN compares False

    def __str__(self) -> str:
        note = ", checked through a float64 copy" if self.dtype != "float64" else ""
        lines = [f"gradcheck of {self.network}{note}: {self.n_samples} sample(s), eps {self.eps:.0e}, "
                 f"loss {self.loss:.6g}"]
        header = ("block", "shape", "checked", "max abs error", "max rel error", "backprop equation")
        table = [header] + [
            (row.name, str(row.shape), f"{row.checked}/{row.size}", f"{row.max_abs_error:.2e}",
             f"{row.max_rel_error:.2e}", row.equation)
            for row in self.rows
        ]
        widths = [max(len(cells[i]) for cells in table) for i in range(len(header) - 1)]
        right = (False, False, True, True, True)  # numbers right-aligned, names left
        for cells in table:
            padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
            lines.append("  ".join(padded + [cells[-1]]).rstrip())
        lines.append(f"max rel error {self.max_rel_error:.2e} (worst: {self.worst_row.name} at "
                     f"{self.worst_row.worst_index})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        checked = sum(row.checked for row in self.rows)
        return (f"<GradcheckReport: {self.network}, {len(self.rows)} blocks, {checked} entries checked, "
                f"max rel error {self.max_rel_error:.2e}>")


def _nan_aware_max(values: Any) -> float:
    out = -math.inf
    for v in values:
        if math.isnan(v):
            return math.nan
        out = max(out, v)
    return out


# dL/da_L of each output layer and its loss (K outputs; sigmoid and identity average over them too).
_OUTPUT_DELTA = {
    "softmax": "(yhat - y)/B",
    "sigmoid": "(sigmoid(a_{L}) - y)/(B K)",
    "identity": "2 (a_{L} - y)/(B K)",
}


def _hidden_activations(net: Network) -> list[str]:
    """The activation g_k of each hidden layer: `activation` is one name for all or a list."""
    activation = net.activation
    if isinstance(activation, str):
        return [activation] * (len(net.layer_sizes) - 2)
    return [str(a) for a in activation]


def _equations(layer: int, n_layers: int, activations: list[str], output: str) -> tuple[str, str]:
    """The backprop equations of W_k and b_k (docs/math.md, steps 3-5), with k and g_k filled in."""
    k = layer
    below = "X" if k == 1 else f"h_{k - 1}"
    if k == n_layers:
        da = f"da_{k} = " + _OUTPUT_DELTA.get(output, "dL/da_{L}").format(L=k)
    else:
        da = f"da_{k} = (da_{k + 1} W_{k + 1}) ⊙ {activations[k - 1]}'(a_{k})"
    return f"dW_{k} = da_{k}^T {below},  {da}", f"db_{k} = sum_b da_{k},  {da}"


def _float64_twin(net: Network) -> Network:
    """A float64 Network with `net`'s parameters (exact: every float32 is a float64).

    Made from :meth:`Network.copy` (which takes the network's lock, so the state is one
    consistent state even while another thread trains) with only the dtype changed, so that
    it keeps every setting of the network (activations, output layer, ...), whatever the
    constructor takes."""
    twin = net.copy()
    twin._dtype = check_dtype("float64")  # NumPy's own dtype object, as the native calls need
    twin.weights = [np.ascontiguousarray(W, dtype=np.float64) for W in twin.weights]
    twin.biases = [np.ascontiguousarray(b, dtype=np.float64) for b in twin.biases]
    return twin


def gradcheck(
    net: Network,
    X: ArrayLike,
    y: ArrayLike,
    *,
    eps: float = 1e-6,
    n_checks: Optional[int] = None,
    seed: Optional[int] = 0,
) -> GradcheckReport:
    """Check ``net.gradients(X, y)`` against central differences of ``net.loss(X, y)``.

    For every entry w checked, the numeric derivative is
    ``(loss(w + eps) - loss(w - eps)) / (2 eps)`` in float64 (with the steps actually taken
    after rounding), and it is compared with the analytic gradient of the same entry.

    Parameters
    ----------
    net : Network
        Left unchanged: a float64 network is perturbed in place, one entry at a time, under its
        lock (other threads wait rather than see a perturbed weight), and every entry is
        restored bitwise; a float32 network is checked through a float64 copy of its
        parameters, because float32 central differences cannot resolve errors near 1e-6.
        That copy runs the float64 instantiation of the same kernels.
    X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
        Sparse X (as :meth:`Network.loss` takes it) is checked through the sparse first-layer
        kernels: the values in float64, the weights perturbed exactly as for dense X.
    y : array-like of shape (n_samples,) integer labels, or (n_samples, n_classes) distributions.
    eps : float, default=1e-6
        The central-difference step, finite and > 0.
    n_checks : int or None, default=None
        Entries to check per block, drawn at random without replacement (all entries of a
        block that has no more). None checks every entry: two forward passes per weight, too
        slow for large layers.
    seed : int or None, default=0
        Seed of the sample of entries; the same seed checks the same entries.

    Returns
    -------
    GradcheckReport
        ``report.passed()`` is the verdict; ``print(report)`` shows a table with one row per
        block. With relu, an entry whose perturbation moves a pre-activation across 0 gets a
        wrong numeric derivative (the kink), so use data away from it or expect a few outliers.

    Raises
    ------
    TypeError, ValueError
        What ``net.loss(X, y)`` raises for bad input (it is called first), or a bad argument.

    Examples
    --------
    >>> import numpy as np, fastmlp
    >>> net = fastmlp.Network([4, 5, 3], activation="tanh", dtype="float64", seed=0)
    >>> X = np.random.default_rng(0).normal(size=(6, 4)); y = np.arange(6) % 3
    >>> gradcheck(net, X, y).passed()
    True
    """
    if not isinstance(net, Network):
        raise TypeError(f"gradcheck needs a fastmlp.Network, got {type(net).__name__}")
    eps = check_positive_float(eps, "eps")
    if n_checks is not None:
        n_checks = check_int(n_checks, "n_checks", 1)
    seed = check_seed(seed)
    net.loss(X, y)  # bad X or y raise the network's own errors, before anything else happens

    float64 = np.dtype(np.float64)
    in_place = net.dtype == float64 and all(a.flags.writeable for a in net.weights + net.biases)
    # In place: hold the lock for the whole check (reentrant, so loss/gradients inside take it
    # again). On a copy: nobody else sees it, no lock needed beyond the copy itself.
    with net._locked() if in_place else contextlib.nullcontext():
        work = net if in_place else _float64_twin(net)
        # Converted once, not at every loss call: a float64 array, or for sparse X (scipy.sparse)
        # float64 CSR rows, whose first layer the native calls run over the nonzeros.
        X64 = check_input(X, work.n_features, float64)
        y64 = np.asarray(y)  # checked by every loss call, as the output layer wants it
        loss, grads = work.gradients(X64, y64)
        W, b = work._params(for_update=True)
        n_layers = len(W)
        if len(grads) != n_layers:
            raise ValueError(f"net.gradients returned {len(grads)} (dW, db) pairs for a network of {n_layers} layers")
        activations = _hidden_activations(work)
        output = str(getattr(work, "output", "softmax"))  # a network without the attribute is a softmax one
        rng = np.random.default_rng(seed)
        rows: list[GradcheckRow] = []
        for k, ((dW, db), Wk, bk) in enumerate(zip(grads, W, b), start=1):
            eq_W, eq_b = _equations(k, n_layers, activations, output)
            for block, param, analytic, equation in (("W", Wk, dW, eq_W), ("b", bk, db, eq_b)):
                analytic = np.asarray(analytic, dtype=np.float64)
                if analytic.shape != param.shape:
                    raise ValueError(f"net.gradients returned d{block}_{k} of shape {analytic.shape}, "
                                     f"expected {param.shape} (the shape of {block}_{k})")
                rows.append(_check_block(work, X64, y64, k, block, param, analytic, equation, eps, n_checks, rng))
    return GradcheckReport(rows=rows, network=repr(net), dtype=net.dtype.name, n_samples=len(X64), eps=eps,
                           loss=float(loss))


def _check_block(
    work: Network,
    X: Rows,
    y: NDArray[Any],
    layer: int,
    block: str,
    param: NDArray[np.floating[Any]],
    analytic: NDArray[np.floating[Any]],
    equation: str,
    eps: float,
    n_checks: Optional[int],
    rng: np.random.Generator,
) -> GradcheckRow:
    """Compare one block's analytic gradient with central differences at the chosen entries."""
    size = param.size
    sampled: Optional[tuple[int, ...]] = None
    if n_checks is None or n_checks >= size:
        flat_indices: NDArray[np.int64] = np.arange(size, dtype=np.int64)
    else:
        # Sorted: the table and sampled_indices read in the block's own order.
        flat_indices = np.sort(rng.choice(size, size=n_checks, replace=False)).astype(np.int64)
        sampled = tuple(int(i) for i in flat_indices)
    flat = param.reshape(-1)  # a view: the parameters are C-contiguous
    abs_errors = np.empty(len(flat_indices))
    rel_errors = np.empty(len(flat_indices))
    for j, i in enumerate(flat_indices):
        saved = flat[i]
        try:
            flat[i] = saved + eps
            # The steps actually taken: saved + eps is rounded, and dividing by 2 eps would
            # add that rounding (relative 1e-16 * |w| / eps) to the error being measured.
            step_up = float(flat[i]) - float(saved)
            up = work.loss(X, y)
            flat[i] = saved - eps
            step_down = float(saved) - float(flat[i])
            down = work.loss(X, y)
        finally:
            flat[i] = saved  # the very bits that were there
        numeric = (up - down) / (step_up + step_down)
        a = float(analytic.flat[i])
        abs_errors[j] = abs(a - numeric)
        rel_errors[j] = abs_errors[j] / max(abs(a), abs(numeric), REL_ERROR_FLOOR)
    # NaN-first arg-max: a NaN error (a non-finite loss) is the worst there is.
    nan = np.isnan(rel_errors)
    worst = int(np.flatnonzero(nan)[0]) if nan.any() else int(np.argmax(rel_errors))
    worst_index = tuple(int(i) for i in np.unravel_index(int(flat_indices[worst]), param.shape))
    return GradcheckRow(
        layer=layer, block=block, shape=tuple(int(s) for s in param.shape), checked=len(flat_indices), size=size,
        max_abs_error=float(np.max(abs_errors)), max_rel_error=float(np.max(rel_errors)), worst_index=worst_index,
        equation=equation, sampled_indices=sampled)
