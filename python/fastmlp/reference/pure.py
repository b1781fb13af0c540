"""The fastmlp math in pure Python: vectors are lists of floats, matrices are lists of row lists.

Same names, arguments and results as the NumPy oracle (fastmlp.reference), so the two check each other
and the benchmarks have an honest pure-Python baseline. Deliberately no NumPy and no tricks: plain loops
with the usual zip/sum idioms, double precision throughout, no speed-ups beyond those.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence, Sized
from typing import TYPE_CHECKING, Any, TypeVar, Union, overload

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    Vector = Sequence[float]
    Matrix = Sequence[Sequence[float]]
    # Per row, an integer label or a target distribution; a row counts as a distribution only when
    # it is a list or a tuple (anything else must be a label), which is what the loss checks.
    Targets = Sequence[Union[int, list[float], tuple[float, ...]]]

# Functions taking two arrays of one shape (both vectors or both matrices); mypy checks their
# bodies once per shape.
_Shape = TypeVar("_Shape", Sequence[float], Sequence[Sequence[float]])

__all__ = [
    "ACTIVATIONS",
    "activation_forward",
    "activation_backward",
    "dense_forward",
    "softmax",
    "softmax_xent_backward",
    "dense_backward_input",
    "dense_backward_params",
    "sgd_update",
    "forward",
    "predict_proba",
    "loss",
    "gradients",
    "train_step",
    "train_epoch",
]


def _sigmoid(v: float) -> float:
    # exp(-|v|) never overflows (math.exp raises OverflowError instead of returning inf).
    e = math.exp(-abs(v))
    return 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)


# name -> (g(a), g'(a) written in terms of h = g(a))
_ACTIVATION_FUNCTIONS: dict[str, tuple[Callable[[float], float], Callable[[float], float]]] = {
    "identity": (lambda v: v, lambda h: 1.0),
    "relu": (lambda v: max(v, 0.0), lambda h: 1.0 if h > 0 else 0.0),
    "tanh": (math.tanh, lambda h: 1.0 - h * h),
    "sigmoid": (_sigmoid, lambda h: h * (1.0 - h)),
}

ACTIVATIONS = tuple(_ACTIVATION_FUNCTIONS)


def _lookup(activation: str) -> tuple[Callable[[float], float], Callable[[float], float]]:
    try:
        return _ACTIVATION_FUNCTIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation must be one of {', '.join(repr(name) for name in ACTIVATIONS)}, "
            f"got {activation!r}"
        ) from None


def _is_matrix(x: Vector | Matrix) -> TypeIs[Matrix]:
    return len(x) > 0 and isinstance(x[0], (list, tuple))


@overload
def activation_forward(a: Matrix, activation: str) -> list[list[float]]: ...
@overload
def activation_forward(a: Vector, activation: str) -> list[float]: ...
def activation_forward(a: Vector | Matrix, activation: str) -> list[float] | list[list[float]]:
    """g(a) elementwise; `a` is a vector or a matrix, the result a new one of the same shape."""
    g, _ = _lookup(activation)
    if _is_matrix(a):
        return [[g(v) for v in row] for row in a]
    return [g(v) for v in a]


@overload
def activation_backward(dh: Matrix, h: Matrix, activation: str) -> list[list[float]]: ...
@overload
def activation_backward(dh: Vector, h: Vector, activation: str) -> list[float]: ...
def activation_backward(dh: _Shape, h: _Shape, activation: str) -> list[float] | list[list[float]]:
    """dh * g'(a) elementwise, with g' computed from the activation output h."""
    _, dg = _lookup(activation)
    if _is_matrix(dh):
        return [[d * dg(v) for d, v in zip(d_row, h_row)] for d_row, h_row in zip(dh, h)]
    return [d * dg(v) for d, v in zip(dh, h)]


def dense_forward(x: Matrix, W: Matrix, b: Vector, activation: str = "identity") -> list[list[float]]:
    """g(x W^T + b): x is (B, IN), W is (OUT, IN), b is (OUT,); returns (B, OUT)."""
    g, _ = _lookup(activation)
    return [
        [g(sum(xi * wi for xi, wi in zip(row, w_row)) + bj) for w_row, bj in zip(W, b)]
        for row in x
    ]


def softmax(logits: Matrix) -> list[list[float]]:
    """Row-wise exp(a - max) / sum(exp(a - max)) of a (B, K) matrix."""
    probs = []
    for row in logits:
        m = max(row)
        e = [math.exp(v - m) for v in row]
        s = sum(e)
        probs.append([v / s for v in e])
    return probs


def _label(value: int, n_classes: int) -> int:
    try:
        label = value.__index__()  # ints of any kind, but not floats
    except AttributeError:
        raise ValueError(f"labels must be integers, got {value!r}") from None
    # A negative label would index from the end and give a plausible but wrong loss.
    if not 0 <= label < n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got {label}")
    return label


def softmax_xent_backward(logits: Matrix, y: Targets) -> tuple[float, list[list[float]]]:
    """Mean softmax cross-entropy of (B, K) logits and its gradient (softmax - y) / B.

    y is B integer labels or B target rows of K floats. The loss is taken as lse - a_i (lse the
    log-sum-exp of the row), which stays finite for huge logits and skips log(0) at zero targets.
    """
    n_samples = len(logits)
    if len(y) != n_samples:
        raise ValueError(f"y has {len(y)} rows for {n_samples} samples")
    total = 0.0
    dlogits = []
    for row, target in zip(logits, y):
        m = max(row)
        e = [math.exp(v - m) for v in row]
        s = sum(e)
        lse = m + math.log(s)
        if isinstance(target, (list, tuple)):
            if len(target) != len(row):
                raise ValueError(f"target rows must have {len(row)} entries, got {len(target)}")
            total += sum(t * (lse - v) for t, v in zip(target, row))
        else:
            label = _label(target, len(row))
            total += lse - row[label]
            target = [0.0] * len(row)
            target[label] = 1.0
        dlogits.append([(v / s - t) / n_samples for v, t in zip(e, target)])
    return total / n_samples, dlogits


def dense_backward_input(da: Matrix, W: Matrix) -> list[list[float]]:
    """da W: da is (B, OUT), W is (OUT, IN); returns (B, IN)."""
    columns = list(zip(*W))
    return [[sum(d * w for d, w in zip(d_row, col)) for col in columns] for d_row in da]


def dense_backward_params(da: Matrix, h_prev: Matrix) -> tuple[list[list[float]], list[float]]:
    """(da^T h_prev, column sums of da): da is (B, OUT), h_prev is (B, IN); returns (OUT, IN), (OUT,)."""
    da_columns = list(zip(*da))
    h_columns = list(zip(*h_prev))
    dW = [[sum(d * h for d, h in zip(d_col, h_col)) for h_col in h_columns] for d_col in da_columns]
    db = [sum(d_col) for d_col in da_columns]
    return dW, db


@overload
def sgd_update(param: list[list[float]], grad: Matrix, lr: float) -> None: ...
@overload
def sgd_update(param: list[float], grad: Vector, lr: float) -> None: ...
# grad has param's shape, as the overloads tell callers; the body, recursing into rows, sees its
# items as rows or numbers alike.
def sgd_update(param: list[float] | list[list[float]], grad: Sequence[Any], lr: float) -> None:
    """param -= lr * grad in place, for a vector or a matrix (its row lists are mutated, not replaced)."""
    if _is_matrix(param):
        for p_row, g_row in zip(param, grad):
            sgd_update(p_row, g_row, lr)
        return
    for j, g in enumerate(grad):
        param[j] -= lr * g


def _check_network(weights: Sized, biases: Sized) -> None:
    if len(weights) == 0 or len(weights) != len(biases):
        raise ValueError(
            f"need one bias per weight matrix and at least one layer, "
            f"got {len(weights)} weight matrices and {len(biases)} bias vectors"
        )


def forward(weights: Sequence[Matrix], biases: Sequence[Vector], activation: str, X: Matrix) -> list[Matrix]:
    """[h_0 = X, h_1, ..., h_L = logits]; hidden layers use `activation`, the output layer none."""
    _check_network(weights, biases)
    _lookup(activation)
    hs = [X]
    n_layers = len(weights)
    for k, (W, b) in enumerate(zip(weights, biases), start=1):
        hs.append(dense_forward(hs[-1], W, b, activation if k < n_layers else "identity"))
    return hs


def predict_proba(
    weights: Sequence[Matrix], biases: Sequence[Vector], activation: str, X: Matrix
) -> list[list[float]]:
    """Softmax of the network's logits, (B, K)."""
    return softmax(forward(weights, biases, activation, X)[-1])


