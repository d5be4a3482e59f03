"""Training on inputs that used to crash or mislead a run: a last batch of one image, NaN or
infinite values outside the training loss, runs killed without a word, resume on the DataLoader
path. Each ends in one clear outcome through the public interfaces."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnstudio import Project
from cnnstudio.data import DataSettings, load_dataset
from cnnstudio.runs import list_runs, load_checkpoint
from cnnstudio.train import EpochEnded, Failed, Finished, RunStarted, Trainer
from cnnstudio.train_settings import check_training
from tests.helpers import spec_of
from tests.test_train import collect, colour_folder, stop_and_resume


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


def tiny_bn_model():
    return spec_of(
        ("conv1", "Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}),
        ("bn1", "BatchNorm2d", {}),
        ("relu1", "ReLU", {}),
        ("pool1", "MaxPool2d", {"kernel_size": 4}),
        ("flat", "Flatten", {}),
        ("fc", "Linear", {"out_features": 4}),
        input_shape=(3, 16, 16),
        num_classes=4,
    )


def assert_kept_epoch_1(result: Failed) -> None:
    last = Path(result.run_dir) / "last.pt"
    assert f"the last good checkpoint is {last} (epoch 1)" in result.message
    assert load_checkpoint(last)["progress"]["epoch"] == 1
    state = json.loads((Path(result.run_dir) / "state.json").read_text())
    assert state["state"] == "failed" and state["message"] == result.message


def test_a_nan_validation_loss_stops_the_run(tmp_path: Path, monkeypatch) -> None:
    project = make_project(tmp_path, tiny_bn_model())
    original = torch.nn.functional.cross_entropy
    calls = {"val": 0}

    def poisoned(logits, target, *args, reduction="mean", **kwargs):
        loss = original(logits, target, *args, reduction=reduction, **kwargs)
        if reduction == "sum":  # validation sums; training takes the mean
            calls["val"] += 1
            return loss * float("nan") if calls["val"] == 2 else loss
        return loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", poisoned)
    events, result = collect(Trainer(project))
    assert isinstance(result, Failed) and result.reason == "nan", result
    assert result.message.startswith("the validation loss became NaN at the end of epoch 2 ")
    assert "lower the learning rate" in result.message
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [1]
    assert_kept_epoch_1(result)


def test_an_infinite_batchnorm_buffer_stops_the_run_naming_it(tmp_path: Path, monkeypatch) -> None:
    project = make_project(tmp_path, tiny_bn_model())
    original = torch.nn.BatchNorm2d.forward
    calls = {"n": 0}

    def poisoned(self, x):
        out = original(self, x)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 6:  # a step of epoch 2 (5 steps an epoch)
                self.running_var.data[0] = float("inf")  # outside autograd's count
        return out

    monkeypatch.setattr(torch.nn.BatchNorm2d, "forward", poisoned)
    events, result = collect(Trainer(project))
    assert isinstance(result, Failed) and result.reason == "nan", result
    assert result.message.startswith("running_var of layer bn1 became infinite during epoch 2 ")
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [1]
    assert_kept_epoch_1(result)


def run_state(run: Path) -> dict:
    return json.loads((run / "state.json").read_text())


def test_a_run_whose_trainer_is_gone_lists_as_interrupted(tmp_path: Path) -> None:
    project = make_project(tmp_path, tiny_bn_model(), epochs=1)
    listed, running = [], []

    def on_event(event) -> None:
        if isinstance(event, RunStarted):  # while training: state.json says running, pid ours
            running.append(run_state(Path(event.run_dir)))
            listed.append(list_runs(project.runs_dir)[0].state)

    result = Trainer(project).run(on_event)
    assert listed == ["running"]
    run = Path(result.run_dir)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a pid whose process has ended, as a trainer killed with -9 leaves
    state = {**running[0], "pid": ended.pid}
    (run / "state.json").write_text(json.dumps(state))
    info = list_runs(project.runs_dir)[0]
    assert info.state == "interrupted" and info.has_checkpoint
    assert info.message == (
        "the training process ended without saving its state (killed or crashed): "
        "resume the run to go on from its last checkpoint"
    )
    del state["pid"], state["host"]  # as runs before this change wrote it: nothing to check
    (run / "state.json").write_text(json.dumps(state))
    assert list_runs(project.runs_dir)[0].state == "running"


@pytest.mark.slow
def test_resume_on_the_dataloader_path_gives_the_same_weights_as_one_run(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(
        "cnnstudio.train.run_data.load_dataset", functools.partial(load_dataset, memory_limit=0)
    )
    project = make_project(tmp_path, tiny_bn_model())  # augmented: the default data settings
    _, _, checkpoint = stop_and_resume(project)  # checks the weights, bit for bit
    assert checkpoint["progress"]["batch"] == 2


def test_batch_size_one_with_batchnorm1d_fails_with_advice(tmp_path: Path) -> None:
    project = make_project(tmp_path, batchnorm1d_model(), batch_size=1)
    result = Trainer(project).run()
    assert isinstance(result, Failed) and result.reason == "settings", result
    assert result.message == (
        "a batch of one image cannot train BatchNorm (it needs more than one value per channel): "
        "use batch size 2 or more (it is 1), with at least two training images"
    )
    assert run_state(Path(result.run_dir))["state"] == "failed"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_run_killed_with_sigkill_lists_as_interrupted_and_resumes(tmp_path: Path) -> None:
    project = make_project(tmp_path, tiny_bn_model(), epochs=200)
    command = [sys.executable, "-m", "cnnstudio", "train", str(project.path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("epoch 2/"):  # epoch 1's checkpoint is written
            break
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    info = list_runs(project.runs_dir)[0]
    assert info.state == "interrupted" and info.has_checkpoint, info
    done = load_checkpoint(info.folder / "last.pt")["progress"]["epoch"]
    resumed = Trainer(project, resume=True, epochs=done + 1).run()
    assert isinstance(resumed, Finished) and resumed.state == "finished", resumed
    assert list_runs(project.runs_dir)[0].state == "finished"


def test_the_lr_finder_with_a_batch_of_one_gives_the_same_advice(tmp_path: Path) -> None:
    from cnnstudio.errors import TrainingError
    from cnnstudio.lr_finder import find_lr

    project = make_project(tmp_path, batchnorm1d_model(), batch_size=1)
    with pytest.raises(TrainingError, match=r"^a batch of one image cannot train BatchNorm .* 1\)"):
        find_lr(project, steps=3)
