"""Network: the parameters of a multi-layer perceptron and everything that only reads them
(prediction, loss, gradients, save/load). Training lives in trainer.py. The arrays are owned
here, as NumPy arrays; the native kernels work on them in place, without copies."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, SupportsIndex, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _core
from ._forward import check_dropout_seed
from ._inference import InferenceMixin
from ._initialisation import initial_parameters
from ._model_file import (
    MAX_FILE_ENTRIES as _MAX_FILE_ENTRIES,  # read by _checkpoint.py from here
)
from ._model_file import (
    ModelFileError as ModelFileError,  # re-exported: fastmlp.network.ModelFileError stays importable
)
from ._model_file import (
    NetworkFields,
    network_entries,
    network_fields,
    read_network_file,
    write_npz,
)
from ._sparse import check_input
from ._summary import NetworkSummary, summary
from ._torch_export import sequential_from_parameters
from ._validation import (
    check_activations,
    check_bool,
    check_dropout,
    check_dtype,
    check_init,
    check_layer_sizes,
    check_output,
    check_sample_weight,
    check_seed,
    check_y,
)

# Names other modules read from here since before the model-file format had its own module.
__all__ = ["ModelFileError", "Network", "_MAX_FILE_ENTRIES"]

# load() returns an instance of the class it is called on (typing.Self needs Python 3.11).
_NetworkT = TypeVar("_NetworkT", bound="Network")


class Network(InferenceMixin):
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
        self.weights, self.biases = initial_parameters(
            self._layer_sizes, self._activations, self._activation, self._init, self._dtype, seed)

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
            new.__dict__.pop("_predict_cache", None)  # scratch memory is never shared between networks
            new.weights = [W.copy() for W in self.weights]
            new.biases = [b.copy() for b in self.biases]
        new._init_lock()  # its own lock: the copy is trained and used independently
        return new

    # ------------------------------------------------------------------ pickling (the lock: _inference.py)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support: everything but the lock and the prediction workspace (neither can be
        pickled, and a lock's state means nothing in another process). The parameters are copied under the lock so
        that pickling during another thread's training stores one consistent state."""
        with self._locked():
            state = {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_predict_cache")}
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

    # ------------------------------------------------------------------ the targets, checked

    def _check_y(self, y: ArrayLike, n_samples: int, name: str = "y", x_name: str = "X") -> NDArray[Any]:
        return check_y(y, n_samples, self.n_outputs, self._dtype, name=name, x_name=x_name, output=self._output)

    # ------------------------------------------------------------------ inference

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
            For an identity or poisson (regression) output, which has no probabilities: use
            :meth:`predict`.
        """
        if self._output in ("identity", "poisson"):
            raise ValueError(f"predict_proba is for classifiers; this network has a {self._output} (regression) "
                             "output, so use predict(X) for its outputs")
        return self._forward(X)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Predictions for X.

        Returns
        -------
        ndarray
            softmax: class labels, shape (n_samples,), int64. sigmoid: 0/1 labels, int64, of
            shape (n_samples, n_outputs), or (n_samples,) with one output; 1 where the
            probability exceeds 0.5. identity and poisson: the outputs (for poisson the
            predicted means, exp of the last layer), in the network's dtype, of shape
            (n_samples, n_outputs), or (n_samples,) with one output.
        """
        out = self._forward(X)
        if self._output == "softmax":
            labels: NDArray[np.intp] = np.argmax(out, axis=1)
            return labels.astype(np.int64)
        result: NDArray[Any] = (out > 0.5).astype(np.int64) if self._output == "sigmoid" else out
        return result[:, 0] if self.n_outputs == 1 else result

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
        training = check_bool(training, "training")
        seed = check_dropout_seed(seed)
        X = check_input(X, self.n_features, self._dtype)
        y = self._check_y(y, len(X))
        weights = None if sample_weight is None else check_sample_weight(sample_weight, len(X), self._dtype)
        ws = self._workspace(len(X), training=training)
        with self._locked():
            W, b = self._params()
            loss_sum, _, grads = _core.gradients(ws, W, b, X, y, training=training, dropout_seed=seed, epoch=0,
                                                 batch_index=0, sample_weight=weights)
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
        if include_output and self._output == "poisson":
            raise ValueError("include_output=True: torch.nn has no exp module for a poisson output; export with "
                             "include_output=False and apply torch.exp to the result")
        # copy() takes the lock, so a network training in another thread gives one consistent
        # state; the copy's arrays then belong to the tensors alone (no second copy).
        snapshot = self.copy()
        weights, biases = snapshot._params()  # the checks that user edits left the arrays usable
        return sequential_from_parameters(weights, biases, snapshot._activations, snapshot._dropout,
                                          snapshot._output, include_output)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to a ``.npz`` file (arrays and plain values only, no pickle).

        A path without the ``.npz`` suffix gets it appended, as numpy.savez does. The file is
        written to a temporary file in the same folder and renamed over `path` only when
        complete: an error, Ctrl-C, a kill or a full disk leave the previous file as it was.
        """
        arrays = self._to_arrays()
        if hasattr(path, "write"):  # a stream, as numpy.savez takes: written as is (its owner's to replace)
            np.savez(path, **arrays)  # type: ignore[arg-type, unused-ignore]
            return
        write_npz(path, arrays)

    def _to_arrays(self) -> dict[str, NDArray[Any]]:
        """The entries of a model file: the description and a copy of every parameter, taken
        under the lock; ValueError if a parameter is not finite (load would refuse it)."""
        with self._locked():  # one consistent state even while another thread trains
            W, b = self._params()
            W, b = [a.copy() for a in W], [a.copy() for a in b]
        return network_entries(NetworkFields(
            list(self._layer_sizes), self._activation, list(self._activations), self._output,
            list(self._dropout), self._init, self._dtype, W, b))

    @classmethod
    def load(cls: type[_NetworkT], path: str | os.PathLike[str]) -> _NetworkT:
        """Read a network written by :meth:`save`.

        Raises
        ------
        OSError
            The file cannot be opened (missing, a directory, permissions).
        ModelFileError (a ValueError)
            The file is not a valid fastmlp network: not a regular file (a device or a named
            pipe, refused before reading), truncated, foreign, inconsistent, or a training
            checkpoint (the message points to ``Trainer.load_checkpoint``).
        """
        if not os.path.exists(path) and os.path.exists(str(path) + ".npz"):
            path = str(path) + ".npz"
        # Not np.load: it allocates whatever a member's header claims and inflates whatever a
        # member declares. The reader checks every size against the file before reading.
        return cls._from_arrays(read_network_file(path), path)

    @classmethod
    def _from_arrays(
        cls: type[_NetworkT], data: Mapping[str, NDArray[Any]], path: str | os.PathLike[str]
    ) -> _NetworkT:
        """The network the entries of a model file describe (ModelFileError if they do not)."""
        fields = network_fields(data, path)
        net = object.__new__(cls)
        net._init_lock()
        net._layer_sizes, net._activation, net._dtype = fields.layer_sizes, fields.activation, fields.dtype
        net.seed = None
        net._activations, net._output, net._dropout = fields.activations, fields.output, fields.dropout
        net._init, net.weights, net.biases = fields.init, fields.weights, fields.biases
        return net
