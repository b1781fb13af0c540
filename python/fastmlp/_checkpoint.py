"""Trainer checkpoints: everything that decides how training goes on, in one ``.npz`` file of
arrays and plain values (no pickle), so that training 10 epochs equals training 5, saving,
loading in a new process and training 5 more, bit for bit.

A checkpoint holds the network (as ``Network.save`` writes it, under ``net.``), the trainer's
settings and counters (``trainer.``), the state of its random generator (``rng.``), the
optimizer's hyperparameters, step count and state arrays (``opt.``) and the schedule's
``state_dict`` (``schedule.``). Reading validates every entry before anything is built from
it, with the same size-checked reader as model files. It knows the trainer only through the
parts it is given (network, optimizer, schedule, settings, TrainingState), so it imports no
trainer; the file is written with atomic_write (a failed save leaves the old file intact).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

from . import schedules
from ._model_file import MAX_FILE_ENTRIES, ModelFileError, read_npz_arrays, write_npz
from ._training_state import TrainingState
from .network import Network
from .optim import Optimizer, _optimizer_classes
from .schedules import Schedule

FORMAT_NAME = "fastmlp.Checkpoint"
FORMAT_VERSION = 1
_SCHEDULES = ("StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau")


def _scalar(value: Any) -> NDArray[Any]:
    if isinstance(value, bool):
        return np.array(value, dtype=np.bool_)
    if isinstance(value, int):
        return np.array(str(value))  # any size (seeds are 64-bit unsigned, PCG64's state 128-bit)
    if isinstance(value, float):
        return np.array(value, dtype=np.float64)
    if isinstance(value, str):
        return np.array(value)
    if isinstance(value, tuple):
        return np.array([float(v) for v in value], dtype=np.float64)
    raise TypeError(f"cannot store {value!r} in a checkpoint")


def save_checkpoint(path: str | os.PathLike[str], net: Network, opt: Optimizer, schedule: Optional[Schedule],
                    settings: Mapping[str, Any], state: TrainingState) -> None:
    """Write a trainer's checkpoint to `path` (``.npz`` appended when missing): its network,
    optimizer, schedule, constructor `settings` (batch_size, shuffle, seed) and `state`."""
    arrays: dict[str, NDArray[Any]] = {"format": np.array(FORMAT_NAME), "format_version": np.array(FORMAT_VERSION)}
    with net._locked():  # weights and optimizer state of the same moment
        arrays.update({f"net.{k}": v for k, v in net._to_arrays().items()})
        opt_state = None if opt.state is None else [[a.copy() for a in p] for p in opt.state]
        steps = opt.steps
    seed = settings["seed"]
    arrays["trainer.batch_size"] = _scalar(int(settings["batch_size"]))
    arrays["trainer.shuffle"] = _scalar(bool(settings["shuffle"]))
    arrays["trainer.seed"] = _scalar("" if seed is None else str(seed))
    arrays["trainer.dropout_seed"] = _scalar(int(state.dropout_seed))
    arrays["trainer.epochs_done"] = _scalar(int(state.epochs_done))
    arrays["trainer.single_steps"] = _scalar(int(state.single_steps))
    rng_state = state.rng_state()
    if rng_state.get("bit_generator") != "PCG64":
        raise ValueError(f"cannot checkpoint a {rng_state.get('bit_generator')} generator; Trainer uses PCG64")
    arrays["rng.state"] = _scalar(int(rng_state["state"]["state"]))
    arrays["rng.inc"] = _scalar(int(rng_state["state"]["inc"]))
    arrays["rng.has_uint32"] = _scalar(int(rng_state["has_uint32"]))
    arrays["rng.uinteger"] = _scalar(int(rng_state["uinteger"]))
    arrays["opt.kind"] = _scalar(opt.kind)
    for key, value in opt._config().items():
        arrays[f"opt.config.{key}"] = _scalar(value)
    arrays["opt.steps"] = _scalar(int(steps))
    arrays["opt.n_state"] = _scalar(-1 if opt_state is None else len(opt_state))
    for i, buffers in enumerate(opt_state or []):
        for j, a in enumerate(buffers):
            arrays[f"opt.state.{i}.{j}"] = a
    if schedule is not None:
        for key, value in schedule.state_dict().items():
            arrays[f"schedule.{key}"] = _scalar(value)
    write_npz(path, arrays)  # atomically, with np.savez's ".npz" rule for the name


# What a checkpoint holds per layer: W and b, and up to three state buffers for each (RMSprop
# keeps its square average, momentum and centred mean); the reader's member bound follows it, so
# that whatever trains (a 1,500-layer Adam network too) saves a checkpoint that loads.
_MEMBERS_PER_LAYER = 2 + 2 * 3


class _Entries:
    """Typed access to a checkpoint's entries; every problem is a ModelFileError naming the entry."""

    def __init__(self, data: Mapping[str, NDArray[Any]], path: str) -> None:
        self.data, self.path = data, path

    def fail(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    def get(self, name: str) -> NDArray[Any]:
        if name not in self.data:
            raise self.fail(f"the entry {name!r} is missing (not a fastmlp checkpoint, or a damaged one)")
        return self.data[name]

    def text(self, name: str) -> str:
        a = self.get(name)
        if a.ndim != 0 or a.dtype.kind != "U":
            raise self.fail(f"entry {name!r} has an unexpected type")
        return str(a.item())

    def integer(self, name: str, minimum: int = 0, maximum: int = 2**128) -> int:
        raw = self.text(name)
        try:
            value = int(raw)
        except ValueError:
            raise self.fail(f"entry {name!r} must be an integer, got {raw[:40]!r}") from None
        if not minimum <= value < maximum:
            raise self.fail(f"entry {name!r} = {value} is outside [{minimum}, {maximum})")
        return value

    def flag(self, name: str) -> bool:
        a = self.get(name)
        if a.ndim != 0 or a.dtype.kind != "b":
            raise self.fail(f"entry {name!r} must be a bool")
        return bool(a.item())

    def value(self, name: str) -> Any:
        """A stored scalar back as the Python value it was (str entries that spell ints are ints)."""
        a = self.get(name)
        if a.ndim == 1 and a.dtype.kind == "f" and a.size <= 16:
            return tuple(float(v) for v in a)
        if a.ndim != 0 or a.dtype.kind not in "bfU":
            raise self.fail(f"entry {name!r} has an unexpected type")
        v = a.item()
        if a.dtype.kind == "U":
            try:
                return int(v)
            except ValueError:
                return str(v)
        return bool(v) if a.dtype.kind == "b" else float(v)


class SavedTraining:
    """A checkpoint read back: a new network, optimizer and schedule, the trainer's settings,
    and the state to put into the new trainer's TrainingState (:meth:`restore_into`)."""

    def __init__(self, entries: _Entries, network: Network, optimizer: Optimizer, schedule: Optional[Schedule],
                 settings: dict[str, Any]) -> None:
        self.entries = entries
        self.network, self.optimizer, self.schedule, self.settings = network, optimizer, schedule, settings

    def invalid(self, message: str) -> ModelFileError:
        return self.entries.fail(message)

    def restore_into(self, state: TrainingState) -> None:
        e = self.entries
        state.dropout_seed = e.integer("trainer.dropout_seed", 0, 2**64)
        state.epochs_done = e.integer("trainer.epochs_done", 0, 2**63)
        state.single_steps = e.integer("trainer.single_steps", 0, 2**63)
        try:
            state.set_rng_state({
                "bit_generator": "PCG64",
                "state": {"state": e.integer("rng.state", 0, 2**128), "inc": e.integer("rng.inc", 0, 2**128)},
                "has_uint32": e.integer("rng.has_uint32", 0, 2),
                "uinteger": e.integer("rng.uinteger", 0, 2**32),
            })
        except (TypeError, ValueError) as exc:
            raise e.fail(f"invalid random generator state: {exc}") from None


def load_checkpoint(path: str | os.PathLike[str]) -> SavedTraining:
    """Read a checkpoint written by :func:`save_checkpoint`, every entry checked before use."""
    if not os.path.exists(path) and os.path.exists(str(path) + ".npz"):
        path = str(path) + ".npz"
    data = read_npz_arrays(path, max_members=MAX_FILE_ENTRIES, layer_sizes_member="net.layer_sizes",
                           members_per_layer=_MEMBERS_PER_LAYER)
    e = _Entries(data, str(path))
    if "format" not in data or e.text("format") != FORMAT_NAME:
        hint = " (it is a model file: use fastmlp.Network.load)" if "layer_sizes" in data else ""
        raise e.fail(f"not a fastmlp checkpoint{hint}")
    version = e.get("format_version")
    if version.ndim != 0 or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
        raise e.fail(f"checkpoint format version {version!r}; this fastmlp reads version {FORMAT_VERSION}")

    net = Network._from_arrays({k[4:]: v for k, v in data.items() if k.startswith("net.")}, path)

    kind = e.text("opt.kind")
    classes = _optimizer_classes()
    if kind not in classes:
        raise e.fail(f"unknown optimizer kind {kind!r}; expected one of {sorted(classes)}")
    config = {k[len("opt.config."):]: e.value(k) for k in data if k.startswith("opt.config.")}
    try:
        opt: Optimizer = classes[kind](**config)
    except (TypeError, ValueError) as exc:
        raise e.fail(f"invalid optimizer settings {config}: {exc}") from None
    opt.steps = e.integer("opt.steps", 0, 2**63)
    n_state = e.integer("opt.n_state", -1, 2**31) if e.text("opt.n_state") != "-1" else -1
    if n_state >= 0:
        expected = opt._state_for(net)  # zeros of the right shapes: each stored array must match
        if n_state != len(expected):
            raise e.fail(f"optimizer state lists {n_state} parameters, the network has {len(expected)}")
        for i, buffers in enumerate(expected):
            for j, target in enumerate(buffers):
                a = e.get(f"opt.state.{i}.{j}")
                if a.shape != target.shape or a.dtype != target.dtype:
                    raise e.fail(f"opt.state.{i}.{j} has {a.dtype} shape {a.shape}, expected "
                                 f"{target.dtype} shape {target.shape}")
                if not np.isfinite(a).all():
                    raise e.fail(f"opt.state.{i}.{j} contains NaN or infinity")
                np.copyto(target, a)

    schedule = None
    if "schedule.schedule" in data:
        name = e.text("schedule.schedule")
        if name not in _SCHEDULES:
            raise e.fail(f"unknown schedule {name!r}; expected one of {list(_SCHEDULES)}")
        sched_cls = getattr(schedules, name)
        sched_state = {k[len("schedule."):]: e.value(k) for k in data if k.startswith("schedule.")}
        sched_state["schedule"] = name
        try:
            schedule = sched_cls(**{p: sched_state[p] for p in sched_cls._parameter_names})
            schedule.load_state_dict(sched_state)
        except (KeyError, TypeError, ValueError) as exc:
            raise e.fail(f"invalid schedule state: {exc}") from None

    seed_text = e.text("trainer.seed")
    settings = {"seed": None if seed_text == "" else e.integer("trainer.seed", 0, 2**64),
                "batch_size": e.integer("trainer.batch_size", 1, 2**63), "shuffle": e.flag("trainer.shuffle")}
    saved = SavedTraining(e, net, opt, schedule, settings)
    saved.restore_into(TrainingState(settings["seed"]))  # every counter checked before anything is built
    return saved
