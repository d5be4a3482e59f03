"""``Trainer``: one run of a project, from its settings to its final evaluation.

``run`` turns what can go wrong into a Failed event; ``_run`` reads as the run's steps: where it
starts (a new folder, or a checkpoint to resume), settings, device, data, model, optimizer and
schedule, the state restored, the loop (``cnnstudio.train.loop``), the final evaluation.
"""

from __future__ import annotations

import gc
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnstudio import feature_cache, model_source, runs
from cnnstudio.analysis import Analysis, analyze
from cnnstudio.build import build_model
from cnnstudio.data import Dataset, class_names
from cnnstudio.errors import Cancelled, DataError, ModelError, TrainingError, WeightsError
from cnnstudio.feature_cache import CachedFeatures
from cnnstudio.fit import refuse_class_misfit
from cnnstudio.model_source import ModelSource
from cnnstudio.normalization import normalization
from cnnstudio.progress import TaskState
from cnnstudio.spec import ModelSpec
from cnnstudio.train.checkpoint import Progress, TrainingParts, restore
from cnnstudio.train.devices import device_name, pick_device, pick_precision
from cnnstudio.train.distributed import World, from_main, init_world, leave_world
from cnnstudio.train.evaluate import evaluate_best
from cnnstudio.train.events import (
    Control,
    DataProgress,
    EventSink,
    Failed,
    Finished,
    RunStarted,
    Warned,
    ignore,
)
from cnnstudio.train.loop import Loop, RunContext
from cnnstudio.train.memory import out_of_memory_message
from cnnstudio.train.optim import make_optimizer, make_scheduler
from cnnstudio.train.run_data import load_run_data, train_batches, val_batches
from cnnstudio.train_settings import TrainSettings

