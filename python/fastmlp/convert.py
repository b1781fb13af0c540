"""Conversions between fastmlp networks and the MLPs of scikit-learn and PyTorch.

Only the parameters and the architecture cross over (weights are copied, never shared);
optimiser state, training history and torch devices do not. scikit-learn and PyTorch are
imported inside the functions, so fastmlp itself never needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._torch_export import import_torch as _import_torch
from ._validation import OUTPUTS, check_dtype
from .network import Network

if TYPE_CHECKING:  # only for annotations: importing torch costs a second and is optional
    from torch.nn import Sequential as _TorchSequential

__all__ = ["from_sklearn", "from_torch", "to_torch"]

#: scikit-learn's hidden activation names -> fastmlp's.
_SKLEARN_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
#: scikit-learn's out_activation_ -> fastmlp's output layer.
_SKLEARN_OUTPUTS = {"softmax": "softmax", "logistic": "sigmoid", "identity": "identity", "exp": "poisson"}


def _import_sklearn_mlps() -> tuple[type, type]:
    try:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    except ImportError as exc:
        raise ImportError(f'converting from scikit-learn needs scikit-learn, which is not installed ({exc}); '
                          f'install it with: pip install "fastmlp[sklearn]"') from None
    return MLPClassifier, MLPRegressor


def _network_from_parameters(
    weights: Sequence[NDArray[Any]], biases: Sequence[NDArray[Any]], activations: Sequence[str],
    output: str, dropout: Sequence[float], dtype: np.dtype[Any],
) -> Network:
    """A Network holding copies of `weights` (each (out, in)) and `biases`, cast to `dtype`."""
    sizes = [weights[0].shape[1]] + [W.shape[0] for W in weights]
    options: dict[str, Any] = {"output": output, "dropout": list(dropout)}
    if activations:
        # One name when every hidden layer shares it, so that net.activation reads as a user
        # would have written it (and as a network built with one name round-trips).
        options["activation"] = activations[0] if len(set(activations)) == 1 else list(activations)
    # The constructor draws initial weights that are overwritten at once: a cost linear in the
    # parameter count, paid to get every invariant of a Network from its one constructor.
    net = Network(sizes, dtype=dtype, **options)
    for k, (W, b) in enumerate(zip(weights, biases)):
        # Writing into the existing arrays keeps them C-contiguous and of the network's dtype.
        net.weights[k][...] = W
        net.biases[k][...] = b
    return net


# ---------------------------------------------------------------------- scikit-learn


def from_sklearn(mlp: Any, dtype: Optional[DTypeLike] = None) -> Network:
    """Build a Network with the architecture and parameters of a fitted scikit-learn MLP.

    Parameters
    ----------
    mlp : sklearn.neural_network.MLPClassifier or MLPRegressor
        A fitted estimator. Its ``coefs_[k]`` of shape (n_in, n_out) become ``weights[k]`` of
        shape (n_out, n_in) (transposed and copied) and its ``intercepts_[k]`` the biases.
    dtype : {"float32", "float64"}, optional
        The network's dtype; by default the dtype of ``mlp.coefs_`` (scikit-learn keeps the
        dtype of the data it was fitted on).

    Returns
    -------
    Network
        Hidden activation from ``mlp.activation`` ("logistic" becomes "sigmoid"; "relu",
        "tanh" and "identity" keep their names), output from ``mlp.out_activation_``:

        - ``"softmax"`` (multiclass classifier): output "softmax", one unit per class;
          ``net.predict_proba(X)`` equals ``mlp.predict_proba(X)``.
        - ``"logistic"`` (binary or multilabel classifier): output "sigmoid". A binary
          classifier has one unit, so ``net.predict_proba(X)`` is (n, 1) and equals column 1
          of scikit-learn's (n, 2) ``predict_proba``; a multilabel one has one unit per label
          and ``net.predict(X)`` equals ``mlp.predict(X)``.
        - ``"identity"`` (regressor): output "identity"; ``net.predict(X)`` equals
          ``mlp.predict(X)``.
        - ``"exp"`` (regressor with ``loss="poisson"``): output "poisson"; ``net.predict(X)``
          equals ``mlp.predict(X)``.

        Equal up to rounding: both compute the same products, in different orders.

    Notes
    -----
    A fastmlp classifier predicts class *indices*: ``mlp.classes_[net.predict(X)]`` gives
    scikit-learn's labels for a multiclass or binary classifier (column k of the probabilities
    is class ``mlp.classes_[k]``; for a binary classifier the one output is the probability of
    ``mlp.classes_[1]``). A multilabel classifier's 0/1 indicator matrix needs no mapping.
    Training state (the optimiser's moments, ``loss_curve_``, early stopping) is not copied.

    Raises
    ------
    ImportError
        scikit-learn is not installed.
    TypeError
        `mlp` is not an MLPClassifier or MLPRegressor.
    sklearn.exceptions.NotFittedError (a ValueError)
        `mlp` has not been fitted.
    ValueError
        An activation fastmlp does not have, or inconsistent fitted attributes.
    """
    MLPClassifier, MLPRegressor = _import_sklearn_mlps()
    if not isinstance(mlp, (MLPClassifier, MLPRegressor)):
        raise TypeError(f"from_sklearn expects a fitted sklearn.neural_network.MLPClassifier or MLPRegressor, "
                        f"got {type(mlp).__module__}.{type(mlp).__qualname__}")
    if not hasattr(mlp, "coefs_") or not hasattr(mlp, "intercepts_"):
        from sklearn.exceptions import NotFittedError  # a ValueError, as scikit-learn raises

        raise NotFittedError(f"this {type(mlp).__name__} is not fitted yet (it has no coefs_): "
                             f"call mlp.fit(X, y) before from_sklearn(mlp)")

    hidden = getattr(mlp, "activation", None)
    if hidden not in _SKLEARN_ACTIVATIONS:
        raise ValueError(f"mlp.activation must be one of {tuple(_SKLEARN_ACTIVATIONS)} to convert, got {hidden!r}")
    out_activation = getattr(mlp, "out_activation_", None)
    if out_activation not in _SKLEARN_OUTPUTS:
        raise ValueError(f"mlp.out_activation_ must be one of {tuple(_SKLEARN_OUTPUTS)} to convert, "
                         f"got {out_activation!r}")

    coefs = [np.asarray(c) for c in mlp.coefs_]
    intercepts = [np.asarray(b) for b in mlp.intercepts_]
    if not coefs or len(coefs) != len(intercepts):
        raise ValueError(f"mlp has {len(coefs)} coefs_ and {len(intercepts)} intercepts_; "
                         f"a fitted MLP has one of each per layer")
    for k, (c, b) in enumerate(zip(coefs, intercepts)):
        # Each layer's fan-in is the previous layer's fan-out (the first one's is free).
        chained = c.ndim == 2 and (k == 0 or c.shape[0] == coefs[k - 1].shape[1])
        if not chained or b.shape != (c.shape[1],):
            raise ValueError(f"mlp.coefs_[{k}] has shape {c.shape} and mlp.intercepts_[{k}] shape {b.shape}; "
                             f"expected (n_in, n_out) and (n_out,), n_in the previous layer's n_out")

    # scikit-learn keeps the data's float dtype in coefs_; check_dtype names float16 & co.
    net_dtype = check_dtype(coefs[0].dtype if dtype is None else dtype)
    n_hidden = len(coefs) - 1
    return _network_from_parameters(
        weights=[c.T for c in coefs], biases=intercepts,
        activations=[_SKLEARN_ACTIVATIONS[hidden]] * n_hidden,
        output=_SKLEARN_OUTPUTS[out_activation], dropout=[0.0] * n_hidden, dtype=net_dtype)


# ---------------------------------------------------------------------- PyTorch


def _torch_activation(module: Any, index: int, torch: Any) -> Optional[str]:
    """fastmlp's name for a torch activation module, None when `module` is not one; raises for
    a supported type whose parameters differ from fastmlp's fixed ones."""
    nn = torch.nn

    def require(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"module {index} ({module!r}) is not supported: fastmlp's activation needs {what}")

    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.LeakyReLU):
        require(module.negative_slope == 0.01, "negative_slope=0.01")
        return "leaky_relu"
    if isinstance(module, nn.ELU):
        require(module.alpha == 1.0, "alpha=1.0")
        return "elu"
    if isinstance(module, nn.GELU):
        require(module.approximate == "none", 'approximate="none" (the exact, erf form)')
        return "gelu"
    if isinstance(module, nn.SiLU):
        return "silu"
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.Sigmoid):
        return "sigmoid"
    if isinstance(module, nn.Softplus):
        require(module.beta == 1 and module.threshold == 20, "beta=1 and threshold=20")
        return "softplus"
    if isinstance(module, nn.Identity):
        return "identity"
    return None


