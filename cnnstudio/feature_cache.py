"""Transfer learning on cached features: with a frozen backbone only the head learns, so the
frozen part's features are computed once per image and the head trains on them (as Create ML
does).

The frozen part is the longest leading run of the model's steps that hold nothing to train
(a Backbone with ``freeze``, or layers without trainable weights, BatchNorm or Dropout) and
include frozen weights, cut where the rest depends on it only through its last output. It runs
in eval mode, in fp32, without gradients, so that an image's features do not depend on its
batch or its epoch.

With augmentation on, ``feature_cache_views`` > 0 caches that many augmented views of each
training image (each epoch draws one of them per image); 0, the default, keeps the backbone
running on every augmented image of every epoch. The default keeps what the run learns from
exactly what it would be without the cache: a fresh draw of every image every epoch. Views cost
one full pass each up front, so they pay only when the run has more epochs than views; the user
chooses that trade, told so by the run's warning.

The cache is one safetensors file per key, ``<project>/cache/features/<key>.safetensors``: the
key hashes the frozen part (its layers and weights), the preprocessing (input size, mean, std),
the augmentation views and the data (its settings, files and their times, or its pixels), so
any change makes a new file. ``cnnstudio cache DIR [--clear]`` lists and deletes them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cnnstudio.batches import (
    batch_bounds,
    batch_count,
    default_workers,
    epoch_order,
    make_batches,
    shard_size,
)
from cnnstudio.build import Backbone, SpecModel
from cnnstudio.data import Dataset
from cnnstudio.errors import DataError
from cnnstudio.progress import TaskState
from cnnstudio.train_settings import TrainSettings

CACHE_DIR = Path("cache") / "features"
MAX_CACHE_BYTES = 4 * 2**30  # features beyond this stay uncached: they would crowd the memory

# layers whose output depends on the batch or on the training mode: never part of the cut
_BATCH_DEPENDENT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
)


@dataclass(frozen=True)
class FrozenSplit:
    """Where a model splits: its first ``steps`` steps (``layers``) are frozen, and the rest
    reads their last output, the features, from ``slot``."""

    steps: int
    slot: int
    layers: tuple[str, ...]


def frozen_split(model: nn.Module) -> FrozenSplit | None:
    """The frozen part of ``model`` worth caching, or None: the longest leading run of frozen
    steps that holds frozen weights (parameter-free layers alone are cheaper to run than to
    cache) and that the rest reads only through its last output."""
    if not isinstance(model, SpecModel):
        return None
    plan = model.plan
    produced, weighted, split = {0}, False, None
    for index, (node_id, _inputs, out_slot, _release) in enumerate(plan):
        module = model.get_submodule(node_id)
        if not _frozen(module):
            break
        weighted = weighted or any(True for _ in module.parameters())
        produced.add(out_slot)
        if model.output_slot in produced:
            break  # nothing would be left to train
        read_later = {s for _id, inputs, _out, _r in plan[index + 1 :] for s in inputs}
        if weighted and read_later & produced == {out_slot}:
            split = FrozenSplit(index + 1, out_slot, tuple(step[0] for step in plan[: index + 1]))
    return split


def _frozen(module: nn.Module) -> bool:
    """Nothing to train and the same output for an image in any batch and mode."""
    if isinstance(module, Backbone):
        return module.frozen
    if isinstance(module, _BATCH_DEPENDENT):
        return False
    if any(p.requires_grad for p in module.parameters(recurse=False)):
        return False
    if any(True for _ in module.buffers(recurse=False)):
        return False  # running statistics that training would update
    return all(_frozen(child) for child in module.children())


class Head(nn.Module):
    """The trainable rest of a model, fed the features of its frozen part. It holds the whole
    model (its state_dict keys are the model's under ``model.``): checkpoints keep the model."""

    def __init__(self, model: SpecModel, split: FrozenSplit) -> None:
        super().__init__()
        self.model, self.split = model, split

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        model = self.model
        return model.run_steps(
            features, self.split.slot, self.split.steps, len(model.plan), model.output_slot
        )


def frozen_features(model: SpecModel, split: FrozenSplit, x: torch.Tensor) -> torch.Tensor:
    """The features of the batch ``x`` (normalised images): the frozen part in eval mode, in
    fp32, without gradients."""
    with torch.no_grad(), _eval(model, split):
        return model.run_steps(x, 0, 0, split.steps, split.slot).float()


@contextmanager
def _eval(model: SpecModel, split: FrozenSplit) -> Iterator[None]:
    modules = [model.get_submodule(node_id) for node_id in split.layers]
    modes = [m.training for m in modules]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)


