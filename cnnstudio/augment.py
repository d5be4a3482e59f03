"""Augmentation: the settings as data, a batched tensor implementation and the classic pipeline.

The batched path works on a whole uint8 batch already on the training device (CPU or GPU): flips,
padded random crops, colour jitter, rotation and random resized crops are a handful of tensor ops
per batch, with no per-image Python. The classic path (torchvision transforms on PIL images in
DataLoader workers) serves image folders too large to hold in memory, and is the baseline the
benchmark compares against.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from cnnstudio.params import Param

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
    weights = torch.tensor(_GRAY, device=x.device, dtype=x.dtype)
    return (x * weights[None, :, None, None]).sum(dim=1, keepdim=True)


def _flip_and_crop(
    x: torch.Tensor, flip: bool, padding: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Mirror half the images and cut an H×W window from each image zero-padded by ``padding``,
    at a random offset per image: one gather over the batch."""
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