# The model's first weights are drawn from torch's global generator: one run at a time seeds it
# and builds its model, so that runs going at once in one process each start where their seed says.
_GLOBAL_RNG = threading.Lock()


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
        self.settings: TrainSettings | None = None
        self.device: torch.device | None = None
        self.world = World()
        self.feature_cache: dict[str, Any] | None = None  # what settings.json says of it
        self._events: EventSink = ignore

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
            data=self.project.data,
        )

    def run(self, events: EventSink | None = None) -> Finished | Failed:
        """Train; return the last event (Finished or Failed) after sending it to ``events``.

        Problems a user can act on (bad data, NaN loss, out of memory, missing weights) end as a
        Failed event; anything else is reported as Failed and raised.
        """
        self.world = init_world()
        sink = events or ignore
        self._events = sink if self.world.main else ignore
        out_of_memory = False
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
            # the advice is worked out below, once the traceback is gone: it holds the model, the
            # batch and its activations, and the free memory measured here would leave them out
            out_of_memory = True
        except Exception as error:
            problem = batch_of_one(error, self.settings.batch_size)
            if problem is None:
                self._finish_state("failed", f"{type(error).__name__}: {error}")
                self._events(
                    Failed("error", f"{type(error).__name__}: {error}", _str(self.run_dir))
                )
                raise
            result = Failed("settings", str(problem), _str(self.run_dir))
        if out_of_memory:
            result = self._out_of_memory()
        if isinstance(result, Failed):
            self._finish_state("failed", result.message)
        leave_world(self.world)
        self._events(result)
        return result

    # The run, step by step

    def _run(self) -> Finished | Failed:
        if not self.resume_from:
            self._refuse_misfit()  # before a run folder is made for it
        checkpoint = self._open_run()
        if checkpoint is not None:
            self._refuse_misfit()  # the run's own model
        settings = self._settings(checkpoint)
        device, precision = self._device(settings)
        analysis = self._analysis()
        dataset = load_run_data(
            self.project.data,
            self.project.model.input_shape,
            data_root=self.data_root,
            world=self.world,
            events=self._events,
            control=self.control,
        )
        mean, std = self._normalization(dataset)
        with _GLOBAL_RNG:  # runs side by side (a sweep on several devices) each start from seed
            torch.manual_seed(settings.seed)
            model, channels_last = self._model(analysis, pretrained=checkpoint is None)
        optimizer = make_optimizer(model, settings)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        augment, world = self.project.data.augment, self.world
        train = train_batches(
            dataset, settings, device, mean, std, augment=augment, world=world,
            channels_last=channels_last,
        )  # fmt: skip
        val = val_batches(dataset, settings, device, mean, std, world=world)
        scheduler = make_scheduler(optimizer, settings, len(train))
        parts = TrainingParts(model, optimizer, scheduler, scaler)
        progress = restore(checkpoint, parts, device) if checkpoint is not None else Progress()
        cached = self._feature_cache(model, dataset, mean, std)  # the restored weights' features
        if cached is not None:
            train, val = cached.train, cached.val
        trained = self._wrap(cached.head if cached else model)
        context = RunContext(
            run_dir=self.run_dir,
            settings=settings,
            device=device,
            precision=precision,
            channels_last=channels_last,
            world=self.world,
            events=self._events,
            control=self.control,
            spec=self.project.model,
        )
        log = self._open_log(progress, resumed=checkpoint is not None)
        self._announce(context, dataset, progress, len(train), resumed=checkpoint is not None)
        try:
            head = cached.head if cached else None
            state = Loop(context, parts, trained, train, val, log, progress, head).run()
            if state in ("finished", "early_stopped"):
                self._write_hparams(log, progress)
        finally:
            log.close()
        if isinstance(state, Failed):
            return state
        return self._finish(state, context, model, dataset, progress)

    def _open_run(self) -> dict[str, Any] | None:
        """The run's folder, new or resumed, and the checkpoint it resumes from (None for a new
        run). A resumed run goes on with its own model."""
        checkpoint, self.run_dir = self._resume_point()
        if checkpoint is not None and "spec" in checkpoint:
            self._resume_own_model(checkpoint["spec"])
        return checkpoint

    def _feature_cache(
        self, model: nn.Module, dataset: Dataset, mean: tuple, std: tuple
    ) -> CachedFeatures | None:
        """With a frozen backbone, the features of its images, cached (see
        ``cnnstudio.feature_cache``), or None; a Warned event says why not when it matters."""
        state = TaskState(
            on_progress=lambda p: self._events(DataProgress(p.done, p.total, p.what)),
            should_stop=lambda: self.control.stopping,
        )
        cached, why_not = feature_cache.prepare(
            model,
            dataset,
            settings=self.settings,
            device=self.device,
            mean=mean,
            std=std,
            data=self.project.data.to_dict(),
            project_dir=self.project.path,
            world_size=self.world.size,
            state=state,
        )
        if why_not:
            self._events(Warned(why_not))
        # what settings.json records, not the tensors: those are freed with the run
        self.feature_cache = cached.describe() if cached else None
        return cached

    def _refuse_misfit(self) -> None:
        """ModelError when the model's class count differs from the data's (fewer outputs crash
        in the loss; more would train outputs no image belongs to)."""
        refuse_class_misfit(self.project.model, class_names(self.project.data, self.data_root))

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
        return None, from_main(lambda: runs.new_run_dir(folder), self.world)

    def _resume_own_model(self, spec_dict: dict[str, Any]) -> None:
        """A resumed run goes on with the model it was started with, even if the project's model
        was edited since (its weights would not fit the edited one)."""
        spec = ModelSpec.from_dict(spec_dict)
        if spec != self.project.model:
            self._events(
                Warned("the model was edited since this run started: resuming the run's own model")
            )
            self.project = replace(self.project, model=spec)
            self.save_project = False  # never write the run's old model over the edited project

    def _settings(self, checkpoint: dict[str, Any] | None) -> TrainSettings:
        """A resumed run keeps the settings it started with; the overrides apply either way."""
        values = checkpoint["settings"] if checkpoint else self.project.training
        self.settings = TrainSettings.from_dict({**values, **self.overrides})
        return self.settings

    def _device(self, settings: TrainSettings) -> tuple[torch.device, str]:
        """The device (under torchrun on CUDA: this rank's GPU) and the precision on it."""
        device = pick_device(settings.device)
        if self.world.distributed and device.type == "cuda":
            device = torch.device("cuda", self.world.local_rank)
        self.device = device
        precision = pick_precision(settings.precision, device)
        if settings.precision in ("bf16", "fp16") and device.type != "cuda":
            self._events(
                Warned(
                    f"mixed precision ({settings.precision}) runs on CUDA only: "
                    f"training in fp32 on {device.type}"
                )
            )
        return device, precision

    def _analysis(self) -> Analysis:
        analysis = analyze(self.project.model)
        if not analysis.valid:
            raise ModelError(analysis.errors)
        return analysis

    def _normalization(self, dataset: Dataset) -> tuple[tuple, tuple]:
        """The mean and std the run normalises with; statistics computed now are stored in the
        project (saved unless the Trainer was told not to)."""
        norm = normalization(self.project.data, self.project.model, dataset)
        if norm.data is not self.project.data:
            self.project.data = norm.data
            if self.save_project and self.world.main and self.project.path is not None:
                self.project.save()
        self.preprocessing = (norm.mean, norm.std, tuple(dataset.classes))
        return norm.mean, norm.std

    def _model(self, analysis: Analysis, *, pretrained: bool) -> tuple[nn.Module, bool]:
        """The model on the device (pretrained weights only for a new run: a resumed one loads
        its own), and whether its feature maps are laid out channels-last."""
        model = build_model(self.project.model, pretrained=pretrained, analysis=analysis)
        model.to(self.device)
        channels_last = self.settings.channels_last and self.device.type != "mps"
        if channels_last:
            model.to(memory_format=torch.channels_last)
        return model, channels_last

    def _wrap(self, model: nn.Module) -> nn.Module:
        """What the steps call: the model, in DDP under torchrun, compiled when asked."""
        trained = model
        if self.world.distributed:
            device = self.device
            trained = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if self.settings.compile:
            trained = self._compile(trained)
        return trained

    def _compile(self, model: nn.Module) -> nn.Module:
        try:
            return torch.compile(model)
        except Exception as error:  # a missing compiler must not cost the run
            self._events(
                Warned(f"torch.compile is not available here ({error}); training without it")
            )
            return model

    def _open_log(self, progress: Progress, *, resumed: bool) -> runs.MetricsLog:
        """metrics.jsonl and TensorBoard events (rank 0 writes them); a resumed run drops the
        records after its checkpoint's step."""
        log = runs.MetricsLog(
            self.run_dir if self.world.main else None, progress.global_step if resumed else None
        )
        if log.warning:
            self._events(Warned(log.warning))
        return log

    def _write_hparams(self, log: runs.MetricsLog, progress: Progress) -> None:
        """The run's settings and final metrics for TensorBoard's HParams dashboard."""
        settings = runs.flat_settings(self.settings.to_dict(), self.project.data.to_dict())
        log.write_hparams(settings, runs.run_metrics(progress.history), progress.global_step)

    def _announce(
        self,
        context: RunContext,
        dataset: Dataset,
        progress: Progress,
        steps_per_epoch: int,
        *,
        resumed: bool,
    ) -> None:
        """settings.json and the run's state (rank 0), then the RunStarted event."""
        device, settings = context.device, context.settings
        if self.world.main:
            self._write_settings(context, dataset)
            runs.write_state(
                self.run_dir,
                state="running",
                epochs_done=progress.epoch,
                best_val_accuracy=progress.best_val_accuracy,
                message="",
                **runs.trainer_process(),
            )
        self._events(
            RunStarted(
                str(self.run_dir),
                str(device),
                device_name(device),
                context.precision,
                settings.epochs,
                progress.epoch,
                steps_per_epoch,
                settings.batch_size,
                len(dataset.splits["train"]),
                len(dataset.splits["val"]),
                resumed,
                self.world.size,
            )
        )

    def _write_settings(self, context: RunContext, dataset: Dataset) -> None:
        mean, std, _classes = self.preprocessing
        runs.write_settings(
            self.run_dir,
            {
                "project": self.project.to_dict(),
                "training": context.settings.to_dict(),
                "device": str(context.device),
                "precision": context.precision,
                "world_size": self.world.size,
                "mean": list(mean),
                "std": list(std),
                "classes": dataset.classes,
                "images": {split: len(dataset.splits[split]) for split in ("train", "val")},
                "feature_cache": self.feature_cache,
            },
        )

    def _finish(
        self,
        state: str,
        context: RunContext,
        model: nn.Module,
        dataset: Dataset,
        progress: Progress,
    ) -> Finished:
        """The final evaluation (rank 0, not after a stop), the run's last state, Finished."""
        evaluation = None
        if state != "stopped" and self.world.main:
            mean, std, _classes = self.preprocessing
            evaluation = evaluate_best(
                self.run_dir,
                model,
                dataset,
                val_batches(dataset, context.settings, context.device, mean, std, world=World()),
                precision=context.precision,
                device=context.device,
                channels_last=context.channels_last,
            )
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

    def _finish_state(self, state: str, message: str, progress: Progress | None = None) -> None:
        if self.run_dir is None or not self.world.main:
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
        gc.collect()  # the run's model and optimizer, in cycles, before the free memory is read
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        message = out_of_memory_message(self.project.model, self.settings, self.device)
        return Failed("out_of_memory", message, _str(self.run_dir))


# what torch's batch_norm says of a training batch of one
_ONE_VALUE_PER_CHANNEL = "Expected more than 1 value per channel when training"


def batch_of_one(error: BaseException, batch_size: int) -> TrainingError | None:
    """The user's version of torch's error for a BatchNorm fed one image in training mode, or None
    when ``error`` is another one."""
    if not (isinstance(error, ValueError) and _ONE_VALUE_PER_CHANNEL in str(error)):
        return None
    return TrainingError(
        "a batch of one image cannot train BatchNorm (it needs more than one value per channel): "
        f"use batch size 2 or more (it is {batch_size}), with at least two training images"
    )


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None
