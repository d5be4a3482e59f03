"""The training part of project.json, described as data (the form in the Train view is generated
from it, and project files are checked against it), and ``TrainSettings``, the same settings as a
typed value for the trainer.

project.json, settings.json and checkpoints keep the plain dict of ``check_training``;
``TrainSettings.from_dict`` and ``to_dict`` cross between the two. A test holds the dataclass's
fields to ``TRAIN_PARAMS`` (names, order and defaults).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from cnnstudio.params import Param, check_settings

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle", "step")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MONITORS = ("val_accuracy", "val_loss")

TRAIN_PARAMS: tuple[Param, ...] = (
    Param("epochs", "int", 10, "Passes over the training images.", 1, 100_000),
    Param("batch_size", "int", 64, "Images per optimization step.", 1, 65_536),
    Param(
        "optimizer",
        "choice",
        "adamw",
        "AdamW and Adam adapt step sizes per weight; SGD uses momentum.",
        choices=OPTIMIZERS,
    ),
    Param(
        "lr",
        "float",
        1e-3,
        "Learning rate (of the head, when the backbone has its own).",
        1e-8,
        10.0,
    ),
    Param(
        "backbone_lr",
        "float",
        "same",
        "Learning rate of Backbone layers; 'same' uses lr.",
        1e-9,
        10.0,
        words=("same",),
    ),
    Param("weight_decay", "float", 5e-4, "Decay of weights (not of biases and norms).", 0.0, 1.0),
    Param("momentum", "float", 0.9, "SGD momentum.", 0.0, 0.999),
    Param("nesterov", "bool", False, "Use Nesterov momentum with SGD."),
    Param(
        "schedule",
        "choice",
        "cosine",
        "How the learning rate changes over the run.",
        choices=SCHEDULES,
    ),
    Param(
        "warmup_epochs",
        "float",
        0.0,
        "Linear warm-up from zero over this many epochs.",
        0.0,
        1000.0,
    ),
    Param(
        "step_size",
        "int",
        10,
        "For the step schedule: epochs between learning-rate drops.",
        1,
        100_000,
    ),
    Param("gamma", "float", 0.1, "For the step schedule: factor of each drop.", 0.0, 1.0),
    Param(
        "label_smoothing", "float", 0.0, "Share of the target spread over all classes.", 0.0, 0.5
    ),
    Param("grad_clip", "float", 0.0, "Clip the gradient norm to this (0: off).", 0.0, 1e6),
    Param(
        "precision",
        "choice",
        "auto",
        "'auto': bf16 (or fp16) mixed precision on CUDA, fp32 elsewhere.",
        choices=PRECISIONS,
    ),
    Param("channels_last", "bool", True, "Lay feature maps out channels-last (faster convs)."),
    Param("compile", "bool", False, "Compile the model with torch.compile (slow first epoch)."),
    Param("seed", "int", 0, "Seed of weights, shuffling, augmentation and dropout.", 0, 2**31 - 1),
    Param(
        "early_stopping",
        "int",
        0,
        "Stop after this many epochs without improvement of monitor (0: off).",
        0,
        100_000,
    ),
    Param(
        "monitor",
        "choice",
        "val_accuracy",
        "Metric for the best checkpoint and early stopping.",
        choices=MONITORS,
    ),
    Param(
        "device",
        "text",
        "auto",
        "'auto' takes CUDA, then MPS, then the CPU.",
        choices=("auto", "cpu", "cuda", "cuda:1", "mps"),
        pattern=r"auto|cpu|mps|cuda(:\d+)?",
    ),
    Param(
        "gpus",
        "int",
        1,
        "Processes training at once through torchrun, one per GPU of this machine (with "
        "device cpu, CPU processes); 1 trains in this process.",
        1,
        1024,
    ),
    Param("log_every", "int", 20, "Steps between reading metrics from the device.", 1, 100_000),
    Param(
        "workers",
        "int",
        "auto",
        "DataLoader workers for folders too large for memory.",
        0,
        64,
        words=("auto",),
    ),
    Param(
        "feature_cache",
        "bool",
        True,
        "With a frozen backbone: compute its features once per image, train the head on them.",
    ),
    Param(
        "feature_cache_views",
        "int",
        0,
        "With augmentation: augmented views per image to cache (0: the backbone runs every epoch).",
        0,
        1000,
    ),
)

DEFAULT_TRAINING: dict[str, Any] = {p.name: p.default for p in TRAIN_PARAMS}


MIN_STEPS_PER_EPOCH = 10
SMALLEST_DEFAULT_BATCH = 16


def default_batch_size(train_images: int) -> tuple[int, str]:
    """The batch size a new project starts with for ``train_images`` training images, and why:
    64, halved (down to 16) while an epoch would make fewer than 10 optimizer steps. A few hundred
    images at 64 make 3 steps an epoch, too few for ten epochs to learn them."""
    batch = DEFAULT_TRAINING["batch_size"]
    while batch > SMALLEST_DEFAULT_BATCH and train_images < MIN_STEPS_PER_EPOCH * batch:
        batch //= 2
    if batch == DEFAULT_TRAINING["batch_size"]:
        return batch, f"batch size {batch} (the lesson's)"
    steps = -(-train_images // DEFAULT_TRAINING["batch_size"])
    return batch, (
        f"batch size {batch}: {train_images} training images make only {steps} "
        f"step{'s' if steps != 1 else ''} an epoch "
        f"at {DEFAULT_TRAINING['batch_size']}"
    )


def check_training(values: Any, where: str = "training") -> dict[str, Any]:
    """Training settings with defaults filled in; ProjectError naming ``training.<name>``."""
    return check_settings(TRAIN_PARAMS, values, where)


@dataclass(frozen=True)
class TrainSettings:
    """Checked training settings, one field per entry of ``TRAIN_PARAMS`` (same name, order and
    default). Made by ``from_dict``, which checks the values; ``to_dict`` gives back the plain dict
    that project files, run settings and checkpoints hold."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    backbone_lr: float | str = "same"
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    step_size: int = 10
    gamma: float = 0.1
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    early_stopping: int = 0
    monitor: str = "val_accuracy"
    device: str = "auto"
    gpus: int = 1
    log_every: int = 20
    workers: int | str = "auto"
    feature_cache: bool = True
    feature_cache_views: int = 0

    @classmethod
    def from_dict(cls, values: Any, where: str = "training") -> TrainSettings:
        """``values`` checked by ``check_training`` (ProjectError naming ``where.<name>``), with
        defaults filled in."""
        return cls(**check_training(values, where))

    def to_dict(self) -> dict[str, Any]:
        """The plain dict, in ``TRAIN_PARAMS`` order: what ``check_training`` returns."""
        return {field.name: getattr(self, field.name) for field in fields(self)}
