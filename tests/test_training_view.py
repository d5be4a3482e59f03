"""Training in the window: a short real run from the Train view, pause, stop, closing mid-run,
and a failure that leaves the window working."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from cnnstudio.data import DataSettings
from cnnstudio.runs import load_checkpoint
from cnnstudio.train import Failed, Finished
from cnnstudio.train_settings import check_training
from tests.test_train import colour_folder, tiny_model
from ui.main_window import MainWindow


@pytest.fixture
def trainable(window: MainWindow, tmp_path: Path) -> MainWindow:
    """The window on a small saved project that trains in a few seconds."""
    project = window.document.project
    project.model = tiny_model()
    project.data = DataSettings(source="folder", path=str(colour_folder(tmp_path / "images")))
    project.training = check_training({"epochs": 3, "batch_size": 16, "log_every": 1,
                                       "lr": 0.01, "workers": 0})  # fmt: skip
    window.document.replace_project(project)
    window.document.save(tmp_path / "proj")
    return window


def test_a_short_run_draws_curves_and_ends_at_100_percent(qtbot, trainable: MainWindow) -> None:
    panel = trainable.train_panel
    with qtbot.waitSignal(panel.run_finished, timeout=120000) as finished:
        assert panel.start()
    result = finished.args[0]
    assert isinstance(result, Finished) and result.state == "finished"
    assert panel.progress.value() == 100
    x, _ = panel.curves.raw_curve.getData()
    assert len(x) == len(panel.steps) > 10
    assert list(panel.curves.val_acc_curve.getData()[0]) == [1, 2, 3]
    assert f"best {result.best_val_accuracy:.2%}" in panel.controller.status
    assert not panel.running and panel.start_button.isEnabled()


def test_training_leaves_the_project_saved_and_keeps_its_statistics(
    qtbot, trainable: MainWindow
) -> None:
    """The dataset's mean and std are derived data, not an edit: after a run the project is
    still saved ("*" nowhere, no question on closing), and its next save keeps them."""
    from cnnstudio import load_project

    trainable.document.set_training("epochs", 1)
    trainable.document.save()
    panel = trainable.train_panel
    with qtbot.waitSignal(panel.run_finished, timeout=120000):
        assert panel.start()
    assert not trainable.document.dirty and not trainable.isWindowModified()
    data = trainable.document.project.data
    assert data.mean is not None and len(data.std) == 3
    trainable.document.save()
    assert load_project(trainable.document.project.path).data.mean == data.mean
    assert trainable.close()  # no question asked: the conftest fails any unexpected dialog


def test_pause_holds_the_steps_and_resume_continues(qtbot, trainable: MainWindow) -> None:
    panel = trainable.train_panel
    panel.start()
    qtbot.waitUntil(lambda: len(panel.steps) >= 2, timeout=60000)
    panel.pause_button.setChecked(True)
    qtbot.wait(300)  # the step in flight finishes
    held = len(panel.steps)
    qtbot.wait(700)
    assert len(panel.steps) == held, "no step while paused"
    status = panel.controller.status
    assert status.startswith("paused · epoch ") and "ETA" not in status, status
    assert panel.status_label.text().startswith("paused")
    with qtbot.waitSignal(panel.run_finished, timeout=120000):
        panel.pause_button.setChecked(False)
    assert len(panel.steps) > held


def test_stop_ends_the_run_with_a_checkpoint(qtbot, trainable: MainWindow) -> None:
    panel = trainable.train_panel
    trainable.document.set_training("epochs", 50)
    panel.start()
    qtbot.waitUntil(lambda: len(panel.steps) >= 2, timeout=60000)
    with qtbot.waitSignal(panel.run_finished, timeout=30000) as finished:
        panel.stop_button.click()
    assert finished.args[0].state == "stopped"
    assert load_checkpoint(Path(finished.args[0].run_dir) / "last.pt")["progress"]["global_step"]


def _answering(monkeypatch, *answers) -> list[tuple[str, str, object]]:
    """QMessageBox.question gives ``answers`` in turn; returns what it was asked."""
    asked, queue = [], list(answers)

    def answer(parent, title, text, buttons, *args, **kwargs):
        asked.append((title, text, buttons))
        return queue.pop(0)

    monkeypatch.setattr(QMessageBox, "question", answer)
    return asked


def test_closing_mid_run_asks_once_cancel_keeps_it_going_discard_stops(
    qtbot, trainable: MainWindow, monkeypatch
) -> None:
    panel = trainable.train_panel
    trainable.document.set_training("epochs", 50)  # unsaved
    panel.start()
    qtbot.waitUntil(lambda: len(panel.steps) >= 2, timeout=60000)
    button = QMessageBox.StandardButton
    asked = _answering(monkeypatch, button.Cancel, button.Discard)
    assert not trainable.close()
    assert panel.running and trainable.isVisible() and trainable.document.dirty
    steps = len(panel.steps)
    qtbot.waitUntil(lambda: len(panel.steps) > steps, timeout=60000)  # the run goes on
    assert trainable.close()
    assert [title for title, _text, _buttons in asked] == ["A run is training"] * 2
    _title, text, buttons = asked[0]
    assert text.startswith("A run is training. Stop it and quit?")
    assert "unsaved changes" in text and buttons & button.Save and buttons & button.Discard
    assert not panel.runner.thread.isRunning()
    runs = list((trainable.document.project.path / "runs").iterdir())
    assert load_checkpoint(runs[0] / "last.pt")["progress"]["global_step"] >= 2


def test_closing_mid_run_can_save_in_the_same_question(qtbot, trainable: MainWindow,
                                                       monkeypatch) -> None:  # fmt: skip
    from cnnstudio import load_project

    panel = trainable.train_panel
    trainable.document.set_training("epochs", 50)
    panel.start()
    qtbot.waitUntil(lambda: len(panel.steps) >= 2, timeout=60000)
    asked = _answering(monkeypatch, QMessageBox.StandardButton.Save)
    assert trainable.close()
    assert len(asked) == 1 and not panel.runner.thread.isRunning()
    assert load_project(trainable.document.project.path).training["epochs"] == 50


def test_closing_mid_run_of_a_saved_project_asks_only_to_stop(qtbot, trainable: MainWindow,
                                                              monkeypatch) -> None:  # fmt: skip
    panel = trainable.train_panel
    trainable.document.set_training("epochs", 50)
    trainable.document.save()
    panel.start()
    qtbot.waitUntil(lambda: len(panel.steps) >= 2, timeout=60000)
    asked = _answering(monkeypatch, QMessageBox.StandardButton.Yes)
    assert trainable.close()
    ((_title, text, buttons),) = asked
    assert "unsaved" not in text and not buttons & QMessageBox.StandardButton.Save
    assert not panel.runner.thread.isRunning()


def test_the_run_menu_trains_pauses_and_stops_from_the_keyboard(
    qtbot, trainable: MainWindow
) -> None:
    from PySide6.QtCore import Qt

    panel, window = trainable.train_panel, trainable
    window.document.set_training("epochs", 50)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    menu = [a.text() for a in window.run_menu.actions() if not a.isSeparator()]
    assert menu == ["&Train", "&Pause", "&Stop", "&Resume from Checkpoint", "S&weep…"]
    assert window.menuBar().actions()[3].text() == "&Run"  # between Model and View
    assert "(Ctrl+Return or F5)" in panel.start_button.toolTip()
    assert "(Ctrl+. or Shift+F5)" in panel.stop_button.toolTip()
    assert "(Ctrl+P)" in panel.pause_button.toolTip()
    assert not panel.stop_action.isEnabled()
    control = Qt.KeyboardModifier.ControlModifier
    qtbot.keyClick(window.canvas, Qt.Key.Key_Return, control)
    assert panel.running and panel.stop_action.isEnabled() and not panel.start_action.isEnabled()
    qtbot.waitUntil(lambda: len(panel.steps) >= 2, timeout=60000)
    qtbot.keyClick(window.canvas, Qt.Key.Key_P, control)
    assert panel.pause_button.isChecked() and panel.pause_action.text() == "Resume &Training"
    qtbot.keyClick(window.canvas, Qt.Key.Key_P, control)
    assert not panel.pause_button.isChecked()
    with qtbot.waitSignal(panel.run_finished, timeout=30000) as finished:
        qtbot.keyClick(window.canvas, Qt.Key.Key_Period, control)
    assert finished.args[0].state == "stopped"
    with qtbot.waitSignal(panel.run_finished, timeout=30000) as finished:
        qtbot.keyClick(window.canvas, Qt.Key.Key_F5)
        qtbot.waitUntil(lambda: len(panel.steps) >= 2, timeout=60000)
        qtbot.keyClick(window.canvas, Qt.Key.Key_F5, Qt.KeyboardModifier.ShiftModifier)
    assert finished.args[0].state == "stopped"


def test_channels_last_and_compile_are_in_the_form(qtbot, window: MainWindow) -> None:
    form, document = window.train_panel.form, window.document
    for name, words in (("channels_last", "channels-last"), ("compile", "torch.compile")):
        box = form.editors[name]
        assert words in box.toolTip()
        assert box.isChecked() == document.project.training.get(name, name == "channels_last")
        box.click()
        assert document.project.training[name] == box.isChecked()
        window.undo_action.trigger()
        assert document.project.training.get(name, name == "channels_last") == box.isChecked()
    form.grab().save("/tmp/win-train-form.png")


def test_a_failed_run_shows_why_and_the_window_stays_usable(qtbot, trainable: MainWindow) -> None:
    panel = trainable.train_panel
    shutil.rmtree(trainable.document.project.data.path)
    with qtbot.waitSignal(panel.run_finished, timeout=60000) as finished:
        panel.start()
    assert isinstance(finished.args[0], Failed)
    assert "does not exist" in panel.message.text()
    assert panel.start_button.isEnabled() and not panel.running
    trainable.canvas.select(["conv1"])
    trainable.delete_action.trigger()
    assert "conv1" not in [n.id for n in trainable.document.spec.nodes]


def test_unsaved_project_is_offered_a_save_and_the_note_goes_once_saved(
    qtbot, window: MainWindow, monkeypatch, tmp_path: Path
) -> None:
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    asked = []

    def decline(*args, **kwargs):
        asked.append(args[1])
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", decline)
    assert not window.train_panel.start()
    assert asked == ["Save the project to train it"]
    assert "Save the project first" in window.train_panel.message.text()
    # saved through File > Save As into a folder that does not exist yet: made, note gone
    target = tmp_path / "new" / "my-project"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    assert window.save_project_as()
    assert (target / "project.json").is_file()
    assert window.train_panel.message.text() == ""


def test_save_as_refuses_a_folder_of_other_files_and_starts_in_documents(
    window: MainWindow, monkeypatch, tmp_path: Path
) -> None:
    from PySide6.QtCore import QStandardPaths
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    from ui.main_window import project_folder_refusal

    busy = tmp_path / "photos"
    busy.mkdir()
    (busy / "cat.png").write_bytes(b"x")
    assert "other files" in project_folder_refusal(busy)
    assert project_folder_refusal(tmp_path / "fresh") is None
    assert "is a file" in project_folder_refusal(busy / "cat.png")
    starts, warned = [], []

    def choose(_window, _title, start, _filter):
        starts.append(start)
        return str(busy), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", choose)
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: warned.append(a[2]))
    assert not window.save_project_as()
    assert warned and "other files" in warned[0] and not (busy / "project.json").exists()
    assert window.settings.last_project() is None
    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    assert Path(starts[0]).parent == Path(documents)  # not the program's folder


@pytest.mark.slow
def test_curves_redraw_at_most_20_times_a_second_whatever_the_step_rate(
    qtbot, trainable: MainWindow
) -> None:
    """Every step is logged (log_every 1), many more than 20 a second on this tiny model; the
    curves take them in batches, one redraw per 50 ms at most."""
    import time

    trainable.document.project.training.update(batch_size=2)
    panel = trainable.train_panel
    redraws = []
    panel.curves.raw_curve.sigPlotChanged.connect(lambda *_: redraws.append(time.monotonic()))
    started = time.monotonic()
    with qtbot.waitSignal(panel.run_finished, timeout=120000):
        assert panel.start()
    seconds = time.monotonic() - started
    assert len(redraws) <= seconds / 0.05 + 2  # the timer's, and the last one at the end
    assert len(redraws) < len(panel.steps)
    assert len(panel.curves.raw_curve.getData()[0]) == len(panel.steps)


def test_the_accuracy_plot_ticks_whole_epochs(window: MainWindow) -> None:
    axis = window.train_panel.curves.acc_plot.getAxis("bottom")
    for low, high in [(0.8, 3.2), (0.5, 50.5)]:
        ticks = [float(v) for _spacing, values in axis.tickValues(low, high, 300) for v in values]
        assert ticks and all(v.is_integer() for v in ticks)
    assert 1.0 in [float(v) for _s, values in axis.tickValues(0.8, 3.2, 300) for v in values]


def test_learning_rates_are_shown_as_people_write_them(qtbot, window: MainWindow) -> None:
    from PySide6.QtCore import Qt

    form = window.train_panel.form
    editor = form.editors["lr"]
    form.show_value("lr", 1e-8)  # the finder's smallest rate: once shown as 0.000000
    assert editor.text() == "1e-8"
    editor.lineEdit().selectAll()
    qtbot.keyClicks(editor.lineEdit(), "3e-4")
    qtbot.keyClick(editor.lineEdit(), Qt.Key.Key_Return)
    assert window.document.project.training["lr"] == pytest.approx(3e-4)
    assert editor.text() == "3e-4"
    assert form.editors["weight_decay"].text() == "5e-4"
    form.grab().save("/tmp/numbers-train-form.png")


def test_a_run_on_two_processes_trains_through_torchrun_from_the_window(
    qtbot, trainable: MainWindow, monkeypatch
) -> None:
    """The gpus setting (shown where there are several GPUs) starts torchrun's processes, as
    `train --gpus N` does; here two CPU processes. The run trains the window's copy of the
    project (an edit not saved yet included), draws its curves, cannot pause, and stops with a
    checkpoint."""
    import json

    import torch

    import ui.training.settings_form as settings_form

    panel, document = trainable.train_panel, trainable.document
    assert not panel.form.form.isRowVisible(panel.form.editors["gpus"])  # one GPU or none here
    monkeypatch.setattr(settings_form, "gpu_count", lambda: 2)
    panel.form.refresh()
    assert panel.form.form.isRowVisible(panel.form.editors["gpus"])
    document.set_training("gpus", 2)
    if not torch.cuda.is_available():
        assert not panel.start()
        assert "gpus 2: this machine has no CUDA device" in panel.message.text()
    document.set_training("device", "cpu")
    document.set_training("epochs", 2)  # not saved: the run trains the window's copy
    with qtbot.waitSignal(panel.run_finished, timeout=180000) as finished:
        assert panel.start()
        qtbot.waitUntil(lambda: len(panel.steps) >= 1, timeout=120000)
        assert panel.stop_button.isEnabled() and not panel.pause_button.isEnabled()
    result = finished.args[0]
    assert isinstance(result, Finished) and result.state == "finished", result
    assert list(panel.curves.val_acc_curve.getData()[0]) == [1, 2]
    settings = json.loads((Path(result.run_dir) / "settings.json").read_text())
    assert settings["world_size"] == 2 and settings["training"]["epochs"] == 2
    document.set_training("epochs", 200)
    with qtbot.waitSignal(panel.run_finished, timeout=180000) as stopped:
        assert panel.start()
        qtbot.waitUntil(lambda: len(panel.curves.val_acc_curve.getData()[0] or []) >= 1,
                        timeout=120000)  # fmt: skip
        panel.stop_button.click()
    assert stopped.args[0].state == "stopped"
    assert load_checkpoint(Path(stopped.args[0].run_dir) / "last.pt")["progress"]["global_step"]
    assert panel.start_button.isEnabled()
