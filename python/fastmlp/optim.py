"""Optimizers: how a training step turns gradients into new weights.

Each class holds hyperparameters, a step count and its per-parameter state (momentum buffers,
Adam's moments) as NumPy arrays; the update itself runs natively, layer by layer, right after
that layer's gradient is computed (``cpp/fastmlp/optim.hpp``). The update rules are PyTorch's
(``torch.optim``, single-tensor form) to the letter, with one deliberate difference:
``weight_decay`` applies to the weights only, never to the biases (in PyTorch that takes two
parameter groups).

An optimizer belongs to one network: its state is allocated at the first training call, shaped
like that network's parameters, and reused by every later call (so a second ``fit`` continues
with the same momentum). :meth:`Optimizer.reset` forgets it.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from .network import Network

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]


def _set_weight_decay(self: Any, value: float) -> None:
    # Unlike momentum or betas, the decay keeps no state of its own, so it may change between
    # steps (scikit-learn's alpha maps onto a decay that depends on the batch).
    self._weight_decay = _real(value, "weight_decay", 0.0)


def _real(value: object, name: str, lo: float, hi: float = math.inf, *, lo_open: bool = False,
          hi_open: bool = False) -> float:
    """A finite float in [lo, hi] (open ends where asked); TypeError/ValueError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        lo_s = f"({lo}" if lo_open else f"[{lo}"
        hi_s = "inf)" if hi == math.inf else (f"{hi})" if hi_open else f"{hi}]")
        raise ValueError(f"{name} must be finite and in {lo_s}, {hi_s}, got {value!r}")
    return v


