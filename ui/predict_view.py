"""The Predict view: drop image files or folders (or add them with the buttons) and see what the
model says of each: a table with a thumbnail of what the model saw, the file, the predicted class
and its confidence (the top classes in a tooltip), sortable by any column, filtered by class and
by "confidence below"; the files that could not be read are listed under it. Double-click a row to
inspect that image; Export CSV writes the rows shown.

The model is the one the window hands over with ``set_model_source`` (the Inspect view's: the
selected run, or the run in progress). Predicting runs ``cnnstudio.predict.predict`` on a pool
thread (``ui.background.Jobs``, newest request wins) with progress and Cancel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.errors import StudioError, TrainingError
from cnnstudio.model_source import ModelSource
from cnnstudio.predict import Predictions, predict, write_csv
from cnnstudio.progress import Progress, TaskState
from ui.background import Jobs
from ui.icons import icon
from ui.inspector.requests import resolve_source
from ui.inspector.view import IMAGE_FILTER
from ui.predict_table import RESULT_ROLE, PredictionFilter, PredictionTableModel
from ui.theme import set_role

TOP_K = 5
THUMBNAIL = 40
HINT = "Drop image files or folders here, or add them with the buttons above."


def predict_job(
    state: TaskState, source: Any, resolved: ModelSource | None, paths: list[Path]
) -> tuple[ModelSource, Predictions]:
    """Resolve the model source (loading a checkpoint) and predict ``paths`` (on a pool thread)."""
    if resolved is None and source is None:
        raise TrainingError("no model to predict with yet: train one, or select a trained run")
    model = resolved or resolve_source(source)
    return model, predict(model, paths, k=TOP_K, thumbnails=THUMBNAIL, state=state)


class PredictView(QWidget):
    """Predict the classes of image files and folders with the model handed over."""

    predicted = Signal(object)  # Predictions
    failed = Signal(str)
    inspect_requested = Signal(object, str)  # an image file and what it is

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.paths: list[Path] = []
        self.predictions: Predictions | None = None
        self._source: Any = None
        self._resolved: ModelSource | None = None
        self._jobs = Jobs(self, newest_wins=True)
        self._build_ui()
        self._connect()
        self._show_message(HINT)

    # Building

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        layout.addLayout(self._build_toolbar())
        layout.addLayout(self._build_progress())
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        layout.addLayout(self._build_filters())
        self.model = PredictionTableModel(THUMBNAIL, self)
        self.proxy = PredictionFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(2, Qt.SortOrder.AscendingOrder)  # the doubtful ones first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.table.verticalHeader().setDefaultSectionSize(THUMBNAIL + 6)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in enumerate((240, 140, 96)):
            self.table.setColumnWidth(column, width)
        layout.addWidget(self.table, 1)
        self.unreadable_heading = QLabel(self)
        set_role(self.unreadable_heading, "error")
        self.unreadable = QListWidget(self)
        layout.addWidget(self.unreadable_heading)
        layout.addWidget(self.unreadable)
        self.setAcceptDrops(True)
        self._show_unreadable()

    def _build_toolbar(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(8)
        self.add_files_button = QPushButton(icon("open"), "Add images…", self)
        self.add_folder_button = QPushButton(icon("open"), "Add folder…", self)
        self.again_button = QPushButton(icon("refresh"), "Predict again", self)
        self.again_button.setToolTip("Predict the same files with the model selected now")
        self.clear_button = QPushButton("Clear", self)
        for button in (self.add_files_button, self.add_folder_button, self.again_button,
                       self.clear_button):  # fmt: skip
            row.addWidget(button)
        row.addStretch(1)
        self.model_label = QLabel(self)
        set_role(self.model_label, "muted")
        row.addWidget(self.model_label)
        return row

    def _build_progress(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.progress = QProgressBar(self)
        self.progress.setFormat("predicting %v of %m images")
        self.cancel_button = QPushButton(icon("stop"), "Cancel", self)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        self.progress.hide()
        self.cancel_button.hide()
        return row

    def _build_filters(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(8)
        row.addWidget(QLabel("Class", self))
        self.class_box = QComboBox(self)
        self.class_box.setMinimumContentsLength(14)
        self.class_box.addItem("all classes", None)
        row.addWidget(self.class_box)
        row.addWidget(QLabel("Confidence below", self))
        self.below_spin = QDoubleSpinBox(self)
        self.below_spin.setRange(0.0, 100.0)
        self.below_spin.setDecimals(1)
        self.below_spin.setSuffix(" %")
        self.below_spin.setValue(100.0)
        self.below_spin.setSpecialValueText("")
        self.below_spin.setToolTip("Show only predictions less confident than this (100 %: all)")
        row.addWidget(self.below_spin)
        self.count_label = QLabel(self)
        set_role(self.count_label, "muted")
        row.addWidget(self.count_label)
        row.addStretch(1)
        self.export_button = QPushButton(icon("export"), "Export CSV…", self)
        self.export_button.setToolTip("Write the rows shown (after the filters, in this order)")
        row.addWidget(self.export_button)
        return row

    def _connect(self) -> None:
        self.add_files_button.clicked.connect(self._on_add_files_clicked)
        self.add_folder_button.clicked.connect(self._on_add_folder_clicked)
        self.again_button.clicked.connect(self.predict_again)
        self.clear_button.clicked.connect(self.clear)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.class_box.currentIndexChanged.connect(self._apply_filter)
        self.below_spin.valueChanged.connect(self._apply_filter)
        self.table.doubleClicked.connect(self._on_row_double_clicked)
        self._jobs.progressed.connect(self._on_job_progressed)
        self._jobs.finished.connect(self._on_job_finished)
        self._jobs.failed.connect(self._on_job_failed)
        self._update_buttons()

    # Public

    def set_model_source(self, source: Any) -> None:
        """Predict with another model from now on: a ModelSource, or a function returning one
        (called off the GUI thread). The table stays until Predict again."""
        if source is self._source:
            return
        self._source, self._resolved = source, None
        if self.predictions is not None:
            self._show_message("The selected model changed: Predict again to use it.")

    def predict_paths(self, paths: list[str | Path]) -> int:
        """Add image files or folders and predict every one added so far; the job's number."""
        for path in map(Path, paths):
            if path not in self.paths:
                self.paths.append(path)
        return self.predict_again()

    def predict_again(self) -> int:
        """Predict the files added so far with the model handed over last."""
        if not self.paths:
            return 0
        number = self._jobs.submit(predict_job, self._source, self._resolved, list(self.paths))
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        self._update_buttons()
        return number

    def cancel(self) -> None:
        """Stop the prediction running; the table keeps what it showed."""
        self._jobs.stop()

    def clear(self) -> None:
        self.cancel()
        self.paths = []
        self._show_predictions(None)
        self._show_message(HINT)

    def export_csv(self, path: str | Path) -> int:
        """Write the rows shown (filtered and sorted as the table shows them) as CSV; how many."""
        rows = self.proxy.shown()
        if self.predictions is not None:
            write_csv(self.predictions, path, rows)
        return len(rows)

    def busy(self) -> bool:
        return self._jobs.busy()

    def wait(self, msecs: int = 60000) -> bool:
        return self._jobs.wait(msecs)

    def shutdown(self) -> None:
        """Stop the prediction and join its thread (the window calls this before it closes)."""
        self._jobs.shutdown(-1)

    # Drops

    def dragEnterEvent(self, event) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.predict_paths(paths)

    # Answers

    def _on_job_progressed(self, _number: int, progress: Progress) -> None:
        self.progress.setRange(0, max(progress.total, 1))
        self.progress.setValue(progress.done)

    def _on_job_finished(self, _number: int, reply: tuple[ModelSource, Predictions]) -> None:
        source, predictions = reply
        self._end_job()
        self._resolved = source
        self._show_predictions(predictions)
        self._show_message("")
        self.predicted.emit(predictions)

    def _on_job_failed(self, _number: int, message: str) -> None:
        self._end_job()
        cancelled = message.endswith("cancelled")
        self._show_message("Cancelled." if cancelled else message, error=not cancelled)
        self.failed.emit(message)

    def _end_job(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self._update_buttons()

    def _show_predictions(self, predictions: Predictions | None) -> None:
        self.predictions = predictions
        self.model.set_predictions(predictions)
        self.model_label.setText(predictions.label if predictions is not None else "")
        self._fill_classes(predictions.classes if predictions is not None else ())
        self._show_unreadable()
        self._apply_filter()

    def _fill_classes(self, classes: tuple[str, ...]) -> None:
        chosen = self.class_box.currentData()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem("all classes", None)
        for name in classes:
            self.class_box.addItem(name, name)
        self.class_box.setCurrentIndex(max(0, self.class_box.findData(chosen)))
        self.class_box.blockSignals(False)

    def _show_unreadable(self) -> None:
        skipped = self.predictions.skipped if self.predictions is not None else ()
        self.unreadable.clear()
        self.unreadable.addItems([f"{s.path}: {s.reason}" for s in skipped])
        s = "" if len(skipped) == 1 else "s"
        self.unreadable_heading.setText(f"{len(skipped)} file{s} could not be read")
        self.unreadable_heading.setVisible(bool(skipped))
        self.unreadable.setVisible(bool(skipped))
        if skipped:  # as tall as its lines, up to three; it scrolls beyond
            lines = min(len(skipped), 3) * self.unreadable.sizeHintForRow(0)
            self.unreadable.setFixedHeight(lines + 2 * self.unreadable.frameWidth() + 4)

    def _apply_filter(self, *_args) -> None:
        self.proxy.set_filter(self.class_box.currentData(), self.below_spin.value() / 100)
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        self.count_label.setText(f"{shown} of {total} shown" if total else "")
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.again_button.setEnabled(bool(self.paths))
        self.clear_button.setEnabled(bool(self.paths))
        self.export_button.setEnabled(self.proxy.rowCount() > 0)

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        set_role(self.message, "error" if error else "muted")
        self.message.setVisible(bool(text))

    # User actions

    def _on_add_files_clicked(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add images", "", IMAGE_FILTER)
        if files:
            self.predict_paths(files)

    def _on_add_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images")
        if folder:
            self.predict_paths([folder])

    def _on_export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the rows shown as CSV", "predictions.csv", "CSV (*.csv)"
        )
        if not path:
            return
        try:
            count = self.export_csv(path)
        except (OSError, StudioError) as error:
            self._show_message(f"Cannot write {path}: {error}", error=True)
            return
        self._show_message(f"Wrote {count} rows to {path}.")

    def _on_row_double_clicked(self, index) -> None:
        result = self.proxy.data(self.proxy.index(index.row(), 0), RESULT_ROLE)
        label = f"{result.path.name} (predicted {result.predicted}, {result.confidence:.0%})"
        self.inspect_requested.emit(result.path, label)
