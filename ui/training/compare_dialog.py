"""Compare: two or more runs side by side. Their settings (the ones that differ bold and in the
accent colour, first), their curves overlaid and named by what differs, their per-class results
(a class × run table of F1, recall or precision, each class's best bold) and a scatter of any
setting against any metric, one point per run in the run's curve colour (text settings on a
category axis)."""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.data import DataSettings
from cnnstudio.metrics import Evaluation
from cnnstudio.run_table import RunRow, differing_settings, format_setting
from cnnstudio.runs import read_evaluation
from ui.theme import colours
from ui.training.curves_view import CurvesView, overlay_colour

METRICS = {  # the scatter's y choices: a RunRow's metric, as the run table names it
    "best val. accuracy": "best_val_accuracy",
    "final val. accuracy": "final_val_accuracy",
    "best val. loss": "best_val_loss",
    "final val. loss": "final_val_loss",
    "duration (s)": "seconds",
    "images/s": "images_per_sec",
}
CLASS_METRICS = ("f1", "recall", "precision")


def run_labels(rows: list[RunRow]) -> list[str]:
    """Each run's name and what differs between these runs: "20261201-0900 · lr 3e-3"."""
    names = differing_settings(rows)[:3]
    labels = []
    for row in rows:
        parts = [f"{n} {format_setting(row.settings.get(n))}" for n in names]
        labels.append(" · ".join([row.info.name, ", ".join(parts)]) if parts else row.info.name)
    return labels


