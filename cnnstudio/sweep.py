"""Sweeps: a plan of runs over training, data and augmentation settings, queued on disk and run one
after another by the Trainer.

A ``SweepPlan`` is a grid (every combination of the values of each ``Axis``) crossed with
``random`` draws from ``Range``s (Optuna's RandomSampler, seeded: the same plan draws the same
values). Its queue, ``runs/sweeps/<id>.json``, holds each planned run's settings, state (pending,
running, done, failed, skipped) and run folder, and is written atomically after every change, so a
sweep whose process was killed continues where it stopped: ``open_sweep`` finds the unfinished
sweep of the same plan, and ``run_sweep`` runs only its missing runs (a run left running is
resumed from its last checkpoint, or started again without one). Given several devices,
``run_sweep`` runs that many at once, one per device, each slot taking the next queued run as its
last one ends. ``SweepControl`` skips a run or stops the sweep from any thread. Each run's folder
is marked with the sweep's id (its notes.json).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from cnnstudio import runs
from cnnstudio.augment import AUGMENT_PARAMS
from cnnstudio.data import DATA_PARAMS, DataSettings
from cnnstudio.errors import StudioError, SweepError, TrainingError
from cnnstudio.files import atomic_write_text
from cnnstudio.params import Param, close_name
from cnnstudio.train import Failed, Finished, Trainer
from cnnstudio.train.devices import parse_devices, pick_device  # noqa: F401  (sweep --devices)
from cnnstudio.train.events import Event, EventSink, ignore
from cnnstudio.train_settings import TRAIN_PARAMS, check_training

SWEEPS_DIR = "sweeps"
STATES = ("pending", "running", "done", "failed", "skipped")
QUEUE_FORMAT = "cnnstudio-sweep"

# Every setting a sweep can vary, by its own name, and the part of the project it belongs to
SWEEPABLE: dict[str, tuple[str, Param]] = {
    **{p.name: ("training", p) for p in TRAIN_PARAMS if p.name != "gpus"},  # runs: in-process
    **{p.name: ("data", p) for p in DATA_PARAMS},
    **{p.name: ("augment", p) for p in AUGMENT_PARAMS},
}


def sweepable(name: str) -> Param:
    """The setting ``name`` (also written ``training.lr``, ``data.val_fraction``,
    ``augment.hflip``); SweepError with the nearest name when there is none."""
    bare = (
        name.split(".", 1)[1] if name.split(".", 1)[0] in ("training", "data", "augment") else name
    )
    if bare in SWEEPABLE:
        return SWEEPABLE[bare][1]
    hint = close_name(bare, list(SWEEPABLE))
    fix = f"did you mean {hint!r}?" if hint else "see the settings of `cnnstudio train --help`"
    raise SweepError(f"no setting {name!r} to sweep ({fix})")


def _checked(param: Param, value: Any) -> Any:
    reason = param.check(value)
    if reason:
        raise SweepError(f"sweep setting {param.name!r}: {reason}")
    return value


@dataclass(frozen=True)
class Axis:
    """A setting of the grid and the values it takes."""

    name: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        param = sweepable(self.name)
        object.__setattr__(self, "name", param.name)
        if not self.values:
            raise SweepError(f"sweep setting {param.name!r}: give at least one value")
        for value in self.values:
            _checked(param, value)


@dataclass(frozen=True)
class Range:
    """A numeric setting drawn at random between ``low`` and ``high`` (evenly on a log scale when
    ``log``)."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        param = sweepable(self.name)
        object.__setattr__(self, "name", param.name)
        if param.type not in ("int", "float"):
            raise SweepError(
                f"sweep setting {param.name!r} is {param.describe()}: give its values with --grid"
            )
        low, high = (_checked(param, v) for v in (self.low, self.high))
        if not low < high:
            raise SweepError(f"sweep setting {param.name!r}: the range's low end must be below "
                             f"its high end, got {low:g}:{high:g}")  # fmt: skip
        if self.log and low <= 0:
            raise SweepError(f"sweep setting {param.name!r}: a log range must start above 0")

    def distribution(self):
        from optuna.distributions import FloatDistribution, IntDistribution

        if sweepable(self.name).type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.log)


