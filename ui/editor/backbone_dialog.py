"""The backbone chooser: torchvision's classification networks with their parameter count,
ImageNet accuracy, input size and cost, from the weights API's metadata; sortable; whether the
weights are already on disk. The table is read on a pool thread (torchvision loads slowly).

"Open as editable graph" traces the chosen network into the editor's own layers
(``cnnstudio.fx_import.open_torchvision``) on the dialog's pool thread, with progress and Cancel;
``opened`` holds the result after accept()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.backbones import BackboneInfo, backbone_catalog
from cnnstudio.progress import Progress, TaskState
from ui.background import Jobs

if TYPE_CHECKING:
    from cnnstudio.fx_import import OpenedNetwork

COLUMNS = (
    "Network",
    "Parameters (M)",
    "ImageNet top-1 %",
    "Top-5 %",
    "Input",
    "GFLOPs",
    "Download (MiB)",
    "On disk",
)


def _read_catalog(_state: TaskState) -> list[BackboneInfo]:
    return backbone_catalog()


def _open_graph(state: TaskState, name: str) -> OpenedNetwork:
    # torch and torch.fx are imported here, on the pool thread: the window opens before them
    from cnnstudio.fx_import import open_torchvision

    return open_torchvision(state, name)


class _Number(QTableWidgetItem):
    """A cell that sorts by its number, not its text."""

    def __init__(self, value: float | None, text: str) -> None:
        super().__init__(text)
        self.value = value if value is not None else float("-inf")
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", float("-inf"))


class BackboneDialog(QDialog):
    """Pick a pretrained network; ``chosen`` is its name after accept()."""

    loaded = Signal()
    open_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chosen: str | None = None
        self.opened: OpenedNetwork | None = None
        self.rows: list[BackboneInfo] = []
        self._jobs = Jobs(self)
        self._opening = Jobs(self, newest_wins=True)
        self._open_job = 0  # the number of the opening wanted now; 0: none
        self._build_ui()
        self._build_graph_ui()
        self._connect()
        self._connect_graph()
        self._jobs.submit(_read_catalog)

    def _build_ui(self) -> None:
        self.setWindowTitle("Choose a backbone")
        self.resize(860, 560)
        layout = QVBoxLayout(self)
        self.note = QLabel("Reading torchvision's weights metadata…", self)
        self.note.setProperty("role", "muted")
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Use as backbone")
        layout.addWidget(self.note)
        layout.addWidget(self.table)
        layout.addWidget(self.buttons)

    def _connect(self) -> None:
        self._jobs.finished.connect(self._on_catalog_loaded)
        self._jobs.failed.connect(self._on_catalog_failed)
        self.buttons.accepted.connect(self._on_accepted)
        self.buttons.rejected.connect(self.reject)
        self.table.doubleClicked.connect(lambda _i: self._on_accepted())

    def _on_catalog_loaded(self, _number: int, rows: list[BackboneInfo]) -> None:
        self.rows = rows
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for r, info in enumerate(rows):
            cells = [
                QTableWidgetItem(info.name),
                _Number(info.params, f"{info.params / 1e6:.1f}"),
                _Number(info.top1, f"{info.top1:.1f}" if info.top1 else "–"),
                _Number(info.top5, f"{info.top5:.1f}" if info.top5 else "–"),
                _Number(info.input_size, f"{info.input_size}×{info.input_size}"),
                _Number(info.gflops, f"{info.gflops:.2f}" if info.gflops else "–"),
                _Number(info.file_mb, f"{info.file_mb:.0f}" if info.file_mb else "–"),
                QTableWidgetItem("yes" if info.cached else "no"),
            ]
            cells[0].setToolTip(f"{info.name}, weights {info.weights}")
            for c, item in enumerate(cells):
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.sortItems(2, Qt.SortOrder.DescendingOrder)
        self.table.resizeColumnsToContents()
        self.note.setText(
            f"{len(rows)} networks. Sort by any column; weights not on disk are "
            "downloaded when the model is built."
        )
        self.loaded.emit()

    def _on_catalog_failed(self, _number: int, message: str) -> None:
        self.note.setText(f"Cannot read torchvision's weights metadata: {message}")

    def _on_accepted(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.chosen = self.table.item(rows[0].row(), 0).text()
            self.accept()

    # Open as an editable graph

    def _build_graph_ui(self) -> None:
        self.graph_button = self.buttons.addButton(
            "Open as editable graph", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.graph_button.setToolTip(GRAPH_NOTE)
        self.graph_note = QLabel(GRAPH_NOTE, self)
        self.graph_note.setWordWrap(True)
        self.graph_note.setProperty("role", "muted")
        self.progress = QProgressBar(self)
        self.progress.hide()
        layout = self.layout()
        layout.insertWidget(layout.indexOf(self.buttons), self.graph_note)
        layout.insertWidget(layout.indexOf(self.buttons), self.progress)

    def _connect_graph(self) -> None:
        self.graph_button.clicked.connect(self._on_graph_clicked)
        self._opening.progressed.connect(self._on_open_progressed)
        self._opening.finished.connect(self._on_open_finished)
        self._opening.failed.connect(self._on_open_failed)

    def opening(self) -> bool:
        """Whether a network is being opened as a graph."""
        return self._open_job != 0

    def _on_graph_clicked(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.opening():
            return
        self.chosen = self.table.item(rows[0].row(), 0).text()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.graph_button.setEnabled(False)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
        self.note.setText(f"Opening {self.chosen} as an editable graph…")
        self._open_job = self._opening.submit(_open_graph, self.chosen)

    def _on_open_progressed(self, number: int, report: Progress) -> None:
        if number != self._open_job:
            return
        self.progress.setRange(0, report.total)
        self.progress.setValue(report.done)
        self.progress.setFormat(report.what)

    def _on_open_finished(self, number: int, opened: OpenedNetwork) -> None:
        if number == self._open_job:
            self.opened = opened
            self.accept()

    def _on_open_failed(self, number: int, message: str) -> None:
        if number != self._open_job:
            return  # cancelled
        self._end_opening(f"Cannot open {self.chosen} as a graph: {message}")
        self.open_failed.emit(message)

    def _end_opening(self, text: str) -> None:
        self._open_job = 0
        self.progress.hide()
        self.graph_button.setEnabled(True)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        self.note.setText(text)

    def reject(self) -> None:
        """Cancel: while a network is being opened, stop that and stay; else close."""
        if self.opening():
            self._opening.stop()
            self._end_opening(f"Opening {self.chosen} cancelled.")
            return
        super().reject()

    def done(self, result: int) -> None:
        self._jobs.shutdown()
        self._opening.shutdown()
        super().done(result)


GRAPH_NOTE = (
    "Open as editable graph: the network's own layers replace the whole current model (input "
    "and classes too; Edit > Undo brings it back). Its ImageNet weights, when on disk, become a "
    "run of the project when it is saved; otherwise it starts from random values."
)
