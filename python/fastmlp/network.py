"""Network: the parameters of a multi-layer perceptron and everything that only reads them
(prediction, loss, gradients, save/load). Training lives in trainer.py. The arrays are owned
here, as NumPy arrays; the native kernels work on them in place, without copies."""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, SupportsIndex, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _core
from ._model_file import read_npz_arrays
from ._summary import NetworkSummary, summary
from ._validation import (
    check_activation,
    check_activations,
    check_dropout,
    check_dtype,
    check_init,
    check_layer_sizes,
    check_output,
    check_sample_weight,
    check_seed,
    check_X,
    check_y,
)

#: Rows per native forward chunk for predict/loss: bounds the scratch memory, not the result
#: (rows are independent, so chunking changes no bit of the output).
_EVAL_CHUNK = 1024

_FORMAT_NAME = "fastmlp.Network"
_FORMAT_VERSION = 2  # 2 added activations per layer, output and dropout; version 1 files still load

#: The most entries a model or checkpoint file may have (a bound for hostile files; a network of
#: 1000 layers with Adam's state needs about 6000).
_MAX_FILE_ENTRIES = 8192

#: Activations whose networks start from He initialisation under init="auto" (Glorot otherwise).
_RELU_FAMILY = ("relu", "leaky_relu", "elu", "gelu", "silu")

# load() returns an instance of the class it is called on (typing.Self needs Python 3.11).
_NetworkT = TypeVar("_NetworkT", bound="Network")


# Guards the lazy creation of a network's lock in Network._locked (see there).
_LOCK_CREATION = threading.Lock()


class _Waiter:
    """A thread queued for a _FairRLock: its gate is held locked until the lock is handed to it."""

    __slots__ = ("thread", "gate", "handed_over")

    def __init__(self, thread: int) -> None:
        self.thread = thread
        self.gate = threading.Lock()
        self.gate.acquire()
        self.handed_over = False


