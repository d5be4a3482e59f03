"""Augmentation: the settings as data, a batched tensor implementation and the classic pipeline.

The batched path works on a whole uint8 batch already on the training device (CPU or GPU): flips,
padded random crops, colour jitter, rotation and random resized crops are a handful of tensor ops
per batch, with no per-image Python. The classic path (torchvision transforms on PIL images in
DataLoader workers) serves image folders too large to hold in memory, and is the baseline the
benchmark compares against.

The settings and the defaults are plain Python: the project reads them before torch has loaded
(the window shows without it), so the tensor functions import torch themselves.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnnstudio.params import Param

if TYPE_CHECKING:
    import torch

AUGMENT_PARAMS: tuple[Param, ...] = (
    Param("hflip", "bool", True, "Mirror half of the images left to right."),
    Param(
        "crop_padding",
        "int",
        4,
        "Pad by this many pixels, then crop back at a random place (0: off).",
        0,
        64,
    ),
    Param("brightness", "float", 0.2, "Scale brightness by a random factor in 1 ± this.", 0, 1),
    Param("contrast", "float", 0.2, "Scale contrast by a random factor in 1 ± this.", 0, 1),
    Param("saturation", "float", 0.2, "Scale saturation by a random factor in 1 ± this.", 0, 1),
    Param("rotation", "float", 0.0, "Rotate by a random angle up to ± this many degrees.", 0, 180),
    Param(
        "resized_crop",
        "bool",
        False,
        "Crop a random part (scale from resized_crop_scale to "
        "1, aspect 3/4 to 4/3) and resize it back.",
    ),
    Param(
        "resized_crop_scale",
        "float",
        0.08,
        "Smallest area kept by the random resized crop.",
        0.01,
        1.0,
    ),
)

NO_AUGMENTATION: dict[str, Any] = {
    "hflip": False,
    "crop_padding": 0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "rotation": 0.0,
    "resized_crop": False,
    "resized_crop_scale": 0.08,
}

_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def augment_batch(
    images: torch.Tensor, settings: dict[str, Any], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Augment a batch: uint8 N×C×H×W in, float32 N×C×H×W in [0, 1] out, on the same device.

    Each image gets its own random flip, crop, jitter and angle; ``generator`` (on the images'
    device) makes it repeatable. Flip and crop are one gather on the uint8 data, brightness and
    contrast one multiply-add per image, so a batch costs a few passes over memory.
    """
    import torch

    n = images.shape[0]
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, device=device, generator=generator) * (high - low) + low

    x = images
    if settings.get("hflip") or settings.get("crop_padding"):
        x = _flip_and_crop(
            x, bool(settings.get("hflip")), settings.get("crop_padding", 0), generator
        )
    x = x.float()
    if settings.get("resized_crop") or settings.get("rotation"):
        x = _random_affine(x, settings, uniform)
    # brightness b, then contrast c around the mean gray m:
    #   (b x - b m) c + b m = b c x + b m (1 - c)
    scale = torch.full((n,), 1 / 255, device=device)
    shift = torch.zeros(n, device=device)
    if settings.get("brightness"):
        b = settings["brightness"]
        scale = scale * uniform(max(0.0, 1 - b), 1 + b)
    if settings.get("contrast"):
        c = settings["contrast"]
        factor = uniform(max(0.0, 1 - c), 1 + c)
        mean = _gray(x).mean(dim=(1, 2, 3))
        shift = scale * mean * (1 - factor)
        scale = scale * factor
    x = torch.addcmul(shift[:, None, None, None], x, scale[:, None, None, None])
    if settings.get("saturation") and x.shape[1] == 3:
        s = settings["saturation"]
        gray = _gray(x.clamp(0, 1))
        x = torch.lerp(gray, x, uniform(max(0.0, 1 - s), 1 + s)[:, None, None, None])
    return x.clamp_(0, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    return (x * _gray_weights(x.device, x.dtype)).sum(dim=1, keepdim=True)


@functools.cache
def _gray_weights(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The luma weights as a 1×3×1×1 tensor on ``device``, made once: a tensor made from Python
    numbers on a GPU is a blocking copy, which would wait for the device at every batch."""
    import torch

    return torch.tensor(_GRAY, device=device, dtype=dtype)[None, :, None, None]


def _flip_and_crop(
    x: torch.Tensor, flip: bool, padding: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Mirror half the images and cut an H×W window from each image zero-padded by ``padding``,
    at a random offset per image: one gather over the batch."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    device = x.device
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    width = w + 2 * padding
    if padding:
        dy = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
    else:
        dy = dx = torch.zeros((n, 1), dtype=torch.long, device=device)
    rows = dy + torch.arange(h, device=device)
    cols = dx + torch.arange(w, device=device)
    if flip:
        mirrored = torch.rand((n, 1), device=device, generator=generator) < 0.5
        cols = torch.where(mirrored, cols.flip(1), cols)
    index = (rows[:, :, None] * width + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, index).view(n, c, h, w)


def _random_affine(x: torch.Tensor, settings: dict[str, Any], uniform) -> torch.Tensor:
    """Rotation and random resized crop as one affine resampling of the whole batch."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    scale_x = torch.ones(n, device=x.device)
    scale_y = torch.ones(n, device=x.device)
    shift_x = torch.zeros(n, device=x.device)
    shift_y = torch.zeros(n, device=x.device)
    if settings.get("resized_crop"):
        area = uniform(settings.get("resized_crop_scale", 0.08), 1.0)
        log_ratio = uniform(math.log(3 / 4), math.log(4 / 3))
        ratio = torch.exp(log_ratio)
        scale_x = torch.sqrt(area * ratio).clamp(max=1.0)
        scale_y = torch.sqrt(area / ratio).clamp(max=1.0)
        shift_x = (uniform(0, 1) * 2 - 1) * (1 - scale_x)
        shift_y = (uniform(0, 1) * 2 - 1) * (1 - scale_y)
    angle = torch.zeros(n, device=x.device)
    if settings.get("rotation"):
        limit = math.radians(settings["rotation"])
        angle = uniform(-limit, limit)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([cos * scale_x, -sin * scale_y, shift_x], dim=1),
            torch.stack([sin * scale_x, cos * scale_y, shift_y], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def classic_transform(
    settings: dict[str, Any], size: tuple[int, int], mean, std, train: bool = True
):
    """The same augmentation as torchvision transforms on PIL images (the classic pipeline)."""
    from torchvision import transforms as T

    steps: list[Any] = []
    if train and settings.get("resized_crop"):
        scale = (settings.get("resized_crop_scale", 0.08), 1.0)
        steps.append(T.RandomResizedCrop(size, scale=scale))
    else:
        steps.append(T.Resize(size))
    if train:
        if settings.get("hflip"):
            steps.append(T.RandomHorizontalFlip())
        if settings.get("crop_padding"):
            steps.append(T.RandomCrop(size, padding=settings["crop_padding"]))
        if settings.get("rotation"):
            steps.append(T.RandomRotation(settings["rotation"]))
        jitter = [settings.get(k, 0.0) for k in ("brightness", "contrast", "saturation")]
        if any(jitter):
            steps.append(T.ColorJitter(*jitter))
    steps += [T.ToTensor(), T.Normalize(list(mean), list(std))]
    return T.Compose(steps)


# Defaults that follow the data

# The lesson's recipe for CIFAR-10 (32×32 photos): flips, a 4-pixel padded crop, colour jitter 0.2.
CIFAR_RECIPE: dict[str, Any] = {p.name: p.default for p in AUGMENT_PARAMS}
RECIPE_SIZE = 32  # the recipe's image size: its 4-pixel padding is 1/8 of it
_RECIPE_SOURCES = ("sample", "cifar10", "cifar100")
_MIRROR_SAFE = {
    "sample": "flips on: the sample set's shapes are the same shape mirrored (the lesson's recipe)",
    "cifar10": "flips on: a mirrored photo shows the same class (the lesson's CIFAR-10 recipe)",
    "cifar100": "flips on: a mirrored photo shows the same class, as for CIFAR-10",
    "fashionmnist": "flips on: a mirrored shirt, shoe or bag is the same class of clothing",
}
_MIRROR_UNSAFE = {
    "mnist": "flips off: a mirrored digit is another shape (a 2 backwards is no 2)",
    "folder": "flips off: a folder's classes may not look the same mirrored (digits, letters, "
    "arrows); turn them on for photographs of objects",
}


@dataclass(frozen=True)
class AugmentDefaults:
    """Augmentation settings chosen for a dataset, and why: ``reasons`` holds one short line per
    setting (the three colour-jitter settings share one line, as do the two resized-crop ones)."""

    settings: dict[str, Any]
    reasons: dict[str, str]
    summary: str


def default_augmentation(source: str, shape: tuple[int, int, int]) -> AugmentDefaults:
    """The augmentation a new project starts with for data from ``source`` whose images are
    ``shape`` (channels, height, width, the data's own size).

    CIFAR-10, CIFAR-100 and the built-in sample set keep the lesson's CIFAR-10 recipe exactly.
    Elsewhere the padded crop is 1/8 of the image's smaller side, as the recipe's 4 pixels are of
    32; colour jitter is off for grayscale images; flips are on only where a mirrored image is
    known to be the same class.
    """
    channels, height, width = shape
    side = min(height, width)
    settings = dict(CIFAR_RECIPE)
    reasons = {
        "rotation": "rotation off, as in the lesson's recipe: the padded crop already moves "
        "the images",
        "resized_crop": "random resized crop off: it suits large photos (the ImageNet recipe); "
        "on small images it keeps too few pixels",
    }
    if source in _RECIPE_SOURCES:
        reasons["crop_padding"] = "crop padding 4: the lesson's CIFAR-10 recipe (1/8 of 32 px)"
        reasons["brightness"] = "colour jitter 0.2: the lesson's CIFAR-10 recipe"
    else:
        settings["crop_padding"] = side * 4 // RECIPE_SIZE
        reasons["crop_padding"] = (
            f"crop padding {settings['crop_padding']}: 1/8 of {side} px, as the lesson's 4 px "
            f"is 1/8 of {RECIPE_SIZE}"
            if settings["crop_padding"]
            else f"crop padding off: {side} px images are too small to shift"
        )
        if channels == 1:
            settings.update(brightness=0.0, contrast=0.0, saturation=0.0)
            reasons["brightness"] = "colour jitter off: grayscale images"
        else:
            reasons["brightness"] = "colour jitter 0.2, as in the lesson's recipe: colour images"
    settings["hflip"] = source in _MIRROR_SAFE
    reasons["hflip"] = _MIRROR_SAFE.get(source) or _MIRROR_UNSAFE.get(
        source, _MIRROR_UNSAFE["folder"]
    )
    for name in ("contrast", "saturation"):
        reasons[name] = reasons["brightness"]
    reasons["resized_crop_scale"] = reasons["resized_crop"]
    return AugmentDefaults(settings, reasons, _defaults_summary(source, shape, settings))


def _defaults_summary(source: str, shape: tuple[int, int, int], settings: dict[str, Any]) -> str:
    """One line: "Defaults for 8×8 grayscale images: no flips, crop padding 1, no colour jitter"."""
    channels, height, width = shape
    kind = "grayscale" if channels == 1 else "colour"
    if source in _RECIPE_SOURCES:
        return (
            f"Defaults for {height}×{width} {kind} images: the lesson's CIFAR-10 recipe "
            "(flips, crop padding 4, colour jitter 0.2)"
        )
    parts = [
        "flips" if settings["hflip"] else "no flips",
        f"crop padding {settings['crop_padding']}" if settings["crop_padding"] else "no crop",
        f"colour jitter {settings['brightness']:g}"
        if settings["brightness"]
        else "no colour jitter",
    ]
    return f"Defaults for {height}×{width} {kind} images: {', '.join(parts)}"


def augment_warnings(settings: dict[str, Any], height: int, width: int) -> list[str]:
    """Settings that destroy much of an image of ``height``×``width`` pixels, each named with the
    fix: a padded crop that shifts by a quarter of the image or more, a large rotation of a tiny
    image, a random resized crop that keeps only a few pixels."""
    side = min(height, width)
    size = f"{height}×{width}"
    warnings = []
    padding = settings.get("crop_padding", 0)
    if padding and padding * 4 >= side:
        shift = "half" if padding * 2 == side else f"{padding / side:.0%} of"
        warnings.append(
            f"crop padding {padding} on {size} images shifts them by up to {shift} their size: "
            f"set crop padding to {side * 4 // RECIPE_SIZE} (1/8 of {side} px)"
        )
    rotation = settings.get("rotation", 0)
    if rotation > 15 and side < RECIPE_SIZE:
        warnings.append(
            f"rotation {rotation:g}° on {size} images blurs their strokes and cuts their "
            "corners: set rotation to 15 or less"
        )
    scale = settings.get("resized_crop_scale", 0.08)
    kept = math.sqrt(scale) * side
    enough = min(16, 0.6 * side)
    if settings.get("resized_crop") and kept < enough:
        fix = math.ceil((enough / side) ** 2 * 100) / 100
        warnings.append(
            f"random resized crop at scale {scale:g} keeps as little as {kept:.0f}×{kept:.0f} "
            f"px of {size} images and enlarges it: set resized crop scale to {fix:g} or more"
        )
    return warnings
