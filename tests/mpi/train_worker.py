"""MPI worker for tests/mpi/test_distributed.py: trains a DataParallelTrainer on this rank's shard
of a fixed dataset and writes what the test compares (rank 0 writes the result file).

Run as ``mpirun -n P python tests/mpi/train_worker.py OUT.npz [options]``; the global dataset
is the bundled digits (first --rows rows), cut into P contiguous shards of unequal sizes, so
that the test can train fastmlp.Trainer in one process on their concatenation. With --sparse
each shard (and validation part) is a scipy.sparse matrix, in a format that depends on the rank."""

from __future__ import annotations

import argparse
import sys

import numpy as np
from mpi4py import MPI

import fastmlp
from fastmlp import optim, schedules
from fastmlp.distributed import DataParallelTrainer


def dataset(rows: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = fastmlp.datasets.load_digits()
    return X[:rows], y[:rows]


def shard_bounds(n: int, size: int) -> list[int]:
    # Unequal on purpose (rank r gets a share proportional to r + 1): the global order must
    # not depend on equal shards.
    weights = np.arange(1, size + 1, dtype=float)
    cuts = np.round(np.cumsum(weights) / weights.sum() * n).astype(int)
    return [0] + list(cuts)


# With --sparse, rank r's shard is in format SPARSE_FORMATS[r % 3] (each converted once by fit): the
# formats and index dtypes of the shards need not agree, only that all are sparse.
SPARSE_FORMATS = ("csr_matrix", "csc_matrix", "coo_array")


def as_shard(X: np.ndarray, sparse: bool, rank: int) -> object:
    if not sparse:
        return X
    import scipy.sparse

    shard = getattr(scipy.sparse, SPARSE_FORMATS[rank % 3])(X)
    if rank % 3 == 0:  # int64 index arrays, which fit reads in place (scipy chose int32)
        shard.indices, shard.indptr = shard.indices.astype(np.int64), shard.indptr.astype(np.int64)
    return shard


def build(args: argparse.Namespace, comm: MPI.Intracomm) -> tuple[fastmlp.Network, DataParallelTrainer]:
    net = fastmlp.Network([64, 32, 10], activation="tanh", dtype=args.dtype, seed=0, dropout=args.dropout)
    opt = optim.Adam(lr=1e-2) if args.optimizer == "adam" else optim.SGD(0.1, momentum=0.9, weight_decay=1e-3)
    tr = DataParallelTrainer(net, optimizer=opt, batch_size=args.batch_size, shuffle=not args.no_shuffle, seed=3,
                             schedule=schedules.StepLR(2, gamma=0.5), comm=comm,
                             deterministic=args.deterministic)
    return net, tr


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rows", type=int, default=600)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--no-shuffle", action="store_true")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--validation-fraction", type=float, default=None)
    p.add_argument("--validation-rows", type=int, default=0,
                   help="validation_data: the digits after the training rows, none on rank 0 (an empty part)")
    p.add_argument("--sparse", action="store_true", help="each rank's shard and validation part scipy.sparse")
    p.add_argument("--load", help="start from this checkpoint instead of a new network")
    p.add_argument("--save", help="write a checkpoint here after training")
    args = p.parse_args()
    fastmlp.set_num_threads(1)
    comm = MPI.COMM_WORLD
    X, y = dataset(args.rows)
    bounds = shard_bounds(len(X), comm.size)
    lo, hi = bounds[comm.rank], bounds[comm.rank + 1]
    if args.load:
        tr = DataParallelTrainer.load_checkpoint(args.load, comm, deterministic=args.deterministic)
        net = tr.network
    else:
        net, tr = build(args, comm)
    validation_data = None
    if args.validation_rows:
        X_all, y_all = dataset(args.rows + args.validation_rows)
        Xv, yv = X_all[args.rows:], y_all[args.rows:]
        cuts = [0] + shard_bounds(len(Xv), comm.size - 1) if comm.size > 1 else [0, len(Xv)]
        v_lo, v_hi = cuts[comm.rank], cuts[comm.rank + 1]
        validation_data = (as_shard(Xv[v_lo:v_hi], args.sparse, comm.rank), yv[v_lo:v_hi])
    history = tr.fit(as_shard(X[lo:hi], args.sparse, comm.rank), y[lo:hi], epochs=args.epochs,
                     validation_fraction=args.validation_fraction, validation_data=validation_data)
    if args.save:
        tr.save_checkpoint(args.save)
    params = net.weights + net.biases
    mine = b"".join(np.ascontiguousarray(a).tobytes() for a in params)
    all_bytes = comm.gather(mine, root=0)
    if comm.rank == 0:
        arrays = {f"p{i}": a for i, a in enumerate(params)}
        arrays.update({f"h_{k}": np.asarray(v) for k, v in history.to_dict().items() if k != "epoch_time"})
        arrays["identical_on_all_ranks"] = np.array(all(b == all_bytes[0] for b in all_bytes))
        arrays["size"] = np.array(comm.size)
        np.savez(args.out, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
