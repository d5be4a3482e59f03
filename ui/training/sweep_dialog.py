"""Run > Sweep…: a plan of runs over the project's training, data and augmentation settings, and
its queue as it runs.

Each row names a setting and its values: a list (``0.001, 0.003``) is an axis of the grid (every
combination runs), a range (``1e-4..1e-2 log``) is drawn at random, ``N`` draws per combination.
The plan (how many runs, each run's settings) is worked out by the engine (cnnstudio.sweep) on a
background job as the user types, and its errors are shown in one line naming the setting. Start
queues the plan in runs/sweeps/ and runs it on the sweep's thread (``sweep_worker``); the table
then shows each run's state, the line under it the current run's progress; Skip run and Stop
sweep go to the sweep's control. Closing the dialog leaves the sweep running; an unfinished sweep
(stopped, or its window closed) is offered again with Resume.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnnstudio import run_table, runs
from cnnstudio.errors import StudioError, SweepError
from cnnstudio.progress import TaskState
from cnnstudio.sweep import (
    SWEEPABLE,
    Axis,
    PlannedRun,
    Range,
    Sweep,
    SweepEnded,
    SweepPlan,
    list_sweeps,
    open_sweep,
    parse_axis,
    parse_devices,
    parse_value,
    sweepable,
)
from ui.background import Jobs
from ui.icons import icon
from ui.theme import colours, set_role
from ui.training.run_controller import SAVE_FIRST
from ui.training.settings_form import gpu_count
from ui.training.sweep_worker import SweepRunner, SweepWorker

RANGE = re.compile(r"^\s*(?P<low>\S+?)\s*\.\.\s*(?P<high>\S+?)\s*(?P<log>\blog)?\s*$", re.I)
VALUES_HINT = "0.001, 0.003 (a grid) or 1e-4..1e-2 log (random draws)"


# The plan, worked out from the rows (plain functions: the background job runs them)


def parse_row(name: str, text: str) -> Axis | Range:
    """A row of the dialog: ``V1, V2, ...`` as an axis of the grid, ``LOW..HIGH [log]`` as a range
    drawn at random; SweepError naming the setting when the values do not read."""
    param = sweepable(name)
    if not text.strip():
        raise SweepError(f"sweep setting {param.name!r}: give its values ({VALUES_HINT})")
    if ".." not in text:
        return parse_axis(f"{param.name}={text}")
    match = RANGE.match(text)
    if match is None:
        raise SweepError(f"sweep setting {param.name!r}: write a range as LOW..HIGH or "
                         f"LOW..HIGH log, got {text.strip()!r}")  # fmt: skip
    if param.type not in ("int", "float"):
        raise SweepError(f"sweep setting {param.name!r} is {param.describe()}: give its values "
                         "as a list, not a range")  # fmt: skip
    low, high = (parse_value(param, match[part]) for part in ("low", "high"))
    return Range(param.name, low, high, log=match["log"] is not None)


def plan_of(
    _state: TaskState | None, rows: list[tuple[str, str]], draws: int, seed: int, epochs: int
) -> tuple[SweepPlan, list[dict[str, Any]]]:
    """The plan of the dialog's rows and each of its runs' settings. ``draws`` counts only when a
    row is a range; ``epochs`` only when epochs is not swept."""
    if not rows:
        raise SweepError("nothing to sweep: add a setting")
    parsed = [parse_row(name, text) for name, text in rows]
    ranges = tuple(p for p in parsed if isinstance(p, Range))
    plan = SweepPlan(
        grid=tuple(p for p in parsed if isinstance(p, Axis)),
        ranges=ranges,
        random=draws if ranges else 0,
        seed=seed,
        epochs=None if any(p.name == "epochs" for p in parsed) else epochs,
    )
    return plan, plan.settings()


def current_value(project, name: str) -> Any:
    """The project's own value of the sweepable setting ``name``."""
    section, param = SWEEPABLE[name]
    if section == "training":
        return project.training.get(name, param.default)
    data = project.data.to_dict()
    part = data if section == "data" else data.get("augment", {})
    return part.get(name, param.default)


