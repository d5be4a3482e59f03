"""What a run reports and how it is steered: the event dataclasses a Trainer sends (plain data,
no Qt) and ``Control``, the stop / pause / snapshot flags any thread may set between steps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from cnnstudio.metrics import Evaluation


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
class StepsDone:
    """How far the run is, between the logged steps: sent after a step at most every
    ``HEARTBEAT_SECONDS`` (and after the first), without reading anything from the device, so that
    a window's step count moves on a slow machine where ``log_every`` steps take half a minute."""

    epoch: int  # 1-based
    step: int  # 1-based, within the epoch
    steps: int
    global_step: int


HEARTBEAT_SECONDS = 0.5


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


def ignore(_event: Event) -> None:
    """The sink of a run nobody listens to (and of every rank but the first)."""
    return None


class Control:
    """Stop / pause / resume flags, safe to set from any thread; the loop checks them between
    steps."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self._snapshots: list[SnapshotRequest] = []
        self.training = False  # the loop is between steps (a snapshot can be served)

    def request_snapshot(self) -> SnapshotRequest:
        request = SnapshotRequest()
        with self._lock:
            self._snapshots.append(request)
        return request

    @property
    def has_snapshot_requests(self) -> bool:
        """Whether a snapshot is asked for, read without the lock (the loop asks after every
        step): a request that lands just after it is seen after the next step."""
        return bool(self._snapshots)

    def take_snapshot_requests(self) -> list[SnapshotRequest]:
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


class SnapshotRequest:
    """One asker's wait for a copy of the weights: the loop fills ``state`` (None when the run
    ends first) and sets ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.state: dict[str, torch.Tensor] | None = None
