"""The data settings of a project (``DataSettings``, the ``data`` part of project.json): checked
when read, and what follows from them without reading the images (class names, input shape, the
suggested augmentation and batch size).

Plain Python, no torch: the project and the editor use them, and the window shows before torch
has loaded. ``cnnstudio.data`` loads the images these settings describe (and re-exports them).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnnstudio import standard_sets
from cnnstudio.augment import AUGMENT_PARAMS, AugmentDefaults, default_augmentation
from cnnstudio.errors import ProjectError
from cnnstudio.images import FolderScan, scan_folder
from cnnstudio.params import Param, check_settings
from cnnstudio.sample_set import SAMPLE_CLASSES, SAMPLE_PER_CLASS
from cnnstudio.train_settings import default_batch_size

SOURCES = ("sample", "folder", "cifar10", "cifar100", "mnist", "fashionmnist")

DATA_PARAMS: tuple[Param, ...] = (
    Param("source", "choice", "sample", "Where the images come from.", choices=SOURCES),
    Param(
        "val_fraction",
        "float",
        0.2,
        "Share of each class's training images held out for validation when the source has "
        "no validation split (a standard set's official test split is kept for evaluation).",
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
    class_names: dict[str, str] = field(default_factory=dict)  # folder name -> display name

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
        if self.class_names:
            data["class_names"] = dict(self.class_names)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "data") -> DataSettings:
        """Checked settings; ProjectError naming ``data.<name>`` for the first problem."""
        if not isinstance(data, dict):
            found = "null" if data is None else type(data).__name__
            raise ProjectError(None, f"must be an object, got {found}", where)
        extra = ("path", "augment", "mean", "std", "stats_key", "class_names")
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
            class_names=_check_class_names(data.get("class_names", {}), f"{where}.class_names"),
        )

    def with_stats(self, mean, std, key: str) -> DataSettings:
        return replace(
            self,
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            stats_key=key,
        )


def _check_class_names(names: Any, where: str) -> dict[str, str]:
    """The display names of renamed classes: text, not empty, no two alike."""
    if not isinstance(names, dict):
        found = "null" if names is None else type(names).__name__
        raise ProjectError(
            None, f"must be an object of folder name: display name, got {found}", where
        )
    seen: dict[str, str] = {}
    for folder, name in names.items():
        if not isinstance(name, str) or not name.strip():
            raise ProjectError(
                None, f"must be a non-empty display name as text, got {name!r}", f"{where}.{folder}"
            )
        if name.strip() in seen:
            raise ProjectError(
                None,
                f"{name.strip()!r} is already the name of {seen[name.strip()]!r}: class names must "
                "differ",
                f"{where}.{folder}",
            )
        seen[name.strip()] = folder
    return {folder: name.strip() for folder, name in names.items()}


def display_names(classes: list[str] | tuple[str, ...], settings: DataSettings | None) -> list[str]:
    """The names shown for ``classes`` (in label order): a renamed class's display name from
    ``settings.class_names``, every other class its folder name, which stays its identity."""
    names = settings.class_names if settings is not None else {}
    return [names.get(folder, folder) for folder in classes]


def rename_class(
    settings: DataSettings, classes: list[str] | tuple[str, ...], folder: str, name: str
) -> DataSettings:
    """``settings`` with class ``folder`` shown as ``name`` (its folder name again: not renamed).
    ProjectError naming ``data.class_names.<folder>`` for an empty name or one another class of
    ``classes`` already shows."""
    where = f"data.class_names.{folder}"
    name = name.strip()
    if not name:
        raise ProjectError(None, "a class needs a name: type one, or its folder name", where)
    shown = dict(zip(classes, display_names(classes, settings), strict=True))
    other = next((c for c, shown_as in shown.items() if shown_as == name and c != folder), None)
    if other is not None:
        raise ProjectError(None, f"{name!r} is already the name of class {other!r}", where)
    names = {k: v for k, v in settings.class_names.items() if k != folder}
    if name != folder:
        names[folder] = name
    return replace(settings, class_names=names)


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
        if not all(math.isfinite(v) for v in values):
            raise ProjectError(
                None,
                f"must be finite numbers, got {values!r}: delete {where}.mean and "
                f"{where}.std so that they are computed again",
                f"{where}.{name}",
            )
    if len(mean) != len(std) or any(v <= 0 for v in std):
        raise ProjectError(None, "mean and std need one value per channel, std above 0", where)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


_scans = threading.local()  # within ``one_scan``: the folder scans made so far, by path


@contextlib.contextmanager
def one_scan() -> Iterator[None]:
    """Within the block, each image folder is scanned once by this module's helpers (a new
    project asks a folder for its defaults, classes and image shape: three scans of every file's
    header otherwise). Outside it every call scans afresh, so a folder that changed is seen."""
    outer = getattr(_scans, "found", None)
    _scans.found = {} if outer is None else outer
    try:
        yield
    finally:
        _scans.found = outer


def _scan(path: str | None) -> FolderScan:
    found = getattr(_scans, "found", None)
    if found is None:
        return scan_folder(path)
    if path not in found:
        found[path] = scan_folder(path)
    return found[path]


def default_input_shape(settings: DataSettings) -> tuple[int, int, int]:
    """The input shape a model for this data naturally takes (the data's own image size)."""
    if settings.source == "sample":
        return (3, 32, 32)
    if settings.source in standard_sets.STANDARD_SETS:
        return standard_sets.STANDARD_SETS[settings.source].shape
    return _shape_of(_scan(settings.path))


def _shape_of(scan: FolderScan) -> tuple[int, int, int]:
    """A folder's channels and its most common image size."""
    (width, height), _ = Counter(scan.sizes).most_common(1)[0]
    return (1 if scan.grayscale else 3, height, width)


@dataclass(frozen=True)
class DataDefaults:
    """The settings a project starts with for its data, and why (one line per setting)."""

    augment: AugmentDefaults
    batch_size: int
    batch_reason: str


def suggested_defaults(settings: DataSettings) -> DataDefaults:
    """Augmentation and batch size for this data: they follow its source, its own image size and
    channels, and its number of training images (an image folder is scanned once, headers
    only)."""
    if settings.source == "folder":
        scan = _scan(settings.path)
        shape = _shape_of(scan)
        train_images = _folder_train_images(scan, settings)
    elif settings.source == "sample":
        shape = default_input_shape(settings)
        train_images = round(len(SAMPLE_CLASSES) * SAMPLE_PER_CLASS * (1 - settings.val_fraction))
    else:
        shape = default_input_shape(settings)
        train_images = standard_sets.STANDARD_SETS[settings.source].train_images
    batch_size, reason = default_batch_size(train_images)
    return DataDefaults(default_augmentation(settings.source, shape), batch_size, reason)


def _folder_train_images(scan: FolderScan, settings: DataSettings) -> int:
    """How many of a scanned folder's images train: its own train/ split when it has a val/ one,
    else what the stratified split leaves (the data's split, ``cnnstudio.data``)."""
    if scan.predefined_split and "val" in scan.files:
        return len(scan.files["train"])
    from cnnstudio.recipe import stratified_split  # torch: only for a folder, scanned anyway

    files = scan.files["train"] + scan.files.get("val", [])
    labels = [label for _, label in files]
    train, _val = stratified_split(labels, settings.val_fraction, settings.split_seed)
    return len(train)


def class_names(settings: DataSettings, data_root: Path | None = None) -> list[str]:
    """The class names in label order, without loading the images."""
    if settings.source == "sample":
        return list(SAMPLE_CLASSES)
    if settings.source == "folder":
        return _scan(settings.path).classes
    std = standard_sets.STANDARD_SETS[settings.source]
    if std.is_cifar and not standard_sets.is_downloaded(settings.source, data_root):
        return [str(i) for i in range(10 if settings.source == "cifar10" else 100)]
    return std.classes(data_root or standard_sets.data_root())


def stats_key(settings: DataSettings, input_shape: tuple[int, int, int]) -> str:
    """Identifies the data a stored mean/std was computed on."""
    where = settings.path or settings.source
    return f"{settings.source}:{where}:{settings.val_fraction}:{settings.split_seed}:" + "x".join(
        map(str, input_shape)
    )
