"""MLPRegressor: scikit-learn's regressor API over _BaseMLP — real targets (one or several
columns) on identity outputs with the squared error, or counts on exp outputs with the
Poisson deviance (loss="poisson"). Training and checks are _BaseMLP's."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.metaestimators import available_if

from ._base import _BaseMLP
from ._docs import _SHARED_ATTRIBUTES_DOC, _SHARED_NOTES_DOC, _SHARED_PARAMETERS_DOC, _fill


class MLPRegressor(RegressorMixin, _BaseMLP):  # type: ignore[misc]
    _output_layer = "identity"  # per fit: "poisson" for loss="poisson"
    _stratify_split = False
    _score_function = staticmethod(r2_score)

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 1e-3,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
        dtype: Optional[str] = None,
        n_threads: Optional[int] = None,
    ) -> None:
        # scikit-learn's signature: loss first, then the shared parameters.
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start,
            momentum=momentum, nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, max_fun=max_fun, dtype=dtype, n_threads=n_threads)
        self.loss = loss

    def _encode_targets(self, y: NDArray[Any], first_pass: bool, incremental: bool, classes: Any,
                        dtype: np.dtype[Any]) -> tuple[Any, int]:
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        output = "poisson" if self.loss == "poisson" else "identity"
        if not first_pass and n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} output(s) but the estimator was fit with {self.n_outputs_}")
        if not first_pass and output != self.network_.output:
            raise ValueError(f"loss={self.loss!r} needs a {output} output but the fitted network has a "
                             f"{self.network_.output} output; set warm_start=False (fit) or start over with a new "
                             "estimator (partial_fit) to change the loss")
        targets = np.ascontiguousarray(y, dtype=dtype)
        if output == "poisson" and (targets < 0).any():
            raise ValueError(f'loss="poisson" needs targets y >= 0 (counts or rates), got a minimum of '
                             f"{targets.min()!r}")
        self._output_layer = output
        return targets, n_outputs

    def _decode_outputs(self, outputs: NDArray[Any]) -> NDArray[Any]:
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Fit the network to (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Real targets; several columns fit a multi-output regression.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; each batch's loss is their weighted mean (see the class Notes).

        Returns
        -------
        self : MLPRegressor
        """
        self._fit(X, y, sample_weight, incremental=False)
        return self

    @available_if(lambda est: est._check_solver())  # type: ignore[untyped-decorator]  # sklearn is untyped
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y), continuing the weights and the optimizer's state.

        Returns
        -------
        self : MLPRegressor
        """
        self._fit(X, y, sample_weight, incremental=True)
        return self

    def predict(self, X: Any) -> NDArray[Any]:
        """Predictions of shape (n_samples,) for one output, else (n_samples, n_outputs),
        in the network's dtype (float32 after a float32 fit, else float64)."""
        return self._decode_outputs(self._outputs(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.positive_only = self.loss == "poisson"  # scikit-learn's checks then draw y >= 0
        return tags


MLPRegressor.__doc__ = """Multi-layer perceptron regressor, trained by fastmlp: a drop-in for
    ``sklearn.neural_network.MLPRegressor`` (its parameter names, attributes and stopping rules),
    one output per target column: identity outputs with the squared error, or exp outputs with
    the Poisson deviance.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
        ``"squared_error"``: identity outputs, half the mean squared error (scikit-learn's
        scale). ``"poisson"``: the outputs are ``exp`` of the last layer (a log link) and the
        loss is half the Poisson deviance, ``y log(y / mu) - y + mu`` averaged over the
        samples and summed over the outputs, as scikit-learn defines it; y must be >= 0.""" + _fill(
    _SHARED_PARAMETERS_DOC, split="a random split", score="R²") + """
    Attributes
    ----------""" + _fill(_SHARED_ATTRIBUTES_DOC, out_activations='"identity", or "exp" for loss="poisson".') + """
    Notes
    -----""" + _SHARED_NOTES_DOC
