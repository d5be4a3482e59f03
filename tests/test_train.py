"""The trainer: runs, events, checkpoints and exact resume, faults, groups, schedules, torchrun."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnstudio import Project, build_model, load_project
from cnnstudio.data import DataSettings
from cnnstudio.recipe import lr_factor, param_groups
from cnnstudio.runs import load_checkpoint
from cnnstudio.train import (
    CheckpointSaved,
    EpochEnded,
    Failed,
    Finished,
    RunStarted,
    StepLogged,
    StepsDone,
    Trainer,
    estimate_memory,
    make_optimizer,
)
from cnnstudio.train.checkpoint import Progress, TrainingParts, checkpoint_state, restore
from cnnstudio.train_settings import TRAIN_PARAMS, TrainSettings, check_training
from tests.helpers import spec_of

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 220), (230, 220, 40)]


def colour_folder(root: Path, per_class: int = 24, size: int = 16) -> Path:
    """Four classes of noisy single-colour squares: learnable in a couple of epochs."""
    rng = np.random.default_rng(0)
    for label, colour in enumerate(COLOURS):
        folder = root / f"c{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            noise = rng.normal(0, 30, (size, size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def tiny_model(classes: int = 4, size: int = 16):
    return spec_of(
        ("conv1", "Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}),
        ("bn1", "BatchNorm2d", {}),
        ("relu1", "ReLU", {}),
        ("pool1", "MaxPool2d", {"kernel_size": 2}),
        ("drop1", "Dropout", {"p": 0.25}),
        ("flat", "Flatten", {}),
        ("fc", "Linear", {"out_features": classes}),
        input_shape=(3, size, size),
        num_classes=classes,
    )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    data = colour_folder(tmp_path / "images")
    training = check_training({"epochs": 2, "batch_size": 16, "log_every": 1, "lr": 0.01,
                               "schedule": "constant", "workers": 0})  # fmt: skip
    made = Project(model=tiny_model(), name="tiny",
                   data=DataSettings(source="folder", path=str(data)), training=training,
                   path=tmp_path / "proj")  # fmt: skip
    made.save()
    return made


def assert_fits(spec, state: dict[str, torch.Tensor]) -> None:
    """``state`` has every weight and buffer of the model of ``spec``, each of its shape, and no
    other key: what ``load_state_dict`` needs."""
    expected = build_model(spec, pretrained=False).state_dict()
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    assert shapes == {key: tuple(value.shape) for key, value in expected.items()}


def collect(trainer: Trainer, on_event=None) -> tuple[list, object]:
    events = []

    def sink(event):
        events.append(event)
        if on_event:
            on_event(event)

    result = trainer.run(sink)
    return events, result


def test_a_run_reports_events_and_fills_its_folder(project: Project) -> None:
    events, result = collect(Trainer(project))
    assert isinstance(result, Finished) and result.state == "finished"
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("RunStarted") == 1 and kinds[-1] == "Finished"
    assert set(kinds[: kinds.index("RunStarted")]) <= {"DataProgress", "Warned"}
    started = next(e for e in events if isinstance(e, RunStarted))
    steps = [e for e in events if isinstance(e, StepLogged)]
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert len(steps) == 2 * started.steps_per_epoch
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(0 <= e.accuracy <= 1 and e.loss > 0 and e.images_per_sec > 0 for e in steps)
    assert result.evaluation is not None and result.evaluation.confusion.sum() == 20
    run = Path(result.run_dir)
    assert run.parent == project.runs_dir
    for name in ("settings.json", "metrics.jsonl", "last.pt", "best.pt", "evaluation.json",
                 "model.safetensors", "state.json"):  # fmt: skip
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard events"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {line["type"] for line in lines} == {"step", "epoch"}
    assert json.loads((run / "state.json").read_text())["state"] == "finished"
    assert result.final_val_accuracy == epochs[-1].val_accuracy


def test_the_step_count_moves_between_logged_steps(project: Project, monkeypatch) -> None:
    """StepsDone: after the first step at once, then at most every HEARTBEAT_SECONDS, without
    waiting for log_every steps (a slow machine showed nothing for half a minute)."""
    import cnnstudio.train.loop as loop

    project.training = check_training({**project.training, "log_every": 1000, "epochs": 1})
    monkeypatch.setattr(loop, "HEARTBEAT_SECONDS", 0.0)  # every step, to count them
    events, result = collect(Trainer(project))
    assert isinstance(result, Finished)
    started = next(e for e in events if isinstance(e, RunStarted))
    beats = [e for e in events if isinstance(e, StepsDone)]
    assert [b.global_step for b in beats] == list(range(1, started.steps_per_epoch + 1))
    assert [b.step for b in beats] == [b.global_step for b in beats]
    assert all(b.epoch == 1 and b.steps == started.steps_per_epoch for b in beats)
    # with the real interval, a short run reports its first step and few others
    monkeypatch.setattr(loop, "HEARTBEAT_SECONDS", 3600.0)
    events, _ = collect(Trainer(project))
    assert [e.global_step for e in events if isinstance(e, StepsDone)] == [1]


def test_dataset_statistics_are_stored_in_the_project_once(project: Project) -> None:
    assert project.data.mean is None
    Trainer(project).run()
    reloaded = load_project(project.path)
    assert reloaded.data.mean is not None and len(reloaded.data.std) == 3


def test_safetensors_weights_are_the_best_checkpoint_and_fit_the_model(project: Project) -> None:
    from safetensors.torch import load_file

    result = Trainer(project).run()
    weights = load_file(Path(result.run_dir) / "model.safetensors")
    assert_fits(project.model, weights)
    best = load_checkpoint(Path(result.run_dir) / "best.pt")["model"]
    for key, value in best.items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=0, msg=key)


def final_weights(run_dir: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(Path(run_dir) / "last.pt")["model"]


def stop_and_resume(project: Project):
    """A straight run, and the same run stopped at epoch 2 step 2 and resumed; both results, the
    resumed run's events, and the checkpoint the stop wrote."""
    straight = Trainer(project).run()
    assert isinstance(straight, Finished)

    def stop_midway(event) -> None:
        if isinstance(event, StepLogged) and event.epoch == 2 and event.step == 2:
            trainer.stop()

    trainer = Trainer(project)
    _, stopped = collect(trainer, stop_midway)
    assert isinstance(stopped, Finished) and stopped.state == "stopped"
    checkpoint = load_checkpoint(Path(stopped.run_dir) / "last.pt")
    events, resumed = collect(Trainer(project, resume=True))
    assert isinstance(resumed, Finished) and resumed.state == "finished"
    assert resumed.run_dir == stopped.run_dir
    a, b = final_weights(straight.run_dir), final_weights(resumed.run_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    return resumed, events, checkpoint


def test_resume_after_a_stop_gives_the_same_weights_as_one_run(project: Project) -> None:
    resumed, events, checkpoint = stop_and_resume(project)
    assert checkpoint["progress"]["epoch"] == 1 and checkpoint["progress"]["batch"] == 2
    assert next(e for e in events if isinstance(e, RunStarted)).resumed
    lines = (Path(resumed.run_dir) / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["global_step"] for line in lines if '"step"' in line[:16]]
    assert steps == sorted(steps) and len(steps) == len(set(steps))


def test_stop_from_another_thread_ends_within_one_step(project: Project) -> None:
    trainer = Trainer(project)
    seen = []
    first = threading.Event()
    release = threading.Event()

    def on_event(event) -> None:
        if isinstance(event, StepLogged):
            seen.append(event.global_step)
            first.set()
            release.wait(10)  # hold the loop until the other thread has asked it to stop

    worker = threading.Thread(target=lambda: seen.append(trainer.run(on_event)))
    worker.start()
    assert first.wait(60)
    trainer.stop()
    release.set()
    worker.join(60)
    result = seen[-1]
    assert isinstance(result, Finished) and result.state == "stopped"
    assert [s for s in seen[:-1]] == [1]
    checkpoint = load_checkpoint(Path(result.run_dir) / "last.pt")
    assert checkpoint["progress"]["global_step"] == 1
    assert_fits(project.model, checkpoint["model"])


def test_pause_holds_the_loop_until_resume(project: Project) -> None:
    trainer = Trainer(project)
    steps = []
    paused_at = threading.Event()

    def on_event(event) -> None:
        if isinstance(event, StepLogged):
            steps.append(event.global_step)
            if event.global_step == 1:
                trainer.pause()
                paused_at.set()

    worker = threading.Thread(target=trainer.run, args=(on_event,))
    worker.start()
    assert paused_at.wait(60)
    worker.join(0.5)
    assert worker.is_alive() and steps == [1]
    trainer.resume()
    worker.join(60)
    assert not worker.is_alive() and len(steps) > 1


def test_snapshot_copies_the_weights_of_a_running_or_paused_run(project: Project) -> None:
    trainer = Trainer(project)
    assert trainer.snapshot(timeout=0.1) is None  # not training yet
    paused_at = threading.Event()
    step_of_pause = []

    def on_event(event) -> None:
        if isinstance(event, StepLogged) and event.global_step == 2:
            trainer.pause()
            step_of_pause.append(event.global_step)
            paused_at.set()

    worker = threading.Thread(target=trainer.run, args=(on_event,))
    worker.start()
    assert paused_at.wait(60)
    copy = trainer.snapshot(timeout=10)
    assert copy is not None, "a paused run serves a snapshot"
    assert_fits(project.model, copy)
    copy["conv1.weight"].zero_()  # a copy: the run's own weights are untouched
    again = trainer.snapshot(timeout=10)
    assert again is not None and again["conv1.weight"].abs().sum() > 0
    trainer.resume()
    worker.join(60)
    assert not worker.is_alive()
    saved = load_checkpoint(Path(trainer.run_dir) / "last.pt")["model"]
    assert not torch.equal(saved["conv1.weight"], again["conv1.weight"]), "training went on"
    assert trainer.snapshot(timeout=0.1) is None  # ended


def test_planted_nan_stops_the_run_and_says_where(project: Project) -> None:
    Trainer(project).run()  # a good run leaves statistics; now poison them
    project = load_project(project.path)
    project.data = DataSettings(**{**vars(project.data), "std": (1e-38,) * 3})
    project.training["epochs"] = 1
    events, result = collect(Trainer(project, save_project=False))
    assert isinstance(result, Failed) and result.reason == "nan"
    assert result.step == 1
    assert result.message.startswith("the loss became ")
    assert "at step 1 (epoch 1)" in result.message and "lower the learning rate" in result.message
    assert not any(isinstance(e, CheckpointSaved) for e in events)
    assert json.loads((Path(result.run_dir) / "state.json").read_text())["state"] == "failed"


def test_nan_keeps_the_last_good_checkpoint(project: Project, monkeypatch) -> None:
    calls = {"n": 0}
    original = torch.nn.CrossEntropyLoss.forward

    def poisoned(self, logits, target):
        calls["n"] += 1
        loss = original(self, logits, target)
        return loss * float("nan") if calls["n"] == 8 else loss  # a step in epoch 2

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", poisoned)
    result = Trainer(project).run()
    assert isinstance(result, Failed) and result.reason == "nan" and result.step == 8
    assert f"the last good checkpoint is {Path(result.run_dir) / 'last.pt'} (epoch 1)" in (
        result.message
    )
    assert load_checkpoint(Path(result.run_dir) / "last.pt")["progress"]["epoch"] == 1


def test_out_of_memory_ends_the_run_cleanly_with_advice(project: Project, monkeypatch) -> None:
    def no_memory(self, logits, target):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", no_memory)
    result = Trainer(project).run()
    assert isinstance(result, Failed) and result.reason == "out_of_memory"
    assert "ran out of memory at batch size 16: use batch size 8 or smaller" in result.message


def test_out_of_memory_advice_is_worked_out_once_the_failed_step_is_freed(
    project: Project, monkeypatch
) -> None:
    """The free memory behind the suggested batch is read after the exception is gone: its
    traceback holds the model, the batch and its activations."""
    import sys

    import cnnstudio.train.trainer as trainer_module

    def no_memory(self, logits, target):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handling = []

    def advice(spec, settings, device):
        handling.append(sys.exc_info()[0])
        return "advice"

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", no_memory)
    monkeypatch.setattr(trainer_module, "out_of_memory_message", advice)
    result = Trainer(project).run()
    assert result.message == "advice" and handling == [None]


@pytest.mark.slow
def test_early_stopping(project: Project) -> None:
    project.training.update(epochs=10, lr=1e-8, early_stopping=2, monitor="val_accuracy")
    events, result = collect(Trainer(project))
    assert isinstance(result, Finished) and result.state == "early_stopped"
    assert len([e for e in events if isinstance(e, EpochEnded)]) == 3
    assert result.best_epoch == 1


def test_bad_data_ends_as_a_failed_event(project: Project, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(project.data.path)
    result = Trainer(project).run()
    assert isinstance(result, Failed) and result.reason == "data"
    assert "does not exist" in result.message


def test_nothing_to_resume(project: Project) -> None:
    result = Trainer(project, resume=True).run()
    assert isinstance(result, Failed) and "nothing to resume" in result.message


def test_unsaved_project_cannot_train(project: Project) -> None:
    project.path = None
    result = Trainer(project).run()
    assert isinstance(result, Failed) and "save the project first" in result.message


def test_missing_device_is_refused(project: Project) -> None:
    result = Trainer(project, device="cuda:7").run()
    assert isinstance(result, Failed) and "cuda:7 is not available" in result.message


def backbone_spec(freeze: bool):
    return spec_of(
        ("bb", "Backbone", {"name": "resnet18", "weights": "none", "freeze": freeze}),
        ("fc", "Linear", {"out_features": 4}),
        input_shape=(3, 16, 16),
        num_classes=4,
    )


def test_per_group_learning_rates_reach_the_optimizer() -> None:
    model = build_model(backbone_spec(freeze=False))
    settings = TrainSettings.from_dict({"lr": 1e-3, "backbone_lr": 1e-5, "weight_decay": 0.01})
    groups = {g["name"]: g for g in make_optimizer(model, settings).param_groups}
    assert groups["backbone"]["lr"] == 1e-5 and groups["head"]["lr"] == 1e-3
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0
    assert groups["head"]["weight_decay"] == 0.01
    counted = sum(p.numel() for g in groups.values() for p in g["params"])
    assert counted == sum(p.numel() for p in model.parameters())
    frozen = make_optimizer(build_model(backbone_spec(freeze=True)), settings)
    assert [g["name"] for g in frozen.param_groups] == ["head", "head_no_decay"]


def test_a_checkpoint_of_an_unfused_optimizer_resumes_on_the_fused_one() -> None:
    """Runs saved before the optimizers were fused resume with the fused kernels and go on from
    the same state: the next step matches the unfused optimizer's own next step."""
    torch.manual_seed(0)
    model = build_model(tiny_model())
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1])
    settings = TrainSettings.from_dict({"lr": 0.01, "weight_decay": 0.01})
    groups = param_groups(model, set(), lr=0.01, backbone_lr="same", weight_decay=0.01)
    old = torch.optim.AdamW(groups, lr=0.01)  # torch's default kernels
    scheduler = torch.optim.lr_scheduler.LambdaLR(old, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)

    def step(optimizer: torch.optim.Optimizer) -> None:
        torch.manual_seed(1)  # the same dropout masks
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(2):
        step(old)
    parts = TrainingParts(model, old, scheduler, scaler)
    # a copy, as the file holds: the state dicts share the live tensors
    saved = copy.deepcopy(
        checkpoint_state(parts, Progress(), settings, tiny_model(), torch.device("cpu"))
    )
    assert not any(group["fused"] for group in saved["optimizer"]["param_groups"])
    step(old)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model.load_state_dict(saved["model"])
    fused = make_optimizer(model, settings)
    restore(saved, TrainingParts(model, fused, scheduler, scaler), torch.device("cpu"))
    assert all(group["fused"] for group in fused.param_groups)
    step(fused)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow
