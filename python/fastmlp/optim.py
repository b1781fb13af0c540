"""Optimizers: how a training step turns gradients into new weights.

Each class holds hyperparameters, a step count and its per-parameter state (momentum buffers,
Adam's moments) as NumPy arrays; the update itself runs natively, layer by layer, right after
that layer's gradient is computed (``cpp/fastmlp/optim.hpp``). The update rules are PyTorch's
(``torch.optim``, single-tensor form) to the letter, with one deliberate difference:
``weight_decay`` applies to the weights only, never to the biases (in PyTorch that takes two
parameter groups).

An optimizer belongs to one network object: its state is allocated at the first training call,
shaped like that network's parameters, bound to that network, and reused by every later call on it
(so a second ``fit`` continues with the same momentum). Training another network with it, even one
of the same shape, is refused until :meth:`Optimizer.reset` forgets the state: moments and a step
count carried from one network to the next would silently change the second training.
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar, Optional

import numpy as np
from numpy.typing import NDArray

from ._validation import check_bool, check_real
from .network import Network

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]


def _set_weight_decay(self: Any, value: float) -> None:
    # Unlike momentum or betas, the decay keeps no state of its own, so it may change between
    # steps (scikit-learn's alpha maps onto a decay that depends on the batch).
    self._weight_decay = check_real(value, "weight_decay", 0.0)


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
        # The network object the state belongs to (weakly: an optimizer does not keep a
        # discarded network alive); None while there is no state.
        self._network: Optional[weakref.ReferenceType[Network]] = None

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = check_real(value, "lr", 0.0)

    def _hyper(self) -> dict[str, Any]:
        """The hyperparameters besides lr, as passed to the native update."""
        return {}

    def _spec(self) -> dict[str, Any]:
        """The dict the native training calls take: kind, hyperparameters and the number of the
        next update."""
        return {"kind": self.kind, "lr": self._lr, "step": self.steps + 1, **self._hyper()}

    def reset(self) -> None:
        """Forget the state and the step count (the next step is a first step again), and the
        network they belonged to: the optimizer may then train any network."""
        self.steps = 0
        self.state = None
        self._network = None

    def _check_network(self, net: Network) -> None:
        """ValueError unless this optimizer is fresh or its state belongs to `net` itself."""
        # Fresh; or state unpickled without its network, which must at least fit this one.
        if self._network is None and (self.state is None or [a.shape for p in self.state for a in p]
                                      == [a.shape for p in self._zeros_for(net) for a in p]):
            return
        owner = None if self._network is None else self._network()
        if owner is net:
            return
        if owner is not None and (owner.layer_sizes != net.layer_sizes or owner.dtype != net.dtype):
            what = (f"a {owner.dtype.name} network of layer sizes {list(owner.layer_sizes)}, not for this "
                    f"{net.dtype.name} network of layer sizes {list(net.layer_sizes)}")
        elif self._network is None:
            what = "a network of another shape"
        else:
            what = ("another network (of the same shape); its moments and step count would carry over and "
                    "change this training")
        raise ValueError(f"this {type(self).__name__} holds state for {what}; give each network its own optimizer, "
                         f"or call optimizer.reset() first")

    def _zeros_for(self, net: Network) -> list[list[NDArray[np.floating[Any]]]]:
        """Fresh (zero) state arrays shaped like `net`'s W_1, b_1, W_2, b_2, ..."""
        state = []
        for n_in, n_out in zip(net.layer_sizes[:-1], net.layer_sizes[1:]):
            for shape in ((n_out, n_in), (n_out,)):
                state.append([np.zeros(shape, dtype=net.dtype) for _ in self.state_names])
        return state

    def _state_for(self, net: Network) -> list[list[NDArray[np.floating[Any]]]]:
        """The state arrays for `net`, allocated (zeros) and bound to `net` on first use;
        ValueError if they belong to another network (see :meth:`_check_network`)."""
        self._check_network(net)
        if self.state is None:
            self.state = self._zeros_for(net)
        self._network = weakref.ref(net)
        return self.state

    def _snapshot(self) -> tuple[int, float, list[list[NDArray[np.floating[Any]]]] | None]:
        """A copy of the step count, the learning rate and the state (what a rolled-back batch
        or an interrupted epoch restores)."""
        return self.steps, self._lr, None if self.state is None else [[a.copy() for a in p] for p in self.state]

    def _snapshot_into(self, snap: tuple[int, float, list[list[NDArray[np.floating[Any]]]] | None]
                       ) -> tuple[int, float, list[list[NDArray[np.floating[Any]]]] | None]:
        """:meth:`_snapshot` reusing the arrays of an earlier snapshot (no allocation per epoch)."""
        _, _, saved = snap
        if saved is None or self.state is None or len(saved) != len(self.state):
            return self._snapshot()
        for arrays, copies in zip(self.state, saved):
            for a, c in zip(arrays, copies):
                np.copyto(c, a)
        return self.steps, self._lr, saved

    def _restore(self, snap: tuple[int, float, list[list[NDArray[np.floating[Any]]]] | None]) -> None:
        steps, lr, saved = snap
        self.steps, self._lr = steps, lr
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
        # The owner is pickled as the network itself: pickled together with it (a Trainer, an
        # estimator), the copy's state belongs to the copy's network.
        state = dict(self.__dict__)
        state["_network"] = None if self._network is None else self._network()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        owner = state.pop("_network", None)
        self.__dict__.update(state)
        self._network = None if owner is None else weakref.ref(owner)


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
        self._momentum = check_real(momentum, "momentum", 0.0)
        check_bool(nesterov, "nesterov")
        if nesterov and self._momentum == 0.0:
            raise ValueError("nesterov=True needs a momentum > 0 (Nesterov's form is a kind of momentum)")
        self._nesterov = bool(nesterov)
        self._weight_decay = check_real(weight_decay, "weight_decay", 0.0)
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
        self._betas = (check_real(betas[0], "betas[0]", 0.0, 1.0, hi_open=True),
                       check_real(betas[1], "betas[1]", 0.0, 1.0, hi_open=True))
        self._eps = check_real(eps, "eps", 0.0)
        self._weight_decay = check_real(weight_decay, "weight_decay", 0.0)

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
        self._alpha = check_real(alpha, "alpha", 0.0, 1.0)
        self._eps = check_real(eps, "eps", 0.0)
        self._momentum = check_real(momentum, "momentum", 0.0)
        self._weight_decay = check_real(weight_decay, "weight_decay", 0.0)
        self.state_names = ("square_avg", "momentum_buffer") if self._momentum else ("square_avg",)

    alpha = property(lambda self: self._alpha, doc="float: the averaging constant (read-only).")
    eps = property(lambda self: self._eps, doc="float: the denominator's epsilon (read-only).")
    momentum = property(lambda self: self._momentum, doc="float: the momentum factor (read-only).")
    weight_decay = property(lambda self: self._weight_decay, _set_weight_decay,
                            doc="float: the weight decay factor; may be changed between steps.")

    def _hyper(self) -> dict[str, Any]:
        return {"alpha": self._alpha, "eps": self._eps, "momentum": self._momentum,
                "weight_decay": self._weight_decay}
