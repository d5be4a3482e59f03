"""The studio's main window.

For now it shows the project's model as the engine analyses it: one row per layer with its output
shape, parameters and FLOPs, the problems found, and the totals in the status bar.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow, QTableWidget, QTableWidgetItem

from cnnstudio import Project, analyze
from cnnstudio.cli import human
from cnnstudio.spec import format_shape

COLUMNS = ("Layer", "Kind", "Output", "Parameters", "FLOPs", "Problem")


class MainWindow(QMainWindow):
    """The top-level window over one project."""

    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project
        self._build_ui()
        self.show_project(project)

    def _build_ui(self) -> None:
        self.resize(900, 640)
        self.layer_table = QTableWidget(0, len(COLUMNS), self)
        self.layer_table.setHorizontalHeaderLabels(COLUMNS)
        self.layer_table.verticalHeader().setVisible(False)
        self.layer_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.layer_table.setAlternatingRowColors(True)
        self.layer_table.horizontalHeader().setStretchLastSection(True)
        self.setCentralWidget(self.layer_table)

    def show_project(self, project: Project) -> None:
        self.project = project
        analysis = analyze(project.model)
        self.setWindowTitle(f"{project.name} — CNN Studio")
        table = self.layer_table
        table.setRowCount(len(analysis.layers))
        for row, info in enumerate(analysis.layers):
            known = info.output_shape is not None
            cells = (
                info.id,
                info.kind,
                format_shape(info.output_shape),
                f"{info.params:,}" if known else "",
                human(info.flops) if known else "",
                "; ".join(info.errors),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column in (3, 4):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                table.setItem(row, column, item)
        table.resizeColumnsToContents()
        count = len(analysis.errors)
        state = "valid" if analysis.valid else f"{count} problem{'s' if count > 1 else ''}"
        self.statusBar().showMessage(
            f"{analysis.total_params:,} parameters · {human(analysis.flops)} FLOPs per image · "
            f"input {format_shape(analysis.input_shape)} → output "
            f"{format_shape(analysis.output_shape)} · {state}"
        )