def test_frozen_backbone_weights_do_not_change(project: Project) -> None:
    project.model = backbone_spec(freeze=True)
    snapshots = {}

    def keep(event) -> None:
        if isinstance(event, CheckpointSaved) and event.kind == "last":
            snapshots[event.epoch] = load_checkpoint(Path(event.path))["model"]

    _, result = collect(Trainer(project), keep)
    assert isinstance(result, Finished)
    first, last = snapshots[1], snapshots[2]
    backbone = [k for k in first if k.startswith("bb.")]
    assert backbone and all(torch.equal(first[k], last[k]) for k in backbone)
    assert not torch.equal(first["fc.weight"], last["fc.weight"])


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle", "step"])
def test_schedules(schedule: str) -> None:
    kw = dict(schedule=schedule, total_steps=100, warmup_steps=0, steps_per_epoch=10,
              step_size=3, gamma=0.5)  # fmt: skip
    factors = [lr_factor(s, **kw) for s in range(100)]
    assert all(0 <= f <= 1 for f in factors)
    if schedule == "constant":
        assert set(factors) == {1.0}
    if schedule == "cosine":
        assert factors[0] == 1.0 and factors[-1] < 0.01 and factors == sorted(factors, reverse=True)
    if schedule == "onecycle":
        peak = factors.index(max(factors))
        assert 20 <= peak <= 40 and factors[0] < 0.1 and factors[-1] < 0.01
    if schedule == "step":
        assert factors[29] == 1.0 and factors[30] == 0.5 and factors[60] == 0.25
    warm = [lr_factor(s, **{**kw, "warmup_steps": 10}) for s in range(10)]
    if schedule != "onecycle":
        assert warm == sorted(warm) and warm[0] == 0.1


