"""What a checkpoint holds so that a resumed run continues exactly: the progress of the run, the
state of the model, optimizer, schedule and grad scaler, the random generators, the settings (a
plain dict) and the model spec. ``cnnstudio.runs`` writes and reads the files; this module makes
the dict and puts it back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from cnnstudio.spec import ModelSpec
from cnnstudio.train_settings import TrainSettings


@dataclass
class Progress:
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


@dataclass(frozen=True)
class TrainingParts:
    """The objects whose state a checkpoint keeps. ``model`` is the plain model, never its DDP or
    compiled wrapper."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler


def checkpoint_state(
    parts: TrainingParts,
    progress: Progress,
    settings: TrainSettings,
    spec: ModelSpec,
    device: torch.device,
) -> dict[str, Any]:
    """The checkpoint dict of a run as it is now."""
    return {
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "progress": asdict(progress),
        "rng": _rng_state(device),
        "settings": settings.to_dict(),
        "spec": spec.to_dict(),
    }


def restore(checkpoint: dict[str, Any], parts: TrainingParts, device: torch.device) -> Progress:
    """Put the states of ``checkpoint`` back into ``parts`` and the random generators; the
    progress it was saved at."""
    parts.model.load_state_dict(checkpoint["model"])
    parts.optimizer.load_state_dict(_this_implementation(checkpoint["optimizer"], parts.optimizer))
    parts.scheduler.load_state_dict(checkpoint["scheduler"])
    parts.scaler.load_state_dict(checkpoint["scaler"])
    progress = Progress(**checkpoint["progress"])
    _set_rng_state(checkpoint["rng"], device)
    return progress


# the optimizer's choice of kernels, which a resumed run takes from its own optimizer
_IMPLEMENTATION = ("fused", "foreach")


def _this_implementation(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``saved`` (an optimizer's state_dict) with the kernels ``optimizer`` was made with: a
    checkpoint written before the optimizers were fused resumes fused. torch's loading then puts
    each parameter's step count where those kernels want it (a fused step wants it on the
    parameter's device)."""
    ours = optimizer.param_groups
    if len(saved["param_groups"]) != len(ours):
        return saved  # torch's loading refuses it, naming the mismatch
    groups = [
        {**group, **{key: own.get(key) for key in _IMPLEMENTATION}}
        for group, own in zip(saved["param_groups"], ours, strict=True)
    ]
    return {**saved, "param_groups": groups}


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
