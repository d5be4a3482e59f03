"""Datasets: where images come from, how they are split and summarised.

Sources: the built-in sample set (no download), an image folder (``cnnstudio.images`` scans and
decodes it), and CIFAR-10/100, MNIST and FashionMNIST. A dataset that fits in memory is decoded
once into one uint8 tensor at the model's input size; a larger folder keeps the paths and is
decoded on the fly. ``cnnstudio.batches`` feeds either to training.

The settings themselves (``DataSettings``, class names, suggested defaults) live in the torch-free
``cnnstudio.data_settings`` and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnstudio import standard_sets
from cnnstudio.augment import (
    augment_batch,
    augment_warnings,
)
from cnnstudio.data_settings import (  # noqa: F401  (re-exported: callers import them from here)
    DATA_PARAMS,
    SOURCES,
    DataDefaults,
    DataSettings,
    _shape_of,
    class_names,
    default_input_shape,
    display_names,
    rename_class,
    stats_key,
    suggested_defaults,
)
from cnnstudio.errors import DataError
from cnnstudio.images import (
    FolderScan,
    Skipped,
    decode_image,
    decode_images,
    held_out_folder,
    scan_folder,
)
from cnnstudio.progress import TaskState, quiet
from cnnstudio.recipe import stratified_split
from cnnstudio.sample_set import SAMPLE_CLASSES, generate_sample_set

IMBALANCE_RATIO = 3.0
MEMORY_LIMIT = 2 << 30  # decode into memory when the uint8 tensor stays below this
STATS_SAMPLE = 5000  # images used for mean/std of a dataset too large for memory


@dataclass
class Dataset:
    """A loaded dataset. ``images`` (N×C×H×W uint8 at the model's input size) when it fits in
    memory, else ``paths`` to decode on the fly. ``splits`` maps "train"/"val" to indices, and
    "test" to a standard set's official test split (evaluation only: never seen in training)."""

    source: str
    classes: list[str]
    labels: torch.Tensor
    splits: dict[str, torch.Tensor]
    input_shape: tuple[int, int, int]
    images: torch.Tensor | None = None
    paths: list[Path] | None = None
    root: Path | None = None
    skipped: list[Skipped] = field(default_factory=list)
    image_sizes: tuple[tuple[int, int], tuple[int, int]] | None = None  # (min w,h), (max w,h)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_memory(self) -> bool:
        return self.images is not None


@dataclass(frozen=True)
class DataSummary:
    """What a dataset holds: classes, images per class and split, sizes, skipped files, warnings."""

    source: str
    root: str | None
    classes: list[str]
    counts: dict[str, list[int]]
    image_size_min: tuple[int, int] | None
    image_size_max: tuple[int, int] | None
    skipped: list[Skipped]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "root": self.root,
            "classes": self.classes,
            "counts": {
                split: dict(zip(self.classes, counts, strict=True))
                for split, counts in self.counts.items()
            },
            "image_size": {
                "min": _opt_list(self.image_size_min),
                "max": _opt_list(self.image_size_max),
            },
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "warnings": self.warnings,
        }


def _opt_list(value: tuple[int, int] | None) -> list[int] | None:
    return list(value) if value else None


# Loading


def load_dataset(
    settings: DataSettings,
    input_shape: tuple[int, int, int],
    *,
    state: TaskState | None = None,
    memory_limit: int = MEMORY_LIMIT,
    data_root: Path | None = None,
) -> Dataset:
    """Load the images ``settings`` name, at the model's ``input_shape`` (C, H, W); an image
    folder reports its scanning and decoding to ``state`` and stops when it is told to."""
    if settings.source == "sample":
        images, labels = generate_sample_set()
        return _from_arrays(
            "sample", list(SAMPLE_CLASSES), {"all": (images, labels)}, input_shape, settings
        )
    if settings.source == "folder":
        return _load_folder(settings, input_shape, state or quiet(), memory_limit)
    splits, classes = standard_sets.load_standard(settings.source, data_root)
    dataset = _from_arrays(
        settings.source,
        classes,
        {"train": splits["train"], "test": splits["test"]},
        input_shape,
        settings,
    )
    dataset.root = data_root or standard_sets.data_root()
    return dataset