class FeatureBatches:
    """Mini-batches of cached features, in the order and counts the image batches would come
    (the same positions by (seed, epoch, rank, world)). ``features`` is views × images × …:
    each epoch takes one view of every image, drawn by (seed, epoch)."""

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        merge_single: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        pad: bool = True,
    ) -> None:
        self.features, self.labels = features, labels.to(features.device)
        self.batch_size, self.shuffle, self.merge_single = batch_size, shuffle, merge_single
        self.seed, self.rank, self.world, self.pad = seed, rank, world, pad
        self.epoch = self.first = 0

    @property
    def num_samples(self) -> int:
        return shard_size(self.features.shape[1], self.rank, self.world, pad=self.pad)

    def __len__(self) -> int:
        return batch_count(
            self.num_samples, self.batch_size, drop_last=False, merge_single=self.merge_single
        )

    def set_epoch(self, epoch: int, first: int = 0) -> None:
        """Feed ``epoch`` from its batch ``first`` on (a resumed run starts where it stopped)."""
        self.epoch, self.first = epoch, first

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        views, count = self.features.shape[:2]
        device = self.features.device
        positions = epoch_order(
            count, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch, rank=self.rank,
            world=self.world, pad=self.pad,
        ).to(device)  # fmt: skip
        drawn = None
        if views > 1:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            drawn = torch.randint(views, (count,), generator=generator).to(device)
        bounds = batch_bounds(len(positions), self.batch_size, len(self), drop_last=False)
        for index, (start, end) in enumerate(bounds):
            if index < self.first:
                continue
            batch = positions[start:end]
            view = drawn[batch] if drawn is not None else 0
            yield self.features[view, batch], self.labels[batch]


@dataclass(frozen=True)
class CachedFeatures:
    """What a run trains on when its features are cached: the head and the feature batches,
    and the cache file (``reused``: it was there before the run)."""

    head: Head
    train: FeatureBatches
    val: FeatureBatches
    path: Path
    views: int
    reused: bool

    def describe(self) -> dict[str, Any]:
        """What settings.json records of it."""
        return {
            "file": str(self.path),
            "bytes": self.path.stat().st_size if self.path.is_file() else 0,
            "layers": list(self.head.split.layers),
            "views": self.views,
            "reused": self.reused,
        }


def cache_dir(project_dir: Path) -> Path:
    """Where a project's feature caches live."""
    return Path(project_dir) / CACHE_DIR


def augmenting(augment: dict[str, Any] | None) -> bool:
    """Whether ``augment`` changes images at all."""
    return bool(augment) and any(v for k, v in augment.items() if k != "resized_crop_scale")


