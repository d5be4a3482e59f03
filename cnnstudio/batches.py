"""Feeding training: mini-batches of a loaded dataset on the training device.

A dataset decoded into memory is fed from one uint8 tensor on the device, shuffled, augmented and
normalised a whole batch at a time (``TensorBatches``); a larger folder goes through DataLoader
workers with torchvision transforms (``LoaderBatches``). ``make_batches`` picks between them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cnnstudio.augment import augment_batch, classic_transform
from cnnstudio.data import Dataset
from cnnstudio.errors import DataError

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