class Optimizer:
    """Base class: the learning rate, the step count and the per-parameter state.

    Attributes
    ----------
    lr : float
        Learning rate of the next step, >= 0; schedules (:mod:`fastmlp.schedules`) change it
        between epochs.
    steps : int
        Updates taken so far (Adam's bias correction counts from it).
    state : list of list of ndarray, or None
        For W_1, b_1, W_2, b_2, ... the arrays this optimizer keeps for that parameter (none
        for plain SGD); None until the first training call.
    """

    kind: ClassVar[str]
    #: The names of the per-parameter state arrays, PyTorch's names.
    state_names: tuple[str, ...] = ()

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.steps = 0
        self.state: list[list[NDArray[np.floating[Any]]]] | None = None
        self._owner: tuple[tuple[int, ...], str] | None = None

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _real(value, "lr", 0.0)

    def _hyper(self) -> dict[str, Any]:
        """The hyperparameters besides lr, as passed to the native update."""
        return {}

    def _spec(self) -> dict[str, Any]:
        """The dict the native training calls take: kind, hyperparameters and the number of the
        next update."""
        return {"kind": self.kind, "lr": self._lr, "step": self.steps + 1, **self._hyper()}

    def reset(self) -> None:
        """Forget the state and the step count (the next step is a first step again)."""
        self.steps = 0
        self.state = None
        self._owner = None

    def _state_for(self, net: Network) -> list[list[NDArray[np.floating[Any]]]]:
        """The state arrays for `net`, allocated (zeros) on first use."""
        sizes = tuple(net.layer_sizes)
        owner = (sizes, net.dtype.name)
        if self.state is None:
            state = []
            for n_in, n_out in zip(sizes[:-1], sizes[1:]):
                for shape in ((n_out, n_in), (n_out,)):
                    state.append([np.zeros(shape, dtype=net.dtype) for _ in self.state_names])
            self.state, self._owner = state, owner
        elif self._owner != owner:
            raise ValueError(
                f"this {type(self).__name__} holds state for a {self._owner[1] if self._owner else '?'} network of "
                f"layer sizes {list(self._owner[0]) if self._owner else '?'}, not for this {owner[1]} network of "
                f"layer sizes {list(sizes)}; give each network its own optimizer, or call optimizer.reset() first")
        return self.state

    def _snapshot(self) -> tuple[int, list[list[NDArray[np.floating[Any]]]] | None]:
        """A copy of the step count and the state (what a rolled-back batch restores)."""
        return self.steps, None if self.state is None else [[a.copy() for a in p] for p in self.state]

    def _restore(self, snap: tuple[int, list[list[NDArray[np.floating[Any]]]] | None]) -> None:
        steps, saved = snap
        self.steps = steps
        if saved is not None and self.state is not None:
            for arrays, copies in zip(self.state, saved):
                for a, c in zip(arrays, copies):
                    np.copyto(a, c)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._public_hyper().items())
        return f"{type(self).__name__}(lr={self._lr!r}{', ' if args else ''}{args})"

    def _public_hyper(self) -> dict[str, Any]:
        return self._hyper()

    def _config(self) -> dict[str, Any]:
        """The constructor's arguments, as plain values (checkpoints rebuild from them)."""
        return {"lr": self._lr, **self._public_hyper()}

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: The optimizers a checkpoint may name, by their `kind`.
def _optimizer_classes() -> dict[str, type[Optimizer]]:
    return {cls.kind: cls for cls in (SGD, Adam, AdamW, RMSprop)}


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (PyTorch's ``torch.optim.SGD``).

    Parameters
    ----------
    lr : float
        Learning rate, >= 0.
    momentum : float, default=0.0
        Momentum factor mu >= 0: ``buf = mu * buf + g`` (``buf = g`` at the first step).
    nesterov : bool, default=False
        Nesterov's form: step along ``g + mu * buf`` instead of ``buf``; needs momentum > 0.
    weight_decay : float, default=0.0
        L2 penalty added to the weights' gradient, ``g = dL/dW + weight_decay * W``; biases
        are not decayed.

    Notes
    -----
    ``W -= lr * g`` with ``g`` as above. Plain SGD (no momentum, no decay) keeps no state, and
    its step is fused into the gradient computation.
    """

    kind = "sgd"

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self._momentum = _real(momentum, "momentum", 0.0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self._momentum == 0.0:
            raise ValueError("nesterov=True needs a momentum > 0 (Nesterov's form is a kind of momentum)")
        self._nesterov = bool(nesterov)
        self._weight_decay = _real(weight_decay, "weight_decay", 0.0)
        self.state_names = ("momentum_buffer",) if self._momentum else ()

    momentum = property(lambda self: self._momentum, doc="float: the momentum factor (read-only).")
    nesterov = property(lambda self: self._nesterov, doc="bool: Nesterov's form (read-only).")
    weight_decay = property(lambda self: self._weight_decay, _set_weight_decay,
                            doc="float: the L2 factor on weights; may be changed between steps.")

    def _hyper(self) -> dict[str, Any]:
        return {"momentum": self._momentum, "nesterov": self._nesterov, "weight_decay": self._weight_decay}


class Adam(Optimizer):
    """Adam (PyTorch's ``torch.optim.Adam``), with L2 weight decay added to the gradient.

    Parameters
    ----------
    lr : float, default=1e-3
    betas : tuple of two floats, default=(0.9, 0.999)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float, default=1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default=0.0
        L2 penalty added to the weights' gradient (biases are not decayed). For decoupled
        decay use :class:`AdamW`.

    Notes
    -----
    At step t: ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g²``,
    ``W -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.
    """

    kind = "adam"
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self._betas = (_real(betas[0], "betas[0]", 0.0, 1.0, hi_open=True),
                       _real(betas[1], "betas[1]", 0.0, 1.0, hi_open=True))
        self._eps = _real(eps, "eps", 0.0)
        self._weight_decay = _real(weight_decay, "weight_decay", 0.0)

    betas = property(lambda self: self._betas, doc="(float, float): the moment decay rates (read-only).")
    eps = property(lambda self: self._eps, doc="float: the denominator's epsilon (read-only).")
    weight_decay = property(lambda self: self._weight_decay, _set_weight_decay,
                            doc="float: the weight decay factor; may be changed between steps.")

    def _hyper(self) -> dict[str, Any]:
        return {"beta1": self._betas[0], "beta2": self._betas[1], "eps": self._eps,
                "weight_decay": self._weight_decay}

    def _public_hyper(self) -> dict[str, Any]:
        return {"betas": self._betas, "eps": self._eps, "weight_decay": self._weight_decay}


class AdamW(Adam):
    """AdamW (PyTorch's ``torch.optim.AdamW``): Adam with decoupled weight decay.

    Parameters are those of :class:`Adam`, with ``weight_decay=1e-2`` by default: each step
    first shrinks the weights, ``W *= 1 - lr * weight_decay`` (biases are not decayed), then
    takes Adam's step on the plain gradient.
    """

    kind = "adamw"

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop (PyTorch's ``torch.optim.RMSprop``, not centered).

    Parameters
    ----------
    lr : float, default=1e-2
    alpha : float, default=0.99
        Smoothing constant of the squared-gradient average, in [0, 1].
    eps : float, default=1e-8
        Added to the root of the average, >= 0.
    momentum : float, default=0.0
        Momentum factor >= 0 (its buffer starts at zeros, as in PyTorch).
    weight_decay : float, default=0.0
        L2 penalty added to the weights' gradient (biases are not decayed).

    Notes
    -----
    ``s = alpha s + (1 - alpha) g²``, then ``W -= lr * g / (sqrt(s) + eps)``, or with momentum
    ``buf = momentum buf + g / (sqrt(s) + eps)``, ``W -= lr * buf``.
    """

    kind = "rmsprop"

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self._alpha = _real(alpha, "alpha", 0.0, 1.0)
        self._eps = _real(eps, "eps", 0.0)
        self._momentum = _real(momentum, "momentum", 0.0)
        self._weight_decay = _real(weight_decay, "weight_decay", 0.0)
        self.state_names = ("square_avg", "momentum_buffer") if self._momentum else ("square_avg",)

    alpha = property(lambda self: self._alpha, doc="float: the averaging constant (read-only).")
    eps = property(lambda self: self._eps, doc="float: the denominator's epsilon (read-only).")
    momentum = property(lambda self: self._momentum, doc="float: the momentum factor (read-only).")
    weight_decay = property(lambda self: self._weight_decay, _set_weight_decay,
                            doc="float: the weight decay factor; may be changed between steps.")

    def _hyper(self) -> dict[str, Any]:
        return {"alpha": self._alpha, "eps": self._eps, "momentum": self._momentum,
                "weight_decay": self._weight_decay}