def loss(weights: Sequence[Matrix], biases: Sequence[Vector], activation: str, X: Matrix, y: Targets) -> float:
    """Mean cross-entropy of the network on the batch (X, y)."""
    return softmax_xent_backward(forward(weights, biases, activation, X)[-1], y)[0]


def gradients(
    weights: Sequence[Matrix], biases: Sequence[Vector], activation: str, X: Matrix, y: Targets
) -> tuple[float, list[tuple[list[list[float]], list[float]]]]:
    """(mean loss, [(dW_1, db_1), ..., (dW_L, db_L)]) by backpropagation."""
    hs = forward(weights, biases, activation, X)
    n_layers = len(weights)
    grads: list[tuple[list[list[float]], list[float]]] = []  # from the last layer back, so reversed at the end
    loss, da = softmax_xent_backward(hs[-1], y)  # da_L = (yhat - y) / B
    for k in range(n_layers, 0, -1):
        W, h_prev = weights[k - 1], hs[k - 1]
        grads.append(dense_backward_params(da, h_prev))  # dW_k = da_k^T h_{k-1}, db_k = sum_b da_k
        if k > 1:  # nobody needs dX, so the first layer stops here
            dh = dense_backward_input(da, W)  # dh_{k-1} = da_k W_k
            da = activation_backward(dh, h_prev, activation)  # da_{k-1} = dh_{k-1} * g'(h_{k-1})
    grads.reverse()
    return loss, grads