def _torch_output(module: Any, index: int, torch: Any) -> Optional[str]:
    """The output layer a module after the last Linear stands for, None when it is not one."""
    nn = torch.nn
    if isinstance(module, (nn.Softmax, nn.LogSoftmax)):
        # fastmlp's softmax runs over the features of (batch, features) rows.
        if module.dim not in (None, 1, -1):
            raise ValueError(f"module {index} ({module!r}) is not supported: a {type(module).__name__} over the "
                             f"features needs dim=1 or dim=-1, got dim={module.dim}")
        return "softmax"
    if isinstance(module, nn.Sigmoid):
        return "sigmoid"
    if isinstance(module, nn.Identity):
        return "identity"
    return None


def _tensor_to_numpy(tensor: Any, dtype: Optional[np.dtype[Any]], torch: Any) -> NDArray[Any]:
    t = tensor.detach().cpu()
    if t.dtype not in (torch.float32, torch.float64):
        # float16/bfloat16 (NumPy has no bfloat16): widen exactly, the network casts to its dtype.
        t = t.to(torch.float64)
    array: NDArray[Any] = t.numpy()
    return array if dtype is None else array.astype(dtype, copy=False)


def from_torch(sequential: Any, output: Optional[str] = None, dtype: Optional[DTypeLike] = None) -> Network:
    """Build a Network from a ``torch.nn.Sequential`` multi-layer perceptron.

    Parameters
    ----------
    sequential : torch.nn.Sequential
        ``nn.Linear`` layers (with or without bias), each but the last followed by at most one
        activation module and then at most one ``nn.Dropout``. Activations: ``nn.ReLU``,
        ``nn.LeakyReLU`` (negative_slope 0.01), ``nn.ELU`` (alpha 1), ``nn.GELU``
        (approximate="none"), ``nn.SiLU``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.Softplus``
        (beta 1, threshold 20) and ``nn.Identity``; two Linears in a row (or a Dropout right
        after a Linear) get the "identity" activation. The last Linear may be followed by one
        output module: ``nn.Softmax(dim=1)`` or ``nn.LogSoftmax(dim=1)`` (output "softmax"),
        ``nn.Sigmoid`` ("sigmoid") or ``nn.Identity`` ("identity").
    output : {"softmax", "sigmoid", "identity"}, optional
        The network's output layer. By default the trailing output module's, and "softmax"
        without one (a Sequential that ends with its logits, trained with
        ``nn.CrossEntropyLoss``). Given together with a trailing output module, both must agree.
    dtype : {"float32", "float64"}, optional
        The network's dtype; by default the Linear weights' (all of them must share float32 or
        float64 then).

    Returns
    -------
    Network
        With copies of the weights (``Linear.weight`` is already (out, in), as fastmlp's) and
        biases (zeros for ``bias=False``), and ``dropout[k]`` from the ``nn.Dropout(p)`` after
        hidden layer k (applied only in training, as in torch's ``train()`` mode).
        ``net.predict_proba(X)`` equals ``sequential.eval()(X)`` up to rounding for a trailing
        Softmax or Sigmoid, ``exp`` of it for LogSoftmax, and its softmax or sigmoid without
        an output module; for "identity", ``net.predict(X)`` equals it.

    Raises
    ------
    ImportError
        PyTorch is not installed.
    TypeError
        `sequential` is not a ``torch.nn.Sequential``.
    ValueError
        A module fastmlp has no equivalent for, or one in a place it cannot be (the message
        names the module and its index), sizes that do not chain, mixed weight dtypes.
    """
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(sequential, nn.Sequential):
        raise TypeError(f"from_torch expects a torch.nn.Sequential of Linear and activation modules, "
                        f"got {type(sequential).__module__}.{type(sequential).__qualname__}")
    if output is not None and output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS} or None (from the last module), got {output!r}")
    net_dtype = None if dtype is None else check_dtype(dtype)

    modules = list(sequential)
    # The last Linear separates hidden layers from the output: modules after it may only name
    # the output layer.
    linear_indices = [i for i, m in enumerate(modules) if isinstance(m, nn.Linear)]
    if not linear_indices:
        raise ValueError(f"from_torch needs at least one nn.Linear; the Sequential holds {len(modules)} module(s): "
                         f"{[type(m).__name__ for m in modules]}")
    last_linear = linear_indices[-1]

    weights: list[Any] = []
    biases: list[Any] = []
    activations: list[str] = []
    dropout: list[float] = []
    # Per hidden layer: what has been seen since its Linear ("linear", "activation", "dropout").
    state = "start"
    for i, module in enumerate(modules[:last_linear + 1]):
        if isinstance(module, nn.Linear):
            if weights and module.in_features != weights[-1].shape[0]:
                raise ValueError(f"module {i} ({module!r}) takes {module.in_features} features but the Linear "
                                 f"before it gives {weights[-1].shape[0]}")
            if state == "linear":  # no activation in between: an identity hidden layer
                activations.append("identity")
            if state in ("linear", "activation"):
                dropout.append(0.0)
            weights.append(module.weight)
            biases.append(module.bias)
            state = "linear"
            continue
        if state == "start":
            raise ValueError(f"module 0 ({module!r}) is not supported: the Sequential must start with nn.Linear")
        if isinstance(module, nn.Dropout):  # AlphaDropout & co. are not Dropouts: they fall through
            if state == "dropout":
                raise ValueError(f"module {i} ({module!r}) is not supported: a second Dropout after one layer")
            if not 0.0 <= module.p < 1.0:
                raise ValueError(f"module {i} ({module!r}) is not supported: fastmlp's dropout needs p in [0, 1), "
                                 f"got p={module.p}")
            if state == "linear":  # dropout straight after a Linear: identity activation
                activations.append("identity")
            dropout.append(float(module.p))
            state = "dropout"
            continue
        name = _torch_activation(module, i, torch)
        if name is None:
            raise ValueError(f"module {i} ({module!r}) is not supported: from_torch takes nn.Linear, nn.Dropout and "
                             f"the activations ReLU, LeakyReLU, ELU, GELU, SiLU, Tanh, Sigmoid, Softplus, Identity")
        if state != "linear":
            raise ValueError(f"module {i} ({module!r}) is not supported here: fastmlp has one activation per layer, "
                             f"right after its Linear (and before its Dropout)")
        activations.append(name)
        state = "activation"

    trailing = modules[last_linear + 1:]
    found_output = None
    if trailing:
        found_output = _torch_output(trailing[0], last_linear + 1, torch)
        if found_output is None:
            raise ValueError(f"module {last_linear + 1} ({trailing[0]!r}) is not supported after the last Linear: "
                             f"fastmlp's output layer is Softmax/LogSoftmax (\"softmax\"), Sigmoid (\"sigmoid\"), "
                             f"Identity or nothing")
    if len(trailing) > 1:
        i = last_linear + 2
        raise ValueError(f"module {i} ({modules[i]!r}) is not supported: after the last Linear fastmlp takes at most "
                         f"one output module (Softmax, LogSoftmax, Sigmoid or Identity)")
    if output is not None and found_output is not None and output != found_output:
        raise ValueError(f"output={output!r} contradicts module {last_linear + 1} ({trailing[0]!r}), which makes a "
                         f"{found_output!r} output; pass output={found_output!r} or output=None")
    net_output = output or found_output or "softmax"

    if net_dtype is None:
        dtypes = {W.dtype for W in weights}
        if len(dtypes) > 1 or not dtypes <= {torch.float32, torch.float64}:
            raise ValueError(f"the Linear weights have dtype(s) {sorted(str(d) for d in dtypes)}; fastmlp needs one of "
                             f"float32 or float64 for all: pass dtype='float32' or dtype='float64' to convert")
        net_dtype = check_dtype("float32" if dtypes == {torch.float32} else "float64")
    W_np = [_tensor_to_numpy(W, net_dtype, torch) for W in weights]
    b_np = [np.zeros(W.shape[0], dtype=net_dtype) if b is None else _tensor_to_numpy(b, net_dtype, torch)
            for W, b in zip(W_np, biases)]
    return _network_from_parameters(W_np, b_np, activations, net_output, dropout, net_dtype)


