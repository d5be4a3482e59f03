"""The epoch and step loop of one run: training steps with metrics kept on the device and read
every ``log_every`` steps, NaN checks, validation, the best epoch and early stopping, checkpoints,
and the stop, pause and snapshot requests served between steps."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnstudio import runs
from cnnstudio.build import Backbone
from cnnstudio.params import format_rate
from cnnstudio.spec import ModelSpec
from cnnstudio.train.checkpoint import Progress, TrainingParts, checkpoint_state
from cnnstudio.train.devices import autocast
from cnnstudio.train.distributed import World, all_sum
from cnnstudio.train.events import (
    HEARTBEAT_SECONDS,
    CheckpointSaved,
    Control,
    EpochEnded,
    EventSink,
    Failed,
    StepLogged,
    StepsDone,
)
from cnnstudio.train_settings import TrainSettings


@dataclass(frozen=True)
class RunContext:
    """What a run trains in, fixed once it starts: its folder, settings, device, precision and
    memory format, its place in the world, where its events go, its controls, and the model spec
    each checkpoint keeps."""

    run_dir: Path
    settings: TrainSettings
    device: torch.device
    precision: str
    channels_last: bool
    world: World
    events: EventSink
    control: Control
    spec: ModelSpec


class _Window:
    """The losses and correct counts of the last ``log_every`` steps, kept on the device until
    they are read, and when the window started. A step only keeps its two results (no copy into
    a buffer: each copy is one more kernel a step on a GPU); the read stacks them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.losses: list[torch.Tensor] = []
        self.corrects: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.start = time.perf_counter()

    @property
    def full(self) -> bool:
        return len(self.sizes) == self.size

    def add(self, loss: torch.Tensor, correct: torch.Tensor, images: int) -> None:
        self.losses.append(loss.detach())
        self.corrects.append(correct)
        self.sizes.append(images)

    def read(self) -> tuple[list[float], list[float]]:
        """The steps' losses and correct counts: one sync with the device."""
        losses = torch.stack(self.losses).float()
        corrects = torch.stack(self.corrects).float()
        step_losses, step_corrects = torch.stack([losses, corrects]).tolist()
        return step_losses, step_corrects

    def restart(self) -> None:
        self.losses, self.corrects, self.sizes = [], [], []
        self.start = time.perf_counter()