def prepare(
    model: nn.Module,
    dataset: Dataset,
    *,
    settings: TrainSettings,
    device: torch.device,
    mean: tuple,
    std: tuple,
    data: dict[str, Any],
    project_dir: Path,
    world_size: int = 1,
    state: TaskState | None = None,
) -> tuple[CachedFeatures | None, str]:
    """The run's cached features (read from the cache, or computed and written to it), or None
    and why not ("" when there is nothing to say: no frozen part, or the cache is turned off).
    ``data`` is the project's data settings (``DataSettings.to_dict()``)."""
    split = frozen_split(model)
    if split is None or not settings.feature_cache:
        return None, ""
    augment = data.get("augment") or {}
    views = settings.feature_cache_views if augmenting(augment) else 0
    if augmenting(augment) and views == 0:
        return None, (
            "feature cache: augmentation is on, so the frozen backbone runs on every image of "
            "every epoch; set feature_cache_views to cache that many augmented views per image"
        )
    if world_size > 1:
        return None, "feature cache: not used under torchrun; the frozen backbone runs every step"
    state = state or TaskState()
    job = _Job(model, split, dataset, settings, device, mean, std, augment, views)
    count = max(1, views) * len(dataset.splits["train"]) + len(dataset.splits["val"])
    size = count * _feature_shape(job).numel() * 4
    if size > MAX_CACHE_BYTES:
        return None, (
            f"feature cache: the features would take {size / 2**30:.1f} GiB (over "
            f"{MAX_CACHE_BYTES / 2**30:.0f}); the frozen backbone runs every step"
        )
    key = cache_key(model, split, dataset, data=data, mean=mean, std=std, views=views,
                    seed=settings.seed)  # fmt: skip
    path = cache_dir(project_dir) / f"{key}.safetensors"
    tensors = _read(path, device) if path.is_file() else None
    reused = tensors is not None
    if tensors is None:
        tensors = _compute(job, state)
        _write(path, tensors, split, views, data)
    else:
        state.report(1, 1, f"frozen backbone features read from {path}")
    return _cached(job, tensors, path, reused), ""


@dataclass(frozen=True)
class _Job:
    """What the features are computed from."""

    model: SpecModel
    split: FrozenSplit
    dataset: Dataset
    settings: TrainSettings
    device: torch.device
    mean: tuple
    std: tuple
    augment: dict[str, Any]
    views: int


def _feature_shape(job: _Job) -> torch.Size:
    probe = torch.zeros((1, *job.dataset.input_shape), device=job.device)
    return frozen_features(job.model, job.split, probe).shape[1:]


def _cached(
    job: _Job, tensors: dict[str, torch.Tensor], path: Path, reused: bool
) -> CachedFeatures:
    dataset, settings = job.dataset, job.settings
    labels = {name: dataset.labels[dataset.splits[name]] for name in ("train", "val")}
    train = FeatureBatches(tensors["train"], labels["train"], settings.batch_size, shuffle=True,
                           merge_single=True, seed=settings.seed)  # fmt: skip
    val = FeatureBatches(tensors["val"][None], labels["val"], max(256, settings.batch_size),
                         shuffle=False, merge_single=False, pad=False)  # fmt: skip
    return CachedFeatures(Head(job.model, job.split), train, val, path, job.views, reused)


def _compute(job: _Job, state: TaskState) -> dict[str, torch.Tensor]:
    """The features of every training image (``views`` augmented views of it, or the image
    itself) and of every validation image, in the splits' order, on the device."""
    dataset, settings, views = job.dataset, job.settings, job.views
    data_passes = [("train", view) for view in range(max(1, views))] + [("val", 0)]
    total = sum(len(dataset.splits[name]) for name, _view in data_passes)
    done, chunks = 0, {"train": [], "val": []}
    for name, view in data_passes:
        augmented = views > 0 and name == "train"
        batches = make_batches(
            dataset, name, settings.batch_size, job.device, job.mean, job.std, train=augmented,
            augment=job.augment if augmented else None, seed=settings.seed, shuffle=False,
            workers=default_workers() if settings.workers == "auto" else settings.workers,
        )  # fmt: skip
        batches.set_epoch(view)
        features = []
        for x, _y in batches:
            state.check()
            features.append(frozen_features(job.model, job.split, x))
            done += len(x)
            state.report(done, total, "computing frozen backbone features")
        if not features:  # an empty split (no validation image)
            features = [torch.zeros((0, *_feature_shape(job)), device=job.device)]
        chunks[name].append(torch.cat(features))
    return {"train": torch.stack(chunks["train"]), "val": chunks["val"][0]}


