"""The trainer: one training engine for the window, the command line and torchrun.

``Trainer(project).run(events)`` trains the project's model on its data and reports through plain
event objects (no Qt). ``stop()``, ``pause()`` and ``resume()`` may be called from any thread and
take effect between steps. Metrics stay on the device and are read every ``log_every`` steps. Each
run has a folder under the project's runs/: the settings, metrics.jsonl, TensorBoard events,
checkpoints (atomic, loaded with ``weights_only=True``), the evaluation and safetensors weights.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnstudio import model_source, recipe, runs
from cnnstudio.analysis import analyze
from cnnstudio.batches import default_workers, make_batches
from cnnstudio.build import Backbone, build_model
from cnnstudio.data import Dataset, load_dataset
from cnnstudio.errors import (
    Cancelled,
    DataError,
    ModelError,
    TrainingError,
    WeightsError,
)
from cnnstudio.metrics import Evaluation, evaluate
from cnnstudio.model_source import ModelSource
from cnnstudio.normalization import normalization
from cnnstudio.progress import TaskState
from cnnstudio.standard_sets import STANDARD_SETS, download, is_downloaded
from cnnstudio.train_settings import check_training

# Events


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    device: str
    device_name: str
    precision: str
    epochs: int
    start_epoch: int
    steps_per_epoch: int
    batch_size: int
    train_images: int
    val_images: int
    resumed: bool
    world_size: int


@dataclass(frozen=True)
class DataProgress:
    done: int
    total: int
    what: str


@dataclass(frozen=True)
class StepLogged:
    epoch: int  # 1-based
    step: int  # 1-based, within the epoch
    steps: int
    global_step: int
    loss: float
    accuracy: float
    lr: float
    images_per_sec: float
    eta_seconds: float


@dataclass(frozen=True)
class EpochEnded:
    epoch: int  # 1-based
    epochs: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    train_seconds: float
    train_images: int
    best: bool


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    epoch: int
    kind: str  # "last", "best" or "stop"


@dataclass(frozen=True)
class Warned:
    message: str


@dataclass(frozen=True)
class Finished:
    state: str  # "finished", "stopped" or "early_stopped"
    run_dir: str
    epochs_done: int
    best_val_accuracy: float | None
    best_epoch: int | None
    final_val_accuracy: float | None
    evaluation: Evaluation | None = None


@dataclass(frozen=True)
class Failed:
    reason: str  # "nan", "out_of_memory", "data", "model", "weights", "settings", "error"
    message: str
    run_dir: str | None = None
    step: int | None = None


Event = Any
EventSink = Callable[[Event], None]


def _ignore(_event: Event) -> None:
    return None


# Thread-safe controls


class Control:
    """Stop / pause / resume flags, safe to set from any thread; the loop checks them between
    steps."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self._snapshots: list[_SnapshotRequest] = []
        self.training = False  # the loop is between steps (a snapshot can be served)

    def request_snapshot(self) -> _SnapshotRequest:
        request = _SnapshotRequest()
        with self._lock:
            self._snapshots.append(request)
        return request

    def take_snapshot_requests(self) -> list[_SnapshotRequest]:
        with self._lock:
            requests, self._snapshots = self._snapshots, []
        return requests

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self, serve: Callable[[], None] | None = None) -> None:
        while not self._running.wait(0.1):
            if serve is not None:
                serve()


class _SnapshotRequest:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.state: dict[str, torch.Tensor] | None = None


# Devices and precision


