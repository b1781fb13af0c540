"""Learning-rate schedules stepped once per epoch, with the formulas of PyTorch's torch/optim/lr_scheduler.py.

A schedule holds no optimizer: the trainer drives it through a small interface and reads the rate back.
Deliberately absent: per-batch schedules, several parameter groups, ``last_epoch`` arguments and
ReduceLROnPlateau's "max" mode (pass the negative of a metric that should grow).

The interface the trainer uses
------------------------------
``schedule.start(base_lr)``
    Called once when training starts; ``schedule.lr`` is then `base_lr`. On a schedule already started
    (a second ``fit``, or one restored by ``load_state_dict``) it does nothing, so that training carries
    on where the schedule stands; it raises ValueError if given a different `base_lr`, which would
    otherwise be silently ignored. ``start(base_lr, restart=True)`` begins the schedule again from epoch 0.
``schedule.lr``
    The learning rate for the coming epoch (a float).
``schedule.step(metric=None)``
    Called after each epoch. ReduceLROnPlateau needs the epoch's metric (lower is better, e.g. the
    validation loss; NaN counts as no improvement); the other schedules ignore it.
``schedule.state_dict()`` / ``schedule.load_state_dict(state)``
    The parameters and the progress as a dict of plain ints, floats and strings, for checkpoints.
    Loading restores both, like torch: the schedule then continues exactly as the saved one would.

Each schedule computes the rate as its torch counterpart does when stepped once per epoch, in the same
order of float64 operations: StepLR and ExponentialLR multiply the current rate by gamma (so
``StepLR`` agrees with ``base_lr * gamma ** (epoch // step_size)`` to rounding only), and
CosineAnnealingLR uses torch's recursive form, which after ``T_max`` epochs climbs back towards
``base_lr`` along the same cosine.

Examples
--------
>>> schedule = StepLR(step_size=2, gamma=0.5)
>>> schedule.start(0.1)
>>> rates = []
>>> for epoch in range(5):
...     rates.append(schedule.lr)
...     schedule.step()
>>> rates
[0.1, 0.1, 0.05, 0.05, 0.025]
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Union

from ._validation import is_bool

__all__ = ["Schedule", "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau"]

# The value types a state dict may hold (bool is an int in Python, and is refused where an int is meant).
StateValue = Union[int, float, str]


def _real(owner: str, name: str, value: object) -> float:
    """Return value as a float, refusing bools, strings and other non-numbers with a TypeError."""
    if is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _bounded(owner: str, name: str, value: object, expectation: str, accept: Callable[[float], bool]) -> float:
    """Return value as a float if it is finite and accepted, else raise naming the expectation."""
    number = _real(owner, name, value)
    if not (math.isfinite(number) and accept(number)):
        raise ValueError(f"{owner}: {name} must be {expectation}, got {value!r}")
    return number


def _nonnegative(owner: str, name: str, value: object) -> float:
    return _bounded(owner, name, value, "a finite number >= 0", lambda number: number >= 0)


def _integer(owner: str, name: str, value: object, *, minimum: int) -> int:
    if is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
    return number


class Schedule:
    """Base class of the learning-rate schedules: the start/lr/step/state_dict protocol.

    A subclass sets its parameters in ``__init__`` (listing their names in ``_parameter_names``) and
    implements ``_next_lr``, which returns the rate after one more epoch; schedules with more progress than
    the epoch count and the rate also override ``_extra_state``, ``_load_extra_state`` and ``_reset``.
    """

    _parameter_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._base_lr: Optional[float] = None
        self._lr: Optional[float] = None
        self._epoch = 0

    # --- the interface the trainer drives ---

    def start(self, base_lr: float, *, restart: bool = False) -> None:
        """Begin the schedule at `base_lr`, or leave a started schedule where it stands.

        Parameters
        ----------
        base_lr : float
            The learning rate of the first epoch, finite and >= 0.
        restart : bool, default=False
            Begin again from epoch 0 even if the schedule has already started.

        Raises
        ------
        ValueError
            If the schedule has already started from a different base_lr and `restart` is False.
        """
        name = f"{type(self).__name__}.start"
        base_lr = _nonnegative(name, "base_lr", base_lr)
        if self._base_lr is not None and not restart:
            if base_lr != self._base_lr:
                raise ValueError(
                    f"{name}: this schedule already started from base_lr={self._base_lr!r} and is at epoch "
                    f"{self._epoch}, got base_lr={base_lr!r}; pass restart=True to begin again from the new rate"
                )
            return
        self._base_lr = base_lr
        self._lr = base_lr
        self._epoch = 0
        self._reset()

    @property
    def started(self) -> bool:
        """Whether :meth:`start` (or :meth:`load_state_dict` of a started schedule) has been called."""
        return self._base_lr is not None

    @property
    def base_lr(self) -> float:
        """The learning rate the schedule started from."""
        self._check_started("base_lr")
        assert self._base_lr is not None
        return self._base_lr

    @property
    def lr(self) -> float:
        """The learning rate for the coming epoch."""
        self._check_started("lr")
        assert self._lr is not None
        return self._lr

    @property
    def epoch(self) -> int:
        """The number of epochs stepped since the start."""
        return self._epoch

    def step(self, metric: Optional[float] = None) -> None:
        """Advance the schedule by one epoch; call it after each epoch.

        Parameters
        ----------
        metric : float or None, default=None
            The epoch's metric. Only :class:`ReduceLROnPlateau` uses it; the other schedules ignore it.
        """
        self._check_started("step")
        assert self._base_lr is not None and self._lr is not None
        self._epoch += 1
        self._lr = self._next_lr(self._lr, self._base_lr, metric)

    def state_dict(self) -> dict[str, StateValue]:
        """Return the parameters and the progress of the schedule as plain ints, floats and strings.

        Returns
        -------
        state : dict
            ``"schedule"`` (the class name), the constructor parameters, ``"epoch"`` and, once started,
            ``"base_lr"`` and ``"lr"``, with any progress of the schedule's own (ReduceLROnPlateau's).
        """
        state: dict[str, StateValue] = {"schedule": type(self).__name__}
        state.update({name: getattr(self, name) for name in self._parameter_names})
        state["epoch"] = self._epoch
        if self._base_lr is not None and self._lr is not None:
            state["base_lr"] = self._base_lr
            state["lr"] = self._lr
            state.update(self._extra_state())
        return state

    def load_state_dict(self, state: dict[str, StateValue]) -> None:
        """Restore parameters and progress from :meth:`state_dict`, so the schedule continues as the saved one.

        Parameters
        ----------
        state : dict
            A dict returned by ``state_dict()`` of a schedule of the same class.

        Raises
        ------
        ValueError
            If a key is missing or unknown, or a value has the wrong type or is out of range; nothing is
            changed then.
        """
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict):
            raise ValueError(f"{owner}: expected the dict returned by state_dict(), got {type(state).__name__}")
        if state.get("schedule") != type(self).__name__:
            raise ValueError(
                f"{owner}: expected the state of a {type(self).__name__}, got one with "
                f"'schedule' = {state.get('schedule')!r}"
            )
        started = "base_lr" in state or "lr" in state
        required = {"schedule", "epoch", *self._parameter_names}
        if started:
            required |= {"base_lr", "lr", *self._extra_state_keys()}
        missing = sorted(required - state.keys())
        unknown = sorted(state.keys() - required)
        if missing or unknown:
            raise ValueError(f"{owner}: state is missing keys {missing} and has unknown keys {unknown}")
        try:
            # Build a fresh schedule from the saved parameters: the constructor validates them.
            fresh = type(self)(**{name: state[name] for name in self._parameter_names})
            epoch = _integer(owner, "state['epoch']", state["epoch"], minimum=0)
            if started:
                fresh.start(_nonnegative(owner, "state['base_lr']", state["base_lr"]))
                fresh._lr = _nonnegative(owner, "state['lr']", state["lr"])
                fresh._load_extra_state(state, owner)
            elif epoch != 0:
                raise ValueError(f"{owner}: a schedule that has not started must be at epoch 0, got epoch {epoch}")
            fresh._epoch = epoch
        except (TypeError, ValueError) as error:
            # The constructor's and start's messages name the bad value; say where it came from.
            raise ValueError(f"{owner}: invalid state: {error}") from error
        self.__dict__.update(fresh.__dict__)

    def __repr__(self) -> str:
        parameters = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._parameter_names)
        return f"{type(self).__name__}({parameters})"

    # --- what subclasses provide ---

    def _next_lr(self, lr: float, base_lr: float, metric: Optional[float]) -> float:
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget any progress of the subclass's own; called by start."""

    def _extra_state(self) -> dict[str, StateValue]:
        return {}

    def _extra_state_keys(self) -> tuple[str, ...]:
        return ()

    def _load_extra_state(self, state: dict[str, StateValue], owner: str) -> None:
        """Validate and take the subclass's own progress from state."""

    def _check_started(self, what: str) -> None:
        if self._base_lr is None:
            raise RuntimeError(
                f"{type(self).__name__}.{what}: the schedule has not started; call start(base_lr) first"
            )


