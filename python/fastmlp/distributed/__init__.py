"""Data-parallel training over MPI: :class:`DataParallelTrainer` trains one network on data
sharded over the ranks of an MPI communicator, and gives the weights that
:class:`fastmlp.Trainer` gives in one process on the concatenated shards.

Each rank computes the gradient sums of its rows of a global batch natively, one allreduce
combines them, and every rank applies the same optimizer step to its copy of the weights.
Python drives the step loop here (one native gradient call and one allreduce per batch); the
single-process Trainer's one-native-call-per-epoch loop cannot stop for a collective. Sample
weights are not supported yet (see the class Notes). Needs ``mpi4py``
(``pip install "fastmlp[mpi]"``), imported only when a DataParallelTrainer is built.

The package: ``_ranks`` (mpi4py, failures carried to every rank), ``_shards`` (each rank's
checks of its shard, the global validation split), ``_steps`` (the two ways to compute a
step's gradient), ``_epochs`` (the epochs for the shared fit loop), ``trainer``
(DataParallelTrainer).
"""

from __future__ import annotations

from ._ranks import RankFailedError
from .trainer import DataParallelTrainer

__all__ = ["DataParallelTrainer", "RankFailedError"]
