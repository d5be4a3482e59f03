"""The studio window, driven as a user drives it (offscreen): drops, drags, keys, forms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray, QMimeData, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from cnnstudio import create_model_spec, load_project
from ui.editor.canvas import BLOCK_H, BLOCK_W, GAP, MIME_KIND, MIME_MOVE, block_top
from ui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction | Qt.DropAction.LinkAction


def drag_event(cls, point: QPointF, mime: QMimeData):
    """A drag enter/move event: newer PySide6 takes the position as QPointF, older as QPoint."""
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    try:
        return cls(point, ACTIONS, mime, buttons, modifiers)
    except TypeError:
        return cls(point.toPoint(), ACTIONS, mime, buttons, modifiers)


def drop(view, mime_type: str, payload: str, scene_point: QPointF) -> None:
    """Simulate dragging ``payload`` over the canvas and releasing it at ``scene_point``."""
    mime = QMimeData()
    mime.setData(mime_type, QByteArray(payload.encode()))
    point = QPointF(view.mapFromScene(scene_point))
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    for event in (drag_event(QDragEnterEvent, point, mime),
                  drag_event(QDragMoveEvent, point, mime),
                  QDropEvent(point, ACTIONS, mime, buttons, modifiers)):  # fmt: skip
        QApplication.sendEvent(view.viewport(), event)


def between(index: int) -> QPointF:
    """The canvas point just above block ``index`` (where a drop inserts before it)."""
    return QPointF(BLOCK_W / 2, block_top(index) - GAP / 2)


def ids(window: MainWindow) -> list[str]:
    return [n.id for n in window.document.spec.nodes]


def settle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.document.analysis_is_current)


def test_palette_lists_every_kind_by_group_and_filters(window: MainWindow) -> None:
    from cnnstudio import list_layer_kinds

    palette = window.palette_panel
    assert set(palette.kind_items()) == set(list_layer_kinds())
    palette.search.setText("norm")
    assert set(palette.visible_kinds()) == {"BatchNorm2d", "BatchNorm1d"}
    palette.search.clear()
    assert len(palette.visible_kinds()) == len(list_layer_kinds())
    assert palette.kind_items()["Conv2d"].toolTip(0) == (
        "2-D convolution: slides out_channels learned filters over the feature map."
    )


def test_drop_from_palette_inserts_at_the_position(qtbot, window: MainWindow) -> None:
    before = ids(window)
    mime = window.palette_panel.tree.mimeData([window.palette_panel.kind_items()["GELU"]])
    assert bytes(mime.data(MIME_KIND)).decode() == "GELU"
    drop(window.canvas, MIME_KIND, "GELU", between(2))
    assert ids(window) == [*before[:2], "gelu1", *before[2:]]
    assert window.canvas.selected_ids() == ["gelu1"]
    settle(qtbot, window)
    assert window.canvas.blocks["gelu1"].info.output_shape == (32, 32, 32)


def test_drag_a_block_to_reorder(window: MainWindow) -> None:
    before = ids(window)
    drop(window.canvas, MIME_MOVE, "drop1", between(0))
    assert ids(window) == ["drop1", *[i for i in before if i != "drop1"]]
    window.undo_action.trigger()
    assert ids(window) == before


def test_delete_and_undo_restore_the_spec(qtbot, window: MainWindow) -> None:
    original = window.document.spec
    window.canvas.select(["bn1", "relu1"])
    window.delete_action.trigger()
    assert "bn1" not in ids(window) and "relu1" not in ids(window)
    window.undo_action.trigger()
    assert window.document.spec == original
    window.redo_action.trigger()
    assert len(ids(window)) == len(original.nodes) - 2


def test_duplicate_with_ctrl_d(window: MainWindow) -> None:
    window.canvas.select(["conv2"])
    window.duplicate_action.trigger()
    assert ids(window)[ids(window).index("conv2") + 1] == "conv5"
    assert window.document.spec.node("conv5").params == window.document.spec.node("conv2").params


def test_editing_a_property_updates_spec_and_shapes(qtbot, window: MainWindow) -> None:
    window.canvas.select(["conv1"])
    editor = window.property_panel.editors["out_channels"]
    editor.setValue(20)
    editor.setValue(24)
    assert window.document.spec.node("conv1").params["out_channels"] == 24
    assert window.document.undo_stack.count() == 1, "a spin-box drag is one undo step"
    settle(qtbot, window)
    assert window.canvas.blocks["conv1"].info.output_shape == (24, 32, 32)
    assert window.canvas.blocks["bn1"].info.output_shape == (24, 32, 32)
    window.undo_action.trigger()
    assert window.document.spec.node("conv1").params["out_channels"] == 32


def test_a_layer_that_does_not_fit_turns_red_with_the_message(qtbot, window: MainWindow) -> None:
    window.canvas.select(["fc1"])
    window.property_panel.editors["in_features"].setValue(1000)
    settle(qtbot, window)
    block = window.canvas.blocks["fc1"]
    assert block.has_error
    assert "Linear expects 1000 input features but receives 4096 from flatten1" in block.toolTip()
    assert "set in_features to 4096 or auto" in window.property_panel.problems.text()
    assert "1 problem" in window.totals_label.text()


def measured(qtbot, window: MainWindow) -> None:
    settle(qtbot, window)
    # the first measurement in a process loads torch's meta kernels: seconds on a busy machine
    qtbot.waitUntil(lambda: window.document.activations is not None, timeout=60000)


def test_activation_memory_is_shown_per_layer_and_in_total(qtbot, window: MainWindow) -> None:
    measured(qtbot, window)
    assert "980.00 KiB activations per image" in window.totals_label.text()
    window.canvas.select(["conv1"])  # keeps its 3×32×32 input image for backward
    assert "this layer keeps 12.00 KiB per image" in window.property_panel.memory.text()
    window.property_panel.editors["out_channels"].setValue(16)
    measured(qtbot, window)
    assert "activations per image" in window.totals_label.text()
    assert "980.00 KiB" not in window.totals_label.text()
    window.canvas.select(["fc1"])
    window.property_panel.editors["in_features"].setValue(1000)  # no longer fits: not built
    settle(qtbot, window)
    assert window.document.activations is None
    assert "activations not measured (the model is not valid)" in window.totals_label.text()
    assert window.property_panel.memory.text() == ""
    window.property_panel.grab().save("/tmp/numbers-properties.png")


def test_a_refused_value_says_why_and_changes_nothing(window: MainWindow) -> None:
    window.canvas.select(["conv1"])
    before = window.document.spec
    combo = window.property_panel.editors["padding"]
    combo.setCurrentText("-3")
    combo.lineEdit().editingFinished.emit()
    assert window.document.spec == before
    assert "padding must be an integer from 0 to 64" in window.property_panel.message.text()


def test_connect_a_merge_input_by_dragging_from_a_port(qtbot, window: MainWindow) -> None:
    drop(window.canvas, MIME_KIND, "Add", between(3))
    assert ids(window)[3] == "add1"
    canvas, viewport = window.canvas, window.canvas.viewport()
    start = canvas.mapFromScene(canvas.wiring.output_port("bn1"))
    end = canvas.mapFromScene(QPointF(BLOCK_W / 2, block_top(3) + BLOCK_H / 3))
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, end)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    assert window.document.spec.node("add1").inputs == ("relu1", "bn1")
    settle(qtbot, window)
    assert window.canvas.blocks["add1"].info.output_shape == (32, 32, 32)


def test_templates_replace_the_model_undoably(window: MainWindow) -> None:
    original = window.document.spec
    window.apply_template("resnet-small")
    assert window.document.spec == create_model_spec("resnet-small", 10, (3, 32, 32))
    window.undo_action.trigger()
    assert window.document.spec == original


def test_save_and_reopen_give_the_same_project(qtbot, window: MainWindow, tmp_path: Path,
                                               app_settings) -> None:  # fmt: skip
    window.canvas.select(["conv1"])
    window.property_panel.editors["out_channels"].setValue(48)
    assert window.document.dirty and window.isWindowModified()
    window.document.save(tmp_path / "p")
    assert not window.document.dirty
    assert load_project(tmp_path / "p").model == window.document.spec
    other = MainWindow(settings=app_settings)
    qtbot.addWidget(other)
    assert other.open_project(tmp_path / "p")
    assert other.document.spec == window.document.spec
    assert app_settings.recent_projects() == [str(tmp_path / "p")]
    other.document.shutdown()
    other.data_panel.shutdown()


def test_unsaved_changes_prompt_before_closing(window: MainWindow, monkeypatch) -> None:
    asked = []

    def answer(*args, **kwargs):
        asked.append(args[1])
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", answer)
    window.canvas.select(["relu1"])
    window.delete_action.trigger()
    assert not window.close()
    assert asked == ["Unsaved changes"] and window.isVisible()


def test_data_view_lists_the_classes_of_a_folder(qtbot, window: MainWindow, tmp_path) -> None:
    from tests import data_factory as make

    root = make.image_folder(tmp_path / "pets", classes=("cat", "dog", "owl"), per_class=4)
    make.add_bad_files(root)
    window.data_panel.choose_folder(root)
    qtbot.waitUntil(lambda: window.data_panel.summary is not None
                    and window.data_panel.summary.classes == ["cat", "dog", "owl"],
                    timeout=60000)  # fmt: skip
    table = window.data_panel.table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["cat", "dog", "owl"]
    assert "cut.jpg" in window.data_panel.warnings.text()
    assert window.document.project.data.source == "folder" and window.document.dirty
    qtbot.waitUntil(lambda: not window.data_panel.sample_labels[0].pixmap().isNull(), timeout=30000)


def test_a_tiny_folder_brings_its_batch_size_to_the_train_view(qtbot, window: MainWindow,
                                                               tmp_path: Path) -> None:  # fmt: skip
    from tests import data_factory as make

    root = make.image_folder(tmp_path / "few", classes=("a", "b"), per_class=10)
    window.data_panel.choose_folder(root)
    qtbot.waitUntil(lambda: window.document.project.data.source == "folder", timeout=60000)
    assert window.document.project.training["batch_size"] == 16
    assert window.train_panel.form.editors["batch_size"].value() == 16


@pytest.mark.slow
def test_main_self_test_passes(tmp_path: Path) -> None:
    env = {"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
           "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--self-test"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "self-test passed" in result.stdout


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_both_themes_draw_the_canvas(window: MainWindow, theme: str) -> None:
    window.set_theme(theme)
    image = window.canvas.grab().toImage()
    assert image.width() > 100
    background = image.pixelColor(5, image.height() - 5)
    assert (background.lightness() < 80) == (theme == "dark")


def test_theme_menu_marks_the_current_theme_and_the_data_chart_follows(window: MainWindow) -> None:
    def checked() -> list[str]:
        return [a.data() for a in window.theme_actions.actions() if a.isChecked()]

    assert checked() == [window.settings.theme()]
    for theme in ("dark", "light"):
        window.set_theme(theme)
        assert checked() == [theme]
        chart = window.data_panel.chart.grab().toImage()
        corner = chart.pixelColor(chart.width() - 3, 3)  # the chart's background, past the bars
        assert (corner.lightness() < 80) == (theme == "dark"), theme


@pytest.mark.slow
def test_backbone_chooser_lists_the_networks_and_sets_one(qtbot, window: MainWindow) -> None:
    from ui.editor.backbone_dialog import BackboneDialog
    from ui.editor.commands import SetBackboneCommand

    dialog = BackboneDialog(window)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.loaded, timeout=60000):
        pass
    names = [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())]
    assert {"vgg16", "resnet50", "efficientnet_b0", "mobilenet_v3_small", "vit_b_16"} <= set(names)
    top1 = [dialog.table.item(r, 2).value for r in range(dialog.table.rowCount())]
    assert top1 == sorted(top1, reverse=True), "sorted by ImageNet top-1"
    row = names.index("resnet50")
    assert dialog.table.item(row, 1).text() == "25.6" and dialog.table.item(row, 7).text() == "no"
    dialog.table.selectRow(row)
    dialog.buttons.accepted.emit()
    assert dialog.chosen == "resnet50"
    window.document.push(SetBackboneCommand(window.document, "resnet50", 224))
    spec = window.document.spec
    assert spec.nodes[0].kind == "Backbone" and spec.nodes[0].params["name"] == "resnet50"
    assert spec.input_shape == (3, 224, 224)


def test_data_view_draws_a_bar_per_class(window: MainWindow) -> None:
    bars = window.data_panel.bars.opts
    assert list(bars["width"]) == [500] * 10 and len(bars["y"]) == 10


def test_a_folder_dropped_on_the_window_becomes_the_data(qtbot, window: MainWindow,
                                                          tmp_path: Path) -> None:  # fmt: skip
    from PySide6.QtCore import QUrl

    from tests import data_factory as make

    root = make.image_folder(tmp_path / "birds", classes=("crow", "wren"), per_class=3)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(root))])
    point = QPointF(200, 200)
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = drag_event(QDragEnterEvent, point, mime)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(point, ACTIONS, mime, buttons, modifiers))
    qtbot.waitUntil(lambda: window.data_panel.summary is not None
                    and window.data_panel.summary.classes == ["crow", "wren"],
                    timeout=60000)  # fmt: skip
    assert window.document.project.data.path == str(root)
