"""The run list: every run of the project with its date, settings, best validation accuracy and
state. Selecting runs overlays their curves; one selected run shows its results; runs can be
deleted (after a question)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.errors import StudioError
from cnnstudio.runs import RunInfo, delete_run, list_runs
from ui.icons import icon

COLUMNS = ("run", "state", "epochs", "best val. accuracy", "data", "settings")
STATE_WORDS = {"early_stopped": "early stopped", "unknown": "?"}


def _started(info: RunInfo) -> str:
    return info.started.replace("T", " ")[:16] if info.started else info.name


class RunsView(QWidget):
    """Lists the runs in a project's runs folder, newest first."""

    selection_changed = Signal(list)  # list[RunInfo]
    run_deleted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs_dir: Path | None = None
        self.runs: list[RunInfo] = []
        self._build_ui()
        self._connect()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.hint = QLabel("Select two or more runs to overlay their curves.", self)
        self.hint.setProperty("role", "muted")
        self.hint.setWordWrap(True)
        buttons.addWidget(self.hint, 1)
        self.refresh_button = QPushButton(icon("refresh"), "Refresh", self)
        self.delete_button = QPushButton(icon("delete"), "Delete", self)
        self.delete_button.setEnabled(False)
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.delete_button)
        layout.addLayout(buttons)

    def _connect(self) -> None:
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.refresh_button.clicked.connect(self.refresh)
        self.delete_button.clicked.connect(self._on_delete_clicked)

    def set_runs_dir(self, runs_dir: Path | None) -> None:
        self.runs_dir = runs_dir
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        """Read the runs folder again; keep (or set) the selection by run name."""
        keep = {select} if select else {r.name for r in self.selected()}
        self.runs = list_runs(self.runs_dir)
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.runs))
        for row, info in enumerate(self.runs):
            epochs = f"{info.epochs_done or 0}/{info.epochs}" if info.epochs else "–"
            best = f"{info.best_val_accuracy:.2%}" if info.best_val_accuracy is not None else "–"
            state = STATE_WORDS.get(info.state, info.state)
            cells = (_started(info), state, epochs, best, info.data or "–", info.summary)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column in (2, 3):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                tip = f"{info.folder}"
                if info.data_where:
                    tip += f"\ntrained on {info.data_where}"
                if info.message:
                    tip += f"\n{info.message}"
                item.setToolTip(tip)
                self.table.setItem(row, column, item)
        self.table.clearSelection()
        for row, info in enumerate(self.runs):
            if info.name in keep:
                self.table.selectRow(row) if len(keep) == 1 else self._add_row(row)
        self.table.blockSignals(False)
        self._on_selection_changed()

    def _add_row(self, row: int) -> None:
        model = self.table.selectionModel()
        index = self.table.model().index(row, 0)
        model.select(index, model.SelectionFlag.Select | model.SelectionFlag.Rows)

    def selected(self) -> list[RunInfo]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.runs[r] for r in rows if r < len(self.runs)]

    def select_runs(self, names: list[str]) -> None:
        self.table.clearSelection()
        for row, info in enumerate(self.runs):
            if info.name in names:
                self._add_row(row)

    def _on_selection_changed(self) -> None:
        chosen = self.selected()
        self.delete_button.setEnabled(bool(chosen))
        self.selection_changed.emit(chosen)

    def _on_delete_clicked(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        names = ", ".join(r.name for r in chosen)
        answer = QMessageBox.question(
            self,
            "Delete runs",
            f"Delete {len(chosen)} run(s) ({names}) with their checkpoints and logs?\n"
            "This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        for info in chosen:
            if info.state == "running":
                self.hint.setText(f"Run {info.name} is still training: stop it first.")
                continue
            try:
                delete_run(info.folder)
            except (StudioError, OSError) as error:
                self.hint.setText(str(error))
                continue
            self.run_deleted.emit(info.name)
        self.refresh()
