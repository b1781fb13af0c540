"""solver="lbfgs": SciPy's L-BFGS-B over the flattened weights and biases, minimising
scikit-learn's loss (data term on its scale plus its L2 term) with the gradient of the whole
training set from one native Network.gradients call per evaluation. SciPy is imported here
only, when an lbfgs fit runs; checks happen before this, in _base."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning

from ._minibatch import NonFiniteWeightsError

if TYPE_CHECKING:
    from ._base import FitData, _BaseMLP


def fit(est: _BaseMLP, data: FitData) -> None:
    try:
        from scipy.optimize import minimize
    except ImportError as exc:
        raise ImportError(f'solver="lbfgs" needs SciPy ({exc}); pip install "fastmlp[sklearn]" installs it') from exc
    net = est.network_
    X, y, weights = data.X, data.y_net, data.weights
    params = net.weights + net.biases  # the live arrays, written in place at every evaluation
    n_weights = len(net.weights)
    bounds = np.cumsum([0] + [a.size for a in params])
    c, loss_scale, alpha = est._grad_scale(), est._loss_scale(), float(est.alpha)
    weight_sum = float(len(X)) if weights is None else float(weights.sum())

    def unpack(theta: NDArray[np.float64]) -> None:
        with net._locked():
            for a, lo, hi in zip(params, bounds[:-1], bounds[1:]):
                np.copyto(a, theta[lo:hi].reshape(a.shape), casting="same_kind")

    def loss_and_gradient(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        # scikit-learn's `_loss_grad_lbfgs`: its loss is fastmlp's times loss_scale plus
        # 0.5 alpha ||W||² / sum(w); its gradient fastmlp's over c plus alpha W / sum(w).
        unpack(theta)
        loss, grads = net.gradients(X, y, sample_weight=weights)
        gradient = np.empty_like(theta)
        squared_norm = 0.0
        for k, (dW, db) in enumerate(grads):
            W = params[k]
            squared_norm += float(np.dot(W.ravel(), W.ravel()))
            gradient[bounds[k]:bounds[k + 1]] = (dW / c + (alpha / weight_sum) * W).ravel()
            gradient[bounds[n_weights + k]:bounds[n_weights + k + 1]] = db / c
        return loss * loss_scale + 0.5 * alpha * squared_norm / weight_sum, gradient

    theta0 = np.concatenate([a.ravel() for a in params]).astype(np.float64)
    result: Any = minimize(loss_and_gradient, theta0, method="L-BFGS-B", jac=True,
                           options={"maxfun": int(est.max_fun), "maxiter": int(est.max_iter), "gtol": float(est.tol)})
    est.n_iter_ = min(int(result.nit), int(est.max_iter))
    est.loss_ = float(result.fun)
    unpack(np.asarray(result.x, dtype=np.float64))
    if est.verbose:
        print(f"L-BFGS-B: {est.n_iter_} iterations, {result.nfev} evaluations, loss = {est.loss_:.8f}")
    if not all(np.isfinite(a).all() for a in params):
        raise NonFiniteWeightsError("Solver produced non-finite parameter weights. "
                                    "The input data may contain large values "
                         "and need to be preprocessed (e.g. sklearn.preprocessing.StandardScaler).")
    if result.status != 0:
        hint = "Increase the number of iterations (max_iter) or scale" if est.n_iter_ >= est.max_iter else "Scale"
        warnings.warn(f"lbfgs failed to converge after {est.n_iter_} iteration(s) (status={result.status}):\n"
                      f"{result.message}\n\n{hint} the data (e.g. sklearn.preprocessing.StandardScaler)",
                      ConvergenceWarning, stacklevel=4)
