"""Sweeps from the window: Run > Sweep… plans a sweep as the user types (errors inline, naming the
setting), runs it on its own thread with the queue in the dialog, skips a run, stops the sweep
with a checkpoint, and offers to resume it when the project is opened again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from cnnstudio import run_table, runs
from cnnstudio.data import DataSettings
from cnnstudio.sweep import SweepEnded, list_sweeps
from cnnstudio.train_settings import check_training
from tests.test_train import colour_folder, tiny_model
from ui.main_window import MainWindow
from ui.training.sweep_dialog import SweepDialog

LONG = 5000  # epochs: a run that is still going when the test skips or stops it


@pytest.fixture
def trainable(window: MainWindow, tmp_path: Path) -> MainWindow:
    """The window on a small saved project (16×16 images) that trains in a second or two."""
    project = window.document.project
    project.model = tiny_model()
    data = colour_folder(tmp_path / "images", per_class=8)
    project.data = DataSettings(source="folder", path=str(data))
    project.training = check_training({"epochs": 1, "batch_size": 8, "log_every": 1, "workers": 0,
                                       "device": "cpu", "early_stopping": 0})  # fmt: skip
    window.document.replace_project(project)
    window.document.save(tmp_path / "proj")
    return window


def open_dialog(window: MainWindow) -> SweepDialog:
    """Run > Sweep…, through the menu's action."""
    (action,) = [a for a in window.run_menu.actions() if a.text() == "S&weep…"]
    action.trigger()
    dialog = window.sweep_dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def plan(qtbot, dialog: SweepDialog, *rows: tuple[str, str], runs_: int | None = None) -> None:
    """Type the rows (setting, values) into the dialog, the first into its first row, and wait
    for the plan (``runs_`` runs) or its error."""
    for i, (name, values) in enumerate(rows):
        row = dialog.rows[i] if i < len(dialog.rows) else None
        if row is None:
            qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
            row = dialog.rows[-1]
        row.name_box.setCurrentIndex(row.name_box.findData(name))
        row.values_edit.clear()
        qtbot.keyClicks(row.values_edit, values)
    if runs_ is not None:
        qtbot.waitUntil(lambda: dialog.queue.rowCount() == runs_ and dialog.plan is not None)
    else:
        qtbot.waitUntil(lambda: bool(dialog.error_label.text()))


def test_the_plan_shows_every_run_as_the_user_types(qtbot, window: MainWindow) -> None:
    dialog = open_dialog(window)
    plan(qtbot, dialog, ("lr", "1e-3, 3e-3"), ("batch_size", "8, 16"), runs_=4)
    assert dialog.error_label.text() == "" and dialog.plan_label.text().startswith("4 runs")
    assert not dialog.draws_box.isEnabled()  # random draws count only with a range
    assert dialog.queue_states() == ["planned"] * 4
    header = [dialog.queue.horizontalHeaderItem(c).text() for c in range(3)]
    assert header == ["#", "lr", "batch_size"]
    cells = [(dialog.queue.item(r, 1).text(), dialog.queue.item(r, 2).text()) for r in range(4)]
    assert cells == [("1e-3", "8"), ("1e-3", "16"), ("3e-3", "8"), ("3e-3", "16")]
    dialog.draws_box.setValue(3)
    plan(qtbot, dialog, ("lr", "1e-4..1e-2 log"), runs_=6)  # 3 draws for each batch size
    values = [float(dialog.queue.item(r, 2).text()) for r in range(6)]
    assert dialog.draws_box.isEnabled() and dialog.seed_box.isEnabled()
    assert all(1e-4 <= v <= 1e-2 for v in values) and len(set(values)) == 3


@pytest.mark.parametrize(
    ("row", "names"),
    [
        (("lr", "0.001, fast"), "'lr'"),
        (("optimizer", "adamw..sgd"), "'optimizer'"),
        (("batch_size", "8, 0"), "'batch_size'"),
        (("hflip", "true, maybe"), "'hflip'"),
        (("lr", "1e-2..1e-4"), "'lr'"),
    ],
)
def test_an_error_in_a_value_shows_inline_naming_the_setting(
    qtbot, window: MainWindow, row: tuple[str, str], names: str
) -> None:
    dialog = open_dialog(window)
    plan(qtbot, dialog, row)
    message = dialog.error_label.text()
    assert names in message and "\n" not in message and "Traceback" not in message
    assert dialog.queue.rowCount() == 0 and not dialog.start_button.isEnabled()
    plan(qtbot, dialog, ("lr", "0.01"), runs_=1)  # fixed: the error goes
    assert dialog.error_label.text() == "" and dialog.start_button.isEnabled()