@dataclass(frozen=True)
class SweepPlan:
    """What to run: every combination of the grid's values, each crossed with ``random`` draws
    from the ranges (seeded by ``seed``); ``epochs`` (when given) for every run."""

    grid: tuple[Axis, ...] = ()
    ranges: tuple[Range, ...] = ()
    random: int = 0
    seed: int = 0
    epochs: int | None = None

    def __post_init__(self) -> None:
        names = [a.name for a in self.grid] + [r.name for r in self.ranges]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise SweepError(f"sweep setting {twice!r} is given twice")
        if self.epochs is not None and "epochs" in names:
            raise SweepError("sweep setting 'epochs' is swept: drop --epochs")
        if self.epochs is not None:
            _checked(SWEEPABLE["epochs"][1], self.epochs)
        if bool(self.ranges) != (self.random > 0):
            raise SweepError("random search needs both --random N (N > 0) and a --range")
        if not self.grid and not self.ranges:
            raise SweepError("nothing to sweep: give --grid NAME=V1,V2 or --random N --range ...")

    def settings(self) -> list[dict[str, Any]]:
        """The settings of each planned run, in order: the grid's combinations (first axis
        slowest), each with the random draws."""
        combos = [dict(zip([a.name for a in self.grid], values, strict=True))
                  for values in itertools.product(*(a.values for a in self.grid))]  # fmt: skip
        draws = self._draws() if self.ranges else [{}]
        return [{**combo, **draw} for combo in combos for draw in draws]

    def _draws(self) -> list[dict[str, Any]]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=self.seed))
        space = {r.name: r.distribution() for r in self.ranges}
        return [dict(study.ask(space).params) for _ in range(self.random)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "grid": [{"name": a.name, "values": list(a.values)} for a in self.grid],
            "ranges": [
                {"name": r.name, "low": r.low, "high": r.high, "log": r.log} for r in self.ranges
            ],
            "random": self.random,
            "seed": self.seed,
            "epochs": self.epochs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepPlan:
        return cls(
            grid=tuple(Axis(a["name"], tuple(a["values"])) for a in data.get("grid", [])),
            ranges=tuple(Range(**r) for r in data.get("ranges", [])),
            random=int(data.get("random", 0)),
            seed=int(data.get("seed", 0)),
            epochs=data.get("epochs"),
        )

    def key(self) -> str:
        """Identifies the plan: a sweep started again on the same plan continues this one."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:8]


# Plans written as text: --grid lr=1e-3,3e-3 and --range lr=1e-4:1e-2:log


def parse_value(param: Param, text: str) -> Any:
    """``text`` as a value of ``param`` (checked): numbers, true/false, a choice or a word."""
    text = text.strip()
    value: Any = text
    if text in param.words:
        return text
    if param.type in ("int", "float"):
        try:
            value = float(text) if param.type == "float" else _int(text)
        except ValueError:
            value = text
    elif param.type == "bool":
        value = {"true": True, "false": False, "yes": True, "no": False, "1": True,
                 "0": False, "on": True, "off": False}.get(text.lower(), text)  # fmt: skip
    return _checked(param, value)


def _int(text: str) -> int:
    number = float(text)  # 1e3 is a thousand
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


def parse_axis(text: str) -> Axis:
    """``NAME=V1,V2,...`` as an Axis; SweepError naming the setting for a bad name or value."""
    name, values = _split(text, "NAME=V1,V2")
    param = sweepable(name)
    return Axis(name, tuple(parse_value(param, v) for v in values.split(",") if v.strip()))


def parse_range(text: str) -> Range:
    """``NAME=LOW:HIGH`` or ``NAME=LOW:HIGH:log`` as a Range."""
    name, bounds = _split(text, "NAME=LOW:HIGH[:log]")
    param = sweepable(name)
    parts = bounds.split(":")
    log = len(parts) == 3 and parts[2].strip().lower() == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise SweepError(f"sweep setting {name!r}: write the range as LOW:HIGH or LOW:HIGH:log, "
                         f"got {bounds!r}")  # fmt: skip
    if param.type not in ("int", "float"):
        raise SweepError(
            f"sweep setting {param.name!r} is {param.describe()}: give its values with --grid"
        )
    low, high = (parse_value(param, p) for p in parts[:2])
    return Range(name, low, high, log)


def _split(text: str, form: str) -> tuple[str, str]:
    name, equals, values = text.partition("=")
    if not equals or not name.strip() or not values.strip():
        raise SweepError(f"write a swept setting as {form}, got {text!r}")
    return name.strip(), values


# The queue: runs/sweeps/<id>.json


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its settings, where it stands, and its run folder's name once made."""

    index: int
    settings: dict[str, Any]
    state: str = "pending"
    run: str | None = None
    message: str = ""
    best_val_accuracy: float | None = None
    final_val_accuracy: float | None = None
    device: str | None = None  # where it ran, when the sweep named its devices

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "settings": dict(self.settings),
            "state": self.state,
            "run": self.run,
            "message": self.message,
            "best_val_accuracy": self.best_val_accuracy,
            "final_val_accuracy": self.final_val_accuracy,
            "device": self.device,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlannedRun:
        state = data.get("state")
        return cls(
            index=int(data["index"]),
            settings=dict(data["settings"]),
            state=state if state in STATES else "pending",
            run=data.get("run") if isinstance(data.get("run"), str) else None,
            message=str(data.get("message") or ""),
            best_val_accuracy=data.get("best_val_accuracy"),
            final_val_accuracy=data.get("final_val_accuracy"),
            device=data.get("device") if isinstance(data.get("device"), str) else None,
        )


@dataclass
class Sweep:
    """A sweep's queue, as its file holds it; ``update`` changes a run and writes the file."""

    id: str
    plan: SweepPlan
    runs: list[PlannedRun]
    path: Path
    created: str = ""
    owner: dict[str, Any] = field(default_factory=dict)  # the process running it (pid, host)
    # runs going at once (one per device) update the queue from their own threads
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def missing(self) -> list[PlannedRun]:
        """The runs still to do (pending, or left running by a process that ended)."""
        return [r for r in self.runs if r.state in ("pending", "running")]

    def counts(self) -> dict[str, int]:
        return {state: sum(r.state == state for r in self.runs) for state in STATES}

    def update(self, index: int, **changes: Any) -> PlannedRun:
        with self._lock:
            self.runs[index] = replace(self.runs[index], **changes)
            self.save()
            return self.runs[index]

    def take(self, skipped) -> tuple[PlannedRun | None, list[PlannedRun]]:
        """The next pending run, marked running so that no other slot takes it, and the queued
        runs passed over on the way because ``skipped(index)`` says so (marked skipped)."""
        passed = []
        with self._lock:
            for planned in self.runs:
                if planned.state != "pending":
                    continue
                if skipped(planned.index):
                    passed.append(self.skip(planned.index))
                    continue
                return self.update(planned.index, state="running", message=""), passed
        return None, passed

    def skip(self, index: int) -> PlannedRun:
        """Skip a run that has not ended (the window's Skip on a queued run of a sweep that is not
        running; a running sweep is told through its SweepControl)."""
        if self.runs[index].state not in ("pending", "running"):
            return self.runs[index]
        return self.update(index, state="skipped", message="skipped")

    def save(self) -> None:
        with self._lock:  # one at a time: slots update the queue from their own threads
            data = {
                "format": QUEUE_FORMAT,
                "id": self.id,
                "created": self.created,
                "plan": self.plan.to_dict(),
                "plan_key": self.plan.key(),
                "owner": self.owner,
                "runs": [r.to_dict() for r in self.runs],
            }
            atomic_write_text(self.path, json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Sweep:
        """The sweep in the queue file ``path``; SweepError when it cannot be read."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != QUEUE_FORMAT:
                raise ValueError("not a sweep queue")
            return cls(
                id=str(data["id"]),
                plan=SweepPlan.from_dict(data["plan"]),
                runs=[PlannedRun.from_dict(r) for r in data["runs"]],
                path=path,
                created=str(data.get("created", "")),
                owner=data.get("owner") if isinstance(data.get("owner"), dict) else {},
            )
        except SweepError as error:
            raise SweepError(f"{path}: {error}") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise SweepError(f"{path}: cannot read the sweep queue ({error})") from None


def sweeps_dir(runs_dir: Path) -> Path:
    return runs_dir / SWEEPS_DIR


def list_sweeps(runs_dir: Path | None) -> list[Sweep]:
    """Every sweep of a project, oldest first (queue files that do not read are left out)."""
    if runs_dir is None or not sweeps_dir(runs_dir).is_dir():
        return []
    found = []
    for path in sorted(sweeps_dir(runs_dir).glob("*.json")):
        try:
            found.append(Sweep.load(path))
        except SweepError:
            continue
    return found


def load_sweep(runs_dir: Path, sweep_id: str | None = None) -> Sweep:
    """The sweep ``sweep_id`` of a project, or its latest one; SweepError when there is none."""
    if sweep_id is not None:
        path = sweeps_dir(runs_dir) / f"{sweep_id}.json"
        if not path.is_file():
            known = [s.id for s in list_sweeps(runs_dir)]
            hint = close_name(sweep_id, known) if known else None
            fix = f" (did you mean {hint!r}?)" if hint else ""
            raise SweepError(f"no sweep {sweep_id!r} in {sweeps_dir(runs_dir)}{fix}")
        return Sweep.load(path)
    found = list_sweeps(runs_dir)
    if not found:
        raise SweepError(f"no sweep to resume in {sweeps_dir(runs_dir)}")
    return found[-1]


def open_sweep(runs_dir: Path, plan: SweepPlan, *, fresh: bool = False) -> Sweep:
    """The sweep of ``plan``: the latest one of the same plan (its missing runs still to run, or
    none when it has ended), else a new queue; always a new one with ``fresh``."""
    if not fresh:
        same = [s for s in list_sweeps(runs_dir) if s.plan.key() == plan.key()]
        if same:
            return same[-1]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = sweeps_dir(runs_dir) / f"{stamp}-{plan.key()}.json"
    planned = [PlannedRun(i, settings) for i, settings in enumerate(plan.settings())]
    sweep = Sweep(path.stem, plan, planned, path, created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep.save()
    return sweep


# Running a sweep


@dataclass(frozen=True)
class SweepRunStarted:
    """A planned run starts (or resumes from its checkpoint); the Trainer's events follow."""

    sweep: str
    index: int
    total: int
    settings: dict[str, Any]
    resumed: bool
    device: str | None = None  # the slot's device, when the sweep named devices


@dataclass(frozen=True)
class SweepRunEnded:
    """A planned run ended: done, failed, skipped, or pending again (the sweep was stopped)."""

    sweep: str
    run: PlannedRun
    total: int


@dataclass(frozen=True)
class SweepEnded:
    """The sweep ran out of runs ("finished") or was stopped with runs left ("stopped")."""

    sweep: str
    state: str
    counts: dict[str, int]


class SweepControl:
    """Steers a running sweep from any thread: ``skip`` a run (the current one, or a queued one
    by index), ``stop`` the sweep (the runs in progress stop with a checkpoint and stay pending,
    to resume later). ``trainer`` is the current run's Trainer (pause, resume, live model); with
    several runs going at once (one per device), ``current`` is the first of them and
    ``trainers`` holds them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = False
        self._skip: set[int] = set()
        self._trainers: dict[int, Trainer] = {}

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            trainers = list(self._trainers.values())
        for trainer in trainers:
            trainer.stop()

    def skip(self, index: int | None = None) -> None:
        with self._lock:
            target = min(self._trainers, default=None) if index is None else index
            if target is None:
                return
            self._skip.add(target)
            trainer = self._trainers.get(target)
        if trainer is not None:
            trainer.stop()

    @property
    def stopping(self) -> bool:
        return self._stop

    @property
    def trainer(self) -> Trainer | None:
        current = self.current
        return None if current is None else self._trainers.get(current)

    @property
    def trainers(self) -> dict[int, Trainer]:
        """Every run in progress by its index."""
        with self._lock:
            return dict(self._trainers)

    @property
    def current(self) -> int | None:
        """The index of the (first) run in progress, None between runs."""
        with self._lock:
            return min(self._trainers, default=None)

    def skipped(self, index: int) -> bool:
        return index in self._skip

    def attach(self, index: int, trainer: Trainer | None) -> None:
        """The sweep's side: run ``index`` is in progress with ``trainer`` (None: it has ended)."""
        with self._lock:
            if trainer is None:
                self._trainers.pop(index, None)
                return
            self._trainers[index] = trainer
            late = self._stop or index in self._skip
        if late:
            trainer.stop()


def run_project(project, settings: dict[str, Any]):
    """The project with a planned run's settings in place of its own (a copy: the project and
    its file are left as they are). ProjectError for settings that do not go together."""
    parts: dict[str, dict[str, Any]] = {"training": {}, "data": {}, "augment": {}}
    for name, value in settings.items():
        parts[SWEEPABLE[sweepable(name).name][0]][name] = value
    training = check_training({**project.training, **parts["training"]})
    data = project.data.to_dict()
    data.update(parts["data"])
    data["augment"] = {**data.get("augment", {}), **parts["augment"]}
    return replace(project, training=training, data=DataSettings.from_dict(data))


def run_sweep(
    project,
    sweep: Sweep,
    events: EventSink | None = None,
    control: SweepControl | None = None,
    *,
    data_root: Path | None = None,
    devices: Sequence[str] = (),
) -> Sweep:
    """Run the sweep's missing runs, each a Trainer run of ``run_project`` whose events go to
    ``events`` between SweepRunStarted and SweepRunEnded; then SweepEnded. With no ``devices``,
    one after another where the project's settings say; with devices ("cuda:0", "cuda:1"), one
    run on each at once, every slot taking the next queued run when its own ends: the events of
    runs going at once then interleave (each Trainer event comes from the thread of its run, one
    event at a time). SweepError when another process is running the sweep now."""
    control = control or SweepControl()
    lock = threading.Lock()

    def sink(event: Event) -> None:
        with lock:
            (events or ignore)(event)

    slots = _slots(devices)
    _claim(sweep)
    for planned in sweep.runs:  # left running by a process that ended: resumed, in queue order
        if planned.state == "running":
            sweep.update(planned.index, state="pending")
    errors: list[BaseException] = []

    def slot(device: str | None) -> None:
        try:
            if device is not None and device.startswith("cuda"):
                torch.cuda.set_device(torch.device(device))  # this thread's current device
            while not control.stopping and not errors:
                planned, passed = sweep.take(control.skipped)
                for skipped in passed:
                    sink(SweepRunEnded(sweep.id, skipped, len(sweep.runs)))
                if planned is None:
                    return
                _run_one(project, sweep, planned, sink, control, data_root, device)
        except BaseException as error:  # the other slots stop with a checkpoint; raised below
            errors.append(error)
            control.stop()

    try:
        if len(slots) == 1:
            slot(slots[0])
        else:
            threads = [
                threading.Thread(
                    target=slot, args=(device,), name=f"sweep slot {i} ({device})", daemon=True
                )
                for i, device in enumerate(slots)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        for planned in sweep.missing:  # skipped while queued, after the sweep was stopped
            if control.skipped(planned.index) and planned.state == "pending":
                sweep.skip(planned.index)
        sweep.owner = {}
        sweep.save()
    if errors:
        raise errors[0]
    state = "stopped" if sweep.missing else "finished"
    sink(SweepEnded(sweep.id, state, sweep.counts()))
    return sweep


def _slots(devices: Sequence[str]) -> list[str | None]:
    """The devices runs go on at once (None: each run's own setting); SweepError for a device
    this machine lacks, before anything runs."""
    for device in devices:
        try:
            pick_device(device)
        except (TrainingError, RuntimeError) as error:
            raise SweepError(f"sweep device {device!r}: {error}") from None
    return list(devices) or [None]


def _claim(sweep: Sweep) -> None:
    owner = sweep.owner
    if owner and owner != runs.trainer_process() and runs.still_running(owner):
        raise SweepError(
            f"sweep {sweep.id} is being run by process {owner.get('pid')} on "
            f"{owner.get('host')}: stop it there first"
        )
    sweep.owner = runs.trainer_process()
    sweep.save()


def _run_one(project, sweep, planned, sink, control, data_root, device=None) -> None:
    """One planned run: resumed from its checkpoint when a killed or stopped process left one."""
    index, total = planned.index, len(sweep.runs)
    folder = _resumable(project.runs_dir, planned)
    try:
        trainer = Trainer(
            run_project(project, planned.settings),
            epochs=sweep.plan.epochs,
            device=device,
            resume=folder.name if folder is not None else False,
            data_root=data_root,
            save_project=False,
        )
    except StudioError as error:
        ended = sweep.update(index, state="failed", message=str(error), run=None)
        sink(SweepRunEnded(sweep.id, ended, total))
        return
    run = folder.name if folder else None
    sweep.update(index, state="running", message="", run=run, device=device)
    settings = dict(planned.settings)
    sink(SweepRunStarted(sweep.id, index, total, settings, run is not None, device))

    def forward(event: Event) -> None:
        if sweep.runs[index].run is None and trainer.run_dir is not None:
            runs.set_notes(trainer.run_dir, sweep=sweep.id)
            sweep.update(index, run=trainer.run_dir.name)
        sink(event)

    control.attach(index, trainer)
    try:
        result = trainer.run(forward)
    except Exception as error:
        sweep.update(index, state="failed", message=f"{type(error).__name__}: {error}")
        raise
    finally:
        control.attach(index, None)
    ended = sweep.update(index, **_outcome(result, control.skipped(index)))
    sink(SweepRunEnded(sweep.id, ended, total))


def _resumable(runs_dir: Path, planned: PlannedRun) -> Path | None:
    """The run folder to resume the planned run from (None: start it afresh). A folder left
    without a checkpoint (killed while loading its data, or in its first epoch) holds nothing to
    keep and is removed."""
    if planned.run is None:
        return None
    folder = runs_dir / planned.run
    if (folder / runs.LAST).is_file():
        return folder
    if (folder / runs.SETTINGS).is_file():
        runs.delete_run(folder)
    else:
        runs.delete_unstarted_run(folder)
    return None


def _outcome(result: Finished | Failed, skipped: bool) -> dict[str, Any]:
    """How a run's end changes its entry in the queue."""
    if isinstance(result, Finished) and result.state != "stopped":
        return {"state": "done", "message": result.state.replace("_", " "),
                "best_val_accuracy": result.best_val_accuracy,
                "final_val_accuracy": result.final_val_accuracy}  # fmt: skip
    if isinstance(result, Finished) or result.reason == "cancelled":
        if skipped:
            return {"state": "skipped", "message": "skipped"}
        return {"state": "pending", "message": "stopped: the sweep resumes it from its checkpoint"}
    return {"state": "failed", "message": result.message}
