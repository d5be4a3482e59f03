"""Runs on disk as the run list, the inspector and the exporter read them (cnnstudio.runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnstudio.errors import TrainingError
from cnnstudio.model_source import from_run
from cnnstudio.runs import (
    delete_run,
    find_run,
    list_runs,
    read_evaluation,
    read_history,
    run_info,
    settings_summary,
)


def fake_run(runs: Path, name: str, *, state: dict | None = None, lines: list[str] = ()) -> Path:
    folder = runs / name
    folder.mkdir(parents=True)
    settings = {"training": {"optimizer": "sgd", "lr": 0.05, "batch_size": 32, "epochs": 4},
                "started": "2026-11-25T10:00:00", "project": {}}  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(settings))
    if state is not None:
        (folder / "state.json").write_text(json.dumps(state))
    (folder / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    return folder


def test_list_runs_newest_first_and_tolerates_missing_files(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fake_run(runs, "20261125-100000", state={"state": "finished", "epochs_done": 4,
                                             "best_val_accuracy": 0.81})  # fmt: skip
    fake_run(runs, "20261125-110000")  # killed before its first state was written
    (runs / "notes").mkdir()  # not a run
    (runs / "20261125-120000").mkdir()
    (runs / "20261125-120000" / "settings.json").write_text("{broken")
    found = list_runs(runs)
    assert [r.name for r in found] == ["20261125-120000", "20261125-110000", "20261125-100000"]
    assert found[0].state == "unknown" and found[0].summary == ""
    assert found[1].state == "unknown" and found[1].best_val_accuracy is None
    assert found[2].state == "finished" and found[2].best_val_accuracy == 0.81
    assert found[2].epochs_done == 4 and found[2].epochs == 4
    assert found[2].summary == "sgd lr 0.05, batch 32, 4 epochs"
    assert list_runs(tmp_path / "nothing") == [] and list_runs(None) == []
    assert found[2].data == "" and found[0].data == ""  # the settings do not say


@pytest.mark.parametrize(
    ("data", "short", "full"),
    [({"source": "folder", "path": "/home/me/flowers", "val_fraction": 0.2},
      "folder flowers", "image folder /home/me/flowers, 20% held out for validation"),
     ({"source": "cifar10"}, "CIFAR-10", "CIFAR-10 (its official training images)"),
     ({"source": "sample", "val_fraction": 0.1}, "sample set",
      "the built-in sample set, 10% held out for validation"),
     ({"source": 3}, "", ""), (None, "", "")],
)  # fmt: skip
def test_a_run_says_which_data_it_trained_on(tmp_path: Path, data, short: str, full: str) -> None:
    folder = fake_run(tmp_path / "runs", "20261201-100000")
    settings = json.loads((folder / "settings.json").read_text())
    settings["project"] = {"data": data}
    (folder / "settings.json").write_text(json.dumps(settings))
    info = run_info(folder)
    assert (info.data, info.data_where) == (short, full)


def test_read_history_skips_a_half_written_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"type": "step", "global_step": 1, "loss": 2.0}),
        json.dumps({"type": "epoch", "epoch": 1, "val_accuracy": 0.5}),
        '{"type": "step", "glo',
    ]
    history = read_history(fake_run(tmp_path, "r", lines=lines))
    assert [s["loss"] for s in history.steps] == [2.0]
    assert [e["val_accuracy"] for e in history.epochs] == [0.5]
    assert read_evaluation(tmp_path / "r") is None


def test_delete_run_only_deletes_run_folders(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "r")
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "a.jpg").write_bytes(b"x")
    with pytest.raises(TrainingError, match="not a run folder"):
        delete_run(precious)
    assert (precious / "a.jpg").exists()
    delete_run(run)
    assert not run.exists()


def test_find_run_and_from_run_errors(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with pytest.raises(TrainingError, match="train first"):
        find_run(runs)
    with pytest.raises(TrainingError, match="no run 'x'"):
        find_run(runs, "x")
    run = fake_run(runs, "r")
    with pytest.raises(TrainingError, match="incomplete run settings"):
        from_run(run)


def test_load_run_refuses_weights_of_another_model(tmp_path: Path) -> None:
    from cnnstudio.templates import create_model_spec

    spec = create_model_spec("lenet5", num_classes=3, input_shape=(1, 32, 32))
    run = fake_run(tmp_path, "r")
    settings = json.loads((run / "settings.json").read_text())
    settings.update(project={"model": spec.to_dict(), "data": {"source": "sample"}},
                    mean=[0.5], std=[0.25], classes=["a", "b", "c"])  # fmt: skip
    (run / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(TrainingError, match="has no checkpoint"):
        from_run(run)
    torch.save({"model": {"conv1.weight": torch.zeros(1)}}, run / "last.pt")
    with pytest.raises(TrainingError, match="do not fit the run's model"):
        from_run(run)


def test_settings_summary_without_a_numeric_rate() -> None:
    assert settings_summary({"optimizer": "adamw", "lr": "auto"}) == "adamw"
    assert settings_summary({}) == ""