class Loop:
    """The epoch and step loop of one run. ``trained`` is what the steps call (the model, or its
    DDP or compiled wrapper); ``parts.model`` is what validation and checkpoints use."""

    def __init__(
        self,
        context: RunContext,
        parts: TrainingParts,
        trained: nn.Module,
        train_batches: Any,
        val_batches: Any,
        log: runs.MetricsLog,
        progress: Progress,
        validated: nn.Module | None = None,
    ) -> None:
        self.c, self.parts, self.trained = context, parts, trained
        self.model, self.optimizer = parts.model, parts.optimizer
        # what validation calls: the model, or its head when the batches are cached features
        self.validated = validated if validated is not None else parts.model
        self.train_batches, self.val_batches = train_batches, val_batches
        self.log, self.p = log, progress
        self.settings, self.device, self.world = context.settings, context.device, context.world
        self.epochs = self.settings.epochs
        self.steps = len(train_batches)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.settings.label_smoothing)
        self._beat = -math.inf  # when the last StepsDone went out
        self._changing = _changing_state(self.model)

    def run(self) -> str | Failed:
        """Train to the last epoch: "finished", "early_stopped", "stopped", or Failed (NaN)."""
        control = self.c.control
        control.training = True
        try:
            while self.p.epoch < self.epochs:
                outcome = self._epoch()
                if outcome is not None:
                    return outcome
                patience = self.settings.early_stopping
                if patience and self.p.stale_epochs >= patience:
                    return "early_stopped"
            return "finished"
        finally:
            control.training = False
            for request in control.take_snapshot_requests():
                request.done.set()  # no copy: the run has ended; the asker gets None

    # One epoch

    def _epoch(self) -> str | Failed | None:
        started = time.perf_counter()
        outcome, train_time = self._train_steps()
        if outcome is not None:
            return outcome
        train_images = self.p.seen
        train_loss, train_acc = self._train_means()
        val_loss, val_acc, val_images = self._validate()
        failed = self._check_weights() or self._check_validation(val_loss, val_images)
        if failed:
            return failed
        self._next_epoch()
        improved = self._track_best(val_loss, val_acc)
        lr = self._lr()
        timing = {"seconds": time.perf_counter() - started, "train_seconds": train_time,
                  "train_images": train_images}  # fmt: skip
        self._record(train_loss, train_acc, val_loss, val_acc, lr, val_images, timing)
        self.c.events(
            EpochEnded(
                self.p.epoch,
                self.epochs,
                train_loss,
                train_acc,
                val_loss,
                val_acc,
                lr,
                time.perf_counter() - started,
                train_time,
                train_images,
                improved,
            )
        )
        self._save_epoch(improved)
        return None

    def _train_steps(self) -> tuple[str | Failed | None, float]:
        """The epoch's steps from where it stands (a resumed run skips those trained before its
        stop): how the run ends here (None: it goes on), and the seconds spent training: all of
        the steps' wall time, the metrics read and logged every ``log_every`` steps included,
        pauses and a stop's checkpoint left out."""
        p, control = self.p, self.c.control
        # resumed mid-epoch: the batches trained before the stop are skipped
        self.train_batches.set_epoch(p.epoch, first=p.batch)
        self.trained.train()
        started = time.perf_counter()
        paused = 0.0  # seconds

        def train_time() -> float:
            return time.perf_counter() - started - paused

        window = _Window(self.settings.log_every)
        for x, y in self.train_batches:
            if control.has_snapshot_requests:
                self._serve_snapshots()
            if control.paused:
                paused_at = time.perf_counter()
                control.wait_while_paused(self._serve_snapshots)
                waited = time.perf_counter() - paused_at
                paused += waited
                window.start += waited  # the window's speed leaves the pause out too
            if self._agree_to_stop(p.batch):
                seconds = train_time()
                self._flush(window)
                self._checkpoint("stop")
                return "stopped", seconds
            loss, correct = self._step(x, y)
            window.add(loss, correct, len(y))
            p.batch += 1
            p.global_step += 1
            self._heartbeat()
            if window.full or p.batch == self.steps:
                failed = self._flush(window)
                window.restart()
                if failed:
                    return failed, train_time()
        return None, train_time()

    def _heartbeat(self) -> None:
        """StepsDone after the first step and then at most every HEARTBEAT_SECONDS."""
        now = time.perf_counter()
        if now - self._beat < HEARTBEAT_SECONDS:
            return
        self._beat = now
        p = self.p
        self.c.events(StepsDone(p.epoch + 1, p.batch, self.steps, p.global_step))

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.c.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.c.precision, self.device):
            logits = self.trained(x)
            loss = self.criterion(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.parts.scaler
        scaler.scale(loss).backward()
        if self.settings.grad_clip:
            scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        scaler.step(self.optimizer)
        scaler.update()
        self.parts.scheduler.step()
        correct = (logits.detach().argmax(dim=1) == y).sum()
        return loss, correct

    def _next_epoch(self) -> None:
        p = self.p
        p.epoch += 1
        p.batch = 0
        p.loss_sum = p.correct = 0.0
        p.seen = 0

    def _lr(self) -> float:
        """The head's learning rate (the last group's)."""
        return self.optimizer.param_groups[-1]["lr"]

    # Metrics of the steps

    def _flush(self, window: _Window) -> Failed | None:
        """Read the window's metrics from the device (the one sync every log_every steps), check
        them for NaN, log them."""
        if not window.sizes:
            return None
        step_losses, step_correct = window.read()
        failed = self._check_finite(step_losses)
        if failed:
            return failed
        self._log_steps(window, step_losses, step_correct, time.perf_counter())
        return None

    def _check_finite(self, step_losses: list[float]) -> Failed | None:
        """Failed at the first step whose loss is NaN or infinite, on any rank."""
        n = len(step_losses)
        first_bad = next((i for i, v in enumerate(step_losses) if not math.isfinite(v)), None)
        if self.world.distributed:
            bad_anywhere = all_sum([1.0 if first_bad is not None else 0.0], self.world, self.device)
            if bad_anywhere[0] and first_bad is None:
                first_bad = n - 1
        if first_bad is None:
            return None
        bad_step = self.p.global_step - n + first_bad + 1
        return self._nan(bad_step, step_losses[first_bad])

    def _log_steps(
        self, window: _Window, step_losses: list[float], step_correct: list[float], now: float
    ) -> None:
        p = self.p
        images = sum(window.sizes)
        window_loss = sum(v * s for v, s in zip(step_losses, window.sizes, strict=True))
        p.loss_sum += window_loss
        p.correct += sum(step_correct)
        p.seen += images
        elapsed = max(1e-9, now - window.start)
        rate = images * self.world.size / elapsed
        remaining = (self.epochs - p.epoch - 1) * self.steps + (self.steps - p.batch)
        eta = remaining * elapsed / len(window.sizes)
        lr = self._lr()
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
        self.c.events(
            StepLogged(
                p.epoch + 1, p.batch, self.steps, p.global_step, loss, accuracy, lr, rate, eta
            )
        )

    def _nan(self, step: int, value: float) -> Failed:
        return self._failed_nan(
            f"the loss became {_word(value)} at step {step} (epoch {self.p.epoch + 1})", step
        )

    def _failed_nan(self, what: str, step: int) -> Failed:
        """Failed("nan"): ``what`` happened, what to do, and which checkpoint is kept (the epoch
        that went wrong is never saved)."""
        last = self.c.run_dir / runs.LAST
        kept = (
            f"the last good checkpoint is {last} (epoch {self.p.epoch})"
            if last.is_file()
            else "no checkpoint was written before it"
        )
        return Failed(
            "nan",
            f"{what} with learning rate {format_rate(self._lr())}: lower the learning rate or set "
            f"grad_clip; {kept}",
            str(self.c.run_dir),
            step,
        )

    def _agree_to_stop(self, batch: int) -> bool:
        """Whether the run stops before this batch. Under torchrun the ranks ask one another
        every ``log_every`` batches (all at the same batch), and all stop when any was told to:
        a stop that reaches one process (a signal to one rank, the window's Stop) stops them
        all, at the same step, with one checkpoint."""
        stopping = self.c.control.stopping
        if not self.world.distributed:
            return stopping
        if batch % self.settings.log_every:
            return False
        return all_sum([1.0 if stopping else 0.0], self.world, self.device)[0] > 0

    # The end of an epoch

    def _train_means(self) -> tuple[float, float]:
        """The epoch's training loss and accuracy, over every rank."""
        p = self.p
        loss = p.loss_sum / max(1, p.seen)
        acc = p.correct / max(1, p.seen)
        if not self.world.distributed:
            return loss, acc
        total_loss, total_correct, total = all_sum(
            [loss * p.seen, acc * p.seen, float(p.seen)], self.world, self.device
        )
        return total_loss / max(1, total), total_correct / max(1, total)

    @torch.no_grad()
    def _validate(self) -> tuple[float, float, int]:
        """The validation loss and accuracy over every rank (NaN when there is no validation
        image), and how many images they cover: each rank has its own images, none repeated."""
        self.trained.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        seen = 0
        for x, y in self.val_batches:
            if self.c.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.c.precision, self.device):
                logits = self.validated(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(dim=1) == y).sum()
            seen += len(y)
        total_loss, total_correct, total = all_sum(
            [float(loss_sum), float(correct), float(seen)], self.world, self.device
        )
        if total == 0:
            return float("nan"), float("nan"), 0
        return total_loss / total, total_correct / total, int(total)

    def _check_validation(self, val_loss: float, val_images: int) -> Failed | None:
        """Failed when the validation loss is NaN or infinite (an empty validation split, whose
        loss is NaN by convention, goes on)."""
        if math.isfinite(val_loss) or val_images == 0:
            return None
        return self._failed_nan(
            f"the validation loss became {_word(val_loss)} at the end of epoch {self.p.epoch + 1}",
            self.p.global_step,
        )

    @torch.no_grad()
    def _check_weights(self) -> Failed | None:
        """Failed when a weight or buffer (a BatchNorm's running_var, say) holds a NaN or an
        infinite value, on any rank: such a model would go on "training" in silence. Frozen
        weights are left out: they cannot change (a frozen ResNet-18 is 11 M of them)."""
        state = {
            k: v
            for k, v in self.model.state_dict().items()
            if k in self._changing and torch.is_floating_point(v)
        }
        if not state:
            return None
        bad = torch.stack([~torch.isfinite(v).all() for v in state.values()]).tolist()
        first = next((key for key, b in zip(state, bad, strict=True) if b), None)
        if self.world.distributed:
            anywhere = all_sum([1.0 if first is not None else 0.0], self.world, self.device)
            if anywhere[0] and first is None:
                return self._failed_nan(
                    f"a weight became NaN or infinite on another process during epoch "
                    f"{self.p.epoch + 1}",
                    self.p.global_step,
                )
        if first is None:
            return None
        layer, _, name = first.rpartition(".")
        value = state[first][~torch.isfinite(state[first])].flatten()[0].item()
        return self._failed_nan(
            f"{name} of layer {layer or first} became {_word(value)} during epoch "
            f"{self.p.epoch + 1}",
            self.p.global_step,
        )

    def _track_best(self, val_loss: float, val_acc: float) -> bool:
        p = self.p
        minimize = self.settings.monitor == "val_loss"
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

    def _record(
        self,
        train_loss: float,
        train_acc: float,
        val_loss: float,
        val_acc: float,
        lr: float,
        val_images: int,
        timing: dict[str, float],
    ) -> None:
        """The epoch in metrics.jsonl (with how many validation images its figures cover, each
        counted once over all ranks, and how long it took: the run table's duration and images/s)
        and in the progress's history."""
        p = self.p
        record = {
            "type": "epoch",
            "epoch": p.epoch,
            "global_step": p.global_step,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "val_images": val_images,
            "lr": lr,
            **timing,
            "time": time.time(),
        }
        p.history.append(
            {
                k: record[k]
                for k in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")
            }
        )
        self.log.write(record)

    def _save_epoch(self, improved: bool) -> None:
        """The last checkpoint, the best one when the epoch improved, and the run's state."""
        self._checkpoint("last")
        if improved:
            self._checkpoint("best")
        if self.world.main:
            runs.write_state(
                self.c.run_dir,
                state="running",
                epochs_done=self.p.epoch,
                best_val_accuracy=self.p.best_val_accuracy,
                best_epoch=self.p.best_epoch,
                message="",
                **runs.trainer_process(),
            )

    # Between steps

    def _serve_snapshots(self) -> None:
        requests = self.c.control.take_snapshot_requests()
        if not requests:
            return
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        for request in requests:
            request.state = state
            request.done.set()

    def _checkpoint(self, kind: str) -> None:
        if not self.world.main:
            return
        state = checkpoint_state(self.parts, self.p, self.settings, self.c.spec, self.device)
        path = self.c.run_dir / (runs.BEST if kind == "best" else runs.LAST)
        runs.save_checkpoint(path, state)
        self.c.events(CheckpointSaved(str(path), self.p.epoch, kind))


def _changing_state(model: nn.Module) -> set[str]:
    """The state_dict keys that training can change: the trainable weights, and the buffers
    outside frozen Backbones (they stay in eval mode: their statistics never move)."""
    frozen = tuple(
        f"{name}." for name, m in model.named_modules() if isinstance(m, Backbone) and m.frozen
    )
    keys = {name for name, p in model.named_parameters() if p.requires_grad}
    keys |= {name for name, _b in model.named_buffers() if not (frozen and name.startswith(frozen))}
    return keys


def _word(value: float) -> str:
    return "NaN" if math.isnan(value) else "infinite"
