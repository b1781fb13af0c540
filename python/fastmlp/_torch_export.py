"""Building a ``torch.nn.Sequential`` from a network's parameters (PyTorch imported only when
called). Holds no Network logic and does not import ``network.py``: ``Network.to_torch`` and
``convert.to_torch`` both call it with a snapshot's arrays, so neither import is a cycle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


def import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f'converting to or from PyTorch needs torch, which is not installed ({exc}); '
                          f'install it with: pip install "fastmlp[torch]"') from None
    return torch


def torch_activation_module(name: str, torch: Any) -> Any:
    nn = torch.nn
    factories = {
        "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01), "elu": lambda: nn.ELU(1.0),
        "gelu": lambda: nn.GELU(approximate="none"), "silu": nn.SiLU, "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid, "softplus": lambda: nn.Softplus(beta=1.0, threshold=20.0),
        "identity": nn.Identity,
    }
    return factories[name]()


def sequential_from_parameters(
    weights: Sequence[NDArray[np.floating[Any]]], biases: Sequence[NDArray[np.floating[Any]]],
    activations: Sequence[str], dropout: Sequence[float], output: str, include_output: bool,
) -> Any:
    """A ``torch.nn.Sequential`` of Linear, activation and Dropout modules whose tensors share
    `weights` and `biases` (pass arrays nothing else refers to: a network's snapshot)."""
    torch = import_torch()
    nn = torch.nn
    torch_dtype = torch.float32 if weights[0].dtype == np.float32 else torch.float64
    layers: list[Any] = []
    for k, (W, b) in enumerate(zip(weights, biases)):
        # Built on the meta device (no memory, no random init), then given the snapshot's
        # arrays, which the tensors share: nothing else refers to them.
        linear = nn.Linear(W.shape[1], W.shape[0], device="meta", dtype=torch_dtype)
        linear.weight = nn.Parameter(torch.from_numpy(W))
        linear.bias = nn.Parameter(torch.from_numpy(b))
        layers.append(linear)
        if k < len(activations):
            layers.append(torch_activation_module(activations[k], torch))
            if dropout[k] > 0:
                layers.append(nn.Dropout(dropout[k]))
    if include_output:
        output_modules = {"softmax": lambda: nn.Softmax(dim=1), "sigmoid": nn.Sigmoid, "identity": nn.Identity}
        layers.append(output_modules[output]())
    return nn.Sequential(*layers)
