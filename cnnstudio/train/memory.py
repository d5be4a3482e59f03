"""How much device memory a training step needs (the weights' share from the model's analysis,
the activations' as measured by ``cnnstudio.activation_memory``), and what to tell a user whose
run did not fit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from cnnstudio.activation_memory import ActivationMemory, activation_memory
from cnnstudio.analysis import analyze
from cnnstudio.errors import ModelError
from cnnstudio.spec import ModelSpec
from cnnstudio.train.devices import device_name, free_memory
from cnnstudio.train_settings import TrainSettings


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


# Mixed precision keeps most activations in 16 bits (autocast's float32 exceptions aside): half.
_ACTIVATION_SHARE = {"fp32": 1.0, "bf16": 0.5, "fp16": 0.5}
_OPTIMIZER_SLOTS = {"adamw": 2, "adam": 2, "sgd": 1}
_WORKSPACE = 256 << 20  # cuDNN workspace and allocator slack
_GRADIENTS_IN_FLIGHT = 2  # backward holds the gradients of about two of the largest activations


def estimate_memory(
    project_model: ModelSpec,
    settings: TrainSettings | Mapping[str, Any],
    precision: str = "fp32",
    saved: ActivationMemory | None = None,
) -> MemoryEstimate:
    """Weights, their gradients and the optimizer's state (AdamW: two values per trainable
    weight), plus the activations autograd keeps, measured on the model as built (frozen layers
    keep none), plus the gradients the backward pass holds at a time and a workspace margin.
    ``settings`` may also be the project's plain training dict, as the Train view has it while
    the user edits it (a missing optimizer counts as AdamW). ``saved`` is the model's activation
    memory when it has been measured already (the window measures it off the GUI thread).
    ModelError for an invalid model."""
    if isinstance(settings, TrainSettings):
        optimizer = settings.optimizer
    else:
        optimizer = settings.get("optimizer", "adamw")
    analysis = analyze(project_model)
    if not analysis.valid:
        raise ModelError(analysis.errors)
    params, trainable = analysis.total_params, analysis.trainable_params
    slots = _OPTIMIZER_SLOTS.get(optimizer, 2)
    saved = saved or activation_memory(project_model)
    share = _ACTIVATION_SHARE.get(precision, 1.0)
    fixed = 4 * params + 4 * trainable + 4 * slots * trainable + _WORKSPACE + saved.fixed_bytes
    per_image = saved.per_image_bytes + _GRADIENTS_IN_FLIGHT * saved.largest_bytes
    return MemoryEstimate(int(fixed), int(per_image * share))


def out_of_memory_message(
    project_model: ModelSpec, settings: TrainSettings | None, device: torch.device | None
) -> str:
    """The batch size that did not fit and one that should (from the estimate and the free
    memory, else half), for a run that ran out of memory with these settings on this device
    (either None when the run had not got that far)."""
    batch = settings.batch_size if settings is not None else None
    advice = "use a smaller batch size"
    if batch and device is not None:
        free = free_memory(device)
        estimate = estimate_memory(project_model, settings)
        fits = estimate.largest_batch(free) if free else batch // 2
        advice = (
            f"use batch size {max(1, min(fits, batch // 2))} or smaller, turn on mixed "
            "precision, or use a smaller input size"
        )
    where = f" at batch size {batch}" if batch else ""
    name = device_name(device) if device is not None else "the device"
    return f"{name} ran out of memory{where}: {advice}. The last checkpoint is kept"
