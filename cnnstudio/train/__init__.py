"""The trainer: one training engine for the window, the command line and torchrun.

``Trainer(project).run(events)`` trains the project's model on its data and reports through plain
event objects (no Qt). ``stop()``, ``pause()`` and ``resume()`` may be called from any thread and
take effect between steps. Metrics stay on the device and are read every ``log_every`` steps. Each
run has a folder under the project's runs/ (written through ``cnnstudio.runs``): the settings,
metrics.jsonl, TensorBoard events, checkpoints, the evaluation and safetensors weights.

What lives where:

- ``events``: the events a run sends (RunStarted, DataProgress, StepLogged, EpochEnded,
  CheckpointSaved, Warned, Finished, Failed) and ``Control`` (stop, pause, snapshots).
- ``devices``: choosing and naming devices, free memory, precision and autocast.
- ``memory``: the memory estimate of a training step and the out-of-memory advice.
- ``optim``: the optimizer and the learning-rate schedule made from ``TrainSettings``.
- ``distributed``: the torchrun world and its collective steps.
- ``checkpoint``: the progress of a run and what a checkpoint holds for an exact resume.
- ``trainer``: ``Trainer``, a run from its settings to its final evaluation.
- ``run_data``: the run's images (downloaded, loaded) and its batches.
- ``loop``: the epoch and step loop.
- ``evaluate``: the final evaluation of a run and ``evaluate_run`` / ``evaluate_run_folder`` for
  any run later, on its validation or test split or on a labelled image folder.

The settings themselves are ``cnnstudio.train_settings.TrainSettings``.
"""

from __future__ import annotations

from cnnstudio.train.devices import (
    autocast,
    available_devices,
    device_name,
    free_memory,
    pick_device,
    pick_precision,
)
from cnnstudio.train.evaluate import evaluate_run, evaluate_run_folder
from cnnstudio.train.events import (
    CheckpointSaved,
    Control,
    DataProgress,
    EpochEnded,
    Event,
    EventSink,
    Failed,
    Finished,
    RunStarted,
    StepLogged,
    StepsDone,
    Warned,
)
from cnnstudio.train.memory import MemoryEstimate, estimate_memory
from cnnstudio.train.optim import make_optimizer, make_scheduler
from cnnstudio.train.trainer import Trainer, batch_of_one
from cnnstudio.train_settings import TrainSettings

__all__ = [
    "CheckpointSaved",
    "Control",
    "DataProgress",
    "EpochEnded",
    "Event",
    "EventSink",
    "Failed",
    "Finished",
    "MemoryEstimate",
    "RunStarted",
    "StepLogged",
    "StepsDone",
    "TrainSettings",
    "Trainer",
    "Warned",
    "autocast",
    "available_devices",
    "batch_of_one",
    "device_name",
    "estimate_memory",
    "evaluate_run",
    "evaluate_run_folder",
    "free_memory",
    "make_optimizer",
    "make_scheduler",
    "pick_device",
    "pick_precision",
]
