"""The shards of a distributed fit: each rank's checks of its own rows (validation part, label
set), the checks that the shards agree with each other (dense or sparse X alike, as
fastmlp._sparse.check_input takes them), and the global validation split cut into each rank's
rows. Plain NumPy over the gathered summaries; no collective here."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np
from numpy.typing import NDArray

from .._fit_loop import validation_split
from .._sparse import Rows, check_input
from .._training_state import TrainingState
from ..network import Network

__all__ = ["ShardSummary", "LocalSplit", "check_shards_agree", "check_validation_part", "classes_present",
           "split_shards"]


class ShardSummary(NamedTuple):
    """What a rank tells the others about its shard (gathered before training)."""

    n_rows: int
    y_ndim: int
    y_kind: str
    y_tail: tuple[int, ...]
    classes: Optional[tuple[int, ...]]
    without_validation_data: bool
    sparse: bool  # X is a scipy.sparse matrix (checked into CsrRows), not a dense array


def check_validation_part(net: Network, validation_data: Any) -> tuple[Rows, NDArray[Any]]:
    """This rank's validation rows, dense or sparse (whatever the training shard is: they are
    evaluated on this rank alone), which unlike a training shard may be empty."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a tuple (X_val, y_val)")
    if np.shape(validation_data[0]) == (0, net.n_features):
        return np.empty((0, net.n_features), net.dtype), np.empty(0, np.int64)
    Xv = check_input(validation_data[0], net.n_features, net.dtype, name="X_val")
    yv = net._check_y(validation_data[1], len(Xv), name="y_val", x_name="X_val")
    return Xv, yv


def classes_present(net: Network, y: NDArray[Any]) -> Optional[tuple[int, ...]]:
    """The classes a shard's integer labels hold (None for any other kind of target)."""
    if net.output != "softmax" or y.ndim != 1:
        return None
    return tuple(int(c) for c in np.flatnonzero(np.bincount(y, minlength=net.n_outputs)))


def _describe_kind(ndim: int, dtype_kind: str, tail: tuple[int, ...]) -> str:
    if dtype_kind == "i":
        return "integer labels of shape (n,)"
    return f"real targets of shape (n, {tail[0]})" if ndim == 2 else "real targets of shape (n,)"


def check_shards_agree(summaries: list[ShardSummary], check_label_sets: bool) -> None:
    """ValueError (on every rank: all see the same `summaries`) when the shards differ in
    format (dense or sparse), their targets in kind or label set, or validation data is passed
    on some ranks only."""
    for r, s in enumerate(summaries):
        if s.sparse != summaries[0].sparse:
            name = {False: "a dense X", True: "a sparse X"}
            raise ValueError(f"the shards differ in format: rank 0 gives {name[summaries[0].sparse]}, rank {r} gives "
                             f"{name[s.sparse]}; give every rank the same kind, e.g. scipy.sparse.csr_matrix(X) on the "
                             "dense ones")
    kinds = [(s.y_ndim, s.y_kind, s.y_tail) for s in summaries]
    for r, kind in enumerate(kinds):
        if kind != kinds[0]:
            raise ValueError(f"the shards' targets differ: rank 0 gives {_describe_kind(*kinds[0])}, rank {r} gives "
                             f"{_describe_kind(*kind)}; give every rank the same kind of y")
    if check_label_sets:
        for r, s in enumerate(summaries):
            if s.classes != summaries[0].classes:
                first, this = set(summaries[0].classes or ()), set(s.classes or ())
                raise ValueError(
                    f"the shards hold different label sets: rank 0 has classes {sorted(first)}, rank {r} has "
                    f"{sorted(this)} (missing {sorted(first - this)}, extra {sorted(this - first)}). Labels "
                    "encoded per shard mix classes up; encode them once for all ranks, or pass "
                    "check_label_sets=False if some shards legitimately lack classes")
    without = [r for r, s in enumerate(summaries) if s.without_validation_data]
    if without and len(without) != len(summaries):
        raise ValueError(f"validation_data must be passed on every rank or on none; ranks {without} passed none "
                         "(give a rank without validation rows an X_val of shape (0, n_features))")


class LocalSplit(NamedTuple):
    """This rank's part of the global validation split, as rows of its shard (read in place)."""

    train_rows: NDArray[np.int64]
    val_rows: NDArray[np.int64]
    train_offsets: NDArray[np.int64]  # where each rank's training rows start in the global training set


def split_shards(state: TrainingState, offsets: NDArray[np.int64], rank: int, fraction: float) -> LocalSplit:
    """Trainer.fit's split, drawn over the global rows; each rank keeps its own rows of both
    parts, so the global training set is again the concatenation in rank order."""
    n_total = int(offsets[-1])
    _, global_val = validation_split(state, n_total, fraction)
    is_val = np.zeros(n_total, dtype=bool)
    is_val[global_val] = True
    lo, hi = int(offsets[rank]), int(offsets[rank + 1])
    mine = is_val[lo:hi]
    train_sizes = [int((~is_val[offsets[r]:offsets[r + 1]]).sum()) for r in range(len(offsets) - 1)]
    return LocalSplit(np.flatnonzero(~mine).astype(np.int64), np.flatnonzero(mine).astype(np.int64),
                      np.concatenate([[0], np.cumsum(train_sizes)]).astype(np.int64))
