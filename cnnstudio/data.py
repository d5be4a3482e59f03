"""Datasets: where images come from, how they are split, summarised and fed to training.

Sources: the built-in sample set (no download), an image folder (ImageFolder layout, optionally
with train/ and val/ or test/ inside), and CIFAR-10/100, MNIST and FashionMNIST. A dataset that fits
in memory is decoded once into one uint8 tensor at the model's input size and fed in batches
augmented on the training device (``TensorBatches``); a larger folder goes through DataLoader
workers with torchvision transforms (``LoaderBatches``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnstudio import standard_sets
from cnnstudio.augment import AUGMENT_PARAMS, augment_batch, classic_transform
from cnnstudio.errors import DataError, ProjectError
from cnnstudio.params import Param, check_settings
from cnnstudio.progress import TaskState, quiet
from cnnstudio.recipe import stratified_split
from cnnstudio.sample_set import SAMPLE_CLASSES, generate_sample_set

SOURCES = ("sample", "folder", "cifar10", "cifar100", "mnist", "fashionmnist")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation", "test")}
IMBALANCE_RATIO = 3.0
MEMORY_LIMIT = 2 << 30  # decode into memory when the uint8 tensor stays below this
STATS_SAMPLE = 5000  # images used for mean/std of a dataset too large for memory

DATA_PARAMS: tuple[Param, ...] = (
    Param("source", "choice", "sample", "Where the images come from.", choices=SOURCES),
    Param(
        "val_fraction",
        "float",
        0.2,
        "Share of each class held out for validation when the source has no validation split.",
        0.01,
        0.9,
    ),
    Param("split_seed", "int", 0, "Seed of the train/validation split.", 0, 2**31 - 1),
    Param(
        "normalize",
        "choice",
        "auto",
        "'dataset': the images' own mean and std; "
        "'backbone': the pretrained backbone's preprocessing; 'auto': backbone when the model "
        "starts with a pretrained one, else dataset.",
        choices=("auto", "dataset", "backbone", "none"),
    ),
)


@dataclass(frozen=True)
class DataSettings:
    """The data part of project.json."""

    source: str = "sample"
    path: str | None = None
    val_fraction: float = 0.2
    split_seed: int = 0
    normalize: str = "auto"
    augment: dict[str, Any] = field(default_factory=lambda: _defaults(AUGMENT_PARAMS))
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    stats_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "source": self.source,
            "val_fraction": self.val_fraction,
            "split_seed": self.split_seed,
            "normalize": self.normalize,
            "augment": dict(self.augment),
        }
        if self.path is not None:
            data["path"] = self.path
        if self.mean is not None and self.std is not None:
            data.update(mean=list(self.mean), std=list(self.std), stats_key=self.stats_key)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "data") -> DataSettings:
        """Checked settings; ProjectError naming ``data.<name>`` for the first problem."""
        if not isinstance(data, dict):
            found = "null" if data is None else type(data).__name__
            raise ProjectError(None, f"must be an object, got {found}", where)
        extra = ("path", "augment", "mean", "std", "stats_key")
        plain = check_settings(
            DATA_PARAMS, {k: v for k, v in data.items() if k not in extra}, where
        )
        augment = check_settings(AUGMENT_PARAMS, data.get("augment", {}), f"{where}.augment")
        path = data.get("path")
        if path is not None and not isinstance(path, str):
            raise ProjectError(
                None, f"must be a folder path as text, got {path!r}", f"{where}.path"
            )
        if plain["source"] == "folder" and not path:
            raise ProjectError(None, "an image-folder source needs 'path'", where)
        mean, std = data.get("mean"), data.get("std")
        stats = None
        if mean is not None or std is not None:
            stats = _check_stats(mean, std, where)
        return cls(
            **plain,
            path=path,
            augment=augment,
            mean=stats[0] if stats else None,
            std=stats[1] if stats else None,
            stats_key=data.get("stats_key") if stats else None,
        )

    def with_stats(self, mean, std, key: str) -> DataSettings:
        return replace(
            self,
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            stats_key=key,
        )


def _defaults(params: tuple[Param, ...]) -> dict[str, Any]:
    return {p.name: p.default for p in params}


def _check_stats(mean: Any, std: Any, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    for name, values in (("mean", mean), ("std", std)):
        ok = (
            isinstance(values, list)
            and values
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        )
        if not ok:
            raise ProjectError(
                None,
                f"must be a list of numbers, one per channel, got {values!r}",
                f"{where}.{name}",
            )
    if len(mean) != len(std) or any(v <= 0 for v in std):
        raise ProjectError(None, "mean and std need one value per channel, std above 0", where)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


@dataclass(frozen=True)
class Skipped:
    """A file left out of the dataset, and why."""

    path: str
    reason: str


@dataclass
class Dataset:
    """A loaded dataset. ``images`` (N×C×H×W uint8 at the model's input size) when it fits in
    memory, else ``paths`` to decode on the fly. ``splits`` maps "train"/"val" to indices."""

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


# Image folders


@dataclass(frozen=True)
class FolderScan:
    """An image folder's layout: classes, (path, label) per split, files skipped, sizes seen."""

    root: Path
    classes: list[str]
    files: dict[str, list[tuple[Path, int]]]
    predefined_split: bool
    skipped: list[Skipped]
    sizes: list[tuple[int, int]]
    grayscale: bool


def scan_folder(
    root: Path | str,
    *,
    verify: bool = False,
    state: TaskState | None = None,
) -> FolderScan:
    """Find classes and images in ``root``. Every file is opened (header only, or fully decoded
    with ``verify``); the unreadable ones are listed in ``skipped``, never raised.

    DataError for a folder that is missing, empty, holds one class, or a class without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist", root)
    layout = _split_layout(root)
    predefined = layout is not None
    layout = layout or {"train": root}
    class_dirs = {split: _subfolders(folder) for split, folder in layout.items()}
    classes = sorted(d.name for d in class_dirs["train"])
    _check_classes(root, layout["train"], classes)
    for split, dirs in class_dirs.items():
        unknown = sorted({d.name for d in dirs} - set(classes))
        if unknown:
            raise DataError(
                f"{layout[split]} has classes that train/ lacks: "
                f"{', '.join(unknown)}; every class needs training images",
                layout[split],
            )
    candidates: list[tuple[str, Path, int]] = []
    skipped: list[Skipped] = []
    for split, dirs in class_dirs.items():
        for folder in sorted(dirs):
            label = classes.index(folder.name)
            for path in sorted(folder.rglob("*")):
                if not path.is_file() or _hidden(path, folder):
                    continue
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    candidates.append((split, path, label))
                else:
                    kind = path.suffix or "no extension"
                    skipped.append(Skipped(str(path), f"not an image file ({kind})"))
    results = _map_files(
        _open_image if not verify else _verify_image,
        [c[1] for c in candidates],
        state or quiet(),
    )
    files: dict[str, list[tuple[Path, int]]] = {split: [] for split in layout}
    sizes, modes = [], set()
    for (split, path, label), (info, reason) in zip(candidates, results, strict=True):
        if reason:
            skipped.append(Skipped(str(path), reason))
            continue
        files[split].append((path, label))
        sizes.append(info[0])
        modes.add(info[1])
    for label, name in enumerate(classes):
        if not any(lab == label for _, lab in files["train"]):
            raise DataError(
                f"class folder {layout['train'] / name} holds no readable images "
                f"({', '.join(IMAGE_EXTENSIONS)}): add images or remove the folder",
                layout["train"] / name,
            )
    grayscale = bool(modes) and modes <= {"1", "L", "I", "I;16", "F", "LA"}
    return FolderScan(root, classes, files, predefined, skipped, sizes, grayscale)


def _split_layout(root: Path) -> dict[str, Path] | None:
    names = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    train = next((names[n] for n in SPLIT_FOLDERS["train"] if n in names), None)
    val = next((names[n] for n in SPLIT_FOLDERS["val"] if n in names), None)
    if train is None:
        return None
    return {"train": train, "val": val} if val is not None else {"train": train}


def _subfolders(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))]


def _hidden(path: Path, below: Path) -> bool:
    return any(part.startswith((".", "__")) for part in path.relative_to(below).parts)


def _check_classes(root: Path, folder: Path, classes: list[str]) -> None:
    if not classes:
        loose = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        hint = (
            (
                f" ({len(loose)} images lie directly in it: move each into a folder named after "
                "its class)"
            )
            if loose
            else ""
        )
        raise DataError(
            f"no class folders in {folder}: expected one subfolder per class holding "
            f"its images{hint}",
            folder,
        )
    if len(classes) == 1:
        raise DataError(
            f"{folder} holds only one class ({classes[0]!r}): a classifier needs at "
            "least two class folders",
            folder,
        )


def _open_image(path: Path) -> tuple[Any, str | None]:
    """((width, height), mode) from the header, or the reason the file is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        with Image.open(path) as image:
            return (image.size, image.mode), None
    except UnidentifiedImageError:
        return None, "not an image (the content is not a known image format)"
    except OSError as error:
        return None, f"cannot read: {error}"


def _verify_image(path: Path) -> tuple[Any, str | None]:
    """Like ``_open_image`` but decodes the whole image, which catches truncated files."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        with Image.open(path) as image:
            image.load()
            return (image.size, image.mode), None
    except UnidentifiedImageError:
        return None, "not an image (the content is not a known image format)"
    except (OSError, SyntaxError, ValueError) as error:
        return None, f"damaged image: {error}"


def _map_files(
    func: Callable[[Path], Any],
    paths: list[Path],
    state: TaskState,
    what: str = "images",
) -> list[Any]:
    """``func`` over ``paths`` on a few threads (PIL releases the GIL while decoding)."""
    results: list[Any] = []
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(pool.map(func, paths, chunksize=64)):
            results.append(result)
            if state.stopping:
                pool.shutdown(cancel_futures=True)
                state.check(f"reading {what}")
            if i % 256 == 0 or i + 1 == len(paths):
                state.report(i + 1, len(paths), what)
    return results


def decode_image(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """An image file as C×H×W uint8 at ``size`` (height, width): grayscale, palette and
    transparent images are converted to ``channels`` (transparency over white)."""
    from PIL import Image

    with Image.open(path) as image:
        image.seek(0)
        return image_to_array(image, channels, size)


def image_to_array(image, channels: int, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    height, width = size
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    if channels == 1:
        return array[None].copy()
    array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(np.repeat(array[:1], channels, 0) if channels != 3 else array)


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
        {"train": splits["train"], "val": splits["test"]},
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
    if "all" in parts:
        train, val = stratified_split(labels, settings.val_fraction, settings.split_seed)
    else:
        n_train = len(parts["train"][1])
        train, val = torch.arange(n_train), torch.arange(n_train, len(labels))
    size = (images.shape[3], images.shape[2])
    return Dataset(
        source=source,
        classes=classes,
        labels=labels,
        splits={"train": train, "val": val},
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

    def decode(path: Path) -> np.ndarray | str:
        try:
            return decode_image(path, channels, (height, width))
        except (OSError, SyntaxError, ValueError) as error:
            return f"damaged image: {error}"

    results = _map_files(decode, dataset.paths, state, "decoding images")
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
) -> DataSummary:
    """Classes, images per class and split, image sizes, unreadable files and warnings.

    An image folder is read in full (every image decoded), so damaged files are listed here
    rather than found during training.
    """
    if settings.source == "folder":
        scan = scan_folder(settings.path, verify=True, state=state)
        _files, labels, (train, val) = _folder_samples(scan, settings)
        split = {"train": train, "val": val}
        classes, skipped, root = scan.classes, scan.skipped, str(scan.root)
        sizes = _size_range(scan.sizes)
    else:
        shape = input_shape or default_input_shape(settings)
        return summarize_dataset(load_dataset(settings, shape, data_root=data_root))
    return _summary(settings.source, root, classes, labels, split, sizes, skipped)


def summarize_dataset(dataset: Dataset) -> DataSummary:
    """The summary of a dataset already loaded, without reading its files again. Complete for a
    dataset decoded into memory (every damaged file is among ``skipped``); for an image folder
    read from disk on the fly, ``summarize`` verifies each file instead."""
    return _summary(
        dataset.source,
        str(dataset.root) if dataset.root else None,
        dataset.classes,
        dataset.labels,
        dataset.splits,
        dataset.image_sizes,
        dataset.skipped,
    )


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


def default_input_shape(settings: DataSettings) -> tuple[int, int, int]:
    """The input shape a model for this data naturally takes (the data's own image size)."""
    if settings.source == "sample":
        return (3, 32, 32)
    if settings.source in standard_sets.STANDARD_SETS:
        return standard_sets.STANDARD_SETS[settings.source].shape
    scan = scan_folder(settings.path)
    (width, height), _ = Counter(scan.sizes).most_common(1)[0]
    return (1 if scan.grayscale else 3, height, width)


def class_names(settings: DataSettings, data_root: Path | None = None) -> list[str]:
    """The class names in label order, without loading the images."""
    if settings.source == "sample":
        return list(SAMPLE_CLASSES)
    if settings.source == "folder":
        return scan_folder(settings.path).classes
    std = standard_sets.STANDARD_SETS[settings.source]
    if std.is_cifar and not standard_sets.is_downloaded(settings.source, data_root):
        return [str(i) for i in range(10 if settings.source == "cifar10" else 100)]
    return std.classes(data_root or standard_sets.data_root())


# Normalization


def stats_key(settings: DataSettings, input_shape: tuple[int, int, int]) -> str:
    """Identifies the data a stored mean/std was computed on."""
    where = settings.path or settings.source
    return f"{settings.source}:{where}:{settings.val_fraction}:{settings.split_seed}:" + "x".join(
        map(str, input_shape)
    )


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


# Feeding training


class TensorBatches:
    """Mini-batches from uint8 images held on the training device.

    Shuffling, augmentation and normalization happen on that device, a whole batch at a time.
    With ``world > 1`` each rank takes its share of every epoch's order, as DistributedSampler
    does (padded so every rank gets the same number of batches).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        indices: torch.Tensor,
        batch_size: int,
        mean,
        std,
        *,
        augment: dict[str, Any] | None = None,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        device = images.device
        self.images = images
        self.labels = labels.to(device)
        self.indices = indices.to(device)
        self.batch_size = batch_size
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device)[None, :, None, None]
        std_t = torch.tensor(std, dtype=torch.float32, device=device)[None, :, None, None]
        # (x - mean) / std as one multiply-add, for pixels on the 0-1 scale and on the 0-255 one
        self._scale01, self._shift = 1 / std_t, -mean_t / std_t
        self._scale255 = self._scale01 / 255
        self.augment = augment
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank, self.world = rank, world
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        return -(-len(self.indices) // self.world)

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        indices = self.indices
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            indices = indices[torch.randperm(len(indices), generator=generator).to(indices.device)]
        if self.world > 1:
            total = self.num_samples * self.world
            if total > len(indices):
                indices = torch.cat([indices, indices[: total - len(indices)]])
            indices = indices[self.rank : total : self.world]
        return indices

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        generator = None
        if self.augment:
            generator = torch.Generator(device=self.images.device)
            generator.manual_seed((self.seed + 1) * 1_000_003 + self.epoch * 7919 + self.rank)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = order[start : start + self.batch_size]
            images = self.images[batch]
            if self.augment:
                x = augment_batch(images, self.augment, generator)
                x = torch.addcmul(self._shift, x, self._scale01)
            else:
                x = torch.addcmul(self._shift, images.float(), self._scale255)
            yield x, self.labels[batch]


class _FileImages(torch.utils.data.Dataset):
    """Decodes image files on the fly (DataLoader workers); a file that turns out damaged is
    replaced by the next readable one so that a run never stops on it."""

    def __init__(self, paths: list[Path], labels: torch.Tensor, channels: int, transform) -> None:
        self.paths, self.labels = paths, labels
        self.channels, self.transform = channels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from PIL import Image

        for attempt in range(len(self.paths)):
            i = (index + attempt) % len(self.paths)
            try:
                with Image.open(self.paths[i]) as image:
                    image.seek(0)
                    mode = "L" if self.channels == 1 else "RGB"
                    picture = image.convert(mode)
                return self.transform(picture), int(self.labels[i])
            except (OSError, SyntaxError, ValueError):
                continue
        raise DataError("no readable image left in the dataset")


class LoaderBatches:
    """Mini-batches decoded by DataLoader workers with torchvision transforms (large folders)."""

    def __init__(
        self,
        dataset: Dataset,
        split: str,
        batch_size: int,
        mean,
        std,
        *,
        augment: dict[str, Any] | None,
        shuffle: bool,
        device: torch.device,
        workers: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        drop_last: bool = False,
    ) -> None:
        assert dataset.paths is not None
        channels, height, width = dataset.input_shape
        indices = dataset.splits[split].tolist()
        transform = classic_transform(
            augment or {}, (height, width), mean, std, train=bool(augment)
        )
        files = _FileImages(
            [dataset.paths[i] for i in indices], dataset.labels[indices], channels, transform
        )
        sampler = None
        if world > 1:
            sampler = torch.utils.data.DistributedSampler(
                files, world, rank, shuffle=shuffle, seed=seed
            )
        workers = default_workers() if workers is None else workers
        generator = torch.Generator().manual_seed(seed)
        self.sampler = sampler
        self.loader = torch.utils.data.DataLoader(
            files,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=drop_last,
            persistent_workers=workers > 0,
            generator=generator,
        )
        self.device = device

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        non_blocking = self.device.type == "cuda"
        for x, y in self.loader:
            yield (
                x.to(self.device, non_blocking=non_blocking),
                y.to(self.device, non_blocking=non_blocking),
            )


def default_workers() -> int:
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def make_batches(
    dataset: Dataset,
    split: str,
    batch_size: int,
    device: torch.device | str,
    mean,
    std,
    *,
    train: bool,
    augment: dict[str, Any] | None = None,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    workers: int | None = None,
) -> TensorBatches | LoaderBatches:
    """Batches of ``split`` on ``device``: from memory when the dataset is decoded, else through
    DataLoader workers. Training batches are shuffled and augmented; validation ones are not."""
    device = torch.device(device)
    augment = augment if train else None
    if dataset.images is not None:
        images = dataset.images.to(device)
        return TensorBatches(
            images,
            dataset.labels,
            dataset.splits[split],
            batch_size,
            mean,
            std,
            augment=augment,
            shuffle=train,
            seed=seed,
            rank=rank,
            world=world,
        )
    return LoaderBatches(
        dataset,
        split,
        batch_size,
        mean,
        std,
        augment=augment,
        shuffle=train,
        device=device,
        seed=seed,
        rank=rank,
        world=world,
        workers=workers,
    )


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
