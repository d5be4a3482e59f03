"""The window's side of the model following its data: the Data view's banner that offers to adapt
the model (one undoable edit), class names renamed in its class list (one undoable edit each),
and training with a class misfit ending in the clear message."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from cnnstudio import new_project
from cnnstudio.train import Failed
from tests.data_factory import image_folder
from ui.training.worker import TrainingRunner

FOLDERS = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079")


def choose(qtbot, window, folder: Path, classes) -> None:
    panel = window.data_panel
    panel.choose_folder(folder)
    qtbot.waitUntil(
        lambda: panel.summary is not None and panel.summary.classes == list(classes), timeout=60000
    )
    qtbot.waitUntil(lambda: not panel.busy(), timeout=60000)


def test_banner_offers_to_adapt_the_model_as_one_undoable_edit(qtbot, window, tmp_path) -> None:
    panel, document = window.data_panel, window.document
    before = document.spec
    choose(qtbot, window, image_folder(tmp_path / "data", FOLDERS, 2, (12, 12)), FOLDERS)
    edits = document.undo_stack.count()  # choosing the data is an edit of its own
    assert panel.fit_banner.isVisible()
    text = panel.fit_label.text()
    assert "outputs 10 classes but the data has 5" in text and "32×32" in text
    assert "classes 10 → 5 (fc2), input 3×32×32 → 3×12×12" in text
    panel.fit_banner.grab().save("/tmp/fitdata-banner.png")
    window.data_panel.grab().save("/tmp/fitdata-data-view.png")
    qtbot.mouseClick(panel.adapt_button, Qt.MouseButton.LeftButton)
    after = document.spec
    assert after.num_classes == 5 and after.input_shape == (3, 12, 12)
    assert after.node("fc2").params["out_features"] == 5
    qtbot.waitUntil(lambda: not panel.fit_banner.isVisible(), timeout=60000)
    assert document.undo_stack.count() == edits + 1  # one edit
    document.undo_stack.undo()
    assert document.spec == before
    qtbot.waitUntil(lambda: panel.fit_banner.isVisible(), timeout=60000)
    qtbot.waitUntil(lambda: not panel.busy(), timeout=60000)


def test_no_banner_when_the_model_fits(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.data_panel.needs is not None, timeout=60000)
    assert not window.data_panel.fit_banner.isVisible()  # the sample set and its model


def test_renaming_a_class_in_the_list_is_one_undoable_edit(qtbot, window, tmp_path) -> None:
    panel, document = window.data_panel, window.document
    choose(qtbot, window, image_folder(tmp_path / "data", FOLDERS[:2], 2, (8, 8)), FOLDERS[:2])
    document.undo_stack.clear()  # choosing the data was an edit of its own
    table = panel.table
    table.setCurrentCell(0, 0)
    qtbot.keyClick(table, Qt.Key.Key_F2)  # as a double-click does: the name's editor opens
    qtbot.waitUntil(lambda: table.findChild(QLineEdit) is not None, timeout=5000)
    editor = table.findChild(QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "tench")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: document.project.data.class_names == {"n01440764": "tench"})
    assert table.item(0, 0).text() == "tench" and "n01440764" in table.item(0, 0).toolTip()
    assert document.dirty and document.undo_stack.count() == 1
    table.item(1, 0).setText("tench")  # taken: refused, the name stays
    assert "already the name of class 'n01440764'" in panel.status.text()
    assert table.item(1, 0).text() == "n02102040" and document.undo_stack.count() == 1
    document.undo_stack.undo()
    assert document.project.data.class_names == {}
    assert table.item(0, 0).text() == "n01440764"
    document.undo_stack.redo()
    assert table.item(0, 0).text() == "tench"


def test_training_a_misfit_from_the_window_gives_the_clear_message(qtbot, window, tmp_path) -> None:
    project = new_project("simple-cnn", 4, (3, 16, 16), path=tmp_path / "p")  # sample set: 10
    project.save()
    window.document.replace_project(project)
    data = window.data_panel
    qtbot.waitUntil(lambda: data.needs is not None and not data.busy(), timeout=60000)
    assert data.fit_banner.isVisible()  # on opening a project too
    panel = window.train_panel
    with qtbot.waitSignal(panel.run_finished, timeout=60000) as finished:
        panel.start()
    assert isinstance(finished.args[0], Failed)
    assert "the model outputs 4 classes but the data has 10" in panel.message.text()


def test_a_run_refused_at_once_still_reports_its_end(qtbot, tmp_path) -> None:
    """The worker's signals are wired before its thread starts: a misfit is refused in
    milliseconds, and a run_finished sent before the window connected would leave the window
    waiting forever (it did, now and then, in CI)."""
    project = new_project("simple-cnn", 4, (3, 16, 16), path=tmp_path / "p")  # sample set: 10
    project.save()
    runner = TrainingRunner()
    running_when_wired, results = [], []

    def connect(worker) -> None:
        running_when_wired.append(runner.thread.isRunning())
        worker.run_finished.connect(results.append)

    runner.start(project, connect=connect)
    qtbot.waitUntil(lambda: bool(results), timeout=60000)
    runner.thread.wait()
    assert running_when_wired == [False]
    assert isinstance(results[0], Failed) and "outputs 4 classes" in results[0].message