def test_memory_estimate_grows_with_the_batch() -> None:
    settings = TrainSettings.from_dict({})
    estimate = estimate_memory(tiny_model(), settings)
    assert estimate.total(64) - estimate.total(32) == 32 * estimate.per_image_bytes
    free = estimate.total(100)
    assert estimate.largest_batch(free) == 100
    assert estimate.largest_batch(estimate.fixed_bytes - 1) == 0
    assert estimate_memory(tiny_model(), settings, "bf16").per_image_bytes < \
        estimate.per_image_bytes  # fmt: skip


def test_memory_estimate_takes_the_plain_settings_dict_too() -> None:
    settings = {"optimizer": "sgd", "batch_size": 8}  # as the Train view has it while editing
    plain = estimate_memory(tiny_model(), settings)
    typed = estimate_memory(tiny_model(), TrainSettings.from_dict(settings))
    assert plain == typed
    assert typed.fixed_bytes < estimate_memory(tiny_model(), TrainSettings()).fixed_bytes


def test_train_settings_fields_are_the_described_parameters() -> None:
    fields = dataclasses.fields(TrainSettings)
    assert [f.name for f in fields] == [p.name for p in TRAIN_PARAMS]
    assert {f.name: f.default for f in fields} == {p.name: p.default for p in TRAIN_PARAMS}
    assert TrainSettings().to_dict() == check_training({})