def pick_device(name: str = "auto") -> torch.device:
    """'auto': CUDA, then MPS, then the CPU. TrainingError for a device this machine lacks."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            have = ", ".join(f"cuda:{i}" for i in range(count)) or "none"
            raise TrainingError(
                f"{name} is not available: this machine's CUDA devices: {have}; choose cpu or auto"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise TrainingError("mps is not available on this machine: choose cpu or auto")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def available_devices() -> list[tuple[str, str]]:
    """The devices a run can use here, as (setting, description): "auto", the CPU, every CUDA
    device with its name and memory, and MPS where there is one."""
    auto = pick_device("auto")
    found = [("auto", f"auto: {device_name(auto)}"), ("cpu", device_name(torch.device("cpu")))]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            cuda = torch.device("cuda", index)
            found.append((f"cuda:{index}", f"cuda:{index}: {device_name(cuda)}"))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append(("mps", device_name(torch.device("mps"))))
    return found


def pick_precision(setting: str, device: torch.device) -> str:
    if device.type != "cuda":
        return "fp32"
    if setting == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return setting


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# Memory estimate


@dataclass(frozen=True)
class MemoryEstimate:
    """What a training step needs on the device: fixed (weights, gradients, optimizer state) plus
    per image (activations kept for the backward pass), in bytes."""

    fixed_bytes: int
    per_image_bytes: int

    def total(self, batch_size: int) -> int:
        return self.fixed_bytes + self.per_image_bytes * batch_size

    def largest_batch(self, free_bytes: int) -> int:
        room = free_bytes - self.fixed_bytes
        return max(0, room // max(1, self.per_image_bytes))


# Activations are kept for backward and mirrored by their gradients; mixed precision halves them.
_ACTIVATION_FACTOR = {"fp32": 3.0, "bf16": 1.75, "fp16": 1.75}
_OPTIMIZER_SLOTS = {"adamw": 2, "adam": 2, "sgd": 1}
_WORKSPACE = 256 << 20  # cuDNN workspace and allocator slack


def estimate_memory(
    project_model, settings: dict[str, Any], precision: str = "fp32"
) -> MemoryEstimate:
    """Estimate from the analysis (parameters, activation memory per image)."""
    analysis = analyze(project_model)
    params, trainable = analysis.total_params, analysis.trainable_params
    slots = _OPTIMIZER_SLOTS.get(settings.get("optimizer", "adamw"), 2)
    fixed = 4 * params + 4 * trainable + 4 * slots * trainable + _WORKSPACE
    input_bytes = 4 * math.prod(analysis.input_shape)
    per_image = int(analysis.activation_bytes * _ACTIVATION_FACTOR.get(precision, 3.0))
    return MemoryEstimate(int(fixed), per_image + input_bytes)


def free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return None


# The optimizer


def make_optimizer(model: nn.Module, settings: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimizer of ``settings`` over the model's trainable parameters: backbone and head
    groups (each with its learning rate), no weight decay on biases and norms."""
    core = model.module if hasattr(model, "module") else model
    backbones = {name for name, child in core.named_children() if isinstance(child, Backbone)}
    groups = recipe.param_groups(
        core,
        backbones,
        lr=settings["lr"],
        backbone_lr=settings["backbone_lr"],
        weight_decay=settings["weight_decay"],
    )
    if not groups:
        raise TrainingError("the model has nothing to train: every layer is frozen")
    return recipe.make_optimizer(
        groups,
        optimizer=settings["optimizer"],
        lr=settings["lr"],
        momentum=settings["momentum"],
        nesterov=settings["nesterov"],
    )


# Distributed


@dataclass(frozen=True)
class _World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _init_world() -> _World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return _World()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return _World(rank, size, local)


def _all_sum(values: list[float], world: _World, device: torch.device) -> list[float]:
    if not world.distributed:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


# The trainer