def _metric_value(row: RunRow, key: str) -> float | None:
    if key == "seconds":
        return row.seconds
    if key == "images_per_sec":
        return row.images_per_sec
    return row.metrics.get(key)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class CompareDialog(QDialog):
    """The runs ``rows`` compared; closing it changes nothing."""

    def __init__(
        self,
        rows: list[RunRow],
        parent: QWidget | None = None,
        shown_as: DataSettings | None = None,  # the project's data: classes by their names now
    ) -> None:
        super().__init__(parent)
        self.rows = list(rows)
        self.labels = run_labels(self.rows)
        self.differing = differing_settings(self.rows)
        self.evaluations: list[Evaluation | None] = [
            read_evaluation(r.info.folder, shown_as) for r in rows
        ]
        self.setWindowTitle(f"Compare {len(rows)} runs")
        self.resize(1000, 560)
        self._build_ui()
        self._connect()
        self._fill_settings()
        self.curves.overlay([r.info for r in self.rows], self.labels)
        self._fill_classes()
        self._plot()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.settings = QTableWidget(self)
        self.tabs.addTab(self.settings, "Settings")
        self.curves = CurvesView(None, self)
        self.curves.live = False
        self.curves.csv_button.hide()  # they save the run in progress, not these runs
        self.curves.png_button.hide()
        self.curves.loss_plot.setLabel("left", "training loss (smoothed)")
        self.curves.acc_plot.setLabel("left", "validation accuracy")
        self.curves.plots.removeItem(self.curves.lr_plot)  # overlays draw no learning rate
        self.tabs.addTab(self.curves, "Curves")
        self.tabs.addTab(self._build_classes(), "Per class")
        self.tabs.addTab(self._build_scatter(), "Setting × metric")
        layout.addWidget(self.tabs)

    def _build_classes(self) -> QWidget:
        page = QWidget(self)
        column = QVBoxLayout(page)
        row = QHBoxLayout()
        row.addWidget(QLabel("Per-class", page))
        self.class_metric_box = QComboBox(page)
        for name in CLASS_METRICS:
            self.class_metric_box.addItem("F1" if name == "f1" else name, name)
        row.addWidget(self.class_metric_box)
        self.class_note = QLabel(page)
        self.class_note.setProperty("role", "muted")
        row.addWidget(self.class_note, 1)
        column.addLayout(row)
        self.classes = QTableWidget(page)
        column.addWidget(self.classes, 1)
        return page

    def _build_scatter(self) -> QWidget:
        page = QWidget(self)
        column = QVBoxLayout(page)
        row = QHBoxLayout()
        self.x_box, self.y_box = QComboBox(page), QComboBox(page)
        names = dict.fromkeys(n for r in self.rows for n in r.settings)
        for name in [*self.differing, *(n for n in names if n not in self.differing)]:
            self.x_box.addItem(name)
        for title in METRICS:
            self.y_box.addItem(title, METRICS[title])
        row.addWidget(QLabel("Setting", page))
        row.addWidget(self.x_box)
        row.addWidget(QLabel("against", page))
        row.addWidget(self.y_box)
        row.addStretch(1)
        column.addLayout(row)
        self.scatter_plot = pg.PlotWidget(page)
        self.scatter_plot.setBackground(colours().base)
        self.scatter_plot.showGrid(x=True, y=True, alpha=0.15)
        self.scatter_plot.getAxis("left").enableAutoSIPrefix(False)  # no "(x0.001)"
        self.scatter = pg.ScatterPlotItem(size=12, hoverable=True, tip=self._tip)
        self._point_labels: list[pg.TextItem] = []
        self.scatter_plot.addItem(self.scatter)
        column.addWidget(self.scatter_plot, 1)
        return page

    def _connect(self) -> None:
        self.class_metric_box.currentIndexChanged.connect(self._fill_classes)
        self.x_box.currentIndexChanged.connect(self._plot)
        self.y_box.currentIndexChanged.connect(self._plot)

    # Settings side by side

    def _fill_settings(self) -> None:
        names = dict.fromkeys(n for r in self.rows for n in r.settings)
        order = [*self.differing, *(n for n in names if n not in self.differing)]
        table = self.settings
        table.setRowCount(len(order) + 1)
        table.setColumnCount(len(self.rows))
        table.setHorizontalHeaderLabels([r.info.name for r in self.rows])
        table.setVerticalHeaderLabels(["data", *order])
        data_differs = len({r.info.data for r in self.rows}) > 1
        self._fill_line(0, [r.info.data or "–" for r in self.rows], data_differs)
        for line, name in enumerate(order, start=1):
            values = [format_setting(r.settings.get(name)) or "–" for r in self.rows]
            self._fill_line(line, values, name in self.differing)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

    def _fill_line(self, line: int, values: list[str], differs: bool) -> None:
        header = self.settings.verticalHeaderItem(line)
        for column, text in enumerate(values):
            item = QTableWidgetItem(text)
            if differs:
                font = QFont()
                font.setBold(True)
                item.setFont(font)
                item.setForeground(QBrush(QColor(colours().accent)))
                item.setToolTip("differs between these runs")
            self.settings.setItem(line, column, item)
        if differs and header is not None:
            header.setText(f"≠ {header.text()}")
            header.setToolTip("differs between these runs")

    def differing_lines(self) -> list[str]:
        """The settings (and "data") marked as differing, as the table names them."""
        table = self.settings
        marked = [table.verticalHeaderItem(n).text() for n in range(table.rowCount())]
        return [text[2:] for text in marked if text.startswith("≠ ")]

    # Per-class results side by side

    def _fill_classes(self) -> None:
        key = self.class_metric_box.currentData()
        classes = list(dict.fromkeys(
            m.name for e in self.evaluations if e is not None for m in e.per_class
        ))  # fmt: skip
        table = self.classes
        table.clear()
        table.setRowCount(len(classes))
        table.setColumnCount(len(self.rows))
        table.setHorizontalHeaderLabels([r.info.name for r in self.rows])
        table.setVerticalHeaderLabels(classes)
        for column, evaluation in enumerate(self.evaluations):
            found = {m.name: getattr(m, key) for m in evaluation.per_class} if evaluation else {}
            for line, name in enumerate(classes):
                value = found.get(name)
                table.setItem(line, column, QTableWidgetItem("–" if value is None
                                                             else f"{value:.3f}"))  # fmt: skip
        self._mark_best_per_class(classes)
        missing = [r.info.name for r, e in zip(self.rows, self.evaluations, strict=True) if not e]
        self.class_note.setText(
            f"No evaluation yet: {', '.join(missing)} (select the run and press Evaluate)."
            if missing else "Each class's best in bold."
        )  # fmt: skip
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

    def _mark_best_per_class(self, classes: list[str]) -> None:
        table = self.classes
        for line in range(len(classes)):
            cells = [table.item(line, c) for c in range(table.columnCount())]
            values = [float(c.text()) for c in cells if c.text() != "–"]
            if len(values) < 2:
                continue
            for cell in cells:
                if cell.text() != "–" and float(cell.text()) == max(values):
                    font = QFont()
                    font.setBold(True)
                    cell.setFont(font)

    # A setting against a metric

    def _plot(self) -> None:
        name, key = self.x_box.currentText(), self.y_box.currentData()
        values = [r.settings.get(name) for r in self.rows]
        ys = [_metric_value(r, key) for r in self.rows]
        axis = self.scatter_plot.getAxis("bottom")
        categorical = not all(_is_number(v) for v in values)
        if categorical:
            words = list(dict.fromkeys(format_setting(v) or "–" for v in values))
            xs = [float(words.index(format_setting(v) or "–")) for v in values]
            axis.setTicks([list(enumerate(words))])
        else:
            xs = [float(v) for v in values]
            axis.setTicks(None)
        log = not categorical and min(xs) > 0 and max(xs) / min(xs) >= 10
        self.scatter_plot.setLogMode(x=log, y=False)
        points = [
            {"pos": (math.log10(x) if log else x, y), "data": n,
             "brush": pg.mkBrush(overlay_colour(n)), "pen": pg.mkPen(colours().text)}
            for n, (x, y) in enumerate(zip(xs, ys, strict=True))
            if y is not None
        ]  # fmt: skip
        self.scatter.setData(points)
        for label in self._point_labels:
            self.scatter_plot.removeItem(label)
        self._point_labels = []
        for point in points:
            label = pg.TextItem(self.rows[point["data"]].info.name, color=colours().muted,
                                anchor=(-0.1, 0.5))  # fmt: skip
            label.setPos(*point["pos"])
            self.scatter_plot.addItem(label)
            self._point_labels.append(label)
        self.scatter_plot.setLabel("bottom", name)
        self.scatter_plot.setLabel("left", self.y_box.currentText())
        self._fit([p["pos"] for p in points])

    def _fit(self, positions: list[tuple[float, float]]) -> None:
        """Show every point with room on the right for the run names beside them."""
        if not positions:
            return
        xs, ys = [x for x, _ in positions], [y for _, y in positions]
        x_span, y_span = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or abs(ys[0]) or 1.0
        box = self.scatter_plot.getViewBox()
        box.setXRange(min(xs) - 0.15 * x_span, max(xs) + 0.45 * x_span, padding=0)
        box.setYRange(min(ys) - 0.15 * y_span, max(ys) + 0.15 * y_span, padding=0)

    def points(self) -> list[tuple[float, float, str]]:
        """The scatter's points as drawn: (x, y, run name)."""
        return [(p.pos().x(), p.pos().y(), self.rows[p.data()].info.name)
                for p in self.scatter.points()]  # fmt: skip

    def _tip(self, x: float, y: float, data: int) -> str:
        name = self.x_box.currentText()
        setting = format_setting(self.rows[data].settings.get(name)) or "–"
        return f"{self.labels[data]}\n{name} {setting}\n{self.y_box.currentText()} {y:.4g}"
