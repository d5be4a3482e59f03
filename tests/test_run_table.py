"""The Runs tab's run table (ui/training/run_table.py, runs_view.py) on run folders written by
hand: the settings that differ as columns, sorting, the text and state filters, the best run
marked, tags and notes saved with the run and read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QInputDialog, QLineEdit

from cnnstudio import runs
from cnnstudio.metrics import ClassMetrics, Evaluation
from cnnstudio.train_settings import check_training
from ui.training.runs_view import RunsView

DISPLAY = Qt.ItemDataRole.DisplayRole


def fake_run(
    runs_dir: Path,
    name: str,
    accuracies: list[float],
    state: str = "finished",
    per_class_f1: list[float] | None = None,
    **training,
) -> Path:
    """A run folder as training leaves it: settings, state, epoch records, and an evaluation
    with the classes' F1 when ``per_class_f1`` is given."""
    folder = runs_dir / name
    folder.mkdir(parents=True)
    project = {"data": {"source": "sample", "val_fraction": 0.2, "augment": {"hflip": True}}}
    settings = {"project": project, "training": check_training(training), "started": name,
                "classes": ["a", "b"], "images": {"train": 40, "val": 10}}  # fmt: skip
    runs.write_settings(folder, settings)
    runs.write_state(folder, state=state, epochs_done=len(accuracies))
    lines = [{"type": "epoch", "epoch": i + 1, "global_step": 10 * (i + 1), "val_accuracy": acc,
              "val_loss": 1 - acc, "seconds": 2.0, "train_seconds": 1.0, "train_images": 40}
             for i, acc in enumerate(accuracies)]  # fmt: skip
    steps = [{"type": "step", "global_step": s, "loss": 2.0 / s} for s in range(1, 10 * len(lines))]
    (folder / runs.METRICS).write_text("".join(json.dumps(x) + "\n" for x in steps + lines))
    if per_class_f1 is not None:
        metrics = [ClassMetrics(c, f, f, f, 5) for c, f in zip("ab", per_class_f1, strict=True)]
        evaluation = Evaluation(["a", "b"], accuracies[-1], 0.5, np.eye(2, dtype=np.int64),
                                metrics, [])  # fmt: skip
        runs.write_evaluation(folder, evaluation)
    return folder


@pytest.fixture
def three_runs(tmp_path: Path) -> Path:
    fake_run(tmp_path, "20261201-0900", [0.5, 0.7], lr=1e-3, batch_size=32)
    fake_run(tmp_path, "20261201-1000", [0.8, 0.75], lr=3e-3, batch_size=32)
    fake_run(tmp_path, "20261201-1100", [0.6], state="stopped", lr=1e-2, batch_size=64)
    return tmp_path


@pytest.fixture
def view(qtbot, three_runs: Path) -> RunsView:
    made = RunsView()
    qtbot.addWidget(made)
    made.resize(1400, 380)
    made.set_runs_dir(three_runs)
    made.show()
    return made


def column_texts(view: RunsView, title: str) -> list[str]:
    column = view.model.column(title)
    model = view.table.model()
    return [model.index(row, column).data(DISPLAY) for row in range(model.rowCount())]


def names(view: RunsView) -> list[str]:
    return [row.info.name for row in view.rows()]


def test_every_differing_setting_is_a_column_and_the_best_run_is_starred(view: RunsView) -> None:
    headers = [view.model.headerData(c, Qt.Orientation.Horizontal)
               for c in range(view.model.columnCount())]  # fmt: skip
    assert headers[:5] == ["run", "state", "epochs", "best acc", "data"]
    assert {"lr", "batch_size"} <= set(headers) and "hflip" not in headers  # same in every run
    assert names(view) == ["20261201-1100", "20261201-1000", "20261201-0900"]  # newest first
    assert column_texts(view, "lr") == ["0.01", "3e-3", "1e-3"]
    assert column_texts(view, "best acc") == ["60.00%", "80.00%", "70.00%"]
    first = column_texts(view, "run")
    assert [text.startswith("★") for text in first] == [False, True, False]
    model = view.table.model()
    bold = [bool(model.index(r, 3).data(Qt.ItemDataRole.FontRole)) for r in range(3)]
    assert bold == [False, True, False]
    assert "best validation accuracy" in model.index(1, 0).data(Qt.ItemDataRole.ToolTipRole)


def test_clicking_a_header_sorts_by_its_values(view: RunsView) -> None:
    header = view.table.horizontalHeader()
    lr = view.model.column("lr")
    middle = header.sectionViewportPosition(lr) + header.sectionSize(lr) // 2
    QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(middle, 5))
    order = column_texts(view, "lr")
    assert order in (["1e-3", "3e-3", "0.01"], ["0.01", "3e-3", "1e-3"])  # by value, not text
    QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(middle, 5))
    assert column_texts(view, "lr") == order[::-1]
    view.table.sortByColumn(view.model.column("best acc"), Qt.SortOrder.DescendingOrder)
    assert names(view)[0] == "20261201-1000"
    view.table.sortByColumn(view.model.column("time"), Qt.SortOrder.AscendingOrder)
    assert column_texts(view, "time") == ["2.0 s", "4.0 s", "4.0 s"]


