"""The top classes as a bar chart: one row per class, its name on the left, its bar in the middle
and its percentage in a column of its own on the right, so that no text ever covers another.

Rows keep a readable height (they do not stretch to fill a tall box, nor shrink below the font's
height: a row that does not fit is left out and the chart says so).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.theme import colours

PAD = 8  # px between the columns and around the chart
MAX_ROW = 30  # px: a row never grows taller than this
NAME_SHARE = 0.4  # the names take at most this share of the width (longer ones are elided)


@dataclass(frozen=True)
class Row:
    name: str
    probability: float  # in [0, 1]
    chosen: bool = False  # the class the heat map explains: drawn in the accent colour


class TopClassesView(QWidget):
    """A horizontal bar chart of class probabilities; empty until ``set_rows``."""

    def __init__(self, empty_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: tuple[Row, ...] = ()
        self._empty_text = empty_text
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 60)

    def set_rows(self, rows: list[Row] | tuple[Row, ...]) -> None:
        self._rows = tuple(rows)
        self.setToolTip("\n".join(f"{r.name}: {100 * r.probability:.1f}%" for r in self._rows))
        self.update()

    def rows(self) -> tuple[Row, ...]:
        return self._rows

    def sizeHint(self) -> QSize:
        return QSize(260, 150)

    # Geometry: the one place that decides where each text goes (painting and tests read it)

    def _row_height(self) -> int:
        text = self.fontMetrics().height()
        free = (self.height() - 2 * PAD) // max(1, len(self._rows))
        return max(text + 4, min(MAX_ROW, free))

    def shown_rows(self) -> int:
        """How many rows fit the height."""
        fits = (self.height() - 2 * PAD) // self._row_height()
        return min(len(self._rows), max(0, fits))

    def _columns(self) -> tuple[int, int, int]:
        """The x where the names end, where the bars end, and the percentages' width."""
        metrics = self.fontMetrics()
        percent = metrics.horizontalAdvance("100.0%")
        widest = max((metrics.horizontalAdvance(r.name) for r in self._rows), default=0)
        names_end = PAD + min(widest + 2, int(NAME_SHARE * self.width()))  # +2: no false elision
        bars_end = max(names_end + PAD, self.width() - PAD - percent - PAD)
        return names_end, bars_end, percent

    def row_rects(self, index: int) -> tuple[QRect, QRect, QRect]:
        """The name's, the bar track's and the percentage's rectangles of row ``index``."""
        height = self._row_height()
        top = PAD + index * height
        names_end, bars_end, percent = self._columns()
        name = QRect(PAD, top, names_end - PAD, height)
        bar_left = names_end + PAD
        track = QRect(bar_left, top + height // 5, bars_end - bar_left, height * 3 // 5)
        value = QRect(bars_end + PAD, top, percent, height)
        return name, track, value

    def text_rects(self) -> list[QRect]:
        """Every text drawn (names and percentages), in this widget's coordinates."""
        return [r for i in range(self.shown_rows()) for r in self.row_rects(i)[::2]]

    # Drawing

    def paintEvent(self, _event: QPaintEvent) -> None:
        c = colours()
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(c.base))
        if not self._rows:
            self._paint_empty(painter)
            return
        metrics = self.fontMetrics()
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for index in range(self.shown_rows()):
            row = self._rows[index]
            name, track, value = self.row_rects(index)
            painter.setPen(QColor(c.text))
            shown = metrics.elidedText(row.name, Qt.TextElideMode.ElideRight, name.width())
            painter.drawText(name, left, shown)
            painter.fillRect(track, QColor(c.alternate))
            bar = QRect(track)
            bar.setWidth(round(track.width() * row.probability))
            painter.fillRect(bar, QColor(c.accent if row.chosen else c.edge))
            painter.setPen(QColor(c.text if row.chosen else c.muted))
            painter.drawText(value, right, f"{100 * row.probability:.1f}%")

    def _paint_empty(self, painter: QPainter) -> None:
        c = colours()
        box = self.rect().adjusted(0, 0, -1, -1)
        painter.setPen(QPen(QColor(c.border), 1, Qt.PenStyle.DashLine))
        painter.drawRect(box)
        painter.setPen(QColor(c.muted))
        flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
        painter.drawText(box.adjusted(PAD, PAD, -PAD, -PAD), flags, self._empty_text)
