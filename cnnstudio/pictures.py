"""An inspection as pictures: colormaps, grids of feature maps or filters, a heat map over the
image, and the PNG files the command line writes (``write_pictures``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnstudio.inspect import Inspection

if TYPE_CHECKING:
    from PIL import Image as PILImage

_INFERNO = np.array(
    [(0, 0, 4), (33, 12, 74), (87, 16, 110), (138, 34, 106), (188, 55, 84), (228, 90, 49),
     (249, 142, 9), (249, 203, 53), (252, 255, 164)], dtype=np.float32,
)  # fmt: skip
_VIRIDIS = np.array(
    [(68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140), (40, 174, 128),
     (94, 201, 98), (173, 220, 48), (253, 231, 37)], dtype=np.float32,
)  # fmt: skip
COLORMAPS = ("inferno", "viridis", "jet", "gray")


def colormap(values: np.ndarray, name: str = "inferno") -> np.ndarray:
    """Values in [0, 1] as uint8 RGB (shape + (3,)) through the colormap ``name``."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0)
    if name == "jet":
        rgb = np.stack([np.clip(1.5 - np.abs(4 * v - c), 0, 1) for c in (3, 2, 1)], axis=-1)
        return (rgb * 255).round().astype(np.uint8)
    if name == "gray":
        return np.repeat((v * 255).round().astype(np.uint8)[..., None], 3, axis=-1)
    if name not in ("inferno", "viridis"):
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    table = _INFERNO if name == "inferno" else _VIRIDIS
    position = v * (len(table) - 1)
    low = np.minimum(position.astype(np.int64), len(table) - 2)
    share = (position - low)[..., None]
    rgb = table[low] * (1 - share) + table[low + 1] * share
    return rgb.round().astype(np.uint8)


def grid_image(
    maps: np.ndarray,
    *,
    columns: int | None = None,
    cell: int = 64,
    pad: int = 2,
    cmap: str = "inferno",
    normalise: bool = True,
    limit: int | None = None,
) -> PILImage.Image:
    """A grid of N maps (N×h×w, drawn through ``cmap``, or N×h×w×3 RGB in [0, 1]) as one picture.

    With ``normalise`` each map is min-max scaled on its own, so a weak map still shows its pattern.
    Cells are enlarged by a whole factor (no smoothing) to about ``cell`` pixels.
    """
    from PIL import Image

    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim not in (3, 4) or len(maps) == 0:
        raise ValueError(f"expected N×h×w or N×h×w×3 maps, got shape {maps.shape}")
    if limit is not None:
        maps = maps[:limit]
    if normalise:
        flat = maps.reshape(len(maps), -1)
        low = flat.min(1)
        span = flat.max(1) - low
        shape = (-1,) + (1,) * (maps.ndim - 1)
        maps = (maps - low.reshape(shape)) / np.where(span > 0, span, 1).reshape(shape)
    if maps.ndim == 3:
        pictures = colormap(maps, cmap)
    else:
        pictures = (np.clip(maps, 0, 1) * 255).round().astype(np.uint8)
    count, height, width = pictures.shape[:3]
    scale = max(1, cell // max(height, width))
    pictures = pictures.repeat(scale, axis=1).repeat(scale, axis=2)
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    h, w = height * scale, width * scale
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 32, dtype=np.uint8)
    for i, picture in enumerate(pictures):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        canvas[top : top + h, left : left + w] = picture
    return Image.fromarray(canvas)


def overlay(
    image: np.ndarray, heat: np.ndarray, *, alpha: float = 0.5, cmap: str = "jet", scale: int = 1
) -> PILImage.Image:
    """The heat map (H×W in [0, 1]) through ``cmap`` over the image (H×W×C, float in [0, 1] or
    uint8), mixed with weight ``alpha``; enlarged ``scale`` times without smoothing."""
    from PIL import Image

    pixels = np.asarray(image)
    if pixels.dtype == np.uint8:
        pixels = pixels.astype(np.float32) / 255.0
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] != 3:
        pixels = np.repeat(pixels[..., :1], 3, axis=2)
    if pixels.shape[:2] != heat.shape:
        raise ValueError(f"heat map {heat.shape} and image {pixels.shape[:2]} differ in size")
    colours = colormap(heat, cmap).astype(np.float32) / 255.0
    mixed = (1 - alpha) * pixels + alpha * colours
    out = (np.clip(mixed, 0, 1) * 255).round().astype(np.uint8)
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return Image.fromarray(out)


def write_pictures(
    inspection: Inspection, folder: Path | str, layers: Sequence[str] | None = None
) -> list[Path]:
    """The inspection as PNG files in ``folder``: ``maps_<layer>.png`` for each of ``layers``
    (default: every convolution, at most 8), ``filters_<first convolution>.png`` and
    ``gradcam.png`` (the heat map over the image). Returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    convolutions = [entry.name for entry in inspection.layers if entry.has_filters]
    if layers is None:
        layers = convolutions[:8] or [e.name for e in inspection.layers if e.spatial][-1:]
    written = []
    for name in layers:
        maps = inspection.maps[name]
        if maps.ndim != 3:  # a vector: one strip, tall enough to see
            maps = np.repeat(maps.reshape(1, 1, -1), max(1, min(16, maps.size // 8)), axis=1)
        written.append(folder / f"maps_{_file_part(name)}.png")
        grid_image(maps).save(written[-1])
    if convolutions:
        written.append(folder / f"filters_{_file_part(convolutions[0])}.png")
        grid_image(inspection.filters[convolutions[0]], normalise=False, cmap="gray").save(
            written[-1]
        )
    height, width = inspection.heat.shape
    written.append(folder / "gradcam.png")
    scale = max(1, 256 // max(height, width))
    overlay(inspection.image, inspection.heat, scale=scale).save(written[-1])
    return written


def _file_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