def unfinished_sweep(runs_dir: Path | None) -> Sweep | None:
    """The latest sweep of the project with runs still to do that no other process is running
    now (None when there is none)."""
    for sweep in reversed(list_sweeps(runs_dir)):
        owner = sweep.owner
        elsewhere = owner and owner != runs.trainer_process() and runs.still_running(owner)
        if sweep.missing and not elsewhere:
            return sweep
    return None


class SettingRow(QWidget):
    """One swept setting: which one (every sweepable setting) and its values."""

    changed = Signal()
    remove_requested = Signal(object)  # this row

    def __init__(self, current: Callable[[str], Any], name: str, parent=None) -> None:
        super().__init__(parent)
        self.current = current
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.name_box = QComboBox(self)
        for setting, (section, param) in SWEEPABLE.items():
            self.name_box.addItem(f"{setting}  ({section})", setting)
            tip = f"{param.help} — {param.describe()}"
            self.name_box.setItemData(self.name_box.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.name_box.setCurrentIndex(self.name_box.findData(name))
        self.values_edit = QLineEdit(run_table.format_setting(current(name)), self)
        self.values_edit.setPlaceholderText(VALUES_HINT)
        self.remove_button = QToolButton(self)
        self.remove_button.setIcon(icon("delete"))
        self.remove_button.setToolTip("Do not sweep this setting")
        layout.addWidget(self.name_box)
        layout.addWidget(self.values_edit, 1)
        layout.addWidget(self.remove_button)
        self.name_box.currentIndexChanged.connect(self._on_name_changed)
        self.values_edit.textChanged.connect(self.changed)
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self))

    @property
    def name(self) -> str:
        return self.name_box.currentData()

    @property
    def text(self) -> str:
        return self.values_edit.text()

    def _on_name_changed(self) -> None:
        self.values_edit.setText(run_table.format_setting(self.current(self.name)))
        self.changed.emit()


