"""The open project as the window sees it: the Project, its undo stack, and its analysis.

Every edit of the project (the model, the training and the data settings) goes through ``push``
as one QUndoCommand; the undo stack alone says whether the project has unsaved changes. After
each change of the model the analysis runs on a pool thread (``ui.background.Jobs``; the newest
request wins) and arrives through ``analysis_ready``. Then the activation memory of a valid
model is measured in a job of its own (a backbone takes a few tenths of a second, and the first
measurement in a process seconds: the analysis does not wait for it) and arrives through
``activations_ready``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from cnnstudio import Analysis, ModelSpec, Project, analyze, load_project, new_project
from cnnstudio.progress import TaskState
from ui.background import Jobs
from ui.editor.commands import SetDataCommand, SetTrainingCommand

if TYPE_CHECKING:  # torch's modules: imported where used, so that the editor starts without torch
    from cnnstudio.activation_memory import ActivationMemory


def _analyse(_state: TaskState, spec: ModelSpec) -> Analysis:
    return analyze(spec)


def _measure(_state: TaskState, spec: ModelSpec) -> tuple[ModelSpec, ActivationMemory]:
    from cnnstudio.activation_memory import activation_memory  # torch: waits for ui.engine's import

    return spec, activation_memory(spec)


class ProjectDocument(QObject):
    """Holds the project being edited; views redraw from its signals."""

    spec_changed = Signal(object)  # ModelSpec
    analysis_ready = Signal(object)  # Analysis
    analysis_failed = Signal(str)  # what went wrong, for the user
    activations_ready = Signal(object)  # ActivationMemory, or None: not measured (see why)
    project_replaced = Signal()
    dirty_changed = Signal(bool)
    data_changed = Signal()
    training_changed = Signal(str)  # the name of the setting
    class_names_changed = Signal()

    def __init__(self, project: Project | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project or new_project()
        self.undo_stack = QUndoStack(self)
        self.analysis: Analysis | None = None
        self.activations: ActivationMemory | None = None  # of the current model, once measured
        self.activations_error = ""  # why the current model's activations are not measured
        self._analysed = -1  # the number of the analysis job that gave ``analysis``
        self._analyses = Jobs(self, newest_wins=True)
        self._analyses.finished.connect(self._on_analysis_finished)
        self._analyses.failed.connect(self._on_analysis_failed)
        self._measures = Jobs(self, newest_wins=True)
        self._measures.finished.connect(self._on_measure_finished)
        self._measures.failed.connect(self._on_measure_failed)
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        # a network opened for editing (fx_import.OpenedNetwork) whose weights become a run of
        # the project when it is next saved; set by its undo command
        self.starting_weights = None
        self._written_starts: list = []

    # State

    @property
    def spec(self) -> ModelSpec:
        return self.project.model

    @property
    def dirty(self) -> bool:
        return not self.undo_stack.isClean()

    def _on_clean_changed(self, clean: bool) -> None:
        self.dirty_changed.emit(not clean)

    def push(self, command: QUndoCommand) -> None:
        self.undo_stack.push(command)

    def apply_spec(self, spec: ModelSpec) -> None:
        """Set the model (called by undo commands only) and start its analysis."""
        self.project.model = spec
        self.spec_changed.emit(spec)
        self.request_analysis()

    def set_starting_weights(self, opened) -> None:
        """The network whose weights the next save writes as the project's starting run (None:
        none); called by undo commands only. Weights already written are not written again."""
        written = any(opened is done for done in self._written_starts)
        self.starting_weights = None if written else opened

    def _write_starting_run(self) -> Path | None:
        """The starting weights as an imported run of the model as it was opened (what
        ``new --from-model`` makes), whatever was edited since."""
        opened = self.starting_weights
        if opened is None:
            return None
        from cnnstudio.runs import import_state  # torch, loaded since a network was opened

        project = replace(self.project, model=opened.imported.spec)
        origin = f"{opened.source} ({opened.weights} weights)"
        run = import_state(project, opened.imported.state_dict, opened.mean, opened.std, origin)
        self.starting_weights = None
        self._written_starts.append(opened)
        return run

    def set_data(self, data, text: str = "Change the data", training: dict | None = None) -> None:
        """Change the data settings (and ``training`` settings that follow them) as one undo
        step; nothing when nothing changes."""
        current = self.project.training
        follows = {k: v for k, v in (training or {}).items() if current.get(k) != v}
        if data == self.project.data and not follows:
            return
        self.push(SetDataCommand(self, data, text, follows))

    def apply_data(self, data, training: dict, absent: object = None) -> None:
        """Set the data settings (called by undo commands only)."""
        self.project.data = data
        self.apply_training(training, absent)
        self.data_changed.emit()

    def adopt_statistics(self, data) -> None:
        """Keep the mean and std a run computed on the project's data (``data``, the run's copy
        of the settings): derived data, not an edit, so the project stays clean; they are saved
        with the project's next save and spare the next run from computing them again."""
        now = self.project.data
        if data.mean is None or data.stats_key == now.stats_key:
            return
        unset = {"mean": None, "std": None, "stats_key": None}
        if replace(data, **unset) != replace(now, **unset):
            return  # the data was changed since the run started
        self.project.data = replace(now, mean=data.mean, std=data.std, stats_key=data.stats_key)

    def apply_class_names(self, names: dict[str, str]) -> None:
        """Set the classes' display names (called by undo commands only: the undo stack keeps
        the project dirty or clean)."""
        self.project.data = replace(self.project.data, class_names=dict(names))
        self.class_names_changed.emit()

    def set_training(self, name: str, value) -> None:
        """Change one training setting as an undo step; nothing when it has that value."""
        if name in self.project.training and self.project.training[name] == value:
            return
        self.push(SetTrainingCommand(self, name, value))

    def apply_training(self, values: dict, absent: object = None) -> None:
        """Set training settings (called by undo commands only); ``absent`` marks a setting the
        project did not have, which goes again."""
        for name, value in values.items():
            if absent is not None and value is absent:
                self.project.training.pop(name, None)
            else:
                self.project.training[name] = value
            self.training_changed.emit(name)

    def request_analysis(self) -> None:
        self.activations, self.activations_error = None, ""
        self._analyses.submit(_analyse, self.project.model)

    @property
    def analysis_is_current(self) -> bool:
        """Whether ``analysis`` belongs to the model as it is now (not to an earlier edit)."""
        return self._analysed == self._analyses.latest

    def _on_analysis_failed(self, _number: int, message: str) -> None:
        self.analysis = None  # no verdict on this model: nothing may pass it as valid
        self.activations = None
        self.analysis_failed.emit(message)

    def _on_analysis_finished(self, number: int, analysis: Analysis) -> None:
        self.analysis = analysis  # the newest request's: older answers never arrive
        self._analysed = number
        self.analysis_ready.emit(analysis)
        if analysis.valid:
            self._measures.submit(_measure, self.project.model)
        else:
            self.activations_error = "the model is not valid"
            self.activations_ready.emit(None)

    def _on_measure_finished(
        self, _number: int, result: tuple[ModelSpec, ActivationMemory]
    ) -> None:
        spec, measured = result
        if spec is self.project.model:  # not an edit ago (an invalid model measures nothing)
            self.activations = measured
            self.activations_ready.emit(measured)

    def _on_measure_failed(self, _number: int, message: str) -> None:
        self.activations, self.activations_error = None, message
        self.activations_ready.emit(None)

    # Files

    def replace_project(self, project: Project) -> None:
        self.project = project
        self.undo_stack.clear()
        self.starting_weights, self._written_starts = None, []
        self.project_replaced.emit()
        self.spec_changed.emit(project.model)
        self.dirty_changed.emit(False)
        self.request_analysis()

    def open(self, path: str | Path) -> None:
        self.replace_project(load_project(path))

    def save(self, path: str | Path | None = None) -> Path:
        written = self.project.save(path)
        self._write_starting_run()
        self.undo_stack.setClean()
        self.dirty_changed.emit(False)
        return written

    def discard_changes(self) -> None:
        """Forget that there are unsaved changes (the user chose to discard them)."""
        self.undo_stack.setClean()
        self.dirty_changed.emit(False)

    def busy(self) -> bool:
        return self._analyses.busy() or self._measures.busy()

    def shutdown(self) -> None:
        self._analyses.shutdown(30000)
        self._measures.shutdown(30000)
