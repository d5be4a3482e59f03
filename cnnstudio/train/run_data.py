"""The images a run trains on: the project's data loaded for the run (a standard set downloaded
first, by rank 0 alone) and its training and validation batches, shared among the ranks."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnstudio.batches import LoaderBatches, TensorBatches, default_workers, make_batches
from cnnstudio.data import Dataset, DataSettings, load_dataset
from cnnstudio.errors import DataError
from cnnstudio.progress import TaskState
from cnnstudio.standard_sets import STANDARD_SETS, download, is_downloaded
from cnnstudio.train.distributed import World, barrier
from cnnstudio.train.events import Control, DataProgress, EventSink
from cnnstudio.train_settings import TrainSettings

Batches = TensorBatches | LoaderBatches


def load_run_data(
    data: DataSettings,
    input_shape: tuple[int, int, int],
    *,
    data_root: Path | None,
    world: World,
    events: EventSink,
    control: Control,
) -> Dataset:
    """The images of ``data`` at ``input_shape``, reporting DataProgress to ``events`` and
    stopping (Cancelled) when the run is stopped."""
    state = TaskState(
        on_progress=lambda p: events(DataProgress(p.done, p.total, p.what)),
        should_stop=lambda: control.stopping,
    )
    if data.source in STANDARD_SETS and not is_downloaded(data.source, data_root):
        if world.main:
            download(data.source, data_root, state)
        barrier(world)
    return load_dataset(data, input_shape, data_root=data_root, state=state)


def train_batches(
    dataset: Dataset,
    settings: TrainSettings,
    device: torch.device,
    mean: tuple,
    std: tuple,
    *,
    augment: dict,
    world: World,
    channels_last: bool = False,
) -> Batches:
    """This rank's share of the training split, shuffled and augmented with the run's seed
    (laid out channels-last where that is cheaper than in the step: see ``make_batches``).
    DataError when the split is empty."""
    workers = default_workers() if settings.workers == "auto" else settings.workers
    batches = make_batches(
        dataset,
        "train",
        settings.batch_size,
        device,
        mean,
        std,
        train=True,
        augment=augment,
        seed=settings.seed,
        rank=world.rank,
        world=world.size,
        workers=workers,
        channels_last=channels_last,
    )
    if len(batches) == 0:
        raise DataError("the training split is empty: add images or lower val_fraction")
    return batches


def val_batches(
    dataset: Dataset,
    settings: TrainSettings,
    device: torch.device,
    mean: tuple,
    std: tuple,
    *,
    world: World,
) -> Batches:
    """The validation split, in order, shared among the ranks of ``world`` (all of it for a
    world of one): each image on exactly one rank, so that their sums count it once."""
    return make_batches(
        dataset,
        "val",
        max(256, settings.batch_size),
        device,
        mean,
        std,
        train=False,
        rank=world.rank,
        world=world.size,
    )