@dataclass
class _Progress:
    """Where a run stands; saved in checkpoints so that a resumed run continues exactly."""

    epoch: int = 0  # 0-based index of the epoch in progress
    batch: int = 0  # batches done in that epoch
    global_step: int = 0
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    stale_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Trains a project's model on its data. Overrides (epochs, batch size, device) apply to this
    run only; ``resume`` continues the latest run (or the named one) from its last checkpoint."""

    def __init__(
        self,
        project,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        resume: bool | str = False,
        data_root: Path | None = None,
        save_project: bool = True,
    ) -> None:
        self.project = project
        self.overrides = {
            k: v
            for k, v in (("epochs", epochs), ("batch_size", batch_size), ("device", device))
            if v is not None
        }
        self.resume_from = resume
        self.data_root = data_root
        self.save_project = save_project
        self.control = Control()
        self.run_dir: Path | None = None
        self.preprocessing: tuple[tuple, tuple, tuple[str, ...]] | None = None  # mean, std, classes
        self._events: EventSink = _ignore

    # Controls, safe from any thread
    def stop(self) -> None:
        self.control.stop()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def snapshot(self, timeout: float = 30.0) -> dict[str, torch.Tensor] | None:
        """A copy (on the CPU) of the model's weights as they are now, taken by the training
        thread between two steps; safe from any thread. None when the run is not training (still
        loading, or ended) or the copy did not come within ``timeout`` seconds."""
        if not self.control.training:
            return None
        request = self.control.request_snapshot()
        if not request.done.wait(timeout):
            return None
        return request.state

    def model_source(self, timeout: float = 30.0) -> ModelSource | None:
        """The run's model as it is now, ready to use (a copy on the CPU with the run's
        preprocessing and classes), taken between two steps; safe from any thread. None as for
        ``snapshot``."""
        state = self.snapshot(timeout)
        if state is None or self.preprocessing is None or self.run_dir is None:
            return None
        mean, std, classes = self.preprocessing
        return model_source.from_state(
            self.project.model,
            state,
            classes=classes,
            mean=mean,
            std=std,
            label=f"run {self.run_dir.name} (live)",
            run_folder=self.run_dir,
        )

    def run(self, events: EventSink | None = None) -> Finished | Failed:
        """Train; return the last event (Finished or Failed) after sending it to ``events``.

        Problems a user can act on (bad data, NaN loss, out of memory, missing weights) end as a
        Failed event; anything else is reported as Failed and raised.
        """
        self.world = _init_world()
        sink = events or _ignore
        self._events = sink if self.world.main else _ignore
        try:
            result = self._run()
        except Cancelled as cancelled:
            result = Failed("cancelled", str(cancelled), _str(self.run_dir))
        except (DataError, ModelError, WeightsError, TrainingError) as error:
            reason = {DataError: "data", ModelError: "model", WeightsError: "weights"}.get(
                type(error), "settings"
            )
            result = Failed(reason, str(error), _str(self.run_dir))
        except torch.OutOfMemoryError:
            result = self._out_of_memory()
        except Exception as error:
            self._finish_state("failed", f"{type(error).__name__}: {error}")
            self._events(Failed("error", f"{type(error).__name__}: {error}", _str(self.run_dir)))
            raise
        if isinstance(result, Failed):
            self._finish_state("failed", result.message)
        self._leave_world()
        self._events(result)
        return result

    def _leave_world(self) -> None:
        """Wait for every rank (rank 0 may still be evaluating), then close the process group:
        a rank that exits early would break its peers' connections."""
        if not self.world.distributed:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    # The run, step by step

    def _run(self) -> Finished | Failed:
        checkpoint, self.run_dir = self._resume_point()
        if checkpoint is not None and "spec" in checkpoint:
            self._resume_own_model(checkpoint["spec"])
        project = self.project
        settings = check_training(
            {**(checkpoint["settings"] if checkpoint else project.training), **self.overrides}
        )
        self.settings = settings
        device = pick_device(settings["device"])
        if self.world.distributed and device.type == "cuda":
            device = torch.device("cuda", self.world.local_rank)
        self.device = device
        precision = pick_precision(settings["precision"], device)
        if settings["precision"] in ("bf16", "fp16") and device.type != "cuda":
            self._events(
                Warned(
                    f"mixed precision ({settings['precision']}) runs on CUDA only: "
                    f"training in fp32 on {device.type}"
                )
            )
        torch.manual_seed(settings["seed"])
        analysis = analyze(project.model)
        if not analysis.valid:
            raise ModelError(analysis.errors)

        dataset = self._load_data()
        mean, std = self._normalization(dataset)
        model = build_model(project.model, pretrained=checkpoint is None, analysis=analysis)
        model.to(device)
        channels_last = settings["channels_last"] and device.type != "mps"
        if channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(model, settings)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

        train_batches = make_batches(
            dataset,
            "train",
            settings["batch_size"],
            device,
            mean,
            std,
            train=True,
            augment=project.data.augment,
            seed=settings["seed"],
            rank=self.world.rank,
            world=self.world.size,
            workers=_workers(settings),
        )
        val_batches = make_batches(
            dataset,
            "val",
            max(256, settings["batch_size"]),
            device,
            mean,
            std,
            train=False,
            rank=self.world.rank,
            world=self.world.size,
        )
        steps_per_epoch = len(train_batches)
        if steps_per_epoch == 0:
            raise DataError("the training split is empty: add images or lower val_fraction")
        epochs = settings["epochs"]
        total_steps = epochs * steps_per_epoch
        warmup_steps = int(settings["warmup_epochs"] * steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: recipe.lr_factor(
                step,
                schedule=settings["schedule"],
                total_steps=total_steps,
                warmup_steps=warmup_steps,
                steps_per_epoch=steps_per_epoch,
                step_size=settings["step_size"],
                gamma=settings["gamma"],
            ),
        )

        progress = _Progress()
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            scaler.load_state_dict(checkpoint["scaler"])
            progress = _Progress(**checkpoint["progress"])
            _set_rng(checkpoint["rng"], device)

        trained = model
        if self.world.distributed:
            trained = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if settings["compile"]:
            trained = self._compile(trained)

        log = runs.MetricsLog(
            self.run_dir if self.world.main else None, progress.global_step if checkpoint else None
        )
        if log.warning:
            self._events(Warned(log.warning))
        if self.world.main:
            self._write_settings(settings, device, precision, mean, std, dataset)
            runs.write_state(
                self.run_dir,
                state="running",
                epochs_done=progress.epoch,
                best_val_accuracy=progress.best_val_accuracy,
                message="",
            )
        self._events(
            RunStarted(
                str(self.run_dir),
                str(device),
                device_name(device),
                precision,
                epochs,
                progress.epoch,
                steps_per_epoch,
                settings["batch_size"],
                len(dataset.splits["train"]),
                len(dataset.splits["val"]),
                checkpoint is not None,
                self.world.size,
            )
        )
        loop = _Loop(
            self,
            trained,
            model,
            optimizer,
            scheduler,
            scaler,
            train_batches,
            val_batches,
            precision,
            channels_last,
            log,
            progress,
        )
        try:
            state = loop.run(epochs)
        finally:
            log.close()
        if isinstance(state, Failed):
            return state
        evaluation = None
        if state != "stopped" and self.world.main:
            evaluation = self._final_evaluation(model, dataset, mean, std, precision, channels_last)
        final = progress.history[-1]["val_accuracy"] if progress.history else None
        self._finish_state(state, "", progress)
        return Finished(
            state,
            str(self.run_dir),
            progress.epoch,
            progress.best_val_accuracy,
            progress.best_epoch,
            final,
            evaluation,
        )

    def _resume_own_model(self, spec_dict: dict[str, Any]) -> None:
        """A resumed run goes on with the model it was started with, even if the project's model
        was edited since (its weights would not fit the edited one)."""
        from dataclasses import replace

        from cnnstudio.spec import ModelSpec

        spec = ModelSpec.from_dict(spec_dict)
        if spec != self.project.model:
            self._events(
                Warned("the model was edited since this run started: resuming the run's own model")
            )
            self.project = replace(self.project, model=spec)
            self.save_project = False  # never write the run's old model over the edited project

    def _resume_point(self) -> tuple[dict[str, Any] | None, Path]:
        folder = self.project.runs_dir
        if self.resume_from:
            run = (
                folder / self.resume_from
                if isinstance(self.resume_from, str)
                else runs.latest_run(folder)
            )
            if run is None or not (run / runs.LAST).is_file():
                raise TrainingError(f"nothing to resume: no checkpoint in {run or folder}")
            return runs.load_checkpoint(run / runs.LAST), run
        if folder is None:
            raise TrainingError("save the project first: its runs are kept in its folder")
        if self.world.distributed:
            return None, self._shared_run_dir(folder)
        return None, runs.new_run_dir(folder)

    def _shared_run_dir(self, folder: Path) -> Path:
        import torch.distributed as dist

        holder = [str(runs.new_run_dir(folder)) if self.world.main else ""]
        dist.broadcast_object_list(holder, src=0)
        return Path(holder[0])

    def _load_data(self) -> Dataset:
        data = self.project.data
        state = TaskState(
            on_progress=lambda p: self._events(DataProgress(p.done, p.total, p.what)),
            should_stop=lambda: self.control.stopping,
        )
        if data.source in STANDARD_SETS and not is_downloaded(data.source, self.data_root):
            if self.world.main:
                download(data.source, self.data_root, state)
            self._barrier()
        return load_dataset(
            data, self.project.model.input_shape, data_root=self.data_root, state=state
        )

    def _normalization(self, dataset: Dataset) -> tuple[tuple, tuple]:
        norm = normalization(self.project.data, self.project.model, dataset)
        if norm.data is not self.project.data:
            self.project.data = norm.data
            if self.save_project and self.world.main and self.project.path is not None:
                self.project.save()
        self.preprocessing = (norm.mean, norm.std, tuple(dataset.classes))
        return norm.mean, norm.std

    def _compile(self, model: nn.Module) -> nn.Module:
        try:
            return torch.compile(model)
        except Exception as error:  # a missing compiler must not cost the run
            self._events(
                Warned(f"torch.compile is not available here ({error}); training without it")
            )
            return model

    def _write_settings(self, settings, device, precision, mean, std, dataset) -> None:
        runs.write_settings(
            self.run_dir,
            {
                "project": self.project.to_dict(),
                "training": settings,
                "device": str(device),
                "precision": precision,
                "world_size": self.world.size,
                "mean": list(mean),
                "std": list(std),
                "classes": dataset.classes,
            },
        )

    def _final_evaluation(self, model, dataset, mean, std, precision, channels_last) -> Evaluation:
        best = self.run_dir / runs.BEST
        if best.is_file():
            model.load_state_dict(runs.load_checkpoint(best)["model"])
        batches = make_batches(
            dataset,
            "val",
            max(256, self.settings["batch_size"]),
            self.device,
            mean,
            std,
            train=False,
        )
        result = evaluate(
            model,
            batches,
            dataset.classes,
            dataset.splits["val"],
            autocast=_autocast(precision, self.device),
            channels_last=channels_last,
        )
        runs.write_evaluation(self.run_dir, result)
        runs.write_weights(self.run_dir, model.state_dict())
        return result

    def _finish_state(self, state: str, message: str, progress: _Progress | None = None) -> None:
        if self.run_dir is None or not getattr(self, "world", _World()).main:
            return
        if not self.run_dir.is_dir():
            return
        runs.write_state(
            self.run_dir,
            state=state,
            message=message,
            epochs_done=progress.epoch if progress else None,
            best_val_accuracy=progress.best_val_accuracy if progress else None,
            best_epoch=progress.best_epoch if progress else None,
        )

    def _out_of_memory(self) -> Failed:
        batch = self.settings["batch_size"] if hasattr(self, "settings") else None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        advice = "use a smaller batch size"
        if batch and hasattr(self, "device"):
            free = free_memory(self.device)
            estimate = estimate_memory(self.project.model, self.settings)
            fits = estimate.largest_batch(free) if free else batch // 2
            advice = (
                f"use batch size {max(1, min(fits, batch // 2))} or smaller, turn on mixed "
                "precision, or use a smaller input size"
            )
        where = f" at batch size {batch}" if batch else ""
        name = device_name(self.device) if hasattr(self, "device") else "the device"
        return Failed(
            "out_of_memory",
            f"{name} ran out of memory{where}: {advice}. The last checkpoint is kept",
            _str(self.run_dir),
        )

    def _barrier(self) -> None:
        if self.world.distributed:
            import torch.distributed as dist

            dist.barrier()