def test_train_settings_round_trip_the_plain_dict() -> None:
    values = {"epochs": 3, "lr": 0.05, "backbone_lr": 1e-4, "workers": 2, "precision": "bf16"}
    settings = TrainSettings.from_dict(values)
    assert settings.lr == 0.05 and settings.workers == 2 and settings.nesterov is False
    plain = settings.to_dict()
    assert plain == check_training(values) and list(plain) == [p.name for p in TRAIN_PARAMS]
    assert TrainSettings.from_dict(plain) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lr = 1.0  # type: ignore[misc]


def test_train_settings_refuse_bad_values_naming_the_place() -> None:
    from cnnstudio.errors import ProjectError

    with pytest.raises(ProjectError, match=r"run\.lr"):
        TrainSettings.from_dict({"lr": -1}, where="run")
    with pytest.raises(ProjectError, match="did you mean 'epochs'"):
        TrainSettings.from_dict({"epoch": 3})


def test_checkpoints_and_run_settings_keep_plain_settings(project: Project) -> None:
    result = Trainer(project).run()
    run = Path(result.run_dir)
    checkpoint = load_checkpoint(run / "last.pt")
    assert list(checkpoint) == ["model", "optimizer", "scheduler", "scaler", "progress", "rng",
                                "settings", "spec"]  # fmt: skip
    assert checkpoint["settings"] == check_training(project.training)
    assert type(checkpoint["settings"]) is dict
    written = json.loads((run / "settings.json").read_text())["training"]
    assert written == check_training(project.training)


