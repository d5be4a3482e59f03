"""The Train view: the training settings (``settings_form``) with the batch's memory estimate,
Start / Pause / Resume / Stop and resume-from-checkpoint, a progress bar with epoch, step,
images/s and ETA, and tabs for the live curves (``curves_view``: hover for values, export as CSV
and PNG), the run list (overlay runs, delete), a run's results and the learning-rate finder.
Curves redraw at most 20 times a second whatever the step rate.

The run itself, its thread and its progress live in ``run_controller.RunController``; this module
lays the parts out and wires them together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.params import format_rate
from cnnstudio.runs import RunInfo, read_evaluation, read_settings
from cnnstudio.train import Failed
from ui.icons import icon
from ui.scrolling import VerticalScroll
from ui.theme import colours
from ui.training.curves_view import CurvesView
from ui.training.lr_view import LRFinderView
from ui.training.results_view import ImageSource, ResultsView
from ui.training.run_controller import SAVE_FIRST, RunController
from ui.training.runs_view import RunsView
from ui.training.settings_form import TrainSettingsForm
from ui.training.shortcuts import RUN_KEYS
from ui.training.worker import TrainingRunner


def _action(panel: QWidget, button: QPushButton, text: str, keys: tuple[str, ...]) -> QAction:
    """An action that presses ``button``; its shortcuts are added to the button's tooltip."""
    action = QAction(button.icon(), text, panel)
    action.setShortcuts([QKeySequence(key) for key in keys])
    action.setProperty("button", button)
    action.triggered.connect(button.click)
    if keys:
        shown = " or ".join(
            QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)
            for key in dict.fromkeys(k for k in keys if k != "Ctrl+Enter")
        )
        button.setToolTip(f"{button.toolTip() or text.replace('&', '')} ({shown})")
        action.setToolTip(button.toolTip())
    return action


