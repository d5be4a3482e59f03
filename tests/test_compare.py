"""Compare (ui/training/compare_dialog.py), opened from the Runs tab on run folders written by
hand: settings side by side with the differences marked, curves named by what differs, per-class
results side by side, a setting against a metric with one point per run."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QColor

from tests.test_run_table import fake_run
from ui.theme import colours
from ui.training.compare_dialog import CompareDialog
from ui.training.runs_view import RunsView

NAMES = ["20261201-0900", "20261201-1000", "20261201-1100"]


@pytest.fixture
def dialog(qtbot, tmp_path: Path) -> CompareDialog:
    fake_run(tmp_path, NAMES[0], [0.5, 0.7], per_class_f1=[0.6, 0.8], lr=1e-3, optimizer="sgd")
    fake_run(tmp_path, NAMES[1], [0.8, 0.75], per_class_f1=[0.9, 0.7], lr=3e-3, optimizer="sgd")
    fake_run(tmp_path, NAMES[2], [0.6], state="stopped", lr=1e-2, optimizer="adamw")
    fake_run(tmp_path, "20261201-1200", [0.1], lr=1e-1)  # not selected
    view = RunsView()
    qtbot.addWidget(view)
    view.set_runs_dir(tmp_path)
    assert not view.compare_button.isEnabled()
    view.select_runs(NAMES)
    assert view.compare_button.isEnabled()
    view.compare_button.click()
    made = view.compare_dialog
    assert made is not None and made.isVisible()
    return made


def test_settings_side_by_side_with_the_differences_marked(dialog: CompareDialog) -> None:
    table = dialog.settings
    assert [table.horizontalHeaderItem(c).text() for c in range(3)] == NAMES[::-1]  # as shown
    assert set(dialog.differing_lines()) == {"lr", "optimizer"}  # batch size, hflip: the same
    lines = {table.verticalHeaderItem(r).text(): r for r in range(table.rowCount())}
    assert "batch_size" in lines and "≠ lr" in lines and "data" in lines
    lr = [table.item(lines["≠ lr"], c) for c in range(3)]
    assert [item.text() for item in lr] == ["0.01", "3e-3", "1e-3"]
    assert all(item.font().bold() for item in lr)
    assert lr[0].foreground().color() == QColor(colours().accent)
    same = table.item(lines["batch_size"], 0)
    assert not same.font().bold()


def test_curves_are_overlaid_and_named_by_what_differs(dialog: CompareDialog) -> None:
    names = [item.name() for item in dialog.curves.overlays if item.name()]
    assert len(names) == 3
    assert names[0].startswith(NAMES[2]) and "lr 0.01" in names[0] and "adamw" in names[0]
    legend = dialog.curves.legend.text()
    assert all(legend.count(name) == 1 for name in NAMES)
    assert "validation" not in legend  # no entries for a live run: only these runs
    assert not dialog.curves.csv_button.isVisibleTo(dialog)


def test_per_class_results_side_by_side(dialog: CompareDialog) -> None:
    table = dialog.classes
    assert (table.rowCount(), table.columnCount()) == (2, 3)
    assert [table.verticalHeaderItem(r).text() for r in range(2)] == ["a", "b"]
    shown = [[table.item(r, c).text() for c in range(3)] for r in range(2)]
    assert shown == [["–", "0.900", "0.600"], ["–", "0.700", "0.800"]]
    assert table.item(0, 1).font().bold() and not table.item(0, 2).font().bold()
    assert table.item(1, 2).font().bold()
    assert NAMES[2] in dialog.class_note.text()  # the run without an evaluation
    dialog.class_metric_box.setCurrentIndex(dialog.class_metric_box.findData("recall"))
    assert table.item(0, 1).text() == "0.900"


def test_the_scatter_has_one_point_per_run(dialog: CompareDialog) -> None:
    choices = [dialog.x_box.itemText(i) for i in range(dialog.x_box.count())]
    assert set(choices[:2]) == {"lr", "optimizer"} and "batch_size" in choices  # differing first
    dialog.x_box.setCurrentText("lr")
    points = dialog.points()
    assert sorted(name for _, _, name in points) == sorted(NAMES)
    by_name = {name: (x, y) for x, y, name in points}
    assert by_name[NAMES[1]][1] == pytest.approx(0.8)  # best val. accuracy
    assert by_name[NAMES[0]][0] < by_name[NAMES[1]][0] < by_name[NAMES[2]][0]
    dialog.x_box.setCurrentText("optimizer")  # text: a category axis
    ticks = dialog.scatter_plot.getAxis("bottom")._tickLevels
    assert [label for _, label in ticks[0]] == ["adamw", "sgd"]
    assert sorted(x for x, _, _ in dialog.points()) == [0.0, 1.0, 1.0]
    dialog.y_box.setCurrentText("final val. loss")
    assert sorted(round(y, 3) for _, y, _ in dialog.points()) == [0.25, 0.3, 0.4]


def test_hovering_the_curves_gives_each_runs_value_there(dialog: CompareDialog, qtbot) -> None:
    from PySide6.QtCore import QPointF

    curves = dialog.curves
    dialog.tabs.setCurrentWidget(curves)
    plot = curves.acc_plot

    def at():
        return plot.vb.mapViewToScene(QPointF(1.9, 0.5))

    qtbot.waitUntil(lambda: plot.sceneBoundingRect().contains(at()))  # laid out
    curves.plots.scene().sigMouseMoved.emit(at())
    text = curves.hover_label.text()
    assert text.startswith("epoch 2: ")
    assert f"{NAMES[1]} 75.00%" in text and f"{NAMES[0]} 70.00%" in text
    assert NAMES[2] not in text  # it stopped after one epoch


def test_per_class_rows_take_the_names_the_project_shows(qtbot, tmp_path: Path) -> None:
    from cnnstudio.data import DataSettings

    for name, f1 in zip(NAMES[:2], ([0.6, 0.8], [0.9, 0.7]), strict=True):
        fake_run(tmp_path, name, [0.5], per_class_f1=f1, lr=1e-3 if f1[0] < 0.7 else 3e-3)
    view = RunsView()
    qtbot.addWidget(view)
    view.project_data = lambda: DataSettings(source="sample", class_names={"a": "apple"})
    view.set_runs_dir(tmp_path)
    view.select_runs(NAMES[:2])
    view.compare_button.click()
    table = view.compare_dialog.classes
    assert [table.verticalHeaderItem(r).text() for r in range(2)] == ["apple", "b"]
    view.compare_dialog.close()
