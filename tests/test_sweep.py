"""Sweeps (cnnstudio.sweep), the run table (cnnstudio.run_table), their commands (`cnnstudio
sweep`, `cnnstudio runs`) and the HParams data each run writes for TensorBoard."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnstudio import Project, run_table, runs
from cnnstudio.cli import main
from cnnstudio.data import DataSettings
from cnnstudio.errors import SweepError
from cnnstudio.sweep import (
    Axis,
    Range,
    SweepControl,
    SweepPlan,
    SweepRunEnded,
    SweepRunStarted,
    load_sweep,
    open_sweep,
    parse_axis,
    parse_devices,
    parse_range,
    run_project,
    run_sweep,
)
from cnnstudio.train import StepLogged
from cnnstudio.train_settings import check_training
from tests.test_train import colour_folder, tiny_model

GRID = ["--grid", "lr=1e-3,3e-3", "--grid", "batch_size=8,16", "--epochs", "1"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    data = colour_folder(tmp_path / "images", per_class=8)
    training = check_training({"epochs": 3, "batch_size": 8, "log_every": 1, "workers": 0,
                               "device": "cpu", "schedule": "constant"})  # fmt: skip
    made = Project(model=tiny_model(), name="tiny", training=training, path=tmp_path / "proj",
                   data=DataSettings(source="folder", path=str(data)))  # fmt: skip
    made.save()
    return made


def sweep_runs(project: Project) -> list[run_table.RunRow]:
    return list(run_table.run_table(project.runs_dir).rows)


# Plans


def test_a_grid_plans_every_combination_first_axis_slowest() -> None:
    plan = SweepPlan(grid=(parse_axis("lr=1e-3,3e-3"), parse_axis("augment.hflip=true,false")))
    assert plan.settings() == [
        {"lr": 1e-3, "hflip": True},
        {"lr": 1e-3, "hflip": False},
        {"lr": 3e-3, "hflip": True},
        {"lr": 3e-3, "hflip": False},
    ]


def test_random_search_draws_the_same_values_for_the_same_seed() -> None:
    ranges = (parse_range("lr=1e-4:1e-2:log"), parse_range("batch_size=8:64"))
    first = SweepPlan(ranges=ranges, random=5, seed=7).settings()
    assert first == SweepPlan(ranges=ranges, random=5, seed=7).settings()
    assert first != SweepPlan(ranges=ranges, random=5, seed=8).settings()
    assert len(first) == 5
    assert all(1e-4 <= s["lr"] <= 1e-2 and 8 <= s["batch_size"] <= 64 for s in first)
    assert all(isinstance(s["batch_size"], int) for s in first)
    crossed = SweepPlan(grid=(Axis("optimizer", ("sgd", "adamw")),), ranges=ranges, random=3)
    assert [s["optimizer"] for s in crossed.settings()] == ["sgd"] * 3 + ["adamw"] * 3


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: parse_axis("lrr=1e-3"), "did you mean 'lr'"),
        (lambda: parse_axis("augment.hflipp=true"), "did you mean 'hflip'"),
        (lambda: parse_axis("lr=fast"), "'lr': must be a number from 1e-08 to 10, got 'fast'"),
        (lambda: parse_axis("batch_size=0,8"), "'batch_size': must be an integer from 1"),
        (lambda: parse_axis("optimizer=adam,lion"), "one of 'adamw', 'adam', 'sgd'"),
        (lambda: parse_axis("lr"), "write a swept setting as NAME=V1,V2"),
        (lambda: parse_range("optimizer=1:2"), "give its values with --grid"),
        (lambda: parse_range("lr=1e-2:1e-4"), "low end must be below its high end"),
        (lambda: parse_range("weight_decay=0:0.1:log"), "a log range must start above 0"),
        (lambda: parse_range("lr=1e-4-1e-2"), "LOW:HIGH or LOW:HIGH:log"),
        (lambda: SweepPlan(grid=(Axis("lr", (0.1,)), Axis("lr", (0.2,)))), "given twice"),
        (lambda: SweepPlan(ranges=(Range("lr", 1e-4, 1e-2),)), "needs both --random N"),
        (lambda: SweepPlan(), "nothing to sweep"),
        (lambda: SweepPlan(grid=(Axis("epochs", (1, 2)),), epochs=3), "drop --epochs"),
    ],
)
def test_bad_names_and_values_are_one_clear_line(make, words: str) -> None:
    with pytest.raises(SweepError) as caught:
        make()
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_the_command_line_reports_a_bad_setting_in_one_line(project: Project, capsys) -> None:
    code = main(["sweep", str(project.path), "--grid", "bacth_size=8,16"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "cnnstudio sweep: error: no setting 'bacth_size' to sweep (did you mean 'batch_size'?)"
    )
    assert not (project.runs_dir / "sweeps").exists()


def test_a_planned_run_trains_a_copy_of_the_project(project: Project) -> None:
    changed = run_project(project, {"lr": 0.05, "val_fraction": 0.3, "crop_padding": 0})
    assert changed.training["lr"] == 0.05 and changed.data.val_fraction == 0.3
    assert changed.data.augment["crop_padding"] == 0 and changed.path == project.path
    assert project.training["lr"] != 0.05 and project.data.augment["crop_padding"] == 4


# The run table, from run folders written by hand


def fake_run(runs_dir: Path, name: str, lr: float, accuracies: list[float]) -> Path:
    folder = runs_dir / name
    folder.mkdir(parents=True)
    project = {"data": {"source": "sample", "val_fraction": 0.2, "augment": {"hflip": True}}}
    settings = {"project": project, "training": check_training({"lr": lr}),
                "classes": ["a", "b"], "images": {"train": 40, "val": 10}}  # fmt: skip
    runs.write_settings(folder, settings)
    runs.write_state(folder, state="finished", epochs_done=len(accuracies))
    lines = [{"type": "epoch", "epoch": i + 1, "global_step": i, "val_accuracy": acc,
              "val_loss": 1 - acc, "seconds": 2.0, "train_seconds": 1.0, "train_images": 40}
             for i, acc in enumerate(accuracies)]  # fmt: skip
    (folder / runs.METRICS).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_the_run_table_shows_what_differs_and_marks_the_best(tmp_path: Path) -> None:
    fake_run(tmp_path, "20261201-0900", 1e-3, [0.5, 0.7, 0.6])
    second = fake_run(tmp_path, "20261201-1000", 3e-3, [0.8, 0.75])
    runs.set_notes(second, tags=["baseline", " ", "baseline", "fast"], note="lr tripled")
    table = run_table.run_table(tmp_path)
    assert table.columns == ("lr",) and table.best == "20261201-1000"
    newest = table.rows[0].to_dict()
    assert newest["settings"]["lr"] == 3e-3 and newest["settings"]["hflip"] is True
    assert (newest["best_val_accuracy"], newest["final_val_accuracy"]) == (0.8, 0.75)
    assert newest["best_val_loss"] == pytest.approx(0.2)
    assert (newest["images"], newest["classes"], newest["data"]) == (50, 2, "sample set")
    assert (newest["seconds"], newest["images_per_sec"]) == (4.0, 40.0)
    assert (newest["tags"], newest["note"]) == (["baseline", "fast"], "lr tripled")
    assert runs.set_notes(second, note="").tags == ("baseline", "fast")


def test_runs_prints_the_table_with_differing_settings_as_columns(tmp_path, capsys) -> None:
    project = Project(model=tiny_model(), path=tmp_path)
    project.save()
    fake_run(project.runs_dir, "20261201-0900", 1e-3, [0.5])
    fake_run(project.runs_dir, "20261201-1000", 3e-3, [0.8])
    assert main(["runs", str(tmp_path)]) == 0
    header, best, other = capsys.readouterr().out.splitlines()
    assert header.split()[:5] == ["run", "when", "state", "data", "lr"]
    assert best.startswith("*") and "3e-3" in best and "0.8000" in best
    assert "1e-3" in other and not other.startswith("*")


# Real sweeps: tiny images, one epoch


def hparams_of(folder: Path) -> tuple[dict, dict]:
    """What TensorBoard's HParams plugin reads from a run's events: its session's settings and
    the metrics' scalar values."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    values = {k: v.ListFields()[0][1] for k, v in start.session_start_info.hparams.items()}
    scalars = {t: accumulator.Scalars(t)[-1].value for t in accumulator.Tags()["scalars"]}
    assert "_hparams_/experiment" in content
    return values, scalars


