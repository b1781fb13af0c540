"""The ranks of a DataParallelTrainer: importing mpi4py on first use, and the collectives that
carry one rank's failure to all (RankFailedError) or check that a setting agrees on every
rank. No training happens here; every method is entered by all ranks together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

__all__ = ["RankFailedError", "Ranks", "describe", "import_mpi"]

_INSTALL_HINT = ('fastmlp.distributed needs mpi4py and an MPI library: pip install "fastmlp[mpi]" '
                 "(with OpenMPI or MPICH installed, e.g. apt-get install openmpi-bin libopenmpi-dev)")


def import_mpi() -> Any:
    """mpi4py's MPI module, imported on first use so that ``import fastmlp`` never needs MPI."""
    try:
        from mpi4py import MPI  # optional dependency: imported only when a trainer is built
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return MPI


class RankFailedError(RuntimeError):
    """Another rank raised an exception; raised on every rank that did not, so that no rank is
    left waiting in a collective. The failing rank raises its own exception.

    Attributes
    ----------
    rank : int
        The lowest rank that failed.
    exception_type : str
        The name of its exception's type (``"ValueError"``...).
    """

    def __init__(self, message: str, rank: int, exception_type: str) -> None:
        super().__init__(message)
        self.rank = rank
        self.exception_type = exception_type


def describe(exc: BaseException) -> tuple[str, str]:
    """What the other ranks are told of an exception: its type's name and its message."""
    return type(exc).__name__, str(exc)


class Ranks:
    """The collectives of one DataParallelTrainer, each entered by every rank (never skipped by
    one rank alone: an exception is carried into the collective and raised after it)."""

    def __init__(self, comm: Any) -> None:
        self.MPI = import_mpi()
        if not isinstance(comm, self.MPI.Intracomm):
            raise TypeError(f"comm must be an mpi4py intracommunicator such as MPI.COMM_WORLD, "
                            f"got {type(comm).__name__}")
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()

    def raise_if_any_failed(self, error: Optional[BaseException], while_doing: str) -> None:
        """Collective: if any rank passes an exception, every rank raises (the failing rank its
        own exception, the others RankFailedError naming it)."""
        reports = self.comm.allgather(None if error is None else describe(error))
        self.raise_reports(reports, error, while_doing)

    def raise_reports(self, reports: Sequence[Optional[tuple[str, str]]], error: Optional[BaseException],
                      while_doing: str) -> None:
        """Raise as :meth:`raise_if_any_failed` does, from reports already gathered."""
        failed = [(r, rep) for r, rep in enumerate(reports) if rep is not None]
        if not failed:
            return
        if error is not None:
            raise error
        rank, (type_name, message) = failed[0]
        others = f" (ranks {[r for r, _ in failed]} failed)" if len(failed) > 1 else ""
        raise RankFailedError(f"rank {rank} of {self.size} failed {while_doing}{others}: {type_name}: {message}",
                              rank, type_name)

    def same_on_all_ranks(self, value: Any, what: str) -> None:
        """Collective: ValueError on every rank unless `value` (a picklable description of a
        setting) is equal on all ranks."""
        values = self.comm.allgather(value)
        differing = [r for r, v in enumerate(values) if v != values[0]]
        if differing:
            raise ValueError(f"{what} must be the same on every rank: rank 0 has {values[0]!r}, rank "
                             f"{differing[0]} has {values[differing[0]]!r}")
