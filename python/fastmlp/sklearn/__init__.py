"""scikit-learn estimators trained by fastmlp: MLPClassifier and MLPRegressor, with the
parameters, fitted attributes, stopping rules and solvers (lbfgs, sgd, adam) of
``sklearn.neural_network``'s, so that a script changes only its import. X may be dense or
scipy.sparse (any format, converted once to CSR, never densified: fastmlp's sparse first layer
trains and predicts on it; docs/sparse.md). This package imports scikit-learn (``import
fastmlp`` does not import it).

Modules: ``_params`` (parameter checks), ``_base`` (shared attributes and the checked fit),
``_minibatch`` and ``_lbfgs`` (the solvers), ``_classifier``, ``_regressor``, ``_docs``.
"""

from __future__ import annotations

try:
    import sklearn.base  # noqa: F401
    from sklearn.utils.validation import validate_data  # noqa: F401
except ImportError as exc:  # scikit-learn missing, or older than 1.6 (no validate_data, no __sklearn_tags__)
    raise ImportError(
        "fastmlp.sklearn needs scikit-learn >= 1.6 (" + str(exc) + "); "
        'pip install "fastmlp[sklearn]" installs it') from exc

from ._classifier import MLPClassifier
from ._regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
