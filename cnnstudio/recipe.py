"""The training recipe in plain PyTorch: the learning-rate schedule, the stratified split, the
optimizer's parameter groups and the optimizer.

The trainer uses these functions, and the exported training script carries their source text
(``inspect.getsource``), so a script and a run compute the same split and the same schedule. They
import nothing but ``math`` and ``torch`` and read no global name besides those.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def lr_factor(
    step: int,
    *,
    schedule: str,
    total_steps: int,
    warmup_steps: int,
    steps_per_epoch: int,
    step_size: int,
    gamma: float,
) -> float:
    """Multiplier of the base learning rate before optimizer step ``step`` (0-based)."""
    if schedule == "onecycle":
        warm = warmup_steps or max(1, int(0.3 * total_steps))
        if step < warm:
            return 1 / 25 + (1 - 1 / 25) * step / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        floor = 1 / 25 / 1e4
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "step":
        return gamma ** ((step // max(1, steps_per_epoch)) // step_size)
    return 1.0


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    schedule: str,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float,
    step_size: int,
    gamma: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule of a whole run (``lr_factor`` with its warm-up), stepped once
    per optimizer step."""
    total_steps = epochs * steps_per_epoch
    warmup_steps = int(warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(
            step,
            schedule=schedule,
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            steps_per_epoch=steps_per_epoch,
            step_size=step_size,
            gamma=gamma,
        ),
    )


def stratified_split(
    labels: torch.Tensor | list[int], val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices: ``val_fraction`` of every class (at least one image of a
    class with two or more) held out, chosen with ``seed``; the same inputs give the same split."""
    labels = torch.as_tensor(labels)
    generator = torch.Generator().manual_seed(seed)
    train, val = [], []
    for label in labels.unique(sorted=True).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = round(len(members) * val_fraction)
        n_val = min(max(n_val, 1), len(members) - 1) if len(members) >= 2 else 0
        val.append(members[:n_val])
        train.append(members[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def param_groups(
    model: nn.Module,
    backbones: set[str] | frozenset[str],
    *,
    lr: float,
    backbone_lr: float | str,
    weight_decay: float,
) -> list[dict]:
    """Optimizer groups: backbone and head, each split into decayed weights and undecayed biases
    and norm parameters, in that order (the head's last). ``backbones`` names the model's
    top-level children that are pretrained backbones; ``backbone_lr`` "same" means ``lr``. Frozen
    parameters are left out; an empty list means nothing is left to train."""
    if backbone_lr == "same":
        backbone_lr = lr
    buckets: dict[str, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if name.split(".")[0] in backbones else "head"
        key = part if param.ndim > 1 else f"{part}_no_decay"
        buckets.setdefault(key, []).append(param)
    groups = []
    for key in ("backbone", "backbone_no_decay", "head", "head_no_decay"):
        if key in buckets:
            groups.append(
                {
                    "params": buckets[key],
                    "name": key,
                    "lr": backbone_lr if key.startswith("backbone") else lr,
                    "weight_decay": 0.0 if key.endswith("no_decay") else weight_decay,
                }
            )
    return groups


def make_optimizer(
    groups: list[dict], *, optimizer: str, lr: float, momentum: float, nesterov: bool
) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD (with momentum, Nesterov when asked and momentum is on) over
    ``groups``, in torch's fused implementation: one kernel per step for all the parameters of
    a device instead of a few per parameter (torch's default on the CPU, where the step of a
    SimpleCNN took 4 % of its training time), and, under an fp16 GradScaler, no wait for the
    device at each step (the scaler hands the fused step its inf check instead of reading it)."""
    if optimizer == "sgd":
        nesterov = nesterov and momentum > 0
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, fused=True)
    return {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[optimizer](
        groups, lr=lr, fused=True
    )
