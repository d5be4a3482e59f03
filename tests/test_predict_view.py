"""The Predict view, driven as a user drives it (offscreen): drops, sorting, filters, double-click,
CSV export, cancel; and its place in the main window."""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import Qt

from cnnstudio.model_source import ModelSource
from tests.data_factory import rgb
from tests.test_inspector_view import drop_files
from tests.test_predict import CLASSES, mixed_folder, tiny_source
from ui.predict_table import RESULT_ROLE
from ui.predict_view import PredictView


def many_images(folder: Path, count: int, size: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rgb(i, (size, size))).save(folder / f"{i:03d}.png")
    return folder


def shown(view: PredictView) -> list:
    proxy = view.proxy
    return [proxy.data(proxy.index(row, 0), RESULT_ROLE) for row in range(proxy.rowCount())]


@pytest.fixture
def view(qtbot):
    made = PredictView()
    qtbot.addWidget(made)
    made.resize(900, 560)
    made.show()
    made.set_model_source(tiny_source)
    yield made
    made.shutdown()
    assert not made.busy(), "the prediction thread outlived the view"


def test_a_dropped_folder_fills_the_table_and_lists_unreadable_files(qtbot, view, tmp_path):
    files = mixed_folder(tmp_path / "images")
    with qtbot.waitSignal(view.predicted, timeout=60000) as got:
        assert drop_files(view, tmp_path / "images")
    predictions = got.args[0]
    assert view.table.model().rowCount() == 3 and len(predictions.results) == 3
    assert {r.path for r in shown(view)} == {files["rgb"], files["gray"], files["rgba"]}
    first = view.proxy.index(0, 0)
    assert not view.proxy.data(first, Qt.ItemDataRole.DecorationRole).isNull()  # thumbnail
    tooltip = view.proxy.data(first, Qt.ItemDataRole.ToolTipRole)
    assert "top 3" in tooltip and all(name in tooltip for name in CLASSES)
    assert view.unreadable.count() == 1
    assert "broken.png: not an image" in view.unreadable.item(0).text()
    assert view.unreadable_heading.text() == "1 file could not be read"
    assert view.model_label.text() == "tiny (test)" and view.count_label.text() == "3 of 3 shown"


def test_sorting_and_filtering_by_class_and_confidence(qtbot, view, tmp_path):
    with qtbot.waitSignal(view.predicted, timeout=60000):
        view.predict_paths([many_images(tmp_path / "many", 24)])
    header = view.table.horizontalHeader()
    confidence = [r.confidence for r in shown(view)]
    assert confidence == sorted(confidence)  # the doubtful ones first
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=header.rect().topLeft() + _section_centre(header, 2))  # fmt: skip
    assert [r.confidence for r in shown(view)] == sorted(confidence, reverse=True)
    view.table.sortByColumn(1, Qt.SortOrder.AscendingOrder)
    classes = [r.predicted for r in shown(view)]
    assert classes == sorted(classes)
    counts = {name: classes.count(name) for name in set(classes)}
    name = max(counts, key=counts.get)
    view.class_box.setCurrentIndex(view.class_box.findData(name))
    assert [r.predicted for r in shown(view)] == [name] * counts[name]
    assert view.count_label.text() == f"{counts[name]} of 24 shown"
    view.class_box.setCurrentIndex(0)
    middle = float(np.median(confidence))
    view.below_spin.setValue(100 * middle)
    threshold = view.below_spin.value() / 100
    assert shown(view) and all(r.confidence < threshold for r in shown(view))
    assert len(shown(view)) == sum(c < threshold for c in confidence)


def _section_centre(header, column: int):
    from PySide6.QtCore import QPoint

    return QPoint(header.sectionViewportPosition(column) + header.sectionSize(column) // 2, 5)


def test_double_click_asks_to_inspect_the_file_and_export_writes_the_rows_shown(
    qtbot, view, tmp_path
):
    with qtbot.waitSignal(view.predicted, timeout=60000):
        view.predict_paths([many_images(tmp_path / "many", 12)])
    confidence = sorted(r.confidence for r in shown(view))
    view.below_spin.setValue(100 * confidence[6])
    rows = shown(view)
    assert 2 <= len(rows) == sum(c < view.below_spin.value() / 100 for c in confidence) < 12
    rect = view.table.visualRect(view.proxy.index(1, 1))
    with qtbot.waitSignal(view.inspect_requested) as got:
        # a real double click: press, release, then the double-click event (an item view
        # opens the item pressed first)
        qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert got.args[0] == rows[1].path and rows[1].predicted in got.args[1]
    target = tmp_path / "shown.csv"
    assert view.export_csv(target) == len(rows)
    written = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [row["path"] for row in written] == [str(r.path) for r in rows]
    assert [float(row["confidence"]) for row in written] == pytest.approx(
        [r.confidence for r in rows], abs=1e-6
    )


class _Gate(torch.nn.Module):
    """The tiny model, held at its first batch until the test opens the gate."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.entered, self.opened = threading.Event(), threading.Event()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        self.opened.wait(30)
        return self.model(x)


def test_cancel_stops_and_keeps_the_table(qtbot, view, tmp_path):
    with qtbot.waitSignal(view.predicted, timeout=60000):
        mixed_folder(tmp_path / "few")
        view.predict_paths([tmp_path / "few"])
    base = tiny_source()
    gate = _Gate(base.model)
    view.set_model_source(ModelSource(model=gate, input_shape=base.input_shape, classes=CLASSES,
                                      mean=base.mean, std=base.std))  # fmt: skip
    assert "Predict again" in view.message.text()
    view.predict_paths([many_images(tmp_path / "many", 70, size=8)])  # two batches
    assert view.cancel_button.isVisible() and view.progress.isVisible()
    assert gate.entered.wait(30)
    with qtbot.waitSignal(view.failed, timeout=60000) as got:
        qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
        gate.opened.set()
    assert got.args[0] == "predicting cancelled" and view.message.text() == "Cancelled."
    assert view.model.rowCount() == 3 and not view.cancel_button.isVisible()


def test_without_a_model_the_view_says_how_to_get_one(qtbot, view, tmp_path):
    view.set_model_source(None)
    mixed_folder(tmp_path / "images")
    with qtbot.waitSignal(view.failed, timeout=60000) as got:
        view.predict_paths([tmp_path / "images"])
    assert "no model to predict with yet" in got.args[0]
    assert view.message.isVisible() and "train one" in view.message.text()


@pytest.mark.slow
def test_the_window_has_a_predict_dock_whose_rows_open_the_inspector(qtbot, window, tmp_path):
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    assert window.predict_dock.toggleViewAction() in view_menu.actions()
    assert set(window.tabifiedDockWidgets(window.predict_dock)) >= {window.inspect_dock,
                                                                     window.train_dock}  # fmt: skip
    window.inspector.set_model_source(tiny_source)
    image = mixed_folder(tmp_path / "images")["rgb"]
    with qtbot.waitSignal(window.inspector.inspected, timeout=60000):
        window.predict_view.inspect_requested.emit(image, "rgb.png")
    assert window.inspect_dock.isVisible()
