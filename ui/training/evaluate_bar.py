"""Evaluate any run with a checkpoint (stopped, failed after a checkpoint, interrupted or finished)
from the Results tab: on its validation split, saved as the run's evaluation.json as a finished
run writes it, or on a labelled image folder chosen by the user (shown, not saved). The work runs
off the GUI thread (``ui.background.Jobs``) with progress and Cancel; ``evaluated`` carries the
result to the results view."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from cnnstudio.data import images_at
from cnnstudio.metrics import Evaluation
from cnnstudio.progress import Progress, TaskState
from cnnstudio.runs import RunInfo
from cnnstudio.train import evaluate_run_folder
from ui.background import Jobs
from ui.theme import set_role

CHECKPOINT_WORDS = "its best checkpoint (best.pt; last.pt when it stopped before it had a best)"


def _evaluate(state: TaskState, folder: Path, data: Path | None) -> tuple[Evaluation, object]:
    """The run in ``folder`` on ``data`` (None: its validation split, saved as evaluation.json),
    and the images it was measured on for the results gallery."""
    result, dataset = evaluate_run_folder(
        folder, data=data, split=None if data is not None else "val", save=data is None,
        state=state,
    )  # fmt: skip
    return result, partial(images_at, dataset)


class EvaluateBar(QWidget):
    """Evaluate / Evaluate on a folder… / Cancel for the selected run, with a progress bar.
    ``evaluated`` carries the Evaluation, a title naming the run, and the gallery's image source."""

    evaluated = Signal(object, str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run: RunInfo | None = None
        self.allowed = True
        self._evaluating: tuple[RunInfo, Path | None] | None = None  # the run, the folder
        self._jobs = Jobs(self, newest_wins=True)
        self._build_ui()
        self._connect()
        self._update()

    def _build_ui(self) -> None:
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.evaluate_button = QPushButton("Evaluate", self)
        self.evaluate_button.setToolTip(
            f"Measure the selected run from {CHECKPOINT_WORDS} on its validation split, and "
            "save the result as the run's evaluation.json, as a finished run does"
        )
        self.folder_button = QPushButton("Evaluate on a folder…", self)
        self.folder_button.setToolTip(
            f"Measure the selected run from {CHECKPOINT_WORDS} on a labelled image folder that "
            "training never saw: one subfolder per class, named as the run's class folders"
        )
        self.cancel_button = QPushButton("Cancel", self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(220)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        for widget in (self.evaluate_button, self.folder_button, self.cancel_button):
            row.addWidget(widget)
        row.addWidget(self.progress)
        row.addWidget(self.status, 1)

    def _connect(self) -> None:
        self.evaluate_button.clicked.connect(self._on_evaluate_clicked)
        self.folder_button.clicked.connect(self._on_folder_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self._jobs.progressed.connect(self._on_job_progressed)
        self._jobs.finished.connect(self._on_job_finished)
        self._jobs.failed.connect(self._on_job_failed)

    def set_run(self, run: RunInfo | None) -> None:
        """The run the buttons evaluate (None: none selected). Choosing another run cancels an
        evaluation of the previous one."""
        if self._evaluating is not None and not self._is_selected(self._evaluating):
            self._cancel()
        self.run = run
        self._set_status("")
        self._update()

    def set_allowed(self, allowed: bool) -> None:
        """Whether evaluating is allowed now (not while the window trains)."""
        self.allowed = allowed
        self._update()

    def evaluate(self, data: Path | None = None) -> bool:
        """Evaluate the selected run on ``data`` (None: its validation split); False, with the
        reason shown, when it cannot start."""
        run = self.run
        if run is None or not run.has_checkpoint:
            self._set_status("Select a run with a checkpoint to evaluate it.", "error")
            return False
        if not self.allowed or self._evaluating is not None:
            return False
        self._evaluating = (run, data)
        where = f"folder {data.name}" if data is not None else "the validation split"
        self._set_status(f"Evaluating run {run.name} on {where}…")
        self.progress.setValue(0)
        self.progress.setFormat("loading images")
        self._jobs.submit(_evaluate, run.folder, data)
        self._update()
        return True

    def busy(self) -> bool:
        """Whether an evaluation thread is still at work (a cancelled one until it ends)."""
        return self._jobs.busy()

    def shutdown(self) -> None:
        self._jobs.shutdown()

    def _is_selected(self, request: tuple[RunInfo, Path | None] | None) -> bool:
        return request is not None and self.run is not None and request[0].folder == self.run.folder

    def _update(self) -> None:
        busy = self._evaluating is not None
        ready = self.allowed and not busy and self.run is not None and self.run.has_checkpoint
        self.evaluate_button.setEnabled(ready)
        self.folder_button.setEnabled(ready)
        self.cancel_button.setVisible(busy)
        self.progress.setVisible(busy)

    def _set_status(self, text: str, role: str = "muted") -> None:
        self.status.setText(text)
        set_role(self.status, role)

    def _on_evaluate_clicked(self) -> None:
        self.evaluate()

    def _on_folder_clicked(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Evaluate on a labelled image folder")
        if chosen:
            self.evaluate(Path(chosen))

    def _on_cancel_clicked(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        """Stop the evaluation: the buttons are ready again at once (a new evaluation wins over
        the old one, which ends at its next batch and is not shown)."""
        self._jobs.stop()
        self._evaluating = None
        self._set_status("Evaluation cancelled.")
        self._update()

    def _on_job_progressed(self, _number: int, progress: Progress) -> None:
        if progress.total:
            self.progress.setValue(round(100 * progress.done / progress.total))
            self.progress.setFormat(f"{progress.what} %p%")

    def _on_job_finished(self, _number: int, result) -> None:
        evaluation, image_source = result
        request, self._evaluating = self._evaluating, None
        self._update()
        if request is None or not self._is_selected(request):
            return  # another run was chosen meanwhile
        run, data = request
        saved = "" if data is not None else " (saved as the run's evaluation.json)"
        self._set_status(f"Evaluated on the {evaluation.data}{saved}.")
        self.evaluated.emit(evaluation, f"Run {run.name}", image_source)

    def _on_job_failed(self, _number: int, message: str) -> None:
        if self._evaluating is None:
            return  # cancelled: already said
        self._evaluating = None
        self._update()
        self._set_status(message, "error")
