"""Which normalisation a project's model is fed with: the one place that decides it.

Training, the learning-rate finder, export, imported weights and the inspector all ask
``normalization``; a run stores the answer in its settings.json, and everything that uses a run
reads it from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnstudio.backbones import starting_weights
from cnnstudio.data import Dataset, DataSettings, dataset_stats, stats_key
from cnnstudio.errors import DataError
from cnnstudio.spec import ModelSpec


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std (on a 0-1 scale) and the data settings with the statistics stored
    (``data`` is a new object when they were computed just now). ``known`` is False when the
    dataset's statistics are needed but not yet computed: mean 0 and std 1 stand in for them."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    data: DataSettings
    known: bool = True


def normalization(
    data: DataSettings, spec: ModelSpec, dataset: Dataset | None = None
) -> Normalization:
    """The normalisation of ``spec`` trained on ``data``.

    ``data.normalize`` "auto" uses the preprocessing of the pretrained Backbone the model starts
    with, else the statistics of the training images; "backbone" insists on the former (DataError
    without one), "dataset" on the latter, "none" feeds 0-1 values. The statistics are computed
    from ``dataset`` unless the ones stored in ``data`` were computed on the same data; without a
    dataset the stored ones are used, or none (``known`` False).
    """
    weights = starting_weights(spec)
    channels = spec.input_shape[0]
    identity = Normalization((0.0,) * channels, (1.0,) * channels, data)
    mode = data.normalize
    if mode == "auto":
        mode = "backbone" if weights is not None else "dataset"
    if mode == "none":
        return identity
    if mode == "backbone":
        if weights is None:
            raise DataError(
                "normalize is 'backbone' but the model does not start with a "
                "pretrained Backbone: choose 'dataset' or 'auto'"
            )
        preprocess = weights.transforms()
        return Normalization(tuple(preprocess.mean), tuple(preprocess.std), data)
    if dataset is None:
        if data.mean is not None and data.std is not None:
            return Normalization(tuple(data.mean), tuple(data.std), data)
        return Normalization(identity.mean, identity.std, data, known=False)
    key = stats_key(data, dataset.input_shape)
    if data.mean is not None and data.stats_key == key:
        return Normalization(tuple(data.mean), tuple(data.std), data)
    mean, std = dataset_stats(dataset)
    return Normalization(tuple(mean), tuple(std), data.with_stats(mean, std, key))
