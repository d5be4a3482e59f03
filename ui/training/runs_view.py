"""The Runs tab: the run table (``run_table``: every run of the project, the settings that differ
between runs as columns, the metrics; sortable, filtered by text and state, the best run starred),
tags and a note per run, deleting runs (after a question) and comparing two or more of them.
Selecting runs overlays their curves; one selected run shows its results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.data import DataSettings
from cnnstudio.errors import StudioError
from cnnstudio.run_table import RunRow, run_table
from cnnstudio.runs import RunInfo, delete_run
from ui.icons import icon
from ui.training.compare_dialog import CompareDialog
from ui.training.run_table import NOTES_TIP, STATE_WORDS, RunTableFilter, RunTableModel

ANY_STATE = "any state"


class RunsView(QWidget):
    """Lists the runs in a project's runs folder, newest first until sorted otherwise."""

    selection_changed = Signal(list)  # list[RunInfo]
    run_deleted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs_dir: Path | None = None
        self.runs: list[RunInfo] = []
        self.compare_dialog = None
        self.project_data: Callable[[], DataSettings | None] = lambda: None  # set by the panel
        self._build_ui()
        self._connect()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(self._build_filters())
        self.model = RunTableModel(self)
        self.model.failed = self._show_hint
        self.proxy = RunTableFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        layout.addLayout(self._build_buttons())

    def _build_filters(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter: any text in any column (adamw, baseline…)")
        self.filter_edit.setClearButtonEnabled(True)
        self.state_box = QComboBox(self)
        self.state_box.setToolTip("Show only the runs in this state")
        self.state_box.addItem(ANY_STATE, None)
        row.addWidget(self.filter_edit, 1)
        row.addWidget(self.state_box)
        return row

    def _build_buttons(self) -> QHBoxLayout:
        buttons = QHBoxLayout()
        self.hint = QLabel("Select two or more runs to overlay their curves or compare them.", self)
        self.hint.setProperty("role", "muted")
        self.hint.setWordWrap(True)
        buttons.addWidget(self.hint, 1)
        self.tags_button = QPushButton("Tags…", self)
        self.tags_button.setToolTip(f"Tag the selected runs. {NOTES_TIP.split('. ', 1)[1]}")
        self.compare_button = QPushButton("Compare…", self)
        self.compare_button.setToolTip(
            "The selected runs side by side: settings, curves, per-class results, a setting "
            "against a metric"
        )
        self.refresh_button = QPushButton(icon("refresh"), "Refresh", self)
        self.delete_button = QPushButton(icon("delete"), "Delete", self)
        for button in (self.tags_button, self.compare_button, self.refresh_button,
                       self.delete_button):  # fmt: skip
            buttons.addWidget(button)
        return buttons

    def _connect(self) -> None:
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.filter_edit.textChanged.connect(self._on_filter_changed)
        self.state_box.currentIndexChanged.connect(self._on_filter_changed)
        self.refresh_button.clicked.connect(lambda: self.refresh())
        self.delete_button.clicked.connect(self._on_delete_clicked)
        self.tags_button.clicked.connect(self._on_tags_clicked)
        self.compare_button.clicked.connect(self.compare)

    def set_runs_dir(self, runs_dir: Path | None) -> None:
        self.runs_dir = runs_dir
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        """Read the runs folder again; keep (or set) the selection by run name."""
        keep = [select] if select else [r.name for r in self.selected()]
        selection = self.table.selectionModel()
        selection.blockSignals(True)
        self.model.set_table(run_table(self.runs_dir))
        self.runs = [row.info for row in self.model.table.rows]
        self._fill_states()
        self._select(keep)
        selection.blockSignals(False)
        self._on_selection_changed()

    def _fill_states(self) -> None:
        chosen = self.state_box.currentData()
        states = dict.fromkeys(info.state for info in self.runs)
        self.state_box.blockSignals(True)
        self.state_box.clear()
        self.state_box.addItem(ANY_STATE, None)
        for state in states:
            self.state_box.addItem(STATE_WORDS.get(state, state), state)
        self.state_box.setCurrentIndex(max(0, self.state_box.findData(chosen)))
        self.state_box.blockSignals(False)

    def rows(self) -> list[RunRow]:
        """The run table's rows as shown: filtered and in the order shown."""
        return self.proxy.shown()

    def selected_rows(self) -> list[RunRow]:
        """The selected runs' rows, in the order shown."""
        shown = self.proxy.shown()
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [shown[row] for row in rows if row < len(shown)]

    def selected(self) -> list[RunInfo]:
        return [row.info for row in self.selected_rows()]

    def select_runs(self, names: list[str]) -> None:
        self._select(names)

    def _select(self, names: list[str]) -> None:
        selection = QItemSelection()
        for row, shown in enumerate(self.proxy.shown()):
            if shown.info.name in names:
                index = self.proxy.index(row, 0)
                selection.select(index, index)
        flags = QItemSelectionModel.SelectionFlag
        self.table.selectionModel().select(selection, flags.ClearAndSelect | flags.Rows)

    def _show_hint(self, text: str) -> None:
        self.hint.setText(text)

    def _on_filter_changed(self) -> None:
        self.proxy.set_filter(self.filter_edit.text(), self.state_box.currentData())
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        if shown < total:
            self.hint.setText(f"{shown} of {total} runs shown.")

    def _on_selection_changed(self, *_args) -> None:
        chosen = self.selected()
        self.delete_button.setEnabled(bool(chosen))
        self.tags_button.setEnabled(bool(chosen))
        self.compare_button.setEnabled(len(chosen) >= 2)
        self.selection_changed.emit(chosen)

    def _on_tags_clicked(self) -> None:
        chosen = self.selected_rows()
        if not chosen:
            return
        text, accepted = QInputDialog.getText(
            self,
            "Tags",
            f"Tags of {len(chosen)} run(s), separated by commas.\n"
            "Saved with the runs, not in the project: Undo does not take them back.",
            text=", ".join(chosen[0].notes.tags),
        )
        if accepted:
            self.set_tags([row.info.name for row in chosen], text)

    def set_tags(self, names: list[str], tags: str) -> None:
        """Give the runs ``names`` the tags ``tags`` (comma-separated), saved with each run."""
        for row, shown in enumerate(self.model.table.rows):
            if shown.info.name in names:
                self.model.set_notes(row, tags=tags)

    def compare(self) -> None:
        """Open the comparison of the selected runs (two or more)."""
        chosen = self.selected_rows()
        if len(chosen) < 2:
            return
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self.compare_dialog = CompareDialog(chosen, self, shown_as=self.project_data())
        self.compare_dialog.show()

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