def train_step(
    weights: Sequence[list[list[float]]],
    biases: Sequence[list[float]],
    activation: str,
    X: Matrix,
    y: Targets,
    lr: float,
) -> float:
    """One SGD step on the batch, in place; returns the batch's mean loss before the update."""
    loss, grads = gradients(weights, biases, activation, X, y)
    for W, b, (dW, db) in zip(weights, biases, grads):
        sgd_update(W, dW, lr)
        sgd_update(b, db, lr)
    return loss


def train_epoch(
    weights: Sequence[list[list[float]]],
    biases: Sequence[list[float]],
    activation: str,
    X: Matrix,
    y: Targets,
    batch_size: int,
    lr: float,
    order: Sequence[int] | None = None,
) -> float:
    """One epoch of minibatch SGD over the rows in `order` (None: 0, 1, ..., n-1), in place.

    Batches are consecutive runs of batch_size rows, the last one possibly shorter. Returns the mean
    per-sample pre-update loss, sum(batch_loss * batch_rows) / n_samples.
    """
    n_samples = len(X)
    if n_samples == 0:
        raise ValueError("X has no rows")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if order is None:
        order = range(n_samples)
    elif sorted(order) != list(range(n_samples)):
        raise ValueError(f"order must be a permutation of range({n_samples})")

    total = 0.0
    for start in range(0, n_samples, batch_size):
        rows = order[start:start + batch_size]
        batch_loss = train_step(
            weights, biases, activation, [X[i] for i in rows], [y[i] for i in rows], lr
        )
        total += batch_loss * len(rows)
    return total / n_samples