class StepLR(Schedule):
    """Multiply the learning rate by `gamma` every `step_size` epochs.

    The rate of epoch e (from 0) is ``base_lr * gamma ** (e // step_size)``, computed as torch does, by
    multiplying the current rate by gamma at each multiple of step_size.

    Parameters
    ----------
    step_size : int
        Period of the decay in epochs, >= 1.
    gamma : float, default=0.1
        Multiplicative factor of the decay, finite and > 0.
    """

    _parameter_names = ("step_size", "gamma")

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        super().__init__()
        self.step_size = _integer("StepLR", "step_size", step_size, minimum=1)
        self.gamma = _bounded("StepLR", "gamma", gamma, "a finite number > 0", lambda number: number > 0)

    def _next_lr(self, lr: float, base_lr: float, metric: Optional[float]) -> float:
        return lr * self.gamma if self._epoch % self.step_size == 0 else lr


class ExponentialLR(Schedule):
    """Multiply the learning rate by `gamma` every epoch: ``base_lr * gamma ** epoch``.

    Parameters
    ----------
    gamma : float
        Multiplicative factor of the decay, finite and > 0.
    """

    _parameter_names = ("gamma",)

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = _bounded("ExponentialLR", "gamma", gamma, "a finite number > 0", lambda number: number > 0)

    def _next_lr(self, lr: float, base_lr: float, metric: Optional[float]) -> float:
        return lr * self.gamma