def test_an_unsaved_project_is_asked_to_be_saved_first(qtbot, window: MainWindow) -> None:
    dialog = open_dialog(window)
    plan(qtbot, dialog, ("lr", "1e-3, 3e-3"), runs_=2)
    assert not dialog.start()
    assert "Save the project first" in dialog.error_label.text() and not dialog.running


@pytest.mark.slow
def test_a_sweep_runs_from_the_window(qtbot, trainable: MainWindow) -> None:
    """The done-when test: a 2-value grid of lr, 1 epoch, from Run > Sweep…"""
    dialog = open_dialog(trainable)
    plan(qtbot, dialog, ("lr", "1e-3, 3e-3"), runs_=2)
    assert dialog.epochs_box.value() == 1
    with qtbot.waitSignal(dialog.sweep_ended, timeout=180000) as ended:
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        assert dialog.running and not dialog.start_button.isEnabled()
        assert not trainable.train_panel.start()  # one thing trains at a time
        assert "sweep is running" in trainable.train_panel.message.text()
    assert isinstance(ended.args[0], SweepEnded) and ended.args[0].state == "finished"
    assert dialog.queue_states() == ["done", "done"]
    table = run_table.run_table(trainable.document.project.runs_dir)
    assert sorted(row.settings["lr"] for row in table.rows) == [1e-3, 3e-3]
    assert all(row.notes.sweep == dialog.sweep.id for row in table.rows)
    assert all(row.info.state == "finished" for row in table.rows)
    assert dialog.progress.value() == 100 and "finished: 2 done" in dialog.status_label.text()
    panel = trainable.train_panel  # the Train view's status line followed the sweep
    assert panel.controller.status == f"sweep · {dialog.status_label.text()}"
    assert panel.progress.value() == 100 and "sweep finished" in panel.status_label.text()
    assert len(trainable.train_panel.curves.steps) > 0  # the Train view drew the current run
    assert not dialog.resume_button.isVisible()  # nothing left to resume


def _wait_for_steps(qtbot, dialog: SweepDialog, index: int) -> None:
    qtbot.waitUntil(
        lambda: dialog.queue_states()[index] == "running" and "step" in dialog.status_label.text(),
        timeout=60000,
    )


@pytest.mark.slow
def test_skip_a_run_then_stop_the_sweep_and_resume_it_on_opening(
    qtbot, trainable: MainWindow, monkeypatch
) -> None:
    trainable.document.set_training("epochs", LONG)
    trainable.document.save()
    dialog = open_dialog(trainable)
    plan(qtbot, dialog, ("lr", "1e-3, 3e-3, 1e-2"), runs_=3)
    dialog.epochs_box.setValue(LONG)
    qtbot.waitUntil(lambda: dialog.plan is not None and dialog.plan.epochs == LONG)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    _wait_for_steps(qtbot, dialog, 0)
    qtbot.mouseClick(dialog.skip_button, Qt.MouseButton.LeftButton)  # the current run
    _wait_for_steps(qtbot, dialog, 1)
    assert dialog.queue_states()[0] == "skipped"
    run_column = dialog.queue.columnCount() - 1
    assert dialog.queue.item(1, run_column).text() == dialog.sweep.runs[1].run  # its folder
    with qtbot.waitSignal(dialog.sweep_ended, timeout=60000) as ended:
        qtbot.mouseClick(dialog.stop_button, Qt.MouseButton.LeftButton)
    assert ended.args[0].state == "stopped"
    assert dialog.queue_states() == ["skipped", "pending", "pending"]
    (sweep,) = list_sweeps(trainable.document.project.runs_dir)
    stopped = sweep.runs[1]
    assert stopped.state == "pending" and stopped.run is not None
    assert (trainable.document.project.runs_dir / stopped.run / runs.LAST).is_file()
    assert dialog.resume_button.isVisible()  # Resume continues it

    # opening the project again offers to continue the sweep; Yes resumes its missing runs
    asked = []

    def answer(_parent, title, text, *args, **kwargs):
        asked.append(title)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    trainable.document.set_training("epochs", 1)  # the sweep keeps its own plan: LONG epochs
    trainable.document.save()
    assert trainable.open_project(trainable.document.project.path)
    qtbot.waitUntil(lambda: dialog.running, timeout=10000)
    assert asked == ["Continue the sweep?"]
    qtbot.waitUntil(lambda: dialog.queue_states()[1] == "resuming", timeout=30000)
    dialog.queue.selectRow(2)  # a queued run is skipped when it is reached
    qtbot.mouseClick(dialog.skip_button, Qt.MouseButton.LeftButton)
    assert dialog.queue_states()[2] == "to skip"
    dialog.queue.clearSelection()
    with qtbot.waitSignal(dialog.sweep_ended, timeout=60000) as ended:
        qtbot.mouseClick(dialog.skip_button, Qt.MouseButton.LeftButton)  # and the resumed one
    assert ended.args[0].state == "finished"
    assert dialog.queue_states() == ["skipped", "skipped", "skipped"]
    assert dialog.sweep.runs[1].run == stopped.run  # resumed in its own folder


