"""The optimizer and the learning-rate schedule of a run, made from its settings with the
pure-torch pieces of ``cnnstudio.recipe`` (parameter groups, optimizer, ``lr_factor``)."""

from __future__ import annotations

import torch
from torch import nn

from cnnstudio import recipe
from cnnstudio.build import Backbone
from cnnstudio.errors import TrainingError
from cnnstudio.train_settings import TrainSettings


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer of ``settings`` over the model's trainable parameters: backbone and head
    groups (each with its learning rate), no weight decay on biases and norms."""
    core = model.module if hasattr(model, "module") else model
    backbones = {name for name, child in core.named_children() if isinstance(child, Backbone)}
    groups = recipe.param_groups(
        core,
        backbones,
        lr=settings.lr,
        backbone_lr=settings.backbone_lr,
        weight_decay=settings.weight_decay,
    )
    if not groups:
        raise TrainingError("the model has nothing to train: every layer is frozen")
    return recipe.make_optimizer(
        groups,
        optimizer=settings.optimizer,
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=settings.nesterov,
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of ``settings`` (with its warm-up) over the whole run, stepped once per
    optimizer step."""
    return recipe.make_scheduler(
        optimizer,
        schedule=settings.schedule,
        epochs=settings.epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=settings.warmup_epochs,
        step_size=settings.step_size,
        gamma=settings.gamma,
    )
