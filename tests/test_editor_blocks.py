"""Blocks in the editor, driven as a user drives them: make a block of a selection (Ctrl+G),
open and close a use on the canvas, edit an inner layer (every use changes), make unique,
ungroup, insert a block from the palette; each one undo step."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox

from ui.editor.canvas import MIME_BLOCK, TOGGLE_RECT, BlockFrameItem
from ui.main_window import MainWindow


def ids(window: MainWindow) -> list[str]:
    return [n.id for n in window.document.spec.nodes]


def settle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.document.analysis_is_current)


def click_scene(qtbot, window: MainWindow, scene_point) -> None:
    canvas = window.canvas
    canvas.centerOn(scene_point)
    qtbot.mouseClick(
        canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(scene_point)
    )


@pytest.fixture
def named(monkeypatch):
    """The name typed into the block-name dialog."""
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("cbr", True))


def make_two_uses(qtbot, window: MainWindow) -> None:
    """conv1, bn1, relu1 made the block 'cbr' (Ctrl+G), its use duplicated: cbr1, cbr2."""
    window.canvas.select(["conv1", "bn1", "relu1"])
    window.block_actions.make_action.trigger()
    window.canvas.select(["cbr1"])
    window.duplicate_action.trigger()
    assert ids(window)[:2] == ["cbr1", "cbr2"]
    settle(qtbot, window)


def test_make_a_block_from_the_selection_and_undo(qtbot, window: MainWindow, named) -> None:
    original = window.document.spec
    window.canvas.select(["conv1", "bn1", "relu1"])
    window.block_actions.make_action.trigger()
    assert ids(window)[0] == "cbr1" and "conv1" not in ids(window)
    assert [n.id for n in window.document.spec.blocks["cbr"].nodes] == ["conv1", "bn1", "relu1"]
    assert window.canvas.selected_ids() == ["cbr1"]
    assert window.document.undo_stack.count() == 1
    settle(qtbot, window)
    box = window.canvas.blocks["cbr1"]
    assert box.text.title == "cbr" and box.text.describe == "block"
    assert box.info.output_shape == (32, 32, 32) and box.text.shape == "32×32×32"
    assert window.document.analysis.valid
    assert "cbr" in window.palette_panel.block_items()
    window.grab().save("/tmp/blocks-collapsed-window.png")
    window.undo_action.trigger()
    assert window.document.spec == original


def test_a_selection_with_two_inputs_is_refused_saying_which(window, monkeypatch, named) -> None:
    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text: said.append(text))
    before = window.document.spec
    window.canvas.select(["conv1", "relu1"])
    window.block_actions.make_action.trigger()
    assert window.document.spec == before
    assert "one input" in said[0] and "relu1 takes bn1" in said[0]


def test_open_and_close_a_use_on_the_canvas(qtbot, window: MainWindow, named) -> None:
    make_two_uses(qtbot, window)
    canvas = window.canvas
    box = canvas.blocks["cbr1"]
    click_scene(qtbot, window, box.mapToScene(TOGGLE_RECT.center()))
    assert canvas.is_expanded("cbr1") and not canvas.is_expanded("cbr2")
    assert {"cbr1.conv1", "cbr1.bn1", "cbr1.relu1", "cbr2"} <= set(canvas.blocks)
    assert "cbr1" not in canvas.blocks
    assert canvas.blocks["cbr1.conv1"].info.output_shape == (32, 32, 32)
    frames = [i for i in canvas.scene().items() if isinstance(i, BlockFrameItem)]
    assert [f.use_id for f in frames] == ["cbr1"] and "used 2×" in frames[0].label
    for inner in ("cbr1.conv1", "cbr1.relu1"):
        assert frames[0].rect.contains(canvas.blocks[inner].sceneBoundingRect())
    assert window.document.undo_stack.count() == 2, "opening a block is no edit"
    window.grab().save("/tmp/blocks-expanded-window.png")
    click_scene(qtbot, window, frames[0].toggle_rect().center())
    assert not canvas.is_expanded("cbr1") and "cbr1" in canvas.blocks


def test_editing_an_inner_layer_changes_every_use(qtbot, window: MainWindow, named) -> None:
    make_two_uses(qtbot, window)
    window.canvas.set_expanded("cbr1", True)
    window.canvas.select(["cbr1.conv1"])
    panel = window.property_panel
    assert "Edits the block 'cbr' — used 2 times" in panel.help.text()
    panel.editors["out_channels"].setValue(16)
    panel.editors["out_channels"].setValue(20)
    assert window.document.spec.blocks["cbr"].nodes[0].params["out_channels"] == 20
    assert window.document.undo_stack.count() == 3, "a spin-box drag is one undo step"
    settle(qtbot, window)
    assert window.document.analysis.layer("cbr2.conv1").output_shape == (20, 32, 32)
    assert window.canvas.blocks["cbr2"].info.output_shape == (20, 32, 32)
    window.undo_action.trigger()
    settle(qtbot, window)
    assert window.canvas.blocks["cbr2"].info.output_shape == (32, 32, 32)


def test_make_unique_then_edit_changes_one_use(qtbot, window: MainWindow, named) -> None:
    make_two_uses(qtbot, window)
    window.canvas.select(["cbr2"])
    panel = window.property_panel
    assert panel.title.text() == "Block cbr  ·  cbr2" and "used 2 times" in panel.help.text()
    panel.editors["Make unique"].click()
    spec = window.document.spec
    assert spec.node("cbr2").params["block"] == "cbr_2" and set(spec.blocks) == {"cbr", "cbr_2"}
    window.canvas.set_expanded("cbr2", True)
    window.canvas.select(["cbr2.conv1"])
    assert "used 1 times" in panel.help.text()
    panel.editors["out_channels"].setValue(8)
    settle(qtbot, window)
    assert window.canvas.blocks["cbr2.conv1"].info.output_shape == (8, 32, 32)
    assert window.document.analysis.layer("cbr1").output_shape == (32, 32, 32)


def test_ungroup_puts_the_layers_back(qtbot, window: MainWindow, named) -> None:
    original = window.document.spec
    window.canvas.select(["conv1", "bn1", "relu1"])
    window.block_actions.make_action.trigger()
    window.canvas.select(["cbr1"])
    window.block_actions.ungroup_action.trigger()
    assert window.document.spec == original
    window.undo_action.trigger()
    assert ids(window)[0] == "cbr1"


def test_rename_a_block_renames_every_use(qtbot, window: MainWindow, named, monkeypatch) -> None:
    make_two_uses(qtbot, window)
    window.canvas.select(["cbr1"])
    window.block_actions.rename("conv_block")
    spec = window.document.spec
    assert set(spec.blocks) == {"conv_block"}
    assert {spec.node(u).params["block"] for u in ("cbr1", "cbr2")} == {"conv_block"}


def test_insert_a_built_in_block_from_the_palette(qtbot, window: MainWindow) -> None:
    palette = window.palette_panel
    assert {"residual", "inception", "fire", "squeeze_excitation"} <= set(palette.block_items())
    palette.search.setText("incep")
    assert not palette.block_items()["inception"].isHidden()
    assert palette.block_items()["fire"].isHidden()
    palette.search.clear()
    window.canvas.select(["relu1"])
    item = palette.block_items()["inception"]
    palette.tree.itemDoubleClicked.emit(item, 0)
    assert ids(window)[3] == "inception1" and "inception" in window.document.spec.blocks
    settle(qtbot, window)
    assert window.canvas.blocks["inception1"].info.output_shape == (64, 32, 32)
    window.undo_action.trigger()
    assert "inception" not in window.document.spec.blocks


def test_drag_a_block_from_the_palette_onto_the_canvas(qtbot, window: MainWindow) -> None:
    from tests.test_window import between, drop

    palette = window.palette_panel
    mime = palette.tree.mimeData([palette.block_items()["squeeze_excitation"]])
    assert bytes(mime.data(MIME_BLOCK)).decode() == "squeeze_excitation"
    before = ids(window)
    drop(window.canvas, MIME_BLOCK, "squeeze_excitation", between(3))
    assert ids(window) == [*before[:3], "squeeze_excitation1", *before[3:]]
    assert window.canvas.selected_ids() == ["squeeze_excitation1"]
    window.undo_action.trigger()
    assert ids(window) == before and not window.document.spec.blocks