@pytest.mark.slow
def test_a_2x2_grid_makes_four_runs_listed_with_settings_and_metrics(project, capsys) -> None:
    assert main(["sweep", str(project.path), *GRID]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sweep ") and "4 runs, 1 epoch each" in out
    assert out.count(" done: ") == 4 and "finished: 4 done" in out
    assert main(["runs", str(project.path), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["columns"] == ["batch_size", "lr"]  # in the settings' own order
    rows = table["runs"]
    assert sorted((r["settings"]["lr"], r["settings"]["batch_size"]) for r in rows) == [
        (1e-3, 8), (1e-3, 16), (3e-3, 8), (3e-3, 16)]  # fmt: skip
    sweep_id = load_sweep(project.runs_dir).id
    for row in rows:
        assert row["state"] == "finished" and row["sweep"] == sweep_id
        assert 0 <= row["final_val_accuracy"] <= 1 and row["final_val_loss"] > 0
        assert row["images"] == 32 and row["classes"] == 4 and row["images_per_sec"] > 0
    values, scalars = hparams_of(Path(rows[0]["folder"]))
    assert values["lr"] == rows[0]["settings"]["lr"] and values["optimizer"] == "adamw"
    assert scalars["hparams/final_val_accuracy"] == pytest.approx(rows[0]["final_val_accuracy"])
    assert main(["sweep", str(project.path), *GRID]) == 0  # the same plan again: nothing to run
    assert "nothing to run" in capsys.readouterr().out and len(sweep_runs(project)) == 4


@pytest.mark.slow
def test_a_stopped_sweep_started_again_runs_only_the_missing_runs(project, capsys) -> None:
    plan = SweepPlan(grid=(parse_axis("lr=1e-3,3e-3"), parse_axis("batch_size=8,16")), epochs=1)
    control, seen = SweepControl(), []

    def stop_after_the_second(event) -> None:
        seen.append(event)
        if isinstance(event, SweepRunEnded) and event.run.index == 1:
            control.stop()

    control.skip(3)  # a queued run, skipped before it starts
    sweep = run_sweep(project, open_sweep(project.runs_dir, plan), stop_after_the_second, control)
    assert [r.state for r in sweep.runs] == ["done", "done", "pending", "skipped"]
    assert len(sweep_runs(project)) == 2
    assert main(["sweep", str(project.path), *GRID]) == 0
    out = capsys.readouterr().out
    assert "3 ended, 1 to run" in out and out.count(" done: ") == 1
    again = load_sweep(project.runs_dir, sweep.id)
    assert [r.state for r in again.runs] == ["done", "done", "done", "skipped"]
    assert len(sweep_runs(project)) == 3 and len({r.run for r in again.runs if r.run}) == 3


@pytest.mark.slow
def test_a_run_left_running_resumes_from_its_checkpoint(project) -> None:
    project.training = check_training({**project.training, "epochs": 2})
    plan = SweepPlan(grid=(Axis("lr", (1e-3,)),))
    control = SweepControl()

    def stop_in_the_second_epoch(event) -> None:
        if isinstance(event, StepLogged) and event.epoch == 2:
            control.stop()

    sweep = run_sweep(project, open_sweep(project.runs_dir, plan), stop_in_the_second_epoch,
                      control)  # fmt: skip
    folder = sweep.runs[0].run
    assert sweep.runs[0].state == "pending" and (project.runs_dir / folder / runs.LAST).is_file()
    sweep.owner = {"pid": 2**22 + 12345, "host": runs.trainer_process()["host"]}  # a killed one
    sweep.update(0, state="running")
    started = []
    again = run_sweep(project, open_sweep(project.runs_dir, plan), started.append)
    first = next(e for e in started if isinstance(e, SweepRunStarted))
    assert first.resumed and again.runs[0].state == "done" and again.runs[0].run == folder
    assert [row.info.epochs_done for row in sweep_runs(project)] == [2]


@pytest.mark.slow
def test_a_killed_sweep_process_is_completed_by_a_fresh_call(project) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnstudio", "sweep", str(project.path), *GRID],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("run 2/4: starting"):  # killed in the second run
                break
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stdout.close()
    assert main(["sweep", str(project.path), *GRID]) == 0
    sweep = load_sweep(project.runs_dir)
    assert [r.state for r in sweep.runs] == ["done"] * 4
    rows = sweep_runs(project)
    assert len(rows) == 4 and {r.info.state for r in rows} == {"finished"}
    assert all(math.isfinite(r.metrics["final_val_loss"]) for r in rows)


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_cleanly_and_resume_completes_it(project) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnstudio", "sweep", str(project.path), *GRID],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("run 2/4: starting"):
                break
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=120)
    finally:
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == 128 + signal.SIGINT
    assert "Traceback" not in err and "stopping the sweep" in err
    states = [r.state for r in load_sweep(project.runs_dir).runs]
    assert "running" not in states and "pending" in states and states[0] == "done"
    assert main(["sweep", str(project.path), "--resume"]) == 0
    assert [r.state for r in load_sweep(project.runs_dir).runs] == ["done"] * 4
    assert len(sweep_runs(project)) == 4


@given(st.text(max_size=40))
def test_any_text_is_an_axis_or_one_line_that_says_why(text: str) -> None:
    try:
        axis = parse_axis(text)
    except SweepError as error:
        assert "\n" not in str(error).strip()
    else:
        assert axis.values and axis.name in text


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_starts_again_in_a_new_folder(project) -> None:
    plan = SweepPlan(grid=(Axis("lr", (1e-3,)),), epochs=1)
    sweep = open_sweep(project.runs_dir, plan)
    left = project.runs_dir / "20261201-000000"  # what a process killed while loading leaves
    left.mkdir()
    runs.set_notes(left, sweep=sweep.id)
    sweep.update(0, state="running", run=left.name)
    again = run_sweep(project, open_sweep(project.runs_dir, plan))
    assert again.runs[0].state == "done" and again.runs[0].run != left.name
    assert not left.exists() and len(sweep_runs(project)) == 1


# Several runs at once, one per device


@pytest.mark.slow
def test_runs_go_two_at_a_time_on_two_slots_and_finish_every_run(project) -> None:
    plan = SweepPlan(grid=(parse_axis("lr=1e-3,3e-3"), parse_axis("batch_size=8,16")), epochs=1)
    seen: list = []
    sweep = run_sweep(project, open_sweep(project.runs_dir, plan), seen.append,
                      devices=["cpu", "cpu"])  # fmt: skip
    assert [r.state for r in sweep.runs] == ["done"] * 4
    assert {r.device for r in sweep.runs} == {"cpu"}
    marks = [type(e).__name__ for e in seen if isinstance(e, (SweepRunStarted, SweepRunEnded))]
    # the second run began before the first ended
    assert marks[:2] == ["SweepRunStarted", "SweepRunStarted"]
    rows = sweep_runs(project)
    assert len(rows) == 4 and {r.info.state for r in rows} == {"finished"}
    assert len({r.run for r in sweep.runs}) == 4
    again = load_sweep(project.runs_dir, sweep.id)  # the queue file says the same
    assert [r.device for r in again.runs] == ["cpu"] * 4


@pytest.mark.slow
def test_stopping_a_sweep_on_two_slots_keeps_both_runs_to_resume(project) -> None:
    project.training = check_training({**project.training, "epochs": 2})
    plan = SweepPlan(grid=(parse_axis("lr=1e-3,3e-3"), parse_axis("batch_size=8,16")))
    control = SweepControl()

    def stop_when_both_train(event) -> None:
        if isinstance(event, StepLogged) and event.epoch == 2 and len(control.trainers) == 2:
            control.stop()

    sweep = run_sweep(project, open_sweep(project.runs_dir, plan), stop_when_both_train, control,
                      devices=["cpu", "cpu"])  # fmt: skip
    assert [r.state for r in sweep.runs] == ["pending"] * 4 and control.trainers == {}
    stopped = [r.run for r in sweep.runs if r.run]
    assert len(stopped) == 2 and all((project.runs_dir / f / runs.LAST).is_file() for f in stopped)
    again = run_sweep(project, open_sweep(project.runs_dir, plan))
    assert [r.state for r in again.runs] == ["done"] * 4
    assert [row.info.epochs_done for row in sweep_runs(project)] == [2] * 4


def test_a_device_this_machine_lacks_is_refused_before_anything_runs(project, capsys) -> None:
    code = main(["sweep", str(project.path), *GRID, "--devices", "cpu,cuda:7"])
    err = capsys.readouterr().err
    assert code == 2 and "cuda:7" in err and len(err.strip().splitlines()) == 1
    assert sweep_runs(project) == []
    with pytest.raises(SweepError, match="comma"):
        parse_devices(" , ")
    assert parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
