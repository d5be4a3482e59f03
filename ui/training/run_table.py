"""The Runs tab's table: a model over ``run_table.RunTable`` (one row per run: when, state,
epochs, best validation accuracy, data, every setting that differs between the runs, the other
metrics, duration, images/s, sweep, tags, note) and the proxy that sorts it by any column and keeps
the rows that match a text and a state. The best run is bold with a star; tags and the note are
edited in place and saved with the run (``runs.set_notes``), outside the project's undo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QFont

from cnnstudio.errors import StudioError
from cnnstudio.run_table import RunRow, RunTable, format_setting
from cnnstudio.runs import set_notes

SORT_ROLE = Qt.ItemDataRole.UserRole
ROW_ROLE = Qt.ItemDataRole.UserRole + 1
STAR = "★"
STATE_WORDS = {"early_stopped": "early stopped", "unknown": "?"}
NOTES_TIP = (
    "Double-click to edit. Saved at once with the run (its notes.json), not in the project: "
    "Undo does not take it back."
)
_Index = QModelIndex | QPersistentModelIndex


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _number(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"


def _epochs(row: RunRow) -> str:
    info = row.info
    return f"{info.epochs_done or 0}/{info.epochs}" if info.epochs else "–"


def _when(row: RunRow) -> str:
    info = row.info
    return info.started.replace("T", " ")[:16] if info.started else info.name


class Column:
    """A column of the run table: its header (and the header's tooltip), its text and its sort
    key for a row."""

    def __init__(
        self,
        title: str,
        text: Callable[[RunRow], str],
        key: Callable[[RunRow], Any] | None = None,
        numeric: bool = False,
        tip: str = "",
    ) -> None:
        self.title, self.text, self.numeric, self.tip = title, text, numeric, tip
        self.key = key or (lambda row: text(row).lower())


def _metric(title: str, name: str, shown: Callable[[float | None], str], tip: str) -> Column:
    return Column(
        title,
        lambda row: shown(row.metrics.get(name)),
        lambda row: row.metrics.get(name),
        numeric=True,
        tip=tip,
    )


def _setting(name: str) -> Column:
    def key(row: RunRow) -> Any:
        value = row.settings.get(name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return value if number else format_setting(value)

    return Column(
        name,
        lambda row: format_setting(row.settings.get(name)) or "–",
        key,
        tip=f"The setting {name}: it differs between the runs",
    )


def _count(title: str, value: Callable[[RunRow], int | None], tip: str) -> Column:
    return Column(title, lambda r: "–" if value(r) is None else f"{value(r):,}", value,
                  numeric=True, tip=tip)  # fmt: skip


# The names are the ones `cnnstudio runs` prints; the first five keep the run list's places.
FIRST = (
    Column(
        "run",
        _when,
        lambda row: f"{row.info.started} {row.info.name}",
        tip="When the run started; ★ the best validation accuracy",
    ),
    Column("state", lambda row: STATE_WORDS.get(row.info.state, row.info.state)),
    Column(
        "epochs",
        _epochs,
        lambda row: row.info.epochs_done,
        numeric=True,
        tip="Epochs done / planned",
    ),
    _metric("best acc", "best_val_accuracy", _percent, "Validation accuracy, its best epoch"),
    Column("data", lambda row: row.info.data or "–", tip="What the run trained on"),
)
LAST = (
    _metric("final acc", "final_val_accuracy", _percent, "Validation accuracy, the last epoch"),
    _metric("best loss", "best_val_loss", _number, "Validation loss, its lowest"),
    _metric("final loss", "final_val_loss", _number, "Validation loss, the last epoch"),
    Column("tags", lambda r: ", ".join(r.notes.tags), tip=NOTES_TIP),
    Column("note", lambda r: r.notes.note, tip=NOTES_TIP),
    Column(
        "time",
        lambda r: _duration(r.seconds),
        lambda r: r.seconds,
        numeric=True,
        tip="Time spent in the epochs (loading and evaluation aside)",
    ),
    Column(
        "img/s",
        lambda r: _number(r.images_per_sec, 0),
        lambda r: r.images_per_sec,
        numeric=True,
        tip="Training images per second of training",
    ),
    _count("images", lambda r: r.images, "Training and validation images"),
    _count("classes", lambda r: r.classes, "Classes of the data"),
    Column("sweep", lambda r: r.notes.sweep, tip="The sweep that made the run"),
    Column("settings", lambda r: r.info.summary, tip="The run's settings in a few words"),
)
EDITABLE = ("tags", "note")


def _sort_key(value: Any) -> tuple[int, Any]:
    """Missing values last whatever the type; numbers before text."""
    if value is None:
        return (2, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


class RunTableModel(QAbstractTableModel):
    """The rows of one ``RunTable``; its differing settings become columns after the fifth."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.table = RunTable((), (), None)
        self.columns: tuple[Column, ...] = FIRST + LAST
        self.failed: Callable[[str], None] = lambda _message: None  # a note that could not save

    def set_table(self, table: RunTable) -> None:
        self.beginResetModel()
        self.table = table
        self.columns = FIRST + tuple(_setting(name) for name in table.columns) + LAST
        self.endResetModel()

    def column(self, title: str) -> int:
        """The index of the column headed ``title``."""
        return [c.title for c in self.columns].index(title)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.table.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        title = self.columns[section].title
        if role == Qt.ItemDataRole.DisplayRole:
            return title
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.columns[section].tip or None
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, column = self.table.rows[index.row()], self.columns[index.column()]
        best = row.info.name == self.table.best
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            text = column.text(row)
            if best and index.column() == 0 and role == Qt.ItemDataRole.DisplayRole:
                return f"{STAR} {text}"
            return text
        if role == SORT_ROLE:
            return _sort_key(column.key(row))
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.FontRole and best:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column, best)
        return None

    def _tooltip(self, row: RunRow, column: Column, best: bool) -> str:
        if column.title in EDITABLE:
            return NOTES_TIP
        info = row.info
        tip = f"{info.folder}"
        if best:
            tip = f"{STAR} the best validation accuracy of these runs\n{tip}"
        if info.data_where:
            tip += f"\ntrained on {info.data_where}"
        if info.message:
            tip += f"\n{info.message}"
        return tip

    def flags(self, index: _Index) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and self.columns[index.column()].title in EDITABLE:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        title = self.columns[index.column()].title if index.isValid() else ""
        if role != Qt.ItemDataRole.EditRole or title not in EDITABLE:
            return False
        return self.set_notes(index.row(), **{title: str(value)})

    def set_notes(self, row: int, *, tags: str | None = None, note: str | None = None) -> bool:
        """Save the tags (comma-separated) or the note of the run in ``row``; False, with the
        reason sent to ``failed``, when its folder cannot be written."""
        old = self.table.rows[row]
        try:
            notes = set_notes(
                old.info.folder,
                tags=None if tags is None else tags.split(","),
                note=note,
            )
        except (StudioError, OSError) as error:
            self.failed(f"Notes of run {old.info.name} not saved: {error}")
            return False
        rows = list(self.table.rows)
        rows[row] = RunRow(old.info, old.settings, old.images, old.classes, old.metrics,
                           old.seconds, old.images_per_sec, notes)  # fmt: skip
        self.table = RunTable(tuple(rows), self.table.columns, self.table.best)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))
        return True


