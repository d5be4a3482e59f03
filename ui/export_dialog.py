"""The export dialog: choose a format, a run (or the untrained model) and a file; the export runs
on a pool thread, is checked by the engine, and the dialog shows what was written and how closely
it matches (or why it failed)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.export import FORMATS, ExportResult, default_file_name, export, export_source
from cnnstudio.params import format_bytes
from cnnstudio.progress import TaskState
from cnnstudio.runs import list_runs
from ui.background import Jobs
from ui.theme import set_role


def _export_job(
    _state: TaskState, project, run: str | None, format: str, path: Path
) -> ExportResult:
    source = export_source(project, run, untrained=run is None)
    return export(source, format, path)


class ExportDialog(QDialog):
    """Export the project's model: ``exported`` carries the engine's ExportResult, ``failed``
    the error message; both are also shown in the dialog."""

    exported = Signal(object)
    failed = Signal(str)

    def __init__(self, project, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self._jobs = Jobs(self)
        self._build_ui()
        self._connect()
        self._on_format_changed()

    def _build_ui(self) -> None:
        self.setWindowTitle("Export model")
        self.resize(620, 0)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.format_box = QComboBox(self)
        for fmt in FORMATS.values():
            self.format_box.addItem(fmt.title, fmt.name)
        self.format_help = QLabel(self)
        self.format_help.setProperty("role", "muted")
        self.format_help.setWordWrap(True)
        self.run_box = QComboBox(self)
        for info in list_runs(self.project.runs_dir):
            if info.has_checkpoint:
                best = info.best_val_accuracy
                accuracy = f", best {best:.1%}" if best is not None else ""
                self.run_box.addItem(f"{info.name} ({info.state}{accuracy})", info.name)
        self.run_box.addItem("Untrained model (freshly initialised weights)", None)
        self.path_edit = QLineEdit(self)
        self.browse_button = QPushButton("Browse…", self)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        form.addRow("Format", self.format_box)
        form.addRow("", self.format_help)
        form.addRow("Weights from", self.run_box)
        form.addRow("Save to", path_row)
        layout.addLayout(form)
        self.result_label = QLabel("", self)
        self.result_label.setWordWrap(True)
        self.result_label.setMinimumHeight(3 * self.fontMetrics().height())
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.result_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.export_button = self.buttons.addButton(
            "Export", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.export_button.setDefault(True)
        layout.addWidget(self.buttons)

    def _connect(self) -> None:
        self.format_box.currentIndexChanged.connect(self._on_format_changed)
        self.browse_button.clicked.connect(self._on_browse_clicked)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.buttons.rejected.connect(self.reject)
        self._jobs.finished.connect(self._on_job_finished)
        self._jobs.failed.connect(self._on_job_failed)

    def busy(self) -> bool:
        return self._jobs.busy()

    @property
    def format(self) -> str:
        return self.format_box.currentData()

    def _default_folder(self) -> Path:
        current = self.path_edit.text().strip()
        if current:
            return Path(current).expanduser().parent
        if self.project.path is not None:
            return Path(self.project.path) / "exports"
        return Path.home()

    def _on_format_changed(self) -> None:
        fmt = FORMATS[self.format]
        self.format_help.setText(fmt.help)
        name = default_file_name(self.project.name, fmt.name)
        self.path_edit.setText(str(self._default_folder() / name))

    def _on_browse_clicked(self) -> None:
        current = self.path_edit.text().strip()
        if self.format == "project":
            chosen = QFileDialog.getExistingDirectory(self, "Export into folder", current)
            if chosen:
                name = default_file_name(self.project.name, "project")
                self.path_edit.setText(str(Path(chosen) / name))
            return
        suffix = FORMATS[self.format].suffix
        chosen, _ = QFileDialog.getSaveFileName(
            self, "Export model", current, f"{FORMATS[self.format].title} (*{suffix})"
        )
        if chosen:
            self.path_edit.setText(chosen)

    def _on_export_clicked(self) -> None:
        text = self.path_edit.text().strip()
        if not text:
            self._show_error("Choose where to save the export.")
            return
        self.export_button.setEnabled(False)
        set_role(self.result_label, "muted")
        self.result_label.setText(f"Exporting and checking {FORMATS[self.format].title}…")
        path = Path(text).expanduser()
        self._jobs.submit(_export_job, self.project, self.run_box.currentData(), self.format, path)

    def _on_job_finished(self, _number: int, result: ExportResult) -> None:
        self.export_button.setEnabled(True)
        set_role(self.result_label, "")
        names = ", ".join(p.name for p in result.files)
        self.result_label.setText(
            f"Written {names} ({format_bytes(result.size)}), checked: max difference "
            f"{result.max_abs_diff:.2g}"
        )
        self.exported.emit(result)

    def _on_job_failed(self, _number: int, message: str) -> None:
        self.export_button.setEnabled(True)
        self._show_error(message)
        self.failed.emit(message)

    def _show_error(self, message: str) -> None:
        set_role(self.result_label, "error")
        self.result_label.setText(message)

    def done(self, result: int) -> None:
        self._jobs.shutdown()  # join the export thread before the dialog goes
        super().done(result)
