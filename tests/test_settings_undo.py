"""Training, data and augmentation settings are edits like any other: one undo step each (a
spin box dragged through many values merges into one), undo and redo show the value again in
the form, and looking at a box without changing it is no edit."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from ui.main_window import MainWindow


def test_a_training_setting_is_one_undo_step_and_undo_shows_it(qtbot, window: MainWindow) -> None:
    document, form = window.document, window.train_panel.form
    epochs = form.editors["epochs"]
    before = document.project.training["epochs"]
    for value in (before + 1, before + 2, before + 3):  # the arrows held down: one edit
        epochs.setValue(value)
    form.editors["optimizer"].setCurrentText("sgd")
    assert document.undo_stack.count() == 2 and window.isWindowModified()
    window.undo_action.trigger()
    assert document.project.training["optimizer"] != "sgd"
    assert form.editors["optimizer"].currentText() == document.project.training["optimizer"]
    window.undo_action.trigger()
    assert document.project.training["epochs"] == before == epochs.value()
    assert not document.dirty and not window.isWindowModified()
    window.redo_action.trigger()
    assert document.project.training["epochs"] == before + 3 == epochs.value()
    assert document.undo_stack.undoText() == f"Set epochs to {before + 3}"


def test_the_learning_rate_finders_value_is_undoable(qtbot, window: MainWindow) -> None:
    document, form = window.document, window.train_panel.form
    document.set_training("lr", 0.02)
    assert form.editors["lr"].text() == "0.02"
    window.undo_action.trigger()
    assert form.editors["lr"].value() == document.project.training["lr"] != 0.02


def test_an_augmentation_setting_is_one_undo_step_and_undo_shows_it(
    qtbot, window: MainWindow
) -> None:
    document, panel = window.document, window.data_panel
    padding = panel.augment_editors["crop_padding"]
    before = padding.value()
    for value in (before + 1, before + 2):
        padding.setValue(value)
    panel.augment_editors["hflip"].setChecked(not document.project.data.augment["hflip"])
    assert document.undo_stack.count() == 2
    window.undo_action.trigger()
    window.undo_action.trigger()
    assert document.project.data.augment["crop_padding"] == before
    assert panel.augment_editors["crop_padding"].value() == before
    assert not document.dirty
    window.redo_action.trigger()
    assert panel.augment_editors["crop_padding"].value() == before + 2
    assert "This project differs in: crop padding." in panel.defaults_label.text()


def test_other_data_is_one_undo_step_with_its_batch_size(qtbot, window: MainWindow,
                                                         tmp_path: Path) -> None:  # fmt: skip
    from tests import data_factory as make

    document, panel = window.document, window.data_panel
    batch = document.project.training["batch_size"]
    panel.choose_folder(make.image_folder(tmp_path / "few", classes=("a", "b"), per_class=10))
    qtbot.waitUntil(lambda: document.project.data.source == "folder", timeout=60000)
    assert document.project.training["batch_size"] == 16 != batch
    assert document.undo_stack.count() == 1
    assert document.undo_stack.undoText() == "Use the data few"
    window.undo_action.trigger()
    assert document.project.data.source == "sample"
    assert window.train_panel.form.editors["batch_size"].value() == batch
    qtbot.waitUntil(lambda: panel.summary is not None and len(panel.summary.classes) == 10
                    and not panel.busy(), timeout=60000)  # fmt: skip
    assert panel.source.currentData() == "sample"
    window.redo_action.trigger()
    qtbot.waitUntil(lambda: panel.summary.classes == ["a", "b"] and not panel.busy(),
                    timeout=60000)  # fmt: skip
    assert window.train_panel.form.editors["batch_size"].value() == 16


def test_passing_through_the_boxes_without_typing_changes_nothing(
    qtbot, window: MainWindow
) -> None:
    """Tabbing through the training form (editable boxes commit when they lose the focus) used
    to mark the project unsaved with no edit."""
    form = window.train_panel.form
    form.editors["epochs"].setFocus()
    for _ in range(len(form.editors) + 2):
        qtbot.keyClick(window.focusWidget(), Qt.Key.Key_Tab)
    window.train_panel.start_button.setFocus()
    assert window.document.undo_stack.count() == 0
    assert not window.document.dirty and not window.isWindowModified()


def _press(qtbot, widget, key: Qt.Key, shift: bool = False) -> None:
    modifiers = Qt.KeyboardModifier.ControlModifier
    if shift:
        modifiers |= Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(widget, key, modifiers)


def test_ctrl_z_in_a_layer_property_box_undoes_the_model_edit(qtbot, window: MainWindow) -> None:
    document = window.document
    original = document.spec
    window.canvas.select(["conv1"])
    box = window.property_panel.editors["out_channels"]
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "48")
    assert document.spec.node("conv1").params["out_channels"] == 48
    _press(qtbot, box, Qt.Key.Key_Z)
    assert document.spec == original, "the box's own undo swallowed Ctrl+Z"
    _press(qtbot, window.focusWidget() or window, Qt.Key.Key_Z, shift=True)
    assert document.spec.node("conv1").params["out_channels"] == 48


def test_ctrl_z_in_a_training_box_commits_it_then_undoes(qtbot, window: MainWindow) -> None:
    document, form = window.document, window.train_panel.form
    epochs = form.editors["epochs"]
    epochs.setValue(epochs.value() + 5)  # an earlier edit
    box = form.editors["backbone_lr"]  # an editable combo: it commits when the typing ends
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "0.003")
    assert "backbone_lr" not in document.project.training or (
        document.project.training["backbone_lr"] != 0.003
    )
    _press(qtbot, box.lineEdit(), Qt.Key.Key_Z)  # the typed value becomes an edit, then undone
    assert document.undo_stack.count() == 2 and document.undo_stack.index() == 1
    assert box.currentText() != "0.003"
    _press(qtbot, box.lineEdit(), Qt.Key.Key_Z)  # and the one before
    assert document.undo_stack.index() == 0 and not document.dirty
    _press(qtbot, box.lineEdit(), Qt.Key.Key_Y)
    assert document.undo_stack.index() == 1