class RunTableFilter(QSortFilterProxyModel):
    """Sorts by the source's SORT_ROLE; keeps the rows whose cells contain ``text`` (any case, in
    any column) and whose state is ``state`` (None: any state)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.text = ""
        self.state: str | None = None
        self.setSortRole(SORT_ROLE)

    def set_filter(self, text: str, state: str | None) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.10 and later; invalidateRowsFilter before
            self.beginFilterChange()
            self.text, self.state = text.strip().lower(), state
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.text, self.state = text.strip().lower(), state
            self.invalidateRowsFilter()

    def lessThan(self, left: _Index, right: _Index) -> bool:
        # the keys are (kind, value) tuples, which a QVariant cannot compare
        model = self.sourceModel()
        return model.data(left, SORT_ROLE) < model.data(right, SORT_ROLE)

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        model = self.sourceModel()
        row = model.data(model.index(source_row, 0, source_parent), ROW_ROLE)
        if self.state is not None and row.info.state != self.state:
            return False
        if not self.text:
            return True
        cells = (
            str(model.data(model.index(source_row, c, source_parent)) or "")
            for c in range(model.columnCount())
        )
        return any(self.text in cell.lower() for cell in cells)

    def shown(self) -> list[RunRow]:
        """The rows shown, in the order shown."""
        return [self.data(self.index(row, 0), ROW_ROLE) for row in range(self.rowCount())]