class _Loop:
    """The epoch and step loop of one run."""

    def __init__(
        self,
        trainer: Trainer,
        trained: nn.Module,
        model: nn.Module,
        optimizer,
        scheduler,
        scaler,
        train_batches,
        val_batches,
        precision: str,
        channels_last: bool,
        log: runs.MetricsLog,
        progress: _Progress,
    ) -> None:
        self.t = trainer
        self.trained, self.model = trained, model
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.train_batches, self.val_batches = train_batches, val_batches
        self.precision, self.channels_last = precision, channels_last
        self.log, self.p = log, progress
        self.settings = trainer.settings
        self.device = trainer.device
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.settings["label_smoothing"])

    def run(self, epochs: int) -> str | Failed:
        self.t.control.training = True
        try:
            while self.p.epoch < epochs:
                outcome = self._epoch(epochs)
                if outcome is not None:
                    return outcome
                patience = self.settings["early_stopping"]
                if patience and self.p.stale_epochs >= patience:
                    return "early_stopped"
            return "finished"
        finally:
            self.t.control.training = False
            for request in self.t.control.take_snapshot_requests():
                request.done.set()  # no copy: the run has ended; the asker gets None

    def _epoch(self, epochs: int) -> str | Failed | None:
        p, settings = self.p, self.settings
        started = time.perf_counter()
        self.train_batches.set_epoch(p.epoch)
        self.trained.train()
        steps = len(self.train_batches)
        window = settings["log_every"]
        losses = torch.zeros(window, device=self.device)
        corrects = torch.zeros(window, device=self.device)
        sizes: list[int] = []
        window_start = time.perf_counter()
        train_time = 0.0
        for index, (x, y) in enumerate(self.train_batches):
            if index < p.batch:
                continue  # resumed mid-epoch: these batches were trained before the stop
            self._serve_snapshots()
            if self.t.control.paused:
                train_time += time.perf_counter() - window_start
                self.t.control.wait_while_paused(self._serve_snapshots)
                window_start = time.perf_counter()
            if self.t.control.stopping and self._agree_to_stop():
                self._flush(losses, corrects, sizes, window_start, steps, epochs)
                self._checkpoint("stop")
                return "stopped"
            loss, correct = self._step(x, y)
            slot = len(sizes)
            losses[slot] = loss.detach().float()
            corrects[slot] = correct
            sizes.append(len(y))
            p.batch += 1
            p.global_step += 1
            if len(sizes) == window or p.batch == steps:
                now = time.perf_counter()
                failed = self._flush(losses, corrects, sizes, window_start, steps, epochs, now)
                train_time += now - window_start
                window_start = time.perf_counter()
                sizes = []
                if failed:
                    return failed
        train_loss = p.loss_sum / max(1, p.seen)
        train_acc = p.correct / max(1, p.seen)
        train_images = p.seen
        train_loss, train_acc = self._reduce_means(train_loss, train_acc, p.seen)
        val_loss, val_acc = self._validate()
        p.epoch += 1
        p.batch = 0
        p.loss_sum = p.correct = 0.0
        p.seen = 0
        improved = self._track_best(val_loss, val_acc)
        lr = self.optimizer.param_groups[-1]["lr"]
        record = {
            "type": "epoch",
            "epoch": p.epoch,
            "global_step": p.global_step,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": lr,
            "time": time.time(),
        }
        p.history.append(
            {
                k: record[k]
                for k in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")
            }
        )
        self.log.write(record)
        seconds = time.perf_counter() - started
        self.t._events(
            EpochEnded(
                p.epoch,
                epochs,
                train_loss,
                train_acc,
                val_loss,
                val_acc,
                lr,
                seconds,
                train_time,
                train_images,
                improved,
            )
        )
        self._checkpoint("last")
        if improved:
            self._checkpoint("best")
        if self.t.world.main:
            runs.write_state(
                self.t.run_dir,
                state="running",
                epochs_done=p.epoch,
                best_val_accuracy=p.best_val_accuracy,
                best_epoch=p.best_epoch,
                message="",
            )
        return None

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(self.precision, self.device):
            logits = self.trained(x)
            loss = self.criterion(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.settings["grad_clip"]:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings["grad_clip"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        correct = (logits.detach().argmax(dim=1) == y).sum()
        return loss, correct

    def _flush(
        self, losses, corrects, sizes, window_start, steps, epochs, now=None
    ) -> Failed | None:
        """Read the window's metrics from the device (the one sync every log_every steps), check
        them for NaN, log them."""
        if not sizes:
            return None
        now = now or time.perf_counter()
        p = self.p
        n = len(sizes)
        values = torch.stack([losses[:n], corrects[:n]]).tolist()
        step_losses, step_correct = values
        first_bad = next((i for i, v in enumerate(step_losses) if not math.isfinite(v)), None)
        if self.t.world.distributed:
            bad_anywhere = _all_sum(
                [1.0 if first_bad is not None else 0.0], self.t.world, self.device
            )[0]
            if bad_anywhere and first_bad is None:
                first_bad = n - 1
        if first_bad is not None:
            bad_step = p.global_step - n + first_bad + 1
            return self._nan(bad_step, step_losses[first_bad])
        images = sum(sizes)
        window_loss = sum(v * s for v, s in zip(step_losses, sizes, strict=True))
        p.loss_sum += window_loss
        p.correct += sum(step_correct)
        p.seen += images
        elapsed = max(1e-9, now - window_start)
        rate = images * self.t.world.size / elapsed
        remaining = (epochs - p.epoch - 1) * steps + (steps - p.batch)
        eta = remaining * elapsed / n
        lr = self.optimizer.param_groups[-1]["lr"]
        loss = window_loss / images
        accuracy = sum(step_correct) / images
        self.log.write(
            {
                "type": "step",
                "epoch": p.epoch + 1,
                "step": p.batch,
                "global_step": p.global_step,
                "loss": loss,
                "accuracy": accuracy,
                "lr": lr,
                "images_per_sec": rate,
                "time": time.time(),
            }
        )
        self.t._events(
            StepLogged(p.epoch + 1, p.batch, steps, p.global_step, loss, accuracy, lr, rate, eta)
        )
        return None

    def _nan(self, step: int, value: float) -> Failed:
        last = self.t.run_dir / runs.LAST
        kept = (
            f"the last good checkpoint is {last} (epoch {self.p.epoch})"
            if last.is_file()
            else "no checkpoint was written before it"
        )
        word = "NaN" if math.isnan(value) else "infinite"
        lr = self.optimizer.param_groups[-1]["lr"]
        return Failed(
            "nan",
            f"the loss became {word} at step {step} (epoch {self.p.epoch + 1}) "
            f"with learning rate {lr:.3g}: lower the learning rate or set grad_clip; "
            f"{kept}",
            str(self.t.run_dir),
            step,
        )

    def _agree_to_stop(self) -> bool:
        if not self.t.world.distributed:
            return True
        return _all_sum([1.0], self.t.world, self.device)[0] > 0

    def _reduce_means(self, loss: float, acc: float, seen: int) -> tuple[float, float]:
        if not self.t.world.distributed:
            return loss, acc
        total_loss, total_correct, total = _all_sum(
            [loss * seen, acc * seen, float(seen)], self.t.world, self.device
        )
        return total_loss / max(1, total), total_correct / max(1, total)

    @torch.no_grad()
    def _validate(self) -> tuple[float, float]:
        self.trained.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        seen = 0
        for x, y in self.val_batches:
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(self.precision, self.device):
                logits = self.model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(dim=1) == y).sum()
            seen += len(y)
        total_loss, total_correct, total = _all_sum(
            [float(loss_sum), float(correct), float(seen)], self.t.world, self.device
        )
        if total == 0:
            return float("nan"), float("nan")
        return total_loss / total, total_correct / total

    def _track_best(self, val_loss: float, val_acc: float) -> bool:
        p = self.p
        minimize = self.settings["monitor"] == "val_loss"
        metric = val_loss if minimize else val_acc
        if math.isnan(metric):
            return False
        better = p.best_metric is None or (
            metric < p.best_metric if minimize else metric > p.best_metric
        )
        if better:
            p.best_metric, p.best_epoch, p.best_val_accuracy = metric, p.epoch, val_acc
            p.stale_epochs = 0
        else:
            p.stale_epochs += 1
        return better

    def _serve_snapshots(self) -> None:
        requests = self.t.control.take_snapshot_requests()
        if not requests:
            return
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        for request in requests:
            request.state = state
            request.done.set()

    def _checkpoint(self, kind: str) -> None:
        if not self.t.world.main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": asdict(self.p),
            "rng": _get_rng(self.device),
            "settings": self.settings,
            "spec": self.t.project.model.to_dict(),
        }
        path = self.t.run_dir / (runs.BEST if kind == "best" else runs.LAST)
        runs.save_checkpoint(path, state)
        self.t._events(CheckpointSaved(str(path), self.p.epoch, kind))


def _get_rng(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _workers(settings: dict[str, Any]) -> int:
    return default_workers() if settings["workers"] == "auto" else settings["workers"]


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None


# Evaluating a finished run


def evaluate_run(project, run: str | None = None, *, device: str | None = None,
                 data_root: Path | None = None) -> Evaluation:  # fmt: skip
    """Evaluate a run's best checkpoint (or its last) on the validation split, using the model,
    data and normalization the run was trained with."""
    source = model_source.from_run(runs.find_run(project.runs_dir, run))
    settings = runs.read_settings(source.run_folder) or {}
    target = pick_device(device or "auto")
    model = source.model.to(target)
    dataset = load_dataset(source.data, source.input_shape, data_root=data_root)
    batches = make_batches(dataset, "val", 256, target, source.mean, source.std, train=False)
    precision = settings.get("precision", "fp32") if target.type == "cuda" else "fp32"
    return evaluate(
        model,
        batches,
        dataset.classes,
        dataset.splits["val"],
        autocast=_autocast(precision, target),
    )