class SweepDialog(QDialog):
    """Plans a sweep of the document's project, runs it and shows its queue."""

    sweep_started = Signal(object)  # the Sweep
    progress_changed = Signal(int, str)  # the progress bar's percent and the status line
    run_started = Signal(object)  # the current run's RunStarted
    step_logged = Signal(object)  # StepLogged
    epoch_ended = Signal(object)  # EpochEnded
    sweep_run_ended = Signal(object)  # SweepRunEnded
    sweep_ended = Signal(object)  # SweepEnded, or a message when the sweep could not go on

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sweep")
        self.document = document
        self.busy_elsewhere: Callable[[], str | None] = lambda: None  # set by the window
        self.runner = SweepRunner(self)
        self.plan: SweepPlan | None = None  # the plan shown, once worked out
        self.sweep: Sweep | None = None  # the sweep running or last run
        self.unfinished: Sweep | None = None
        self.rows: list[SettingRow] = []
        self._plans = Jobs(self, newest_wins=True)
        self._names: list[str] = []  # the queue's setting columns
        self._run_index, self._run_state = 0, "running"
        self._devices: list[str] = []  # the sweep's, as it was started
        self._running: dict[int, str] = {}  # the state each run in progress shows
        self._first_step, self._total_steps, self._rate = 0, 1, ""
        self._build_ui()
        self._connect()
        self._set_running(False)
        self.refresh()

    @property
    def running(self) -> bool:
        return self.runner.running

    # Building

    def _build_ui(self) -> None:
        self.resize(760, 560)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "A row per setting to sweep. Values as a list (0.001, 0.003) make a grid: every "
            "combination runs. A range (1e-4..1e-2 log) is drawn at random, N times per "
            "combination. Runs train one after another, or several at once where there are "
            "several GPUs.", self
        )  # fmt: skip
        intro.setWordWrap(True)
        set_role(intro, "muted")
        layout.addWidget(intro)
        self.rows_layout = QVBoxLayout()
        layout.addLayout(self.rows_layout)
        self.add_button = QPushButton("Add setting", self)
        self.add_button.setToolTip("Sweep one more setting (its values cross the others')")
        layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addLayout(self._build_options())
        self.error_label = QLabel(self)
        set_role(self.error_label, "error")
        self.plan_label = QLabel(self)
        layout.addWidget(self.error_label)
        layout.addWidget(self.plan_label)
        self.queue = QTableWidget(0, 0, self)
        self.queue.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.queue.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.queue.verticalHeader().setVisible(False)
        self.queue.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.queue.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.queue, 1)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        self.status_label = QLabel("", self)
        set_role(self.status_label, "muted")
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        for widget in (self.progress, self.status_label, self.message):
            layout.addWidget(widget)
        layout.addLayout(self._build_buttons())

    def _build_options(self) -> QHBoxLayout:
        options = QHBoxLayout()
        self.draws_box = _spin(self, 1, 10000, 8, "Random draws from the ranges, per combination")
        self.seed_box = _spin(self, 0, 2**31 - 1, 0, "Seed of the random draws: the same seed "
                              "draws the same values")  # fmt: skip
        self.epochs_box = _spin(self, 1, 100000, 1, "Epochs of every run (unless epochs is swept)")
        for text, box in (("Random draws", self.draws_box), ("Seed", self.seed_box),
                          ("Epochs", self.epochs_box)):  # fmt: skip
            options.addWidget(QLabel(text, self))
            options.addWidget(box)
        # several runs at once, one per device: only where there are several GPUs
        self.devices_label = QLabel("At once on", self)
        self.devices_edit = QLineEdit(self)
        self.devices_edit.setPlaceholderText("one after another")
        self.devices_edit.setToolTip(
            "Devices to train on at once, one run on each: cuda:0,cuda:1 (a device named twice "
            "trains two runs at once), or all. Empty: one run after another."
        )
        several = gpu_count() > 1
        if several:
            self.devices_edit.setText(",".join(f"cuda:{i}" for i in range(gpu_count())))
        for widget in (self.devices_label, self.devices_edit):
            options.addWidget(widget)
            widget.setVisible(several)
        options.addStretch(1)
        return options

    def devices(self) -> list[str]:
        """The devices the sweep trains on at once (empty: one run after another); SweepError
        for text that names none."""
        text = self.devices_edit.text().strip()
        return parse_devices(text) if text else []

    def _build_buttons(self) -> QHBoxLayout:
        buttons = QHBoxLayout()
        self.start_button = QPushButton(icon("play", colours().accent), "Start", self)
        self.start_button.setToolTip("Queue the plan's runs and train them one after another")
        self.resume_button = QPushButton(icon("resume"), "Resume", self)
        self.skip_button = QPushButton(icon("stop"), "Skip run", self)
        self.skip_button.setToolTip(
            "Skip the run selected in the queue, or the current one (it stops; its folder stays)"
        )
        self.stop_button = QPushButton(icon("stop"), "Stop sweep", self)
        self.stop_button.setToolTip(
            "Stop after the current step; the run writes a checkpoint and Resume continues it"
        )
        self.close_button = QPushButton("Close", self)
        self.close_button.setToolTip("Hide this dialog; a sweep goes on (Run > Sweep… shows it)")
        for button in (self.start_button, self.resume_button, self.skip_button,
                       self.stop_button):  # fmt: skip
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        return buttons

    def _connect(self) -> None:
        self.add_button.clicked.connect(lambda: self.add_setting())
        for box in (self.draws_box, self.seed_box, self.epochs_box):
            box.valueChanged.connect(self._update_plan)
        self._plans.finished.connect(self._on_plan_finished)
        self._plans.failed.connect(self._on_plan_failed)
        self.start_button.clicked.connect(self.start)
        self.resume_button.clicked.connect(lambda: self.resume())
        self.skip_button.clicked.connect(self._on_skip_clicked)
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.close_button.clicked.connect(self.close)
        self.document.project_replaced.connect(self.refresh)

    # The plan

    def refresh(self) -> None:
        """Start over from the project's settings: one row (its learning rate), its epochs,
        and Resume for its unfinished sweep. Nothing changes while a sweep runs."""
        if self.running:
            return
        for row in list(self.rows):
            self._remove_row(row, update=False)
        self.epochs_box.setValue(int(self.document.project.training.get("epochs", 1)))
        self.add_setting("lr")
        self.find_unfinished()

    def add_setting(self, name: str | None = None, values: str | None = None) -> SettingRow:
        """A new row: ``name`` (else the first setting not swept yet) with ``values`` (else the
        project's own value)."""
        taken = {row.name for row in self.rows}
        name = name or next(n for n in SWEEPABLE if n not in taken)
        row = SettingRow(lambda n: current_value(self.document.project, n), name, self)
        if values is not None:
            row.values_edit.setText(values)
        row.changed.connect(self._update_plan)
        row.remove_requested.connect(self._remove_row)
        self.rows.append(row)
        self.rows_layout.addWidget(row)
        self._update_plan()
        return row

    def _remove_row(self, row: SettingRow, update: bool = True) -> None:
        self.rows.remove(row)
        row.setParent(None)
        row.deleteLater()
        if update:
            self._update_plan()

    def _update_plan(self) -> None:
        """Work the plan out again (on the background job: random draws import Optuna)."""
        if self.running:
            return
        self.plan = None
        self.start_button.setEnabled(False)
        rows = [(row.name, row.text) for row in self.rows]
        ranged = any(".." in text for _name, text in rows)  # the draws count only with a range
        self.draws_box.setEnabled(ranged)
        self.seed_box.setEnabled(ranged)
        self._plans.submit(plan_of, rows, self.draws_box.value(), self.seed_box.value(),
                           self.epochs_box.value())  # fmt: skip

    def _on_plan_finished(self, _number: int, result) -> None:
        if self.running:
            return
        self.plan, settings = result
        self.error_label.setText("")
        count, epochs = len(settings), self.plan.epochs
        each = f", {epochs} epoch{'s' if epochs != 1 else ''} each" if epochs else ""
        self.plan_label.setText(f"{count} run{'s' if count != 1 else ''}{each}")
        self._show_queue([PlannedRun(i, s, state="planned") for i, s in enumerate(settings)])
        self.start_button.setEnabled(True)

    def _on_plan_failed(self, _number: int, message: str) -> None:
        if self.running:
            return
        self.plan = None
        self.error_label.setText(message)
        self.plan_label.setText("")
        self._show_queue([])
        self.start_button.setEnabled(False)

    # The queue

    def _show_queue(self, planned: list[PlannedRun]) -> None:
        self._names = list(dict.fromkeys(name for r in planned for name in r.settings))
        headers = ["#", *self._names, "state", "best val acc", "run"]
        self.queue.clear()
        self.queue.setColumnCount(len(headers))
        self.queue.setHorizontalHeaderLabels(headers)
        self.queue.setRowCount(len(planned))
        for run in planned:
            self._show_run(run)

    def _show_run(self, run: PlannedRun, state: str | None = None) -> None:
        best = "" if run.best_val_accuracy is None else f"{run.best_val_accuracy:.1%}"
        cells = [str(run.index + 1),
                 *(run_table.format_setting(run.settings.get(name)) for name in self._names),
                 state or run.state, best, run.run or ""]  # fmt: skip
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(run.message)
            self.queue.setItem(run.index, column, item)

    def queue_states(self) -> list[str]:
        """The state each run of the queue shows (planned, pending, running, done, ...)."""
        column = len(self._names) + 1
        return [self.queue.item(row, column).text() for row in range(self.queue.rowCount())]

    def find_unfinished(self) -> Sweep | None:
        """The project's sweep that has runs left (Resume continues it), shown on the button."""
        self.unfinished = None if self.running else unfinished_sweep(self._runs_dir())
        sweep = self.unfinished
        self.resume_button.setVisible(sweep is not None)
        if sweep is not None:
            left = len(sweep.missing)
            self.resume_button.setToolTip(f"Continue sweep {sweep.id}: {left} of "
                                          f"{len(sweep.runs)} runs left")  # fmt: skip
        return sweep

    def _runs_dir(self) -> Path | None:
        return self.document.project.runs_dir if self.document.project.path else None

    # Running

    def start(self) -> bool:
        """Queue the plan shown (or continue its unfinished sweep) and run it; False, with the
        reason shown, when it cannot start."""
        refusal = self._refusal()
        if refusal is None and self.plan is None:
            refusal = "The plan is not ready: fix the settings above."
        if refusal is not None:
            self.error_label.setText(refusal)
            return False
        try:
            self._devices = self.devices()
            sweep = open_sweep(self._runs_dir(), self.plan)
            if not sweep.missing:  # this plan ran to the end before: Start runs it again
                sweep = open_sweep(self._runs_dir(), self.plan, fresh=True)
        except (StudioError, OSError) as error:
            self.error_label.setText(f"Cannot queue the sweep: {error}")
            return False
        return self._run(sweep)

    def resume(self, sweep: Sweep | None = None) -> bool:
        """Continue ``sweep`` (else the project's unfinished one) with its missing runs."""
        sweep = sweep or self.unfinished
        refusal = self._refusal() or (None if sweep else "There is no sweep to resume.")
        if refusal is None:
            try:
                self._devices = self.devices()
            except SweepError as error:
                refusal = str(error)
        if refusal is not None:
            self.error_label.setText(refusal)
            return False
        return self._run(sweep)

    def _refusal(self) -> str | None:
        if self.running:
            return "A sweep is running."
        if self.document.project.path is None:
            return SAVE_FIRST
        return self.busy_elsewhere()

    def _run(self, sweep: Sweep) -> bool:
        self.sweep = sweep
        self.error_label.setText("")
        self.message.setText("")
        self.plan_label.setText(f"Sweep {sweep.id}: {len(sweep.runs)} runs, "
                                f"{len(sweep.missing)} to run")  # fmt: skip
        self._show_queue(sweep.runs)
        self._show_progress(0, "starting…")
        self.runner.start(
            self.document.project, sweep, connect=self._connect_worker, devices=self._devices
        )
        self._set_running(True)
        self.sweep_started.emit(sweep)
        return True

    def _connect_worker(self, worker: SweepWorker) -> None:
        """The worker's signals, wired before its thread starts."""
        worker.sweep_run_started.connect(self._on_sweep_run_started)
        worker.followed_run_started.connect(self._on_followed_run_started)
        worker.other_run_started.connect(self._show_running)
        worker.sweep_run_ended.connect(self._on_sweep_run_ended)
        worker.sweep_finished.connect(self._on_sweep_finished)
        worker.run_started.connect(self._on_run_started)
        worker.step_logged.connect(self._on_step_logged)
        worker.steps_done.connect(self._on_steps_done)
        worker.epoch_ended.connect(self.epoch_ended)
        worker.data_progressed.connect(self._on_data_progressed)
        worker.warned.connect(self.message.setText)

    def _set_running(self, running: bool) -> None:
        for widget in (self.start_button, self.resume_button, self.add_button, self.epochs_box,
                       self.devices_edit, *self.rows):  # fmt: skip
            widget.setEnabled(not running)
        ranged = any(".." in row.text for row in self.rows)
        self.draws_box.setEnabled(not running and ranged)
        self.seed_box.setEnabled(not running and ranged)
        self.start_button.setEnabled(not running and self.plan is not None)
        self.skip_button.setEnabled(running)
        self.stop_button.setEnabled(running)

    def _on_skip_clicked(self) -> None:
        """Skip the queued run selected in the table, else the current run."""
        chosen = [i.row() for i in self.queue.selectionModel().selectedRows()]
        queued = [i for i in chosen if i != self._run_index and self._is_pending(i)]
        if queued:
            for index in queued:
                self.runner.skip(index)
                self._show_run(self.sweep.runs[index], state="to skip")
            return
        self.runner.skip(self._run_index)
        self._show_progress(self.progress.value(), f"skipping run {self._run_index + 1}…")

    def _is_pending(self, index: int) -> bool:
        return self.sweep is not None and self.sweep.runs[index].state == "pending"

    def _on_stop_clicked(self) -> None:
        self.runner.stop()
        self.stop_button.setEnabled(False)
        self._show_progress(self.progress.value(), "stopping: the run writes a checkpoint…")

    def stop_and_wait(self) -> bool:
        """Stop the sweep (the current run writes a checkpoint) and join its thread."""
        return self.runner.stop_and_wait()

    def shutdown(self) -> None:
        """Stop the sweep and the plan's job, and join their threads (the window closes)."""
        self.stop_and_wait()
        self._plans.shutdown()

    # Events of the sweep (plain data)

    def _on_sweep_run_started(self, event) -> None:
        state = "resuming" if event.resumed else "running"
        where = f" on {event.device}" if event.device and self._devices else ""
        self._running[event.index] = state + where
        self._show_run(self.sweep.runs[event.index], state + where)

    def _show_running(self, _event=None) -> None:
        """The rows of the runs in progress again (a run's folder, once made)."""
        for index, state in self._running.items():
            if self.sweep is not None and self.sweep.runs[index].state == "running":
                self._show_run(self.sweep.runs[index], state)

    def _on_followed_run_started(self, event) -> None:
        """The run whose progress and curves show (with runs going at once: one of them)."""
        self._run_index = event.index
        where = f" on {event.device}" if event.device and self._devices else ""
        self._run_state = ("resuming" if event.resumed else "running") + where
        self._show_progress(0, f"run {event.index + 1} of {event.total}: loading the data…")

    def _on_run_started(self, event) -> None:
        self._first_step = event.start_epoch * event.steps_per_epoch
        self._total_steps = max(1, (event.epochs - event.start_epoch) * event.steps_per_epoch)
        self._rate = ""
        self._show_run(self.sweep.runs[self._run_index], self._run_state)  # its folder, now made
        self.run_started.emit(event)

    def _on_step_logged(self, event) -> None:
        self._rate = f" · {event.images_per_sec:,.0f} img/s"
        self._on_steps_done(event)
        self.step_logged.emit(event)

    def _on_steps_done(self, event) -> None:
        done = event.global_step - self._first_step
        where = f"epoch {event.epoch} · step {event.step}/{event.steps}"
        total = len(self.sweep.runs) if self.sweep else 0
        text = f"run {self._run_index + 1} of {total} · {where}{self._rate}"
        self._show_progress(min(100, int(100 * done / self._total_steps)), text)

    def _on_data_progressed(self, event) -> None:
        if event.total:
            text = f"run {self._run_index + 1}: {event.what} {100 * event.done // event.total}%"
            self._show_progress(self.progress.value(), text)

    def _on_sweep_run_ended(self, event) -> None:
        self._running.pop(event.run.index, None)
        self._show_run(event.run)
        self.sweep_run_ended.emit(event)

    def _on_sweep_finished(self, ended) -> None:
        self.runner.thread.wait()
        self._set_running(False)
        if isinstance(ended, SweepEnded):
            counts = ", ".join(f"{n} {state}" for state, n in ended.counts.items() if n)
            finished = ended.state == "finished"
            self._show_progress(100 if finished else self.progress.value(),
                                f"sweep {ended.state}: {counts}")  # fmt: skip
        else:
            self._show_progress(self.progress.value(), "the sweep stopped")
            self.message.setText(ended)
        self.find_unfinished()
        self.sweep_ended.emit(ended)

    def _show_progress(self, percent: int, status: str) -> None:
        self.progress.setValue(percent)
        self.status_label.setText(status)
        self.progress_changed.emit(percent, status)


def _spin(parent: QWidget, low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox(parent)
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    return box