class TrainPanel(QWidget):
    """Starts runs of the document's project and shows them as they happen."""

    run_finished = Signal(object)
    run_started = Signal(object)
    epoch_ended = Signal(object)
    inspect_requested = Signal(object, str)  # an image from the results gallery

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.controller = RunController(document, self)
        self.image_source_for: Callable[[dict], ImageSource | None] = lambda _data: None
        self.save_first: Callable[[], object] | None = None  # offers to save an unsaved project
        self.busy_elsewhere: Callable[[], str | None] = lambda: None  # a sweep, set by the window
        self._build_ui()
        self._build_actions()
        self._connect()
        self._set_running(False)
        self.runs_view.set_runs_dir(self.document.project.runs_dir)

    # What the run shows

    @property
    def runner(self) -> TrainingRunner:
        return self.controller.runner

    @property
    def running(self) -> bool:
        return self.controller.running

    @property
    def result(self):
        """The last run's Finished or Failed (None while a run goes or before the first)."""
        return self.controller.result

    @property
    def steps(self) -> list[tuple[int, float]]:
        """The (global step, loss) points of the current run."""
        return self.curves.steps

    # Building

    def _build_ui(self) -> None:
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(12)
        host = QWidget(self)
        host.setLayout(self._build_controls())
        host.setMaximumWidth(360)
        layout.addWidget(host)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.curves = CurvesView(self.document, self)
        self.tabs.addTab(self.curves, icon("train"), "Curves")
        self.runs_view = RunsView(self)
        self.runs_view.project_data = lambda: self.document.project.data
        self.tabs.addTab(self.runs_view, "Runs")
        self.results_view = ResultsView(self)
        self.tabs.addTab(self.results_view, "Results")
        self.lr_view = LRFinderView(self.document, self)
        self.tabs.addTab(self.lr_view, icon("lr"), "Learning rate")
        layout.addWidget(self.tabs, 1)

    def _build_actions(self) -> None:
        """Train, Pause, Stop and Resume as actions with shortcuts (the window's Run menu holds
        them); each presses its button, so the buttons stay the one place that acts."""
        self.start_action = _action(self, self.start_button, "&Train", RUN_KEYS["train"])
        self.pause_action = _action(self, self.pause_button, "&Pause", RUN_KEYS["pause"])
        self.stop_action = _action(self, self.stop_button, "&Stop", RUN_KEYS["stop"])
        self.resume_action = _action(self, self.resume_button, "&Resume from Checkpoint", ())
        self.run_actions = [self.start_action, self.pause_action, self.stop_action,
                            self.resume_action]  # fmt: skip

    def _build_controls(self) -> QVBoxLayout:
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        self.start_button = QPushButton(icon("play", colours().accent), "Train", self)
        self.start_button.setToolTip("Start a new run of the project (saved runs stay)")
        self.pause_button = QPushButton(icon("pause"), "Pause", self)
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Hold the run after the current step; press again to go on")
        self.stop_button = QPushButton(icon("stop"), "Stop", self)
        self.stop_button.setToolTip("Stop after the current step; a checkpoint is written")
        for button in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        left.addLayout(buttons)
        self.resume_button = QPushButton(icon("resume"), "Resume from checkpoint", self)
        self.resume_button.setToolTip(
            "Continue the selected run (or the latest one) from its last checkpoint, with its "
            "optimizer, schedule and random state"
        )
        left.addWidget(self.resume_button)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")  # the bar holds the share; the words go under it
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)  # a thin bar: the words are on the line under it
        left.addWidget(self.progress)
        self.status_label = QLabel("ready", self)
        self.status_label.setProperty("role", "muted")
        # elided to the room it has, never wrapped, never widening the dock
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        left.addWidget(self.status_label)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        left.addWidget(self.message)
        self.form = TrainSettingsForm(self.document, self)
        left.addWidget(VerticalScroll(self.form, self), 1)
        return left

    def _connect(self) -> None:
        self.start_button.clicked.connect(self._on_start_clicked)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.form.rejected.connect(self.message.setText)
        self.curves.saved.connect(self.message.setText)
        self.controller.progress_changed.connect(self._on_progress_changed)
        self.controller.run_started.connect(self._on_run_started)
        self.controller.step_logged.connect(self.curves.add_step)
        self.controller.epoch_ended.connect(self._on_epoch_ended)
        self.controller.warned.connect(self.message.setText)
        self.controller.run_finished.connect(self._on_run_finished)
        self.document.project_replaced.connect(self.refresh_form)
        self.runs_view.selection_changed.connect(self._on_runs_selected)
        self.document.class_names_changed.connect(self._on_class_names_changed)
        self.results_view.inspect_requested.connect(self.inspect_requested)
        self.lr_view.applied.connect(self._on_lr_applied)
        self.lr_view.started.connect(lambda: self._set_running(False))
        self.lr_view.ended.connect(lambda: self._set_running(self.running))

    def refresh_theme(self) -> None:
        """Redraw the plots' background and the buttons' icons in the current theme."""
        self.curves.refresh_theme()
        self.lr_view.refresh_theme()
        self.results_view.refresh_theme()
        self.start_button.setIcon(icon("play", colours().accent))
        self.pause_button.setIcon(icon("play" if self.pause_button.isChecked() else "pause"))
        self.stop_button.setIcon(icon("stop"))
        self.resume_button.setIcon(icon("resume"))
        for action in self.run_actions:
            action.setIcon(action.property("button").icon())
        self.tabs.setTabIcon(0, icon("train"))
        self.tabs.setTabIcon(3, icon("lr"))

    def refresh_form(self) -> None:
        """Show the project's training settings and runs (after another project was opened), its
        newest run selected: its curves and results are what one opens a trained project for."""
        self.form.refresh()
        self.results_view.set_evaluation(None)
        self.runs_view.set_runs_dir(self.document.project.runs_dir)
        if self.runs_view.runs:
            self.runs_view.select_runs([self.runs_view.runs[0].name])

    def _on_lr_applied(self, value: float) -> None:
        self.message.setText(f"Learning rate set to {format_rate(value)} by the finder.")

    # Starting and stopping

    def start(self, resume: bool | str = False, epochs: int | None = None) -> bool:
        """Train the project (or resume a run); False, with the reason shown, when it cannot.
        An unsaved project is offered a save first (``save_first``, set by the window)."""
        if self.document.project.path is None and self.save_first is not None:
            self.save_first()
        refusal = self.controller.refusal()
        if refusal is None and self.lr_view.busy():
            refusal = "The learning-rate finder is running: wait for it to end."
        if refusal is None and self.results_view.evaluate_bar.busy():
            refusal = "A run is being evaluated: wait for it to end, or cancel it."
        if refusal is None:
            refusal = self.busy_elsewhere()
        if refusal is not None:
            self.message.setText(refusal)
            return False
        self.message.setText("")
        self.curves.clear()
        self.controller.start(resume=resume, epochs=epochs)
        self._set_running(True)
        self.tabs.setCurrentIndex(0)
        return True

    def project_saved(self) -> None:
        """The project has a folder now: a 'save first' note no longer applies."""
        if self.message.text() == SAVE_FIRST:
            self.message.setText("")

    def _on_start_clicked(self) -> None:
        self.start()

    def _on_resume_clicked(self) -> None:
        plan = self.controller.resume_plan(self.runs_view.selected(), self.runs_view.runs)
        if isinstance(plan, str):
            self.message.setText(plan)
        else:
            self.start(**plan)

    def _on_pause_toggled(self, paused: bool) -> None:
        if paused:
            self.controller.pause()
            self.pause_button.setText("Resume")
            self.pause_button.setIcon(icon("play"))
            self.pause_action.setText("Resume &Training")
        else:
            self.controller.resume()
            self.pause_button.setText("Pause")
            self.pause_button.setIcon(icon("pause"))
            self.pause_action.setText("&Pause")

    def _on_stop_clicked(self) -> None:
        self.pause_button.setChecked(False)
        self.controller.stop()

    def stop_and_wait(self) -> bool:
        self.pause_button.setChecked(False)
        return self.controller.stop_and_wait()

    def busy(self) -> bool:
        return self.running or self.lr_view.busy() or self.results_view.busy()

    def shutdown(self) -> None:
        """Stop the run and every background job, and join their threads."""
        self.stop_and_wait()
        self.lr_view.shutdown()
        self.results_view.shutdown()

    def _set_running(self, running: bool) -> None:
        finding = self.lr_view.busy()
        self.start_button.setEnabled(not running and not finding)
        self.resume_button.setEnabled(not running and not finding)
        self.pause_button.setEnabled(running and self.controller.runner.can_pause)
        self.stop_button.setEnabled(running)
        for action in self.run_actions:
            action.setEnabled(action.property("button").isEnabled())
        self.lr_view.find_button.setEnabled(not running and not finding)
        self.form.set_editable(not running)
        self.results_view.evaluate_bar.set_allowed(not running)

    # The run as it goes

    def _on_progress_changed(self) -> None:
        self.progress.setValue(self.controller.percent)
        self._show_status()

    def _show_status(self) -> None:
        """The run's status line on one line, cut with … where the panel is narrow (the whole
        line in the tooltip)."""
        text = self.controller.status
        room = max(40, self.status_label.width())
        shown = self.status_label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, room)
        self.status_label.setText(shown)
        self.status_label.setToolTip(text if shown != text else "")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._show_status()

    def _on_run_started(self, event) -> None:
        self.curves.steps_per_epoch = max(1, event.steps_per_epoch)
        self.runs_view.refresh(select=Path(event.run_dir).name)
        self.run_started.emit(event)

    def _on_epoch_ended(self, event) -> None:
        self.curves.add_epoch(event)
        self.epoch_ended.emit(event)

    def _on_run_finished(self, result) -> None:
        self.curves.flush()
        self._set_running(False)
        self.pause_button.setChecked(False)
        if isinstance(result, Failed):
            self.message.setText(result.message)
        run_dir = getattr(result, "run_dir", None)
        self.runs_view.refresh(select=Path(run_dir).name if run_dir else None)
        self.run_finished.emit(result)

    # The run list and results

    def _on_runs_selected(self, chosen: list[RunInfo]) -> None:
        self.curves.clear_overlays()
        if self.running:
            return
        self.results_view.evaluate_bar.set_run(chosen[0] if len(chosen) == 1 else None)
        if len(chosen) == 1:
            self._show_results(chosen[0])
        if len(chosen) >= 2 or (len(chosen) == 1 and not self.curves.steps):
            self.curves.overlay(chosen)

    def _on_class_names_changed(self) -> None:
        """A class renamed: the results shown take its new name."""
        chosen = self.runs_view.selected()
        if len(chosen) == 1 and not self.running:
            self._show_results(chosen[0])

    def _show_results(self, info: RunInfo) -> None:
        evaluation = read_evaluation(info.folder, self.document.project.data)
        if evaluation is None:
            self.results_view.set_evaluation(
                None, f"Run {info.name} has no evaluation yet ({info.state}): press Evaluate."
                if info.has_checkpoint else
                f"Run {info.name} has no checkpoint ({info.state}): there is nothing to evaluate."
            )  # fmt: skip
            return
        source = None
        settings = read_settings(info.folder)
        if settings is not None:
            source = self.image_source_for(settings.get("project", {}))
        self.results_view.set_evaluation(evaluation, f"Run {info.name}", source)