@pytest.mark.slow
def test_closing_the_window_mid_sweep_asks_and_stops_with_a_checkpoint(
    qtbot, trainable: MainWindow, monkeypatch
) -> None:
    trainable.document.set_training("epochs", LONG)
    trainable.document.save()
    dialog = open_dialog(trainable)
    plan(qtbot, dialog, ("lr", "1e-3, 3e-3"), runs_=2)
    dialog.epochs_box.setValue(LONG)
    qtbot.waitUntil(lambda: dialog.plan is not None and dialog.plan.epochs == LONG)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    dialog.close()  # the dialog hidden: the sweep goes on
    _wait_for_steps(qtbot, dialog, 0)
    assert not dialog.isVisible()
    asked = []

    def answer(_parent, title, text, buttons, *args, **kwargs):
        asked.append((title, text))
        button = QMessageBox.StandardButton
        return button.Cancel if len(asked) == 1 else button.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    assert not trainable.close() and dialog.running  # Cancel: the sweep goes on
    assert trainable.close()
    assert [title for title, _text in asked] == ["A sweep is running"] * 2
    assert asked[0][1].startswith("A sweep is running. Stop it and quit?")
    assert not dialog.running
    (sweep,) = list_sweeps(trainable.document.project.runs_dir)
    assert [r.state for r in sweep.runs] == ["pending", "pending"] and not sweep.owner
    assert (trainable.document.project.runs_dir / sweep.runs[0].run / runs.LAST).is_file()


def test_the_sweep_runs_on_its_own_thread(qtbot, monkeypatch) -> None:
    """Never on the GUI thread (PySide6 delivers a slot overridden in a subclass there)."""
    import threading

    import cnnstudio.sweep
    from cnnstudio import new_project
    from ui.training.sweep_worker import SweepRunner

    where = []

    def fake_run_sweep(project, sweep, events, control, devices=()):
        where.append(threading.current_thread() is threading.main_thread())
        events(SweepEnded(sweep.id, "finished", {}))

    monkeypatch.setattr(cnnstudio.sweep, "run_sweep", fake_run_sweep)
    runner, ended = SweepRunner(), []
    sweep = type("FakeSweep", (), {"id": "x"})()
    runner.start(new_project(), sweep, lambda w: w.sweep_finished.connect(ended.append))
    qtbot.waitUntil(lambda: bool(ended), timeout=10000)
    assert runner.stop_and_wait() and where == [False] and ended[0].sweep == "x"


def _step_times(folder: Path) -> list[float]:
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r["time"] for r in records if r.get("type") == "step"]


@pytest.mark.slow
def test_a_sweep_trains_runs_at_once_where_there_are_several_gpus(
    qtbot, trainable: MainWindow, monkeypatch
) -> None:
    """With several GPUs the dialog offers them all ("At once on"); here two slots on the CPU.
    The runs overlap in time, each notes where it ran, and the progress line and the Train view
    follow one run at a time."""
    import ui.training.sweep_dialog as sweep_dialog

    monkeypatch.setattr(sweep_dialog, "gpu_count", lambda: 2)
    dialog = open_dialog(trainable)
    assert dialog.devices_edit.isVisible() and dialog.devices_edit.text() == "cuda:0,cuda:1"
    dialog.devices_edit.setText("cpu, cpu")
    dialog.epochs_box.setValue(3)
    plan(qtbot, dialog, ("lr", "1e-3, 3e-3, 1e-2"), runs_=3)
    with qtbot.waitSignal(dialog.sweep_ended, timeout=180000) as ended:
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        assert not dialog.devices_edit.isEnabled()
    assert ended.args[0].state == "finished" and dialog.queue_states() == ["done"] * 3
    planned = dialog.sweep.runs
    assert [r.device for r in planned] == ["cpu"] * 3
    first, second = (_step_times(trainable.document.project.runs_dir / r.run) for r in planned[:2])
    assert second[0] < first[-1] and first[0] < second[-1]  # the two trained at the same time
    assert len(trainable.train_panel.curves.steps) > 0
    dialog.devices_edit.setText(" , ")
    assert not dialog.start() and "comma" in dialog.error_label.text()