def to_torch(net: Network, *, include_output: bool = False) -> _TorchSequential:
    """Build a ``torch.nn.Sequential`` computing the same function as `net`.

    Parameters
    ----------
    net : Network
    include_output : bool, default=False
        False: the Sequential ends with the last ``nn.Linear`` and returns logits, the form
        torch's losses take: the softmax, sigmoid or identity output belongs to the loss
        (``nn.CrossEntropyLoss``, ``nn.BCEWithLogitsLoss`` or ``nn.MSELoss``, which is what
        fastmlp's output layers compute). True: it ends with ``nn.Softmax(dim=1)``,
        ``nn.Sigmoid()`` or ``nn.Identity()``, for inference, and
        ``from_torch(to_torch(net, include_output=True))`` recovers the output layer.

    Returns
    -------
    torch.nn.Sequential
        Per layer an ``nn.Linear`` in the network's dtype, on the CPU, with copies of its
        weights and biases; after each hidden Linear its activation module (``nn.Identity``
        for "identity") and ``nn.Dropout(p)`` where p > 0. The module is in torch's default
        training mode, where Dropout is active: call ``.eval()`` before predicting.
        ``from_torch(to_torch(net), output=net.output)`` equals `net` bit for bit.

    Raises
    ------
    ImportError
        PyTorch is not installed.
    TypeError
        `net` is not a fastmlp Network.
    """
    _import_torch()  # ImportError first, as for from_torch
    if not isinstance(net, Network):
        raise TypeError(f"to_torch expects a fastmlp.Network, got {type(net).__module__}.{type(net).__qualname__}")
    return cast("_TorchSequential", net.to_torch(include_output=include_output))
