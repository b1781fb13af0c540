"""MLPRegressor: scikit-learn's regressor API over _BaseMLP — real targets (one or several
columns) on identity outputs with the squared error. Training and checks are _BaseMLP's."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.metaestimators import available_if

from ._base import _BaseMLP
from ._docs import _SHARED_ATTRIBUTES_DOC, _SHARED_NOTES_DOC, _SHARED_PARAMETERS_DOC, _fill


class MLPRegressor(RegressorMixin, _BaseMLP):  # type: ignore[misc]
    _output_layer = "identity"
    _stratify_split = False
    _score_function = staticmethod(r2_score)

    def _encode_targets(self, y: NDArray[Any], first_pass: bool, incremental: bool, classes: Any,
                        dtype: np.dtype[Any]) -> tuple[Any, int]:
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if not first_pass and n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} output(s) but the estimator was fit with {self.n_outputs_}")
        return np.ascontiguousarray(y, dtype=dtype), n_outputs

    def _decode_outputs(self, outputs: NDArray[Any]) -> NDArray[Any]:
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Fit the network to (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
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
        return tags


MLPRegressor.__doc__ = """Multi-layer perceptron regressor, trained by fastmlp: a drop-in for
    ``sklearn.neural_network.MLPRegressor`` (its parameter names, attributes and stopping rules),
    with the squared error and identity outputs, one per target column.

    Parameters
    ----------""" + _fill(
    _SHARED_PARAMETERS_DOC, split="a random split", score="R²") + """
    Attributes
    ----------""" + _fill(_SHARED_ATTRIBUTES_DOC, out_activations='"identity".') + """
    Notes
    -----""" + _SHARED_NOTES_DOC
