"""The initial weights of a network: He and Glorot schemes, and the choice between them per
layer under init="auto". Pure NumPy; the arguments are checked by the caller (Network)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Activations whose networks start from He initialisation under init="auto" (Glorot otherwise).
RELU_FAMILY = ("relu", "leaky_relu", "elu", "gelu", "silu")


def initial_parameters(
    layer_sizes: Sequence[int], activations: Sequence[str], activation: str | Sequence[str], init: str,
    dtype: np.dtype[np.floating[Any]], seed: int | None,
) -> tuple[list[NDArray[np.floating[Any]]], list[NDArray[np.floating[Any]]]]:
    """Weights drawn by `init` from a generator seeded with `seed`, biases at 0: the same seed
    gives bitwise the same arrays. `activation` is what the user passed (one name or the list)."""
    rng = np.random.default_rng(seed)
    weights: list[NDArray[np.floating[Any]]] = []
    biases: list[NDArray[np.floating[Any]]] = []
    L = len(layer_sizes) - 1
    for k, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:]), start=1):
        scheme = init
        if scheme == "auto":
            # The activation after layer k (the output layer: the last hidden one's).
            follows = activations[min(k, L - 1) - 1] if L > 1 else \
                (activation if isinstance(activation, str) else "relu")
            scheme = "he_normal" if follows in RELU_FAMILY else "glorot_uniform"
        if scheme == "he_normal":
            W = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
        elif scheme == "he_uniform":
            limit = np.sqrt(6.0 / n_in)
            W = rng.uniform(-limit, limit, size=(n_out, n_in))
        elif scheme == "glorot_normal":
            W = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / (n_in + n_out))
        else:
            limit = np.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-limit, limit, size=(n_out, n_in))
        weights.append(np.ascontiguousarray(W, dtype=dtype))
        biases.append(np.zeros(n_out, dtype=dtype))
    return weights, biases