# The cache's key and file


def cache_key(
    model: SpecModel,
    split: FrozenSplit,
    dataset: Dataset,
    *,
    data: dict[str, Any],
    mean: tuple,
    std: tuple,
    views: int,
    seed: int,
) -> str:
    """The hash of everything the cached features depend on: the frozen part (its steps,
    layers and weights), the preprocessing, the augmented views and the data."""
    digest = hashlib.sha256()
    layers = [
        (s[0], s[1], s[2], repr(model.get_submodule(s[0]))) for s in model.plan[: split.steps]
    ]
    described = {
        "layers": layers,
        "slot": split.slot,
        "input_shape": list(dataset.input_shape),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "views": views,
        "augment": data.get("augment") if views else None,
        "seed": seed if views else None,
        "data": {k: v for k, v in data.items() if k not in ("mean", "std", "stats_key")},
        "classes": list(dataset.classes),
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for node_id in split.layers:
        for name, tensor in model.get_submodule(node_id).state_dict().items():
            digest.update(f"{node_id}.{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            _hash_tensor(digest, tensor)
    _hash_data(digest, dataset)
    return digest.hexdigest()[:24]


def _hash_tensor(digest, tensor: torch.Tensor) -> None:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")


def _hash_data(digest, dataset: Dataset) -> None:
    """The images (their pixels when decoded, else each file's path, size and time), their
    labels and the splits."""
    _hash_tensor(digest, dataset.labels)
    for name in ("train", "val"):
        _hash_tensor(digest, dataset.splits[name])
    if dataset.images is not None:
        _hash_tensor(digest, dataset.images)
        return
    for path in dataset.paths or []:
        info = os.stat(path)
        digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())


def _write(path: Path, tensors: dict, split: FrozenSplit, views: int, data: dict) -> None:
    """The cache file, written whole or not at all (a temporary file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")  # runs of a sweep may write at once
    meta = {"layers": ",".join(split.layers), "views": str(views), "source": str(data["source"])}
    save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(partial), meta)
    os.replace(partial, path)


def _read(path: Path, device: torch.device) -> dict | None:
    """The cached tensors, or None when the file is damaged (it is then computed again)."""
    try:
        tensors = load_file(str(path))
    except Exception:  # a truncated or foreign file: recompute and overwrite it
        return None
    if set(tensors) != {"train", "val"}:
        return None
    return {k: v.to(device) for k, v in tensors.items()}


def cache_files(project_dir: Path) -> list[tuple[Path, int]]:
    """The project's feature cache files and their sizes in bytes."""
    folder = cache_dir(project_dir)
    if not folder.is_dir():
        return []
    return [(p, p.stat().st_size) for p in sorted(folder.glob("*.safetensors"))]


def clear_cache(project_dir: Path) -> tuple[int, int]:
    """Delete the project's feature caches: how many files and bytes."""
    files = cache_files(project_dir)
    for path, _size in files:
        path.unlink()
    return len(files), sum(size for _path, size in files)


# The command line: cnnstudio cache DIR [--clear]


def add_cache(commands) -> None:
    cache = commands.add_parser("cache", help="list or delete a project's cached features")
    cache.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    cache.add_argument("--clear", action="store_true", help="delete them")
    cache.set_defaults(handler=_cmd_cache)


def _cmd_cache(args) -> int:
    if not args.dir.is_dir():
        raise DataError(f"{args.dir}: no such project folder")
    if args.clear:
        count, size = clear_cache(args.dir)
        print(f"deleted {count} feature cache file(s), {_mib(size)}")
        return 0
    files = cache_files(args.dir)
    for path, size in files:
        print(f"{_mib(size):>12}  {path}")
    print(f"{len(files)} file(s), {_mib(sum(s for _p, s in files))} in {cache_dir(args.dir)}")
    return 0


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
