"""A project and run written by CNN Studio before the run folder got one owner (commit 6af7700,
by tests/fixtures/make_old_layout_project.py) open, evaluate, export and resume as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnstudio import build_model, load_project
from cnnstudio.export import export, export_source
from cnnstudio.model_source import from_run
from cnnstudio.runs import list_runs, load_checkpoint, read_evaluation, read_history
from cnnstudio.train import Finished, Trainer, evaluate_run

FIXTURE = Path(__file__).parent / "fixtures" / "old-layout-project"
RUN = "20261201-012225"


@pytest.fixture
def old(tmp_path: Path):
    shutil.copytree(FIXTURE, tmp_path / "project")
    return load_project(tmp_path / "project")


def test_the_old_run_is_listed_with_its_curves_and_evaluation(old) -> None:
    (info,) = list_runs(old.runs_dir)
    assert (info.name, info.state, info.epochs_done, info.epochs) == (RUN, "finished", 1, 1)
    assert info.best_val_accuracy == pytest.approx(0.135) and info.has_checkpoint
    history = read_history(info.folder)
    assert [e["epoch"] for e in history.epochs] == [1] and history.steps
    evaluation = read_evaluation(info.folder)
    assert evaluation is not None and evaluation.accuracy == pytest.approx(0.135)


def test_the_old_run_model_is_rebuilt_with_its_weights_and_preprocessing(old) -> None:
    folder = old.runs_dir / RUN
    source = from_run(folder)
    settings = json.loads((folder / "settings.json").read_text())
    assert source.checkpoint == folder / "best.pt" and source.label == f"run {RUN} (best)"
    assert source.mean == tuple(settings["mean"]) and source.classes == tuple(settings["classes"])
    reference = build_model(old.model, pretrained=False)
    reference.load_state_dict(load_file(folder / "model.safetensors"))
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(source.model(x), reference.eval()(x))


@pytest.mark.slow
def test_evaluating_the_old_run_gives_its_recorded_accuracy(old) -> None:
    """Same data, split and normalisation as when it was trained: the same answer."""
    evaluation = evaluate_run(old, RUN, device="cpu")
    recorded = read_evaluation(old.runs_dir / RUN)
    assert evaluation.accuracy == pytest.approx(recorded.accuracy)
    assert evaluation.confusion.tolist() == recorded.confusion.tolist()
    assert evaluation.loss == pytest.approx(recorded.loss, rel=1e-4)


@pytest.mark.slow
def test_the_old_run_exports_and_resumes(old, tmp_path: Path) -> None:
    result = export(export_source(old, RUN), "safetensors", tmp_path / "old.safetensors")
    assert result.max_abs_diff == 0.0
    finished = Trainer(old, epochs=2, resume=RUN, device="cpu").run()
    assert isinstance(finished, Finished) and finished.epochs_done == 2
    assert load_checkpoint(old.runs_dir / RUN / "last.pt")["progress"]["epoch"] == 2
