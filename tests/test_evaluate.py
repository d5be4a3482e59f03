"""Evaluating a run after it ended (stopped ones included): on its validation split, a standard
set's official test split, or a labelled image folder that training never saw, from the engine
and the command line."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnstudio import cli
from cnnstudio.data import DataSettings, load_labelled_folder
from cnnstudio.errors import Cancelled, DataError
from cnnstudio.progress import TaskState
from cnnstudio.project import Project
from cnnstudio.runs import EVALUATION, list_runs, read_evaluation
from cnnstudio.train import Finished, StepLogged, Trainer, evaluate_run, evaluate_run_folder
from cnnstudio.train_settings import check_training
from tests.test_train import COLOURS, colour_folder, tiny_model

CLASSES = ["c0", "c1", "c2", "c3"]


def stopped_project(root: Path) -> Path:
    """A saved project whose one run was stopped after its first step: a last checkpoint, no best,
    no evaluation."""
    training = check_training({"epochs": 1, "batch_size": 16, "log_every": 1, "lr": 0.01,
                               "workers": 0})  # fmt: skip
    data = DataSettings(source="folder", path=str(colour_folder(root / "img", per_class=12)))
    project = Project(model=tiny_model(), name="tiny", training=training, path=root / "proj",
                      data=data)  # fmt: skip
    project.save()
    trainer = Trainer(project, device="cpu")
    result = trainer.run(lambda e: trainer.stop() if isinstance(e, StepLogged) else None)
    assert isinstance(result, Finished) and result.state == "stopped", result
    return root / "proj"


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stopped_project(tmp_path_factory.mktemp("stopped"))


@pytest.fixture
def project(stopped: Path, tmp_path: Path) -> Path:
    shutil.copytree(stopped, tmp_path / "proj")
    return tmp_path / "proj"


def write_test_folder(root: Path, classes=("c2", "c0"), per_class: int = 3) -> Path:
    """Labelled images in the colours of the training classes, named after two of them."""
    rng = np.random.default_rng(1)
    colours = {f"c{label}": colour for label, colour in enumerate(COLOURS)}
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            colour = np.array(colours.get(name, (128, 128, 128)))
            pixels = np.clip(colour + rng.normal(0, 20, (16, 16, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_folder_classes_are_matched_by_name(tmp_path: Path) -> None:
    folder = write_test_folder(tmp_path / "t")
    (folder / "c0" / "broken.png").write_text("not an image")
    dataset = load_labelled_folder(folder, CLASSES, (3, 16, 16))
    assert dataset.classes == CLASSES
    # sorted folder names c0, c2 get the model's labels 0 and 2, not 0 and 1
    assert sorted(set(dataset.labels.tolist())) == [0, 2]
    assert [p.parent.name for p in dataset.paths] == [CLASSES[i] for i in dataset.labels]
    assert len(dataset.splits["test"]) == 6 and dataset.images.shape == (6, 3, 16, 16)
    assert [Path(s.path).name for s in dataset.skipped] == ["broken.png"]


def test_a_folder_class_the_model_does_not_know_is_one_clear_error(tmp_path: Path) -> None:
    folder = write_test_folder(tmp_path / "t", classes=("c0", "c9", "zebra"))
    with pytest.raises(DataError, match="does not know the classes 'c9', 'zebra'") as caught:
        load_labelled_folder(folder, CLASSES, (3, 16, 16))
    assert str(folder) in str(caught.value) and "'c3'" in str(caught.value)


@settings(max_examples=10, deadline=None)
@given(
    st.lists(st.sampled_from([*CLASSES, "c9", "Zebra", "c0 "]), min_size=1, max_size=4, unique=True)
)
def test_any_folder_classes_are_matched_or_refused_by_name(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_test_folder(Path(scratch) / "t", classes=names, per_class=1)
        unknown = sorted(set(names) - set(CLASSES))
        if unknown:
            with pytest.raises(DataError, match="does not know the classes"):
                load_labelled_folder(folder, CLASSES, (3, 8, 8))
            return
        dataset = load_labelled_folder(folder, CLASSES, (3, 8, 8))
        assert sorted(CLASSES[i] for i in dataset.labels) == sorted(names)
        assert [p.parent.name for p in dataset.paths] == [CLASSES[i] for i in dataset.labels]


def test_the_test_part_of_a_split_folder_is_read(tmp_path: Path) -> None:
    write_test_folder(tmp_path / "d" / "train", classes=("c0", "c1"))
    write_test_folder(tmp_path / "d" / "test", classes=("c3",), per_class=2)
    dataset = load_labelled_folder(tmp_path / "d", CLASSES, (3, 16, 16))
    assert dataset.labels.tolist() == [3, 3] and dataset.root.name == "test"
    write_test_folder(tmp_path / "only" / "test", classes=("c1",), per_class=2)
    assert load_labelled_folder(tmp_path / "only", CLASSES, (3, 16, 16)).labels.tolist() == [1, 1]


@pytest.mark.slow
def test_a_stopped_run_is_evaluated_on_a_folder(project: Path, tmp_path: Path) -> None:
    (info,) = list_runs(project / "runs")
    assert info.state == "stopped" and read_evaluation(info.folder) is None
    folder = write_test_folder(tmp_path / "new images")
    (folder / "c2" / "empty.png").write_bytes(b"")
    reports = []
    result, dataset = evaluate_run_folder(
        info.folder, data=folder, device="cpu", state=TaskState(reports.append), save=True
    )
    assert result.classes == CLASSES and result.checkpoint == "last.pt"
    assert result.data == "folder new images" and int(result.confusion.sum()) == 6
    assert result.confusion.sum(axis=1).tolist() == [3, 0, 3, 0]
    assert [m.support for m in result.per_class] == [3, 0, 3, 0]
    assert all(Path(m.path).parent.parent == folder for m in result.mistakes)
    assert [Path(s.path).name for s in dataset.skipped] == ["empty.png"]
    assert reports and reports[-1].what == "evaluating" and reports[-1].done == reports[-1].total
    saved = read_evaluation(info.folder, name="evaluation-new_images.json")
    assert saved is not None and saved.accuracy == result.accuracy and saved.data == result.data
    assert read_evaluation(info.folder) is None  # the run's own evaluation.json is not written


@pytest.mark.slow
def test_a_stopped_run_is_evaluated_on_its_validation_split(project: Path) -> None:
    (info,) = list_runs(project / "runs")
    result, _ = evaluate_run_folder(info.folder, device="cpu", save=True)
    assert result.data == "validation split" and result.checkpoint == "last.pt"
    assert int(result.confusion.sum()) == 4 * round(12 * 0.2)
    assert read_evaluation(info.folder).to_dict() == result.to_dict()


@pytest.mark.slow
def test_evaluation_stops_when_told(project: Path, tmp_path: Path) -> None:
    state = TaskState()
    state.stop()
    with pytest.raises(Cancelled):
        evaluate_run_folder(next((project / "runs").iterdir()), device="cpu", state=state)


@pytest.mark.slow
def test_a_standard_set_is_evaluated_on_its_official_test_split(tmp_path: Path) -> None:
    from tests import data_factory as make

    make.cifar10(tmp_path / "sets")
    training = check_training({"epochs": 1, "batch_size": 32, "workers": 0})
    project = Project(model=tiny_model(10, 32), name="c", training=training,
                      data=DataSettings(source="cifar10"), path=tmp_path / "p")  # fmt: skip
    project.save()
    result = Trainer(project, device="cpu", data_root=tmp_path / "sets").run()
    assert isinstance(result, Finished), result
    assert read_evaluation(Path(result.run_dir)).data == "validation split"
    tested = evaluate_run(project, device="cpu", data_root=tmp_path / "sets")
    assert tested.data == "official test split" and int(tested.confusion.sum()) == 10
    val = evaluate_run(project, device="cpu", data_root=tmp_path / "sets", split="val")
    assert int(val.confusion.sum()) == int(read_evaluation(Path(result.run_dir)).confusion.sum())


# The command line, in-process


@pytest.mark.slow
def test_cli_evaluates_a_stopped_run_on_a_folder(project: Path, tmp_path: Path, capsys) -> None:
    folder = write_test_folder(tmp_path / "holdout")
    (folder / "c0" / "text.png").write_text("no image")
    assert cli.main(["evaluate", str(project), "--data", str(folder), "--save", "--device",
                     "cpu"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert "(last.pt): accuracy" in out and "6 images of the folder holdout" in out
    assert "confusion matrix" in out and "precision" in out
    assert f"skipped {folder / 'c0' / 'text.png'}: not an image" in err
    (run,) = (project / "runs").iterdir()
    assert (run / "evaluation-holdout.json").is_file() and not (run / EVALUATION).exists()
    assert cli.main(["evaluate", str(project), "--data", str(folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["data"] == "folder holdout" and shown["classes"] == CLASSES
    assert [s["path"] for s in shown["skipped"]] == [str(folder / "c0" / "text.png")]


@pytest.mark.slow
def test_cli_evaluate_refuses_unknown_classes_in_one_line(project, tmp_path, capsys) -> None:
    folder = write_test_folder(tmp_path / "other", classes=("c0", "tench"))
    assert cli.main(["evaluate", str(project), "--data", str(folder)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not know the classes 'tench'" in err
    assert cli.main(["evaluate", str(project), "--split", "test"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no test split" in err


def test_cli_evaluate_help_says_which_split(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "official test split" in text and "evaluation-<FOLDER name>.json" in text


# The window


@pytest.fixture
def opened(window, project: Path, qtbot):
    window.resize(1500, 900)  # room for the results view's three panes in the screenshots
    assert window.open_project(project)
    qtbot.waitUntil(lambda: getattr(window.data_panel.dataset, "source", "") == "folder",
                    timeout=60000)  # fmt: skip
    panel = window.train_panel
    panel.tabs.setCurrentWidget(panel.results_view)
    panel.runs_view.select_runs([panel.runs_view.runs[0].name])
    return window


@pytest.mark.slow
def test_the_evaluate_button_evaluates_a_stopped_run(opened, qtbot) -> None:
    from PySide6.QtCore import Qt

    results = opened.train_panel.results_view
    bar = results.evaluate_bar
    assert "no evaluation yet (stopped): press Evaluate" in results.title.text()
    assert bar.evaluate_button.isEnabled() and bar.folder_button.isEnabled()
    results.grab().save("/tmp/evaluate-stopped-run-before.png")
    qtbot.mouseClick(bar.evaluate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "accuracy" in results.title.text(), timeout=60000)
    (run,) = opened.train_panel.runs_view.runs
    saved = read_evaluation(run.folder)
    assert saved is not None and saved.checkpoint == "last.pt"
    assert f"accuracy {saved.accuracy:.2%}" in results.title.text()
    assert "(last.pt)" in results.title.text() and "validation split" in results.title.text()
    assert results.confusion.rowCount() == 4 and not bar.busy()
    results.grab().save("/tmp/evaluate-stopped-run.png")


@pytest.mark.slow
def test_evaluate_on_a_folder_shows_it_by_name(opened, qtbot, tmp_path, monkeypatch) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    folder = write_test_folder(tmp_path / "holdout", classes=("c0", "c1", "c3"), per_class=4)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    results = opened.train_panel.results_view
    qtbot.mouseClick(results.evaluate_bar.folder_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "accuracy" in results.title.text(), timeout=60000)
    assert "12 images of the folder holdout" in results.title.text()
    assert [m.support for m in results.evaluation.per_class] == [4, 4, 0, 4]
    (run,) = opened.train_panel.runs_view.runs
    assert read_evaluation(run.folder) is None  # a folder's evaluation is shown, not saved
    off = [(m.true, m.predicted) for m in results.evaluation.mistakes]
    if off:  # a model stopped after one step makes mistakes: the gallery shows their files
        results.confusion.cellClicked.emit(*off[0])
        qtbot.waitUntil(lambda: results.gallery.count() > 0, timeout=10000)
        assert results.gallery.item(0).toolTip().endswith(")")
        assert ".png: true" in results.gallery.item(0).toolTip()
    results.grab().save("/tmp/evaluate-folder.png")


@pytest.mark.slow
def test_cancel_ends_an_evaluation(opened, qtbot, tmp_path) -> None:
    bar = opened.train_panel.results_view.evaluate_bar
    folder = write_test_folder(tmp_path / "big", classes=("c0",), per_class=400)
    assert bar.evaluate(folder)
    assert bar.cancel_button.isVisible()
    bar.cancel_button.click()
    qtbot.waitUntil(lambda: not bar.busy(), timeout=60000)
    assert bar.status.text() == "Evaluation cancelled." and bar.evaluate_button.isEnabled()
    assert not bar.cancel_button.isVisible()