class CosineAnnealingLR(Schedule):
    """Anneal the learning rate from base_lr to `eta_min` along half a cosine over `T_max` epochs.

    For epochs e <= T_max the rate is ``eta_min + (base_lr - eta_min) * (1 + cos(pi * e / T_max)) / 2``.
    Like torch's ``CosineAnnealingLR`` stepped per epoch, it is computed recursively from the previous
    rate, and past T_max it does not stay at eta_min: it climbs back to base_lr over the next T_max epochs,
    and so on, with a period of 2 * T_max.

    Parameters
    ----------
    T_max : int
        Number of epochs from base_lr down to eta_min, >= 1.
    eta_min : float, default=0.0
        The lowest learning rate, finite and >= 0.
    """

    _parameter_names = ("T_max", "eta_min")

    def __init__(self, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__()
        self.T_max = _integer("CosineAnnealingLR", "T_max", T_max, minimum=1)
        self.eta_min = _nonnegative("CosineAnnealingLR", "eta_min", eta_min)

    def _next_lr(self, lr: float, base_lr: float, metric: Optional[float]) -> float:
        epoch, T_max, eta_min = self._epoch, self.T_max, self.eta_min
        if (epoch - 1 - T_max) % (2 * T_max) == 0:
            # The epoch after a trough, where the ratio below would divide by 1 + cos(pi) = 0: torch adds
            # the first rise of the cosine instead.
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
        # The ratio of consecutive (1 + cos) terms carries the previous rate forward.
        return (1 + math.cos(math.pi * epoch / T_max)) / (1 + math.cos(math.pi * (epoch - 1) / T_max)) * (
            lr - eta_min
        ) + eta_min


class ReduceLROnPlateau(Schedule):
    """Multiply the learning rate by `factor` when the metric has stopped improving for `patience` epochs.

    Lower metrics are better (mode "min" of torch). An epoch improves on the best metric so far if
    ``metric < best * (1 - threshold)`` (threshold_mode "rel") or ``metric < best - threshold`` ("abs");
    a NaN metric never improves. After more than `patience` epochs without improvement the rate becomes
    ``max(lr * factor, min_lr)``, unless that changes it by `eps` or less, and `cooldown` epochs follow in
    which bad epochs are not counted.

    Parameters
    ----------
    factor : float, default=0.1
        Multiplicative factor of the reduction, in (0, 1).
    patience : int, default=10
        Number of epochs without improvement tolerated before a reduction, >= 0.
    threshold : float, default=1e-4
        Least improvement that counts, finite and >= 0.
    threshold_mode : {"rel", "abs"}, default="rel"
        Whether `threshold` is relative to the best metric or absolute.
    cooldown : int, default=0
        Number of epochs after a reduction during which bad epochs are not counted, >= 0.
    min_lr : float, default=0.0
        The learning rate is never reduced below this, finite and >= 0.
    eps : float, default=1e-8
        Reductions of eps or less are skipped, finite and >= 0.
    """

    _parameter_names = ("factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")

    def __init__(
        self,
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        owner = "ReduceLROnPlateau"
        self.factor = _bounded(owner, "factor", factor, "a number in (0, 1)", lambda number: 0 < number < 1)
        self.patience = _integer(owner, "patience", patience, minimum=0)
        self.threshold = _nonnegative(owner, "threshold", threshold)
        if not isinstance(threshold_mode, str):
            raise TypeError(f"{owner}: threshold_mode must be 'rel' or 'abs', got {type(threshold_mode).__name__}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{owner}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.threshold_mode = threshold_mode
        self.cooldown = _integer(owner, "cooldown", cooldown, minimum=0)
        self.min_lr = _nonnegative(owner, "min_lr", min_lr)
        self.eps = _nonnegative(owner, "eps", eps)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_improvement(self, metric: float) -> bool:
        # Comparisons with NaN are false, so a NaN metric is never an improvement, as in torch.
        if self.threshold_mode == "rel":
            return metric < self.best * (1.0 - self.threshold)
        return metric < self.best - self.threshold

    def _next_lr(self, lr: float, base_lr: float, metric: Optional[float]) -> float:
        current = self._check_metric(metric)
        if self._is_improvement(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
            reduced = max(lr * self.factor, self.min_lr)
            if lr - reduced > self.eps:
                return reduced
        return lr

    def step(self, metric: Optional[float] = None) -> None:
        """Advance the schedule by one epoch with that epoch's metric; call it after each epoch.

        Parameters
        ----------
        metric : float
            The epoch's metric, lower is better (e.g. the validation loss). NaN counts as no improvement.

        Raises
        ------
        TypeError
            If `metric` is None or not a real number; the schedule is then unchanged.
        """
        self._check_started("step")
        self._check_metric(metric)  # before the epoch counter moves, so that a bad call leaves no trace
        super().step(metric)

    @staticmethod
    def _check_metric(metric: object) -> float:
        if metric is None:
            raise TypeError("ReduceLROnPlateau.step needs the epoch's metric, e.g. step(val_loss), got None")
        return _real("ReduceLROnPlateau.step", "metric", metric)

    def _extra_state(self) -> dict[str, StateValue]:
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter}

    def _extra_state_keys(self) -> tuple[str, ...]:
        return ("best", "num_bad_epochs", "cooldown_counter")

    def _load_extra_state(self, state: dict[str, StateValue], owner: str) -> None:
        best = _real(owner, "state['best']", state["best"])
        if math.isnan(best):
            raise ValueError(f"{owner}: state['best'] must be a number or inf, got {best!r}")
        self.best = best
        self.num_bad_epochs = _integer(owner, "state['num_bad_epochs']", state["num_bad_epochs"], minimum=0)
        self.cooldown_counter = _integer(owner, "state['cooldown_counter']", state["cooldown_counter"], minimum=0)