def _from_arrays(
    source: str,
    classes: list[str],
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    input_shape: tuple[int, int, int],
    settings: DataSettings,
) -> Dataset:
    images = np.concatenate([p[0] for p in parts.values()])
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts.values()]))
    tensor = _fit_tensor(torch.from_numpy(images), input_shape)
    # validation is always held out of the training images: a set's official test split stays
    # unseen by training and checkpoint choice, for evaluating the finished model
    n_train = len(parts["all" if "all" in parts else "train"][1])
    train, val = stratified_split(labels[:n_train], settings.val_fraction, settings.split_seed)
    splits = {"train": train, "val": val}
    if "test" in parts:
        splits["test"] = torch.arange(n_train, len(labels))
    size = (images.shape[3], images.shape[2])
    return Dataset(
        source=source,
        classes=classes,
        labels=labels,
        splits=splits,
        input_shape=input_shape,
        images=tensor,
        image_sizes=(size, size),
    )


def _fit_tensor(images: torch.Tensor, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 N×C×H×W converted to the model's channels and size (resized with antialiasing)."""
    channels, height, width = input_shape
    if images.shape[1] != channels:
        if channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]) if images.shape[1] == 3 else None
            gray = (
                (images.float() * weights[None, :, None, None]).sum(1, keepdim=True)
                if weights is not None
                else images.float().mean(1, keepdim=True)
            )
            images = gray.round().clamp(0, 255).to(torch.uint8)
        else:
            images = images[:, :1].expand(-1, channels, -1, -1).contiguous()
    if images.shape[2:] != (height, width):
        resized = []
        for chunk in images.split(2048):
            chunk = torch.nn.functional.interpolate(
                chunk.float(),
                size=(height, width),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            resized.append(chunk.round().clamp(0, 255).to(torch.uint8))
        images = torch.cat(resized)
    return images.contiguous()


def _load_folder(
    settings: DataSettings,
    input_shape: tuple[int, int, int],
    state: TaskState,
    memory_limit: int,
) -> Dataset:
    scan = scan_folder(settings.path, state=state)
    files, labels, (train, val) = _folder_samples(scan, settings)
    sizes = scan.sizes
    dataset = Dataset(
        source="folder",
        classes=scan.classes,
        labels=labels,
        splits={"train": train, "val": val},
        input_shape=input_shape,
        paths=[p for p, _ in files],
        root=scan.root,
        skipped=list(scan.skipped),
        image_sizes=_size_range(sizes),
    )
    if len(files) * int(np.prod(input_shape)) <= memory_limit:
        _decode_into_memory(dataset, state)
    return dataset


def load_labelled_folder(
    path: Path | str,
    classes: list[str] | tuple[str, ...],
    input_shape: tuple[int, int, int],
    *,
    state: TaskState | None = None,
    memory_limit: int = MEMORY_LIMIT,
) -> Dataset:
    """A labelled image folder to evaluate a model on, all of it in a "test" split: one subfolder
    per class (or its val/ or test/ part, see ``held_out_folder``), each matched BY NAME to
    ``classes``, the model's class (folder) names, and labelled with that class's index. A class
    of the model the folder lacks just has no images; a folder class the model does not know is
    a DataError (the model can never predict it, and a misspelt folder is the likelier cause).
    Unreadable images are listed in ``skipped``."""
    state = state or quiet()
    folder = held_out_folder(path)
    scan = scan_folder(folder, state=state, training=False)
    unknown = [name for name in scan.classes if name not in classes]
    if unknown:
        raise DataError(
            f"{folder}: the model does not know the classes {', '.join(map(repr, unknown))}; "
            f"it knows {', '.join(map(repr, classes))}: rename or remove those folders",
            folder,
        )
    files = scan.files["train"]
    if not files:
        raise DataError(f"no readable images in {folder}", folder)
    index = [list(classes).index(name) for name in scan.classes]
    dataset = Dataset(
        source="folder",
        classes=list(classes),
        labels=torch.tensor([index[label] for _, label in files], dtype=torch.int64),
        splits={"test": torch.arange(len(files))},
        input_shape=input_shape,
        paths=[p for p, _ in files],
        root=folder,
        skipped=list(scan.skipped),
        image_sizes=_size_range(scan.sizes),
    )
    if len(files) * int(np.prod(input_shape)) <= memory_limit:
        _decode_into_memory(dataset, state)
    return dataset


def _folder_samples(
    scan: FolderScan, settings: DataSettings
) -> tuple[list[tuple[Path, int]], torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """A scanned folder's (path, label) list, its labels, and the train/validation indices: the
    folder's own val/ split when it has one, else a stratified split of everything."""
    files = scan.files["train"] + scan.files.get("val", [])
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    if scan.predefined_split and "val" in scan.files:
        n_train = len(scan.files["train"])
        return files, labels, (torch.arange(n_train), torch.arange(n_train, len(files)))
    return files, labels, stratified_split(labels, settings.val_fraction, settings.split_seed)


def _size_range(sizes: list[tuple[int, int]]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """((smallest width, smallest height), (largest width, largest height))."""
    if not sizes:
        return None
    widths, heights = zip(*sizes, strict=True)
    return (min(widths), min(heights)), (max(widths), max(heights))


def _decode_into_memory(dataset: Dataset, state: TaskState) -> None:
    channels, height, width = dataset.input_shape
    assert dataset.paths is not None
    results = decode_images(dataset.paths, channels, (height, width), state)
    keep = [i for i, r in enumerate(results) if not isinstance(r, str)]
    dataset.skipped += [
        Skipped(str(dataset.paths[i]), r) for i, r in enumerate(results) if isinstance(r, str)
    ]
    if len(keep) != len(results):
        _drop(dataset, keep)
    if not keep:
        raise DataError(f"no readable images in {dataset.root}", dataset.root)
    dataset.images = torch.from_numpy(np.stack([results[i] for i in keep]))


def _drop(dataset: Dataset, keep: list[int]) -> None:
    """Keep only the samples at ``keep``, renumbering the split indices."""
    new_index = torch.full((len(dataset.labels),), -1, dtype=torch.int64)
    new_index[keep] = torch.arange(len(keep))
    dataset.labels = dataset.labels[keep]
    dataset.paths = [dataset.paths[i] for i in keep] if dataset.paths else None
    for split, indices in dataset.splits.items():
        mapped = new_index[indices]
        dataset.splits[split] = mapped[mapped >= 0]


# Summary


def summarize(
    settings: DataSettings,
    input_shape: tuple[int, int, int] | None = None,
    *,
    state: TaskState | None = None,
    data_root: Path | None = None,
    check_augment: bool = True,
) -> DataSummary:
    """Classes, images per class and split, image sizes, unreadable files and warnings.

    An image folder is read in full (every image decoded), so damaged files are listed here
    rather than found during training. With ``check_augment`` the warnings include the
    augmentation settings that destroy much of an image at ``input_shape`` (the size the model
    sees; the data's own size when not given).
    """
    augment = settings.augment if check_augment else None
    if settings.source != "folder":
        shape = input_shape or default_input_shape(settings)
        return summarize_dataset(load_dataset(settings, shape, data_root=data_root), augment)
    scan = scan_folder(settings.path, verify=True, state=state)
    _files, labels, (train, val) = _folder_samples(scan, settings)
    split = {"train": train, "val": val}
    sizes = _size_range(scan.sizes)
    summary = _summary(
        settings.source, str(scan.root), scan.classes, labels, split, sizes, scan.skipped
    )
    if augment is None:
        return summary
    _, height, width = input_shape or _shape_of(scan)
    return replace(summary, warnings=summary.warnings + augment_warnings(augment, height, width))


def summarize_dataset(dataset: Dataset, augment: dict[str, Any] | None = None) -> DataSummary:
    """The summary of a dataset already loaded, without reading its files again. Complete for a
    dataset decoded into memory (every damaged file is among ``skipped``); for an image folder
    read from disk on the fly, ``summarize`` verifies each file instead. ``augment``: warn about
    these augmentation settings too, at the dataset's input size."""
    summary = _summary(
        dataset.source,
        str(dataset.root) if dataset.root else None,
        dataset.classes,
        dataset.labels,
        dataset.splits,
        dataset.image_sizes,
        dataset.skipped,
    )
    if augment is None:
        return summary
    _, height, width = dataset.input_shape
    return replace(summary, warnings=summary.warnings + augment_warnings(augment, height, width))


def _summary(source, root, classes, labels, split, sizes, skipped) -> DataSummary:
    counts = {
        name: torch.bincount(labels[indices], minlength=len(classes)).tolist()
        for name, indices in split.items()
    }
    return DataSummary(
        source,
        root,
        classes,
        counts,
        sizes[0] if sizes else None,
        sizes[1] if sizes else None,
        skipped,
        _warnings(classes, counts, skipped),
    )


def _warnings(
    classes: list[str], counts: dict[str, list[int]], skipped: list[Skipped]
) -> list[str]:
    warnings = []
    totals = [sum(c[i] for c in counts.values()) for i in range(len(classes))]
    low, high = min(totals), max(totals)
    if low and high / low >= IMBALANCE_RATIO:
        few, many = classes[totals.index(low)], classes[totals.index(high)]
        warnings.append(
            f"classes are imbalanced: {few!r} has {low} images, {many!r} has {high} "
            f"({high / low:.0f}× more); accuracy will favour the large classes: "
            "add images or weight the classes"
        )
    for name, split_counts in counts.items():
        empty = [classes[i] for i, n in enumerate(split_counts) if n == 0]
        if empty and name == "val":
            warnings.append(f"no validation images for {', '.join(map(repr, empty))}")
    if skipped:
        warnings.append(
            f"{len(skipped)} files skipped (listed below): they are left out of training"
        )
    return warnings


# Normalization


def dataset_stats(dataset: Dataset) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (on a 0-1 scale) of the training split."""
    indices = dataset.splits["train"]
    if dataset.images is not None:
        images = dataset.images[indices]
    else:
        assert dataset.paths is not None
        chosen = indices[torch.randperm(len(indices), generator=torch.Generator().manual_seed(0))]
        chosen = chosen[:STATS_SAMPLE].tolist()
        channels, height, width = dataset.input_shape
        images = torch.from_numpy(
            np.stack([decode_image(dataset.paths[i], channels, (height, width)) for i in chosen])
        )
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(images.shape[1], dtype=torch.float64)
    for chunk in images.split(4096):
        values = chunk.to(torch.float64) / 255
        total += values.sum(dim=(0, 2, 3))
        total_sq += (values * values).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp(min=1e-12).sqrt()
    return mean.tolist(), std.clamp(min=1e-3).tolist()


# Preview


def preview(
    dataset: Dataset, class_index: int, count: int, augment: dict[str, Any] | None, seed: int = 0
) -> np.ndarray:
    """``count`` training images of one class, augmented as training would see them, as
    N×H×W×C uint8 arrays for display (before normalization)."""
    train = dataset.splits["train"]
    members = train[dataset.labels[train] == class_index]
    if len(members) == 0:
        channels, height, width = dataset.input_shape
        return np.zeros((0, height, width, channels), dtype=np.uint8)
    generator = torch.Generator().manual_seed(seed)
    chosen = members[torch.randint(len(members), (count,), generator=generator)]
    images = _images_at(dataset, chosen)
    x = augment_batch(images, augment, generator) if augment else images.float() / 255
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _images_at(dataset: Dataset, indices: torch.Tensor | list[int]) -> torch.Tensor:
    """The dataset's images at ``indices`` as N×C×H×W uint8 at the model's input size."""
    indices = torch.as_tensor(indices, dtype=torch.long)
    if dataset.images is not None:
        return dataset.images[indices]
    assert dataset.paths is not None
    channels, height, width = dataset.input_shape
    if len(indices) == 0:
        return torch.zeros((0, channels, height, width), dtype=torch.uint8)
    decoded = [decode_image(dataset.paths[int(i)], channels, (height, width)) for i in indices]
    return torch.from_numpy(np.stack(decoded))


def images_at(dataset: Dataset, indices: list[int]) -> np.ndarray:
    """The images at ``indices`` (dataset positions, as in an evaluation's mistakes) as N×H×W×C
    uint8 arrays for display."""
    return _images_at(dataset, indices).permute(0, 2, 3, 1).numpy()
