"""MLPClassifier: scikit-learn's classifier API over _BaseMLP — class labels of any type
encoded for a softmax (multiclass) or logistic units (binary, multilabel), and decoded back
for predict/predict_proba. Training and checks are _BaseMLP's."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels

from ._base import _BaseMLP
from ._docs import _SHARED_ATTRIBUTES_DOC, _SHARED_NOTES_DOC, _SHARED_PARAMETERS_DOC, _fill


class MLPClassifier(ClassifierMixin, _BaseMLP):  # type: ignore[misc]
    _output_layer = "softmax"  # per fit: "sigmoid" for binary and multilabel targets
    classes_: NDArray[Any]
    _stratify_split = True
    _score_function = staticmethod(accuracy_score)

    def _encode_targets(self, y: NDArray[Any], first_pass: bool, incremental: bool, classes: Any,
                        dtype: np.dtype[Any]) -> tuple[Any, int]:
        check_classification_targets(y)
        target_type = type_of_target(y)
        if target_type not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"y must hold class labels of shape (n_samples,) or a 0/1 label indicator matrix; "
                             f"got {target_type} targets of shape {y.shape}")
        multilabel = target_type == "multilabel-indicator"
        if incremental and not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit: all the labels y "
                             "can hold, e.g. classes=np.unique(y_all)")
        if (classes is not None and hasattr(self, "classes_") and incremental
                and not np.array_equal(unique_labels(classes), self.classes_)):
            raise ValueError(f"classes={classes!r} differs from the classes of the first partial_fit call, "
                             f"{self.classes_!r}")
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            if multilabel:
                self.classes_ = np.arange(y.shape[1])
                if incremental and classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
                    raise ValueError(f"y is a {y.shape[1]}-column label indicator matrix, whose classes are "
                                     f"{self.classes_!r}; classes={classes!r} differs")
            else:
                self.classes_ = unique_labels(classes if incremental and classes is not None else y)
                unknown = np.setdiff1d(unique_labels(y), self.classes_)
                if len(unknown):
                    raise ValueError(f"y has classes {unknown!r} not in classes={self.classes_!r}")
            self._multilabel = multilabel
            self._multilabel_dtype = y.dtype if multilabel else None
            self._output_layer = "softmax" if not multilabel and len(self.classes_) > 2 else "sigmoid"
        else:
            if multilabel != self._multilabel or (multilabel and y.shape[1] != len(self.classes_)):
                expected = f"a {len(self.classes_)}-column label indicator matrix" if self._multilabel else \
                    "labels of shape (n_samples,)"
                raise ValueError(f"y must be {expected} like the targets the estimator was fit on, "
                                 f"got y of shape {y.shape}")
            if not multilabel:
                labels = unique_labels(y)
                if self.warm_start and not incremental and set(labels) != set(self.classes_):
                    raise ValueError(f"warm_start needs y with the same classes as the previous fit, "
                                     f"{self.classes_!r}; y has {labels!r}")
                unknown = np.setdiff1d(labels, self.classes_)
                if len(unknown):
                    raise ValueError(f"y has classes {unknown!r} not in classes_ {self.classes_!r}")
        if self._multilabel:
            return np.ascontiguousarray(y, dtype=dtype), y.shape[1]
        indices = np.searchsorted(self.classes_, y)
        if self._output_layer == "softmax":
            return indices.astype(np.int64), len(self.classes_)
        # Binary: one logistic unit for classes_[1] (scikit-learn's choice); with a single class
        # every target is 0 and prediction always returns that class.
        return (indices == 1).astype(dtype), 1

    def _decode_outputs(self, outputs: NDArray[Any]) -> NDArray[Any]:
        if self._multilabel:
            indicators: NDArray[Any] = (outputs > 0.5).astype(self._multilabel_dtype)
            return indicators
        if self._output_layer == "sigmoid":
            index = np.minimum((outputs[:, 0] > 0.5).astype(np.intp), len(self.classes_) - 1)
        else:
            index = np.argmax(outputs, axis=1)
        labels: NDArray[Any] = self.classes_[index]
        return labels

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Fit the network to (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels of any type (strings, ints, bools, ...), or a 0/1 label indicator
            matrix for multilabel classification.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; each batch's loss is their weighted mean (see the class Notes).

        Returns
        -------
        self : MLPClassifier
        """
        self._fit(X, y, sample_weight, incremental=False)
        return self

    @available_if(lambda est: est._check_solver())  # type: ignore[untyped-decorator]  # sklearn is untyped
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing the weights and the optimizer's state.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`fit`.
        classes : array-like of shape (n_classes,), default=None
            Every label y may hold over all calls; required on the first call (unless y is a
            label indicator matrix), ignored after it if equal.

        Returns
        -------
        self : MLPClassifier
        """
        self._fit(X, y, sample_weight, incremental=True, classes=classes)
        return self

    def predict(self, X: Any) -> NDArray[Any]:
        """Predicted labels: of shape (n_samples,) from ``classes_``, or the (n_samples,
        n_labels) indicator matrix (in the dtype of the y given to fit) for multilabel."""
        return self._decode_outputs(self._outputs(X))

    def predict_proba(self, X: Any) -> NDArray[Any]:
        """Probabilities of shape (n_samples, n_classes), columns in the order of ``classes_``,
        in the network's dtype (float32 after a float32 fit, else float64). Binary: ``[1 - p,
        p]`` from the one logistic unit; multilabel: each label's own probability (rows need not
        sum to 1)."""
        outputs = self._outputs(X)
        if self._output_layer == "sigmoid" and not self._multilabel:
            if len(self.classes_) == 1:
                return np.ones_like(outputs)
            return np.hstack([1 - outputs, outputs])
        return outputs

    def predict_log_proba(self, X: Any) -> NDArray[Any]:
        """``log(predict_proba(X))``."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):  # a probability that rounded to 0 is -inf, as in scikit-learn
            np.log(proba, out=proba)
        return proba

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


MLPClassifier.__doc__ = """Multi-layer perceptron classifier, trained by fastmlp: a drop-in for
    ``sklearn.neural_network.MLPClassifier`` (its parameter names, attributes and stopping rules).

    Multiclass targets get a softmax output and the cross-entropy; binary targets one logistic
    unit (the probability of ``classes_[1]``); a label indicator matrix one logistic unit per
    label. Labels may be of any type; ``classes_`` holds them sorted.

    Parameters
    ----------""" + _fill(
    _SHARED_PARAMETERS_DOC, split="stratified by class", score="accuracy") + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (for multilabel targets, ``arange(n_labels)``).""" + _fill(
    _SHARED_ATTRIBUTES_DOC, out_activations='"softmax" (multiclass) or "logistic" (binary, multilabel).') + """
    Notes
    -----""" + _SHARED_NOTES_DOC + """
    Examples
    --------
    >>> from fastmlp.sklearn import MLPClassifier
    >>> import numpy as np
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]] * 25)
    >>> y = np.array(["no", "yes", "yes", "no"] * 25)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, max_iter=300,
    ...                     random_state=0).fit(X, y)
    >>> clf.predict([[0., 1.], [1., 1.]])
    array(['yes', 'no'], dtype='<U3')
    """