def test_the_text_and_state_filters_keep_the_matching_runs(view: RunsView, qtbot) -> None:
    qtbot.keyClicks(view.filter_edit, "3e-3")
    assert names(view) == ["20261201-1000"]
    assert "1 of 3 runs shown" in view.hint.text()
    view.filter_edit.clear()
    states = [view.state_box.itemText(i) for i in range(view.state_box.count())]
    assert states == ["any state", "stopped", "finished"]
    view.state_box.setCurrentIndex(view.state_box.findData("finished"))
    assert names(view) == ["20261201-1000", "20261201-0900"]
    qtbot.keyClicks(view.filter_edit, "64")  # batch 64 is the stopped run's
    assert names(view) == []
    view.state_box.setCurrentIndex(0)
    assert names(view) == ["20261201-1100"]


def test_a_note_typed_in_its_cell_is_saved_with_the_run(view: RunsView, qtbot) -> None:
    row = names(view).index("20261201-0900")
    index = view.table.model().index(row, view.model.column("note"))
    assert "Undo does not" in index.data(Qt.ItemDataRole.ToolTipRole)
    view.table.scrollTo(index)
    point = view.table.visualRect(index).center()
    QTest.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=point)
    QTest.mouseDClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(lambda: isinstance(QApplication.focusWidget(), QLineEdit))
    editor = QApplication.focusWidget()
    assert editor is not view.filter_edit
    qtbot.keyClicks(editor, "too slow a rate")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on its next event loop
    folder = view.runs_dir / "20261201-0900"
    qtbot.waitUntil(lambda: runs.read_notes(folder).note == "too slow a rate")
    view.refresh()
    assert column_texts(view, "note")[names(view).index("20261201-0900")] == "too slow a rate"


def test_tags_are_set_for_the_selected_runs_and_filter(view: RunsView, monkeypatch) -> None:
    asked = []

    def answer(parent, title, label, **kwargs):
        asked.append(label)
        return "baseline, lr, baseline", True

    monkeypatch.setattr(QInputDialog, "getText", answer)
    view.select_runs(["20261201-0900", "20261201-1000"])
    assert "Undo" in view.tags_button.toolTip()
    view.tags_button.click()
    assert len(asked) == 1 and "not in the project" in asked[0]
    for name in ("20261201-0900", "20261201-1000"):
        assert runs.read_notes(view.runs_dir / name).tags == ("baseline", "lr")
    view.refresh()
    view.filter_edit.setText("BASELINE")
    assert names(view) == ["20261201-1000", "20261201-0900"]


def test_a_note_that_cannot_be_saved_says_why_in_one_line(view: RunsView) -> None:
    import shutil

    shutil.rmtree(view.runs_dir / "20261201-0900")
    row = names(view).index("20261201-0900")
    index = view.table.model().index(row, view.model.column("note"))
    assert not view.table.model().setData(index, "lost")
    assert view.hint.text().startswith("Notes of run 20261201-0900 not saved: no run folder")
    assert "\n" not in view.hint.text()


def test_selection_follows_the_runs_through_sorting_and_refresh(view: RunsView, qtbot) -> None:
    with qtbot.waitSignal(view.selection_changed) as changed:
        view.select_runs(["20261201-0900", "20261201-1100"])
    assert [r.name for r in changed.args[0]] == ["20261201-1100", "20261201-0900"]
    assert view.compare_button.isEnabled() and view.delete_button.isEnabled()
    view.table.sortByColumn(view.model.column("lr"), Qt.SortOrder.AscendingOrder)
    assert [r.name for r in view.selected()] == ["20261201-0900", "20261201-1100"]
    fake_run(view.runs_dir, "20261201-1200", [0.9], lr=3e-2)
    view.refresh()
    assert [r.name for r in view.selected()] == ["20261201-0900", "20261201-1100"]
    assert len(view.runs) == 4 and column_texts(view, "run")[-1].startswith("★")
    view.select_runs(["20261201-1200"])
    assert not view.compare_button.isEnabled()


def test_a_row_is_read_again_only_when_its_run_changed(tmp_path: Path) -> None:
    from cnnstudio import run_table

    first = fake_run(tmp_path, "20261201-0001", [0.5, 0.6])
    fake_run(tmp_path, "20261201-0002", [0.4])
    before = {row.info.name: row for row in run_table.run_table(tmp_path).rows}
    again = {row.info.name: row for row in run_table.run_table(tmp_path).rows}
    assert all(again[name] is before[name] for name in before)  # nothing changed: kept
    record = {"type": "epoch", "epoch": 3, "global_step": 30, "val_accuracy": 0.9, "val_loss": 0.1}
    with (first / runs.METRICS).open("a") as log:
        log.write(json.dumps(record) + "\n")
    runs.set_notes(first, tags=["kept"])
    after = {row.info.name: row for row in run_table.run_table(tmp_path).rows}
    assert after["20261201-0001"].metrics["best_val_accuracy"] == 0.9
    assert after["20261201-0001"].notes.tags == ("kept",)
    assert after["20261201-0002"] is before["20261201-0002"]
