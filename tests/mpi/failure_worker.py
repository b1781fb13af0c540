"""MPI worker for tests/mpi/test_distributed.py: one rank misbehaves in the way named on the command
line, and every rank prints the exception it ends with, one line ``RANK <r>: <Type>: <message>``
(or ``RANK <r>: no error``). The test checks that every rank ends, with the right exception,
instead of hanging in a collective.

``mpirun -n P python tests/mpi/failure_worker.py OUT_DIR MODE [--deterministic]``; the bad rank is the
last one."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from mpi4py import MPI

import fastmlp
from fastmlp import _core
from fastmlp.distributed import DataParallelTrainer

MODES = ("step_raises", "step_nan", "callback_raises", "width", "nan_in_shard", "label_sets", "target_kind",
         "seed", "dropout",
         "no_validation_on_one_rank", "malformed_sparse_shard", "sparse_on_one_rank")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("mode", choices=MODES)
    p.add_argument("--deterministic", action="store_true")
    args = p.parse_args()
    fastmlp.set_num_threads(1)
    comm = MPI.COMM_WORLD
    bad = comm.rank == comm.size - 1
    X, y = fastmlp.datasets.load_digits()
    X, y = X[:400], y[:400]
    lo, hi = comm.rank * len(X) // comm.size, (comm.rank + 1) * len(X) // comm.size
    X_shard, y_shard = X[lo:hi].copy(), y[lo:hi].copy()
    callbacks = []
    fit_kwargs: dict = {}
    if bad:
        if args.mode in ("step_raises", "step_nan"):
            original = _core.gradients
            calls = [0]

            def failing_gradients(*a, **k):  # the bad rank's third gradient call fails
                calls[0] += 1
                if calls[0] == 3:
                    if args.mode == "step_raises":
                        raise MemoryError("injected failure in a gradient call")
                    _loss, correct, grads = original(*a, **k)
                    return float("nan"), correct, grads
                return original(*a, **k)

            _core.gradients = failing_gradients
        elif args.mode == "callback_raises":
            def callback(epoch, logs):
                raise KeyError(f"injected failure in a callback after epoch {epoch}")
            callbacks.append(callback)
        elif args.mode == "width":
            X_shard = X_shard[:, :63]
        elif args.mode == "nan_in_shard":
            X_shard[5, 7] = np.nan
        elif args.mode == "label_sets":
            y_shard[y_shard == 9] = 8  # as if this shard's labels were encoded on their own
        elif args.mode == "target_kind":
            y_shard = np.eye(10)[y_shard]
        elif args.mode == "sparse_on_one_rank":
            import scipy.sparse

            X_shard = scipy.sparse.csr_matrix(X_shard)
    if args.mode == "malformed_sparse_shard":  # every shard sparse; the bad rank's has a column index too large
        import scipy.sparse

        X_shard = scipy.sparse.csr_matrix(X_shard)
        if bad:
            X_shard.indices[3] = X_shard.shape[1]  # set in place, past scipy's own checks
    if args.mode == "no_validation_on_one_rank" and not bad:
        fit_kwargs["validation_data"] = (X_shard[:20], y_shard[:20])
    try:
        dropout = 0.5 if (bad and args.mode == "dropout") else 0
        net = fastmlp.Network([64, 16, 10], dtype="float64", seed=0, dropout=dropout)
        seed = 1 if (bad and args.mode == "seed") else 0
        tr = DataParallelTrainer(net, lr=0.1, batch_size=32, seed=seed, comm=comm, deterministic=args.deterministic,
                                 deterministic_chunk_rows=8)
        tr.fit(X_shard, y_shard, epochs=3, callbacks=callbacks, **fit_kwargs)
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    else:
        outcome = "no error"
    with open(os.path.join(args.out_dir, f"rank{comm.rank}.txt"), "w") as f:
        f.write(outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
