"""The scikit-learn-workflow bench: fastmlp.sklearn's estimators against scikit-learn's own
MLPClassifier on the same data and settings, as a user swapping the import would see them —
the whole ``fit`` call timed (checks, initialisation, stopping rules included), then the test
accuracy. Two cases: scikit-learn's defaults (adam, batch 200) on a 50,000 x 100, 5-class
problem, and lbfgs on digits at equal max_iter. It measures only; printing is the launcher's
(``bench/bench_sklearn.py``)."""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WorkflowCase:
    """One comparison: the data (built once), the estimator parameters both sides get."""

    name: str
    params: dict[str, Any]
    data: Callable[[int], tuple[Any, Any, Any, Any]]  # seed -> X_train, X_test, y_train, y_test


@dataclass
class WorkflowResult:
    name: str
    fit_seconds: dict[str, list[float]] = field(default_factory=dict)  # "fastmlp" / "sklearn" -> per round
    n_iter: dict[str, int] = field(default_factory=dict)
    test_accuracy: dict[str, float] = field(default_factory=dict)

    def median(self, who: str) -> float:
        return statistics.median(self.fit_seconds[who])

    @property
    def speedup(self) -> float:
        """scikit-learn's median fit time over fastmlp's."""
        return self.median("sklearn") / self.median("fastmlp")


def _classification(n_train: int, n_features: int, n_classes: int) -> Callable[[int], tuple[Any, ...]]:
    def make(seed: int) -> tuple[Any, ...]:
        from sklearn.datasets import make_classification
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        X, y = make_classification(n_samples=n_train + n_train // 5, n_features=n_features,
                                   n_informative=min(20, n_features // 2), n_classes=n_classes, random_state=seed)
        X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=n_train, random_state=seed,
                                                            stratify=y)
        scaler = StandardScaler().fit(X_train)
        return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test
    return make


def _digits(seed: int) -> tuple[Any, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return tuple(train_test_split(X / 16.0, y, test_size=0.25, random_state=seed, stratify=y))


def workflow_cases(tiny: bool = False) -> list[WorkflowCase]:
    """The issue's two cases; `tiny` shrinks them to a smoke test (the tests run it)."""
    if tiny:
        return [WorkflowCase("adam-defaults-tiny", {"hidden_layer_sizes": (16, 8), "max_iter": 3},
                             _classification(400, 20, 5)),
                WorkflowCase("lbfgs-digits-tiny", {"solver": "lbfgs", "hidden_layer_sizes": (16,), "max_iter": 5},
                             _digits)]
    return [WorkflowCase("adam-defaults-50000x100-5class", {"hidden_layer_sizes": (128, 64), "max_iter": 100},
                         _classification(50_000, 100, 5)),
            WorkflowCase("lbfgs-digits", {"solver": "lbfgs", "max_iter": 200}, _digits)]


def run_workflow(case: WorkflowCase, repeats: int, seed: int = 0,
                 say: Callable[[str], None] = lambda _: None) -> WorkflowResult:
    """`repeats` rounds, fastmlp and scikit-learn taking turns in each (first one, then the other,
    alternating who goes first), on the same data and parameters with random_state=seed."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as TheirClassifier

    from ..sklearn import MLPClassifier as OurClassifier

    X_train, X_test, y_train, y_test = case.data(seed)
    result = WorkflowResult(case.name, {"fastmlp": [], "sklearn": []})
    estimators = {"fastmlp": OurClassifier, "sklearn": TheirClassifier}
    for round_ in range(repeats):
        order = ["fastmlp", "sklearn"] if round_ % 2 == 0 else ["sklearn", "fastmlp"]
        for who in order:
            est = estimators[who](random_state=seed, **case.params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter running out is part of the case
                start = time.perf_counter()
                est.fit(X_train, y_train)
                elapsed = time.perf_counter() - start
            result.fit_seconds[who].append(elapsed)
            result.n_iter[who] = int(est.n_iter_)
            result.test_accuracy[who] = float(est.score(X_test, y_test))
            say(f"{case.name} round {round_ + 1}/{repeats}: {who} {elapsed:.2f} s, {est.n_iter_} iterations")
    return result


def format_results(results: list[WorkflowResult]) -> list[str]:
    """A table: median fit seconds each side, the ratio, iterations and test accuracy."""
    lines = [f"{'case':34} {'fastmlp s':>10} {'sklearn s':>10} {'speedup':>8} {'iters f/s':>10} "
             f"{'test acc fastmlp':>17} {'sklearn':>8}"]
    for r in results:
        lines.append(f"{r.name:34} {r.median('fastmlp'):10.2f} {r.median('sklearn'):10.2f} {r.speedup:7.2f}x "
                     f"{r.n_iter['fastmlp']:>4}/{r.n_iter['sklearn']:<5} {100 * r.test_accuracy['fastmlp']:16.2f}% "
                     f"{100 * r.test_accuracy['sklearn']:7.2f}%")
    return lines