class _FairRLock:
    """A reentrant lock granted in arrival order.

    ``threading.RLock`` lets a releasing thread take the lock straight back, before a woken
    waiter runs; a fit that releases the network's lock between epochs then starves a predict
    from another thread for dozens of epochs. Here a release hands the lock to the longest
    waiting thread, so a waiter gets it at the next release.

    Waiting releases the GIL and, in the main thread, can be interrupted by Ctrl-C.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # guards the fields below; held only briefly
        self._owner: int | None = None
        self._count = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()  # oldest first

    def acquire(self) -> bool:
        me = threading.get_ident()
        waiter = _Waiter(me)
        acquired = False
        try:
            with self._mutex:
                if self._owner == me:
                    self._count += 1
                    acquired = True
                    return True
                if self._owner is None and not self._waiters:
                    self._owner, self._count = me, 1
                    acquired = True
                    return True
                self._waiters.append(waiter)
            waiter.gate.acquire()  # until a release hands the lock to this thread
        except BaseException:
            # Ctrl-C (or another asynchronous exception) before the caller could hold the
            # lock: leave the queue, or give back what this call took, so that the lock is
            # never left held by, or handed to, a thread that is not going to release it.
            with self._mutex:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                    raise
                took_it = acquired or waiter.handed_over
            if took_it:
                self.release()
            raise
        return True

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release a network lock held by another thread")
            self._count -= 1
            if self._count:
                return
            if self._waiters:
                waiter = self._waiters.popleft()
                self._owner, self._count = waiter.thread, 1
                waiter.handed_over = True
                waiter.gate.release()
            else:
                self._owner = None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class ModelFileError(ValueError):
    """A model file that is not a valid fastmlp network (truncated, foreign or inconsistent)."""


class Network:
    """A fully connected network trained by backpropagation.

    Parameters
    ----------
    layer_sizes : list of int
        ``[n_features, hidden_1, ..., hidden_m, n_outputs]``; at least an input and an output
        size, every size >= 1 (and at least 2 outputs for a softmax).
    activation : str or list of str, default="relu"
        The activation g of the hidden layers: one name for all, or one per hidden layer, from
        ``"relu"``, ``"leaky_relu"`` (slope 0.01), ``"elu"`` (alpha 1), ``"gelu"`` (exact, erf
        form), ``"silu"``, ``"tanh"``, ``"sigmoid"``, ``"softplus"``, ``"identity"``; each
        as PyTorch defines it and its derivative (relu'(0) = 0).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the parameters and of all arithmetic. Inputs are converted to it.
    seed : int or None, default=None
        Seed of the weight initialisation. The same seed gives bitwise the same network.
    output : {"softmax", "sigmoid", "identity"}, default="softmax"
        The output layer and its loss. ``"softmax"``: classes, cross-entropy on integer labels
        (or target distributions). ``"sigmoid"``: one independent probability per output,
        binary cross-entropy on 0/1 targets of shape (n, n_outputs) (or (n,) with one output),
        computed from the logits (PyTorch's ``BCEWithLogitsLoss``, mean over all elements).
        ``"identity"``: regression, mean squared error over all elements (``MSELoss``).
    init : {"auto", "he_normal", "he_uniform", "glorot_uniform", "glorot_normal"}, default="auto"
        Weight initialisation; biases start at 0. He normal has std ``sqrt(2 / fan_in)``, He
        uniform limit ``sqrt(6 / fan_in)``, Glorot uniform limit ``sqrt(6 / (fan_in +
        fan_out))``, Glorot normal std ``sqrt(2 / (fan_in + fan_out))``. ``"auto"`` picks, for
        each layer, He normal when the activation that follows it (for the output layer, the
        last hidden activation) is relu, leaky_relu, elu, gelu or silu, and Glorot uniform
        otherwise.
    dropout : float or list of float, default=0.0
        Inverted dropout on the output of each hidden layer during training (one probability in
        [0, 1) for all, or one per hidden layer): a unit is dropped with probability p and the
        others scaled by 1 / (1 - p). :meth:`predict`, :meth:`loss` and :meth:`gradients` run
        without it unless asked with ``training=True``.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[k]`` of shape (layer_sizes[k+1], layer_sizes[k]): ``W[i, j]`` joins unit j
        of the layer below to unit i. Live arrays: writing into them changes the network.
    biases : list of ndarray
        ``biases[k]`` of shape (layer_sizes[k+1],), live as well.

    Notes
    -----
    Forward pass: ``a_k = h_{k-1} @ W_k.T + b_k``, ``h_k = g_k(a_k)`` for hidden layers, then
    the output layer on ``a_L``. The loss is the mean over the batch (and, for the sigmoid and
    identity outputs, over the outputs too).

    Threads: a Network may be shared between threads. Every method that reads or writes the
    parameters (:meth:`predict_proba`, :meth:`predict`, :meth:`loss`, :meth:`accuracy`,
    :meth:`gradients`, :meth:`copy`, :meth:`save`, pickling, and :class:`Trainer`'s ``step``
    and each epoch of ``fit``) holds a per-network lock, so concurrent calls are *serialized*:
    they wait for each other, never see half-updated weights and never race on them. The
    native work itself runs without the GIL, so other Python threads, and threads using other
    networks, keep running in parallel. Writing into ``weights``/``biases`` directly from one
    thread while another thread uses the network is not covered by the lock and is unsafe.

    Processes: a Network pickles (the lock is left out and recreated), so it can be sent to
    ``multiprocessing`` workers; unpickle only files you trust. Use the ``spawn`` or
    ``forkserver`` start method once the parent has trained or predicted with more than one
    native thread: the OpenMP runtime (libgomp) is not fork-safe, and a ``fork`` child can hang
    in its first parallel call.
    """

    weights: list[NDArray[np.floating[Any]]]
    biases: list[NDArray[np.floating[Any]]]
    # Serializes the native calls that read or write the parameters (see the class Notes).
    # Reentrant so that a locked method may call another locked method of the same network;
    # fair so that a thread between two epochs of a fit cannot starve the other threads.
    _lock: _FairRLock

    def __init__(
        self,
        layer_sizes: Sequence[SupportsIndex],
        activation: str | Sequence[str] = "relu",
        dtype: DTypeLike = "float32",
        seed: int | None = None,
        *,
        output: str = "softmax",
        init: str = "auto",
        dropout: float | Sequence[float] = 0.0,
    ) -> None:
        self._init_lock()
        self._layer_sizes = check_layer_sizes(layer_sizes)
        n_hidden = len(self._layer_sizes) - 2
        self._activations = check_activations(activation, n_hidden)
        # What the user passed, for repr and the `activation` property: one name or the list.
        self._activation: str | list[str] = activation if isinstance(activation, str) else list(self._activations)
        self._output = check_output(output, self._layer_sizes[-1])
        self._dropout = check_dropout(dropout, n_hidden)
        self._init = check_init(init)
        self._dtype = check_dtype(dtype)
        self.seed = check_seed(seed)
        rng = np.random.default_rng(seed)
        self.weights = []
        self.biases = []
        L = len(self._layer_sizes) - 1
        for k, (n_in, n_out) in enumerate(zip(self._layer_sizes[:-1], self._layer_sizes[1:]), start=1):
            scheme = self._init
            if scheme == "auto":
                # The activation after layer k (the output layer: the last hidden one's).
                follows = self._activations[min(k, L - 1) - 1] if L > 1 else \
                    (self._activation if isinstance(self._activation, str) else "relu")
                scheme = "he_normal" if follows in _RELU_FAMILY else "glorot_uniform"
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
            self.weights.append(np.ascontiguousarray(W, dtype=self._dtype))
            self.biases.append(np.zeros(n_out, dtype=self._dtype))

    # ------------------------------------------------------------------ description

    @property
    def layer_sizes(self) -> list[int]:
        """list of int: the sizes passed to the constructor (a copy)."""
        return list(self._layer_sizes)

    @property
    def activation(self) -> str | list[str]:
        """str or list of str: the hidden activation(s) as given (one name, or one per hidden layer)."""
        return self._activation if isinstance(self._activation, str) else list(self._activation)

    @property
    def activations(self) -> list[str]:
        """list of str: the activation of each hidden layer (a copy)."""
        return list(self._activations)

    @property
    def output(self) -> str:
        """str: the output layer, "softmax", "sigmoid" or "identity"."""
        return self._output

    @property
    def dropout(self) -> list[float]:
        """list of float: the dropout probability of each hidden layer (a copy)."""
        return list(self._dropout)

    @property
    def init(self) -> str:
        """str: the initialisation scheme the weights were drawn with ("auto" resolves per layer)."""
        return self._init

    @property
    def n_outputs(self) -> int:
        """int: the size of the output layer (classes for a softmax)."""
        return self._layer_sizes[-1]

    @property
    def dtype(self) -> np.dtype[np.floating[Any]]:
        """numpy.dtype: float32 or float64."""
        return self._dtype

    @property
    def n_features(self) -> int:
        return self._layer_sizes[0]

    @property
    def n_classes(self) -> int:
        return self._layer_sizes[-1]

    @property
    def n_params(self) -> int:
        """int: the number of weights and biases."""
        return sum(i * o + o for i, o in zip(self._layer_sizes[:-1], self._layer_sizes[1:]))

    def __repr__(self) -> str:
        extra = ""
        if self._output != "softmax":
            extra += f", output={self._output!r}"
        if self._init != "auto":
            extra += f", init={self._init!r}"
        if any(self._dropout):
            extra += f", dropout={self._dropout!r}"
        return (f"Network({self._layer_sizes!r}, activation={self._activation!r}, "
                f"dtype={self._dtype.name!r}, seed={self.seed!r}{extra})")

    def copy(self) -> Network:
        """A deep copy: same sizes, activation, dtype, seed and parameter values.

        Taken under the network's lock, so a copy made while another thread trains holds the
        weights between two epochs (or steps), never a mix of two.
        """
        new = object.__new__(Network)
        with self._locked():
            new.__dict__.update(self.__dict__)
            new.weights = [W.copy() for W in self.weights]
            new.biases = [b.copy() for b in self.biases]
        new._init_lock()  # its own lock: the copy is trained and used independently
        return new

    # ------------------------------------------------------------------ threads and pickling

    def _init_lock(self) -> None:
        """Give this network its own lock. Every way of building a Network must call it:
        ``__init__``, :meth:`copy`, ``__setstate__`` and the load path."""
        self._lock = _FairRLock()

    def _locked(self) -> _FairRLock:
        """The network's lock, held around every native call on its parameters.

        A network built without ``_init_lock`` (say by a new ``object.__new__`` path) still
        gets one, created under a module-wide lock so that two threads cannot each create
        their own and then run unserialized.
        """
        lock = self.__dict__.get("_lock")
        if lock is None:
            with _LOCK_CREATION:
                lock = self.__dict__.get("_lock")
                if lock is None:
                    self._init_lock()
                    lock = self._lock
        return lock

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support: everything but the lock (locks cannot be pickled, and a lock's
        state means nothing in another process). The parameters are copied under the lock so
        that pickling during another thread's training stores one consistent state."""
        with self._locked():
            state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
            state["weights"] = [W.copy() for W in self.weights]
            state["biases"] = [b.copy() for b in self.biases]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_activations" not in state:  # pickled by fastmlp 0.1: one activation, softmax, no dropout
            n_hidden = len(self._layer_sizes) - 2
            self._activations = [state["_activation"]] * n_hidden
            self._output, self._dropout, self._init = "softmax", [0.0] * n_hidden, "auto"
        # Unpickling gives new dtype objects, equal to NumPy's own but not the same objects,
        # and the native calls accept only NumPy's own float32/float64 dtype objects (they
        # compare by identity). Views with the canonical dtype fix that without a copy.
        self._dtype = check_dtype(self._dtype.name)
        self.weights = [np.asarray(W, dtype=self._dtype) for W in self.weights]
        self.biases = [np.asarray(b, dtype=self._dtype) for b in self.biases]
        self._init_lock()

    # ------------------------------------------------------------------ the parameters, checked

    def _params(
        self, for_update: bool = False
    ) -> tuple[list[NDArray[np.floating[Any]]], list[NDArray[np.floating[Any]]]]:
        """The parameter lists, after checking that user edits kept them usable in place
        (and writeable, when a training step is about to update them)."""
        for kind, arrays, shapes in (
            ("weights", self.weights, [(o, i) for i, o in zip(self._layer_sizes[:-1], self._layer_sizes[1:])]),
            ("biases", self.biases, [(o,) for o in self._layer_sizes[1:]]),
        ):
            if not isinstance(arrays, list) or len(arrays) != len(shapes):
                raise ValueError(f"net.{kind} must be a list of {len(shapes)} arrays; it was replaced by {arrays!r:.80}")
            for k, (a, shape) in enumerate(zip(arrays, shapes)):
                if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != self._dtype:
                    got = f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}"
                    raise ValueError(
                        f"net.{kind}[{k}] must be a {self._dtype.name} array of shape {shape}, got {got}; "
                        f"assign values with net.{kind}[{k}][...] = new_values")
                if not a.flags.c_contiguous:
                    raise ValueError(f"net.{kind}[{k}] must be C-contiguous; use np.ascontiguousarray")
                if for_update and not a.flags.writeable:
                    raise ValueError(f"net.{kind}[{k}] is read-only, so training cannot update it; "
                                     f"make it writeable with net.{kind}[{k}] = net.{kind}[{k}].copy()")
        return self.weights, self.biases

    def _workspace(self, rows: int, training: bool = False) -> _core.Workspace:
        """Native scratch memory for this architecture; with `training`, room for dropout."""
        return _core.Workspace(self._layer_sizes, rows, self._dtype.name, self._activations, self._output,
                               self._dropout if training else None)

    def _eval_workspace(self, rows: int) -> _core.Workspace:
        return self._workspace(max(1, min(rows, _EVAL_CHUNK)))

    def _check_y(self, y: ArrayLike, n_samples: int, name: str = "y", x_name: str = "X") -> NDArray[Any]:
        return check_y(y, n_samples, self.n_outputs, self._dtype, name=name, x_name=x_name, output=self._output)

    # ------------------------------------------------------------------ inference

    def _forward(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        """The output layer's predictions (n_samples, n_outputs), without dropout."""
        X = check_X(X, self.n_features, self._dtype)
        ws = self._eval_workspace(len(X))
        with self._locked():
            W, b = self._params()
            _, _, preds = _core.evaluate(ws, W, b, X, None, True)
        out: NDArray[np.floating[Any]] = preds
        return out

    def predict_proba(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        """Predicted probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), in the network's dtype: class probabilities
        (rows sum to 1) for a softmax output, the probability of each output being 1 for a
        sigmoid output.

        Raises
        ------
        ValueError
            For an identity (regression) output, which has no probabilities: use :meth:`predict`.
        """
        if self._output == "identity":
            raise ValueError("predict_proba is for classifiers; this network has an identity (regression) output, "
                             "so use predict(X) for its outputs")
        return self._forward(X)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Predictions for X.

        Returns
        -------
        ndarray
            softmax: class labels, shape (n_samples,), int64. sigmoid: 0/1 labels, int64, of
            shape (n_samples, n_outputs), or (n_samples,) with one output; 1 where the
            probability exceeds 0.5. identity: the outputs, in the network's dtype, of shape
            (n_samples, n_outputs), or (n_samples,) with one output.
        """
        out = self._forward(X)
        if self._output == "softmax":
            labels: NDArray[np.intp] = np.argmax(out, axis=1)
            return labels.astype(np.int64)
        result: NDArray[Any] = (out > 0.5).astype(np.int64) if self._output == "sigmoid" else out
        return result[:, 0] if self.n_outputs == 1 else result

    def _evaluate(self, X: ArrayLike, y: ArrayLike) -> tuple[float, float]:
        X = check_X(X, self.n_features, self._dtype)
        y = self._check_y(y, len(X))
        ws = self._eval_workspace(len(X))
        with self._locked():
            W, b = self._params()
            loss_sum, n_correct, _ = _core.evaluate(ws, W, b, X, y, False)
        return loss_sum / len(X), n_correct / len(X)

    def loss(self, X: ArrayLike, y: ArrayLike, training: bool = False, seed: int = 0,
             sample_weight: ArrayLike | None = None) -> float:
        """Mean loss of the network on (X, y), a float.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like
            softmax: integer labels (n_samples,) in [0, n_outputs) or target distributions
            (n_samples, n_outputs) (rows summing to 1). sigmoid: 0/1 targets (or probabilities)
            of shape (n_samples, n_outputs), or (n_samples,) with one output. identity: real
            targets, the same shapes.
        training : bool, default=False
            Apply dropout as a training step would, with the masks of ``seed`` (the masks of
            :meth:`gradients` with the same ``seed``); without dropout layers it changes nothing.
        seed : int, default=0
            The dropout masks' key, with ``training=True``.
        sample_weight : array-like of shape (n_samples,), optional
            Row weights: the loss is then the weighted mean ``sum(w l) / sum(w)``.

        Returns
        -------
        float
            Cross-entropy (softmax), binary cross-entropy (sigmoid) or squared error
            (identity), averaged over samples (and outputs, for sigmoid and identity).
        """
        if training or sample_weight is not None:
            return self.gradients(X, y, training=training, seed=seed, sample_weight=sample_weight)[0]
        return self._evaluate(X, y)[0]

    def accuracy(self, X: ArrayLike, y: ArrayLike) -> float:
        """Fraction of samples predicted right: the arg-max class is the label (softmax), or
        every output is on the right side of 0.5 (sigmoid: exact-match accuracy).

        Raises
        ------
        ValueError
            For an identity (regression) output.
        """
        if self._output == "identity":
            raise ValueError("accuracy is for classifiers; this network has an identity (regression) output: "
                             "use loss(X, y), its mean squared error")
        return self._evaluate(X, y)[1]

    def gradients(
        self, X: ArrayLike, y: ArrayLike, training: bool = False, seed: int = 0,
        sample_weight: ArrayLike | None = None,
    ) -> tuple[float, list[tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]]]:
        """Loss and gradients of the mean loss over the batch (X, y).

        Parameters
        ----------
        X, y
            As for :meth:`loss`.
        training : bool, default=False
            Apply dropout, with the masks of ``seed``: the gradient of ``loss(X, y,
            training=True, seed=seed)``.
        seed : int, default=0
            The dropout masks' key, with ``training=True``.
        sample_weight : array-like of shape (n_samples,), optional
            Row weights: the gradient of the weighted mean loss ``sum(w l) / sum(w)``.

        Returns
        -------
        loss : float
        grads : list of (dW, db)
            One pair per layer, shaped like ``weights[k]`` and ``biases[k]``:
            ``dW_k = da_k.T @ h_{k-1}``, ``db_k = da_k.sum(0)``, from ``da_L = (yhat - y) / B``
            (softmax; ``/ (B K)`` for sigmoid, ``2 (a - y) / (B K)`` for identity),
            ``dh_{k-1} = da_k @ W_k``, ``da_{k-1} = dh_{k-1} * g'(a_{k-1})``.
        """
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True or False, got {training!r}")
        seed = check_seed(seed) or 0
        X = check_X(X, self.n_features, self._dtype)
        y = self._check_y(y, len(X))
        weights = None if sample_weight is None else check_sample_weight(sample_weight, len(X), self._dtype)
        ws = self._workspace(len(X), training=bool(training))
        with self._locked():
            W, b = self._params()
            loss_sum, _, grads = _core.gradients(ws, W, b, X, y, bool(training), seed, 0, 0, weights)
        return loss_sum / len(X), [(dW, db) for dW, db in grads]

    # ------------------------------------------------------------------ description and conversion

    def summary(self) -> NetworkSummary:
        """Layers, activations, dropout, parameter counts and FLOPs per sample, as a table.

        Returns
        -------
        NetworkSummary
            Prints as an aligned table; ``.rows`` and ``.to_dict()`` hold the numbers.
        """
        return summary(self)

    def to_torch(self, *, include_output: bool = False) -> Any:
        """This network as a ``torch.nn.Sequential`` of ``Linear`` and activation layers (with a
        copy of the weights); see :func:`fastmlp.convert.to_torch`. Needs PyTorch
        (``pip install "fastmlp[torch]"``)."""
        from .convert import to_torch

        return to_torch(self, include_output=include_output)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to a ``.npz`` file (arrays and plain values only, no pickle).

        A path without the ``.npz`` suffix gets it appended, as numpy.savez does.
        """
        # mypy cannot tell that no key here is savez's own keyword allow_pickle (a keyword only
        # newer NumPy stubs declare, hence unused-ignore for the older ones).
        np.savez(path, **self._to_arrays())  # type: ignore[arg-type, unused-ignore]

    def _to_arrays(self) -> dict[str, NDArray[Any]]:
        """The entries of a model file: the description and a copy of every parameter, taken
        under the lock; ValueError if a parameter is not finite (load would refuse it)."""
        arrays = {
            "format": np.array(_FORMAT_NAME),
            "format_version": np.array(_FORMAT_VERSION),
            "layer_sizes": np.array(self._layer_sizes, dtype=np.int64),
            "activation": np.array(self._activation if isinstance(self._activation, str) else ""),
            "activations": np.array(self._activations, dtype="U16").reshape(-1),
            "output": np.array(self._output),
            "dropout": np.array(self._dropout, dtype=np.float64).reshape(-1),
            "init": np.array(self._init),
            "dtype": np.array(self._dtype.name),
        }
        with self._locked():  # one consistent state even while another thread trains
            W, b = self._params()
            W, b = [a.copy() for a in W], [a.copy() for a in b]
        for k, (Wk, bk) in enumerate(zip(W, b)):
            for kind, a in (("weights", Wk), ("biases", bk)):
                if not np.isfinite(a).all():  # load() refuses such files: fail now, not at load time
                    raise ValueError(f"cannot save: net.{kind}[{k}] contains NaN or infinity "
                                     "(training diverged; a smaller lr usually helps)")
            arrays[f"W{k}"] = Wk
            arrays[f"b{k}"] = bk
        return arrays

    @classmethod
    def load(cls: type[_NetworkT], path: str | os.PathLike[str]) -> _NetworkT:
        """Read a network written by :meth:`save`.

        Raises
        ------
        OSError
            The file cannot be opened (missing, permissions).
        ModelFileError (a ValueError)
            The file is not a valid fastmlp network: truncated, foreign, or inconsistent.
        """
        if not os.path.exists(path) and os.path.exists(str(path) + ".npz"):
            path = str(path) + ".npz"
        # Not np.load: it allocates whatever a member's header claims and inflates whatever a
        # member declares. read_npz_arrays checks every size against the file before reading.
        # OSError when it cannot be opened, else ModelFileError. A network has 9 + 2 L entries.
        data = read_npz_arrays(path, max_members=_MAX_FILE_ENTRIES)
        return cls._from_arrays(data, path)

    @classmethod
    def _from_arrays(
        cls: type[_NetworkT], data: Mapping[str, NDArray[Any]], path: str | os.PathLike[str]
    ) -> _NetworkT:
        def field(name: str, kind: str) -> object:
            if name not in data:
                raise ModelFileError(f"{path} is not a fastmlp model: the entry {name!r} is missing")
            value = data[name]
            if value.ndim != 0 or value.dtype.kind not in kind:
                raise ModelFileError(f"{path}: entry {name!r} has an unexpected type")
            return value.item()

        if field("format", "U") != _FORMAT_NAME:
            raise ModelFileError(f"{path} is not a fastmlp model file")
        version = field("format_version", "iu")
        if version not in (1, _FORMAT_VERSION):
            raise ModelFileError(f"{path} has format version {version}; this fastmlp reads versions 1 to "
                                 f"{_FORMAT_VERSION} (a newer fastmlp wrote it: upgrade to load it)")
        stored_sizes = data.get("layer_sizes")
        if stored_sizes is None or stored_sizes.ndim != 1 or stored_sizes.dtype.kind not in "iu":
            raise ModelFileError(f"{path}: layer_sizes is missing or malformed")
        def vector(name: str, kind: str) -> list[Any]:
            value = data.get(name)
            if value is None or value.ndim != 1 or value.dtype.kind not in kind:
                raise ModelFileError(f"{path}: the entry {name!r} is missing or malformed")
            items: list[Any] = value.tolist()
            return items

        try:
            sizes = check_layer_sizes(stored_sizes.tolist())
            n_hidden = len(sizes) - 2
            if version == 1:  # one activation for every hidden layer, softmax output, no dropout
                activation: str | list[str] = check_activation(field("activation", "U"))
                activations = check_activations(activation, n_hidden)
                output, dropout, init = "softmax", [0.0] * n_hidden, "auto"
            else:
                activations = check_activations(vector("activations", "U"), n_hidden)
                single = field("activation", "U")  # "" when a list was given
                activation = check_activation(single) if single else activations
                output = check_output(field("output", "U"), sizes[-1])
                dropout = check_dropout(vector("dropout", "f"), n_hidden)
                init = check_init(field("init", "U"))
            dtype = check_dtype(field("dtype", "U"))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{path}: invalid network description: {exc}") from None
        # Every stored array is checked against layer_sizes before anything is allocated from
        # the sizes, so a header claiming huge layers cannot make load() allocate for them.
        weights: list[NDArray[np.floating[Any]]] = []
        biases: list[NDArray[np.floating[Any]]] = []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            for name, shape, out in ((f"W{k}", (n_out, n_in), weights), (f"b{k}", (n_out,), biases)):
                if name not in data:
                    raise ModelFileError(f"{path}: the entry {name!r} is missing")
                a = data[name]
                if a.shape != shape or a.dtype != dtype:
                    raise ModelFileError(
                        f"{path}: {name} has {a.dtype} shape {a.shape}, expected {dtype.name} shape {shape}")
                if not np.isfinite(a).all():
                    raise ModelFileError(f"{path}: {name} contains NaN or infinity")
                out.append(np.ascontiguousarray(a))
        net = object.__new__(cls)
        net._init_lock()
        net._layer_sizes, net._activation, net._dtype, net.seed = sizes, activation, dtype, None
        net._activations, net._output, net._dropout, net._init = activations, output, dropout, init
        net.weights, net.biases = weights, biases
        return net
