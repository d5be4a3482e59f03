"""The built-in sample set: small colour images of simple shapes, drawn by code.

It needs no download, so a new project trains out of the box on any machine. Each image is one
shape (the class) in a random colour on a random background, at a random place, size and slight
tilt, with noise. The SimpleCNN learns it to well over 90% validation accuracy in a few epochs on a
CPU. The same seed always gives the same images.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_CLASSES = (
    "circle",
    "ring",
    "square",
    "frame",
    "triangle",
    "diamond",
    "plus",
    "x",
    "hbar",
    "vbar",
)
SAMPLE_SIZE = 32
SAMPLE_PER_CLASS = 500
SAMPLE_SEED = 20261125


def _mask(shape: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Which pixels belong to ``shape``; ``u``, ``v`` are coordinates relative to the centre
    (already tilted), ``r`` the radius per image (broadcast)."""
    d = np.hypot(u, v)
    au, av = np.abs(u), np.abs(v)
    if shape == "circle":
        return d <= r
    if shape == "ring":
        return (d <= r) & (d >= 0.55 * r)
    if shape == "square":
        return np.maximum(au, av) <= 0.8 * r
    if shape == "frame":
        edge = np.maximum(au, av)
        return (edge <= 0.8 * r) & (edge >= 0.5 * r)
    if shape == "diamond":
        return au + av <= r
    if shape == "plus":
        arm = 0.3 * r
        return ((au <= arm) & (av <= r)) | ((av <= arm) & (au <= r))
    if shape == "x":
        return _mask("plus", (u + v) * 0.7071, (v - u) * 0.7071, r)
    if shape == "hbar":
        return (au <= r) & (av <= 0.3 * r)
    if shape == "vbar":
        return (av <= r) & (au <= 0.3 * r)
    if shape == "triangle":
        return (v <= 0.7 * r) & (v >= -r + 1.7 * au)
    raise ValueError(f"unknown shape {shape!r}")


def _colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Background and foreground colours per image, far enough apart to see the shape."""
    background = rng.integers(0, 256, size=(n, 3))
    foreground = rng.integers(0, 256, size=(n, 3))
    close = np.abs(background - foreground).sum(axis=1) < 180
    while close.any():
        foreground[close] = rng.integers(0, 256, size=(int(close.sum()), 3))
        close = np.abs(background - foreground).sum(axis=1) < 180
    return background, foreground


@functools.lru_cache(maxsize=2)
def generate_sample_set(
    per_class: int = SAMPLE_PER_CLASS, size: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×3×size×size uint8) and labels (N int64), classes in ``SAMPLE_CLASSES`` order.

    Drawn once per process and shared (read-only): the Data view and a run in the same window
    need not draw them twice.
    """
    rng = np.random.default_rng(seed)
    coords = np.arange(size, dtype=np.float32) + 0.5
    images, labels = [], []
    for label, shape in enumerate(SAMPLE_CLASSES):
        n = per_class
        radius = (rng.uniform(0.22, 0.4, size=(n, 1, 1)) * size).astype(np.float32)
        cx = rng.uniform(0.35, 0.65, size=(n, 1, 1)) * size
        cy = rng.uniform(0.35, 0.65, size=(n, 1, 1)) * size
        # At most 12° so that a tilted square never looks like a diamond (a square at 45°), nor a
        # plus like an x.
        tilt = np.deg2rad(rng.uniform(-12, 12, size=(n, 1, 1))).astype(np.float32)
        dx, dy = coords[None, None, :] - cx, coords[None, :, None] - cy
        u = dx * np.cos(tilt) + dy * np.sin(tilt)
        v = -dx * np.sin(tilt) + dy * np.cos(tilt)
        inside = _mask(shape, u, v, radius)[:, None]  # n×1×H×W
        background, foreground = _colours(rng, n)
        picture = np.where(inside, foreground[:, :, None, None], background[:, :, None, None])
        noise = rng.standard_normal(size=picture.shape, dtype=np.float32) * 12
        images.append(np.clip(picture + noise, 0, 255).astype(np.uint8))
        labels.append(np.full(n, label, dtype=np.int64))
    images_all, labels_all = np.concatenate(images), np.concatenate(labels)
    images_all.setflags(write=False)
    labels_all.setflags(write=False)
    return images_all, labels_all