@pytest.mark.slow
def test_lr_finder_suggests_a_rate_and_leaves_the_project_alone(project: Project) -> None:
    from cnnstudio.lr_finder import find_lr

    before = (project.path / "project.json").read_bytes()
    result = find_lr(project, steps=30)
    assert 1e-7 <= result.suggestion <= 10
    assert len(result.lrs) == len(result.losses) <= 30
    assert result.lrs == sorted(result.lrs)
    assert (project.path / "project.json").read_bytes() == before
    assert not project.runs_dir.exists()
    assert result.to_csv().splitlines()[0] == "lr,loss,raw_loss"


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnstudio", *args], capture_output=True,
                          text=True, timeout=600, **kw)  # fmt: skip


@pytest.mark.slow
def test_sample_set_reaches_90_percent_from_the_command_line(tmp_path: Path) -> None:
    assert cli("new", str(tmp_path / "p")).returncode == 0
    result = cli("train", str(tmp_path / "p"), "--epochs", "5")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("final validation accuracy: ")
    accuracy = float(last.split()[3].rstrip(";"))
    assert accuracy >= 0.90, result.stdout
    # evaluate reads the best checkpoint, which is the final epoch's only when no "(best …)" shows
    best = re.search(r"\(best ([0-9.]+) at epoch \d+\)", last)
    evaluated = float(best.group(1)) if best else accuracy
    shown = cli("evaluate", str(tmp_path / "p"), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert {"accuracy", "confusion_matrix", "per_class", "classes"} <= set(data)
    assert abs(data["accuracy"] - evaluated) < 5e-5
    assert set(data["per_class"][0]) >= {"precision", "recall", "f1", "support"}
    text = cli("evaluate", str(tmp_path / "p"))
    assert "confusion matrix" in text.stdout and "precision" in text.stdout


@pytest.mark.slow
def test_cli_lr_find_writes_the_curve(project: Project) -> None:
    result = cli("lr-find", str(project.path), "--steps", "20")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("suggested learning rate: ")
    assert (project.path / "lr_find.csv").read_text().startswith("lr,loss,raw_loss")


@pytest.mark.slow
def test_sigint_checkpoints_then_exits(project: Project) -> None:
    project.training["epochs"] = 200
    project.save()
    command = [sys.executable, "-m", "cnnstudio", "train", str(project.path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("epoch 1/"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "stopped after" in out and "Traceback" not in err
    run = next(project.runs_dir.iterdir())
    assert load_checkpoint(run / "last.pt")["progress"]["epoch"] >= 1
    assert json.loads((run / "state.json").read_text())["state"] == "stopped"


@pytest.mark.slow
def test_cli_train_errors_are_one_line(project: Project) -> None:
    result = cli("train", str(project.path), "--resume")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"cnnstudio train: error: nothing to resume: no checkpoint in {project.runs_dir}"
    ]


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes(project: Project) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "cnnstudio", "train",
         str(project.path)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list(project.runs_dir.iterdir())
    assert len(runs) == 1
    settings = json.loads((runs[0] / "settings.json").read_text())
    assert settings["world_size"] == 2
    assert result.stdout.count("final validation accuracy") == 1
    epochs = [json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()
              if '"epoch"' in line[:16]]  # fmt: skip
    assert [e["epoch"] for e in epochs] == [1, 2]


def _workers(parent: int) -> dict[int, int]:
    """The torchrun workers under ``parent``: their pid by rank (read from their environment)."""
    found = {}
    for child in subprocess.run(["pgrep", "-P", str(parent)], capture_output=True,
                                text=True).stdout.split():  # fmt: skip
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ranks = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"RANK=")]
        if ranks:
            found[int(ranks[0])] = int(child)
    return found


@pytest.mark.slow
def test_a_stop_sent_to_one_torchrun_rank_stops_every_rank_with_one_checkpoint(
    project: Project,
) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "cnnstudio", "train",
         str(project.path), "--epochs", "500"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("epoch 1/500"):
                break
        workers = _workers(process.pid)
        assert set(workers) == {0, 1}, workers
        os.kill(workers[1], signal.SIGTERM)  # rank 1 only: rank 0 hears of it from rank 1
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # ranks that did not agree to stop wait on each other
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert "stopped after" in out, err[-3000:]
    (run,) = list(project.runs_dir.iterdir())
    assert (run / "last.pt").is_file()
    state = json.loads((run / "state.json").read_text())
    assert state["state"] == "stopped" and 1 <= state["epochs_done"] < 500


@pytest.mark.slow
def test_torchrun_on_two_nodes_joined_by_c10d_rendezvous_trains_one_run(project: Project) -> None:
    """Two torchrun "nodes" on this machine, joined the way a cluster's are (the multi-node
    command of the README): one process each, a world of two, one run folder."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(torchrun), "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
               f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=cnnstudio-test", "-m",
               "cnnstudio", "train", str(project.path)]  # fmt: skip
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    nodes = [subprocess.Popen(command, **pipes, env=env, start_new_session=True) for _ in range(2)]
    try:
        outputs = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.communicate()
    for node, (_out, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-3000:]
    printed = "".join(out for out, _err in outputs)
    assert printed.count("final validation accuracy") == 1  # rank 0 reports, on one node
    (run,) = list(project.runs_dir.iterdir())
    settings = json.loads((run / "settings.json").read_text())
    assert settings["world_size"] == 2
    assert json.loads((run / "state.json").read_text())["state"] == "finished"


@pytest.mark.slow
def test_train_gpus_2_on_the_cpu_runs_torchrun_and_a_stop_checkpoints_every_rank(
    project: Project,
) -> None:
    """`train --gpus N` is torchrun's path (here: two CPU processes): one run in a world of two;
    a Ctrl+C to the command stops both ranks with one checkpoint and leaves no process behind."""
    result = cli("train", str(project.path), "--gpus", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("final validation accuracy") == 1
    (first,) = list(project.runs_dir.iterdir())
    assert json.loads((first / "settings.json").read_text())["world_size"] == 2
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnstudio", "train", str(project.path), "--gpus", "2",
         "--device", "cpu", "--epochs", "500"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("epoch 1/500"):
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal.SIGINT, err[-3000:]
    assert "stopped after" in out
    assert "Traceback" not in err and "Failures" not in err, err  # torchrun ended quietly
    (second,) = [run for run in project.runs_dir.iterdir() if run != first]
    assert json.loads((second / "state.json").read_text())["state"] == "stopped"
    assert (second / "last.pt").is_file()
    left = subprocess.run(["pgrep", "-f", str(project.path)], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_train_on_more_gpus_than_the_machine_has_is_one_line(project: Project) -> None:
    if torch.cuda.is_available():
        pytest.skip("counts this machine's CUDA devices")
    result = cli("train", str(project.path), "--gpus", "2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cnnstudio train: error: gpus 2: this machine has no CUDA device; choose gpus 1 (or "
        "device cpu to train the processes on the CPU)"
    ]


def test_events_travel_as_json_lines_and_come_back_as_the_same_dataclasses() -> None:
    from cnnstudio.launch import event_from_json, event_to_json

    sent = [
        RunStarted("r", "cpu", "CPU", "fp32", 3, 0, 10, 16, 160, 40, False, 2),
        StepLogged(1, 2, 10, 2, 0.5, 0.75, 1e-3, 300.0, 12.0),
        StepsDone(1, 3, 10, 3),
        EpochEnded(1, 3, 0.4, 0.8, 0.5, 0.7, 1e-3, 2.0, 1.5, 160, True),
        CheckpointSaved("r/last.pt", 1, "last"),
        Finished("finished", "r", 3, 0.9, 2, 0.85),
        Failed("nan", "the loss is NaN at step 4", "r", 4),
    ]
    for event in sent:
        line = event_to_json(event)
        assert "\n" not in line and event_from_json(line) == event
    assert event_from_json("final validation accuracy: 0.9") is None
    assert event_from_json('{"event": "Trainer"}') is None


def test_the_standalone_program_says_it_trains_in_one_process(monkeypatch) -> None:
    from cnnstudio.errors import TrainingError
    from cnnstudio.launch import check_gpus

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(TrainingError, match="standalone program trains in one process"):
        check_gpus(2, "cpu")
    check_gpus(1, "cpu")  # one process: nothing to launch


@pytest.mark.slow
def test_a_launched_run_that_fails_says_why_in_one_message(project: Project) -> None:
    """The window's runs on several processes: a failure in the ranks (here the data folder is
    gone) comes back as the Trainer's own Failed, and one that stops the command before any
    rank trains (here an epoch count of 0) as its one-line error, not torchrun's report."""
    from cnnstudio.launch import LaunchedRun

    project.training = {**project.training, "device": "cpu"}
    shutil.rmtree(project.data.path)
    seen: list = []
    result = LaunchedRun(project, 2).run(seen.append)
    assert isinstance(result, Failed) and result.reason == "data", result
    assert project.data.path in result.message and seen[-1] == result
    again = LaunchedRun(project, 2, epochs=0).run()
    assert isinstance(again, Failed) and "\n" not in again.message
    assert again.message.startswith("torchrun with 2 processes ended: argument --epochs: ")
