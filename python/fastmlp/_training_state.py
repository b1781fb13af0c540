"""TrainingState: the counters and random streams of one trainer (shuffling generator, dropout
key, epochs and single steps done, the seed of the validation split), with the interface that
checkpoints and the distributed trainer read and write. It holds no weights and no optimizer
state, and decides nothing about how training goes."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray


class TrainingState:
    """What, besides the weights and the optimizer, decides how a trainer goes on.

    Attributes
    ----------
    seed : int or None
        The trainer's seed.
    rng : numpy.random.Generator
        The shuffling generator (PCG64), seeded from ``seed``.
    dropout_seed : int
        The 64-bit key of the dropout masks: the seed folded to 64 bits, or fresh entropy
        without one (drawn apart from ``rng`` so that dropout never changes the shuffling).
    epochs_done : int
        Epochs trained across fits; numbers the dropout masks of each epoch (the first is 1).
    single_steps : int
        ``step()`` calls; their masks use epoch 0 and this batch number.
    """

    def __init__(self, seed: Optional[int]) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        # The native key is 64 bits wide: a larger seed is folded into it.
        self.dropout_seed = seed % 2**64 if seed is not None else \
            int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        self.epochs_done = 0
        self.single_steps = 0

    @property
    def split_seed(self) -> int:
        """The seed of the ``validation_fraction`` split: fixed for the trainer's life (and kept
        by checkpoints), so every fit on data of one length holds out the same rows."""
        return self.seed if self.seed is not None else self.dropout_seed

    def validation_split(self, n_rows: int, n_val: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(training rows, validation rows), each sorted: the first `n_val` of a permutation of
        `n_rows` drawn from a generator seeded with :attr:`split_seed` (not from ``rng``, so the
        split neither moves the shuffling nor changes between fits)."""
        permutation = np.random.default_rng(self.split_seed).permutation(n_rows).astype(np.int64, copy=False)
        return np.sort(permutation[n_val:]), np.sort(permutation[:n_val])

    # ------------------------------------------------------------------ saving and restoring

    def rng_state(self) -> dict[str, Any]:
        """The shuffling generator's state (PCG64's dict), a copy."""
        return dict(self.rng.bit_generator.state)

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Put the shuffling generator in `state` (a PCG64 state dict); ValueError/TypeError if invalid."""
        self.rng.bit_generator.state = state

    def snapshot(self) -> tuple[dict[str, Any], int, int]:
        """What an interrupted epoch puts back: the generator and the counters."""
        return self.rng_state(), self.epochs_done, self.single_steps

    def restore(self, snapshot: tuple[dict[str, Any], int, int]) -> None:
        rng_state, self.epochs_done, self.single_steps = snapshot
        self.set_rng_state(rng_state)
