"""Training on inputs that used to crash or mislead a run: a last batch of one image, NaN or
infinite values outside the training loss, runs killed without a word, resume on the DataLoader
path. Each ends in one clear outcome through the public interfaces."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from cnnstudio import Project
from cnnstudio.data import DataSettings, load_dataset
from cnnstudio.train import Finished, RunStarted, Trainer
from cnnstudio.train_settings import check_training
from tests.helpers import spec_of
from tests.test_train import collect, colour_folder


def batchnorm1d_model():
    return spec_of(
        ("conv1", "Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}),
        ("pool1", "MaxPool2d", {"kernel_size": 4}),
        ("flat", "Flatten", {}),
        ("fc1", "Linear", {"out_features": 8}),
        ("bn1", "BatchNorm1d", {}),
        ("relu1", "ReLU", {}),
        ("fc", "Linear", {"out_features": 4}),
        input_shape=(3, 16, 16),
        num_classes=4,
    )


def make_project(tmp_path: Path, model, **training) -> Project:
    data = colour_folder(tmp_path / "images")
    settings = {"epochs": 2, "batch_size": 16, "log_every": 1, "lr": 0.01,
                "schedule": "constant", "workers": 0, **training}  # fmt: skip
    made = Project(model=model, name="hostile",
                   data=DataSettings(source="folder", path=str(data)),
                   training=check_training(settings), path=tmp_path / "proj")  # fmt: skip
    made.save()
    return made


@pytest.fixture(params=["memory", "loader"])
def feeding(request, monkeypatch) -> str:
    """Both ways of feeding a run: decoded into memory, or decoded by DataLoader workers (as a
    folder larger than memory is)."""
    if request.param == "loader":
        monkeypatch.setattr(
            "cnnstudio.train.run_data.load_dataset",
            functools.partial(load_dataset, memory_limit=0),
        )
    return request.param


def test_a_last_batch_of_one_image_trains_batchnorm1d(tmp_path: Path, feeding: str) -> None:
    # 76 training images = 3 x 25 + 1: the last batch would hold one image
    project = make_project(tmp_path, batchnorm1d_model(), batch_size=25)
    events, result = collect(Trainer(project))
    assert isinstance(result, Finished) and result.state == "finished", result
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.train_images == 76 and started.steps_per_epoch == 3
