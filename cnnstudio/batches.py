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


def shard_size(count: int, rank: int, world: int, *, pad: bool) -> int:
    """How many of ``count`` positions ``epoch_order`` gives this rank."""
    return -(-count // world) if pad else len(range(rank, count, world))


def batch_count(samples: int, batch_size: int, *, drop_last: bool, merge_single: bool) -> int:
    """How many batches ``samples`` images make. With ``merge_single`` a last batch of one image
    joins the batch before it: BatchNorm cannot train on a batch of one. The count depends on the
    numbers alone, so every rank of a run and every resume of it agree on it."""
    if drop_last:
        return samples // batch_size
    count = -(-samples // batch_size)
    if merge_single and count > 1 and samples % batch_size == 1:
        count -= 1
    return count


def batch_bounds(
    samples: int, batch_size: int, count: int, *, drop_last: bool
) -> Iterator[tuple[int, int]]:
    """Start and end of each of ``count`` batches; unless ``drop_last`` the last one takes
    whatever is left (one image more than a batch when a single image was merged into it)."""
    for b in range(count):
        start = b * batch_size
        last = b == count - 1 and not drop_last
        yield start, samples if last else min(samples, start + batch_size)


def epoch_order(
    count: int, *, shuffle: bool, seed: int, epoch: int, rank: int, world: int, pad: bool = True
) -> torch.Tensor:
    """The positions (0 to ``count``) this rank takes in ``epoch``: shuffled by (seed, epoch)
    alone, and with ``world > 1`` a share of them, as DistributedSampler does: padded with
    repeats so every rank gets the same number (training: DDP's ranks step together), or with
    ``pad=False`` each position on exactly one rank (validation counts each image once)."""
    order = torch.arange(count)
    if shuffle:
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed + epoch))
    if world > 1 and not pad:
        return order[rank::world]
    if world > 1:
        total = -(-count // world) * world
        if total > count:
            order = torch.cat([order, order[: total - count]])
        order = order[rank:total:world]
    return order


class TensorBatches:
    """Mini-batches from uint8 images held on the training device.

    Shuffling, augmentation and normalization happen on that device, a whole batch at a time.
    With ``world > 1`` each rank takes its share of every epoch's order, as DistributedSampler
    does (padded so every rank gets the same number of batches, unless ``pad`` is False). With
    ``merge_single`` a last batch of one image joins the one before it. With ``channels_last``
    (and no augmentation) the batches come laid out channels-last, as such a model reads them.
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
        merge_single: bool = False,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        pad: bool = True,
        channels_last: bool = False,
    ) -> None:
        device = images.device
        self._channels_last = channels_last and not augment and images.dim() == 4
        if self._channels_last:
            # the split's images copied once in the model's layout: a batch is then one gather
            # and one multiply-add that keep it, not a relayout of every batch
            indices = indices.to(device)
            images = images.index_select(0, indices).contiguous(memory_format=torch.channels_last)
            labels = labels.to(device).index_select(0, indices)
            indices = torch.arange(len(indices), device=device)
        self.images = images
        self.labels = labels.to(device)
        self.indices = indices.to(device)
        self.batch_size = batch_size
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device)[None, :, None, None]
        std_t = torch.tensor(std, dtype=torch.float32, device=device)[None, :, None, None]
        # (x - mean) / std as one multiply-add, for pixels on the 0-1 scale and on the 0-255 one
        self._scale01, self._shift = 1 / std_t, -mean_t / std_t
        self._scale255 = self._scale01 / 255
        if self._channels_last:
            # the shift and scale of every pixel, laid out as the images: a per-channel one
            # broadcast over channels-last images makes the multiply-add's inner loop three
            # values long (three times slower on the CPU than this)
            _, channels, height, width = images.shape
            size = (1, channels, height, width)
            self._shift = self._shift.expand(size).contiguous(memory_format=torch.channels_last)
            self._scale255 = self._scale255.expand(size).contiguous(
                memory_format=torch.channels_last
            )
        self.augment = augment
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.merge_single = merge_single
        self.seed = seed
        self.rank, self.world, self.pad = rank, world, pad
        self.epoch = self.first = 0

    @property
    def num_samples(self) -> int:
        return shard_size(len(self.indices), self.rank, self.world, pad=self.pad)

    def __len__(self) -> int:
        return batch_count(
            self.num_samples,
            self.batch_size,
            drop_last=self.drop_last,
            merge_single=self.merge_single,
        )

    def set_epoch(self, epoch: int, first: int = 0) -> None:
        """Feed ``epoch`` from its batch ``first`` on (a resumed run starts where it stopped)."""
        self.epoch, self.first = epoch, first

    def order(self) -> torch.Tensor:
        positions = epoch_order(
            len(self.indices),
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
            rank=self.rank,
            world=self.world,
            pad=self.pad,
        )
        return self.indices[positions.to(self.indices.device)]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        generator = None
        if self.augment:
            generator = torch.Generator(device=self.images.device)
            generator.manual_seed((self.seed + 1) * 1_000_003 + self.epoch * 7919 + self.rank)
        bounds = batch_bounds(len(order), self.batch_size, len(self), drop_last=self.drop_last)
        for index, (start, end) in enumerate(bounds):
            if index < self.first and not self.augment:
                continue
            batch = order[start:end]
            images = self._gather(batch)
            if self.augment:
                x = augment_batch(images, self.augment, generator)
                if index < self.first:
                    continue  # augmented all the same: the batches after it draw the same
                x = torch.addcmul(self._shift, x, self._scale01)
            else:
                # uint8 in, float32 out: the conversion happens inside the multiply-add
                x = torch.addcmul(self._shift, images, self._scale255)
            yield x, self.labels.index_select(0, batch)

    def _gather(self, batch: torch.Tensor) -> torch.Tensor:
        """The images of ``batch``, uint8, laid out as they are held. index_select, on the CPU
        ten times faster than ``images[batch]``, lays its result out NCHW: channels-last images
        are gathered as the N×H×W×C tensor they are in memory, then viewed back."""
        if not self._channels_last:
            return self.images.index_select(0, batch)
        return self.images.permute(0, 2, 3, 1).index_select(0, batch).permute(0, 3, 1, 2)


class _FileImages(torch.utils.data.Dataset):
    """Decodes image files on the fly (DataLoader workers); a file that turns out damaged is
    replaced by the next readable one so that a run never stops on it.

    Items are asked for as (position, epoch). With a ``seed`` the random transforms of an item
    draw from a generator seeded by (seed, epoch, position) alone, not from torch's global one:
    whichever worker decodes it, and whether the batches before it were decoded (a resumed run
    skips them), it comes out the same."""

    def __init__(
        self, paths: list[Path], labels: torch.Tensor, channels: int, transform, seed: int | None
    ) -> None:
        self.paths, self.labels = paths, labels
        self.channels, self.transform, self.seed = channels, transform, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]):
        index, epoch = key
        if self.seed is None:
            return self._load(index)
        generator = torch.default_generator  # what torchvision's random transforms draw from
        saved = generator.get_state()
        generator.manual_seed(((self.seed * 1_000_003 + epoch) * 1_000_003 + index) % 2**63)
        try:
            return self._load(index)
        finally:
            generator.set_state(saved)

    def _load(self, index: int):
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


class _EpochBatches(torch.utils.data.Sampler):
    """The batches of positions of one epoch, in the order and counts TensorBatches uses: a
    function of (seed, epoch, rank, world) alone."""

    def __init__(
        self,
        count: int,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool,
        merge_single: bool,
        seed: int,
        rank: int,
        world: int,
        pad: bool = True,
    ) -> None:
        self.count, self.batch_size = count, batch_size
        self.shuffle, self.drop_last, self.merge_single = shuffle, drop_last, merge_single
        self.seed, self.rank, self.world, self.pad = seed, rank, world, pad
        self.epoch = self.first = 0

    def __len__(self) -> int:
        samples = shard_size(self.count, self.rank, self.world, pad=self.pad)
        return batch_count(
            samples, self.batch_size, drop_last=self.drop_last, merge_single=self.merge_single
        )

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(
            self.count,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
            rank=self.rank,
            world=self.world,
            pad=self.pad,
        ).tolist()
        bounds = batch_bounds(len(order), self.batch_size, len(self), drop_last=self.drop_last)
        for index, (start, end) in enumerate(bounds):
            if index >= self.first:  # the batches before it are not decoded at all
                yield [(position, self.epoch) for position in order[start:end]]


class LoaderBatches:
    """Mini-batches decoded by DataLoader workers with torchvision transforms (large folders).
    The batches are those TensorBatches would make: the same order, counts and last batch."""

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
        merge_single: bool = False,
        pad: bool = True,
    ) -> None:
        assert dataset.paths is not None
        channels, height, width = dataset.input_shape
        indices = dataset.splits[split].tolist()
        transform = classic_transform(
            augment or {}, (height, width), mean, std, train=bool(augment)
        )
        files = _FileImages(
            [dataset.paths[i] for i in indices],
            dataset.labels[indices],
            channels,
            transform,
            seed if augment else None,
        )
        workers = default_workers() if workers is None else workers
        self.batches = _EpochBatches(
            len(indices),
            batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            merge_single=merge_single,
            seed=seed,
            rank=rank,
            world=world,
            pad=pad,
        )
        self.loader = torch.utils.data.DataLoader(
            files,
            batch_sampler=self.batches,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
            # its own generator: creating an epoch's iterator must not draw from torch's global
            # one, which dropout uses and a checkpoint restores
            generator=torch.Generator().manual_seed(seed),
        )
        self.device = device

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int, first: int = 0) -> None:
        """Feed ``epoch`` from its batch ``first`` on (a resumed run starts where it stopped)."""
        self.batches.epoch, self.batches.first = epoch, first

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
    shuffle: bool | None = None,
    channels_last: bool = False,
) -> TensorBatches | LoaderBatches:
    """Batches of ``split`` on ``device``: from memory when the dataset is decoded, else through
    DataLoader workers. Training batches are shuffled and augmented, and never hold a single image
    (it joins the batch before it: BatchNorm cannot train on one); validation ones are not. With
    ``world > 1`` every rank gets as many training batches as the others (the shares are padded
    with repeats, as DistributedSampler does); the validation shares are not padded, so that the
    ranks together see each image once. ``shuffle=False`` keeps training batches (augmented)
    in the split's order (the feature cache's augmented views). ``channels_last``: the model
    reads channels-last feature maps (in-memory batches without augmentation are made so)."""
    device = torch.device(device)
    augment = augment if train else None
    shuffle = train if shuffle is None else shuffle
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
            shuffle=shuffle,
            merge_single=train,
            seed=seed,
            rank=rank,
            world=world,
            pad=train,
            channels_last=channels_last,
        )
    return LoaderBatches(
        dataset,
        split,
        batch_size,
        mean,
        std,
        augment=augment,
        shuffle=shuffle,
        merge_single=train,
        device=device,
        seed=seed,
        rank=rank,
        world=world,
        workers=workers,
        pad=train,
    )
