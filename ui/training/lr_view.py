"""The learning-rate finder: runs the engine's range test off the GUI thread, plots the loss
against the learning rate on a log axis with the suggested rate marked, and applies it in one
click."""

from __future__ import annotations

import copy
import math

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from cnnstudio.lr_finder import LRFinderResult, find_lr
from cnnstudio.params import format_rate
from cnnstudio.progress import Progress, TaskState
from ui.background import Jobs
from ui.icons import icon
from ui.theme import colours


def _range_test(state: TaskState, project, steps: int) -> LRFinderResult:
    return find_lr(project, steps=steps, state=state)


class RateAxis(pg.AxisItem):
    """A log axis labelled the way rates are written in the settings (1e-7 … 0.01, 0.1, 1, 10),
    not pyqtgraph's mix of powers of ten and decimals."""

    def tickStrings(self, values, scale, spacing) -> list[str]:
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [format_rate(10.0**value) for value in values]


class LRFinderView(QWidget):
    """Find a learning rate for the document's project; ``applied`` carries the chosen rate."""

    applied = Signal(float)
    started = Signal()
    ended = Signal()

    def __init__(self, document, parent: QWidget | None = None, steps: int = 100) -> None:
        super().__init__(parent)
        self.document = document
        self.steps = steps
        self.result: LRFinderResult | None = None
        self._points: list[tuple[float, float]] = []
        self._jobs = Jobs(self)
        self._build_ui()
        self._connect()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        row = QHBoxLayout()
        self.find_button = QPushButton(icon("lr"), "Find learning rate", self)
        self.find_button.setToolTip(
            "Train a copy of the model for a few steps with a growing learning rate and suggest "
            "the rate where the loss falls fastest (the project is not changed)"
        )
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.setEnabled(False)
        self.status = QLabel("", self)
        self.status.setProperty("role", "muted")
        row.addWidget(self.find_button)
        row.addWidget(self.apply_button)
        row.addWidget(self.status, 1)
        layout.addLayout(row)
        c = colours()
        self.plot = pg.PlotWidget(
            self, background=c.base, axisItems={"bottom": RateAxis(orientation="bottom")}
        )
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "learning rate")
        self.plot.setLabel("left", "loss (smoothed)")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.raw_curve = self.plot.plot(pen=pg.mkPen(c.accent, width=1))
        self.raw_curve.setOpacity(0.3)
        self.curve = self.plot.plot(pen=pg.mkPen(c.accent, width=2))
        self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen(c.warning, width=2))
        self.marker.setVisible(False)
        self.plot.addItem(self.marker, ignoreBounds=True)
        layout.addWidget(self.plot, 1)

    def _connect(self) -> None:
        self.find_button.clicked.connect(self._on_find_clicked)
        self.apply_button.clicked.connect(self._on_apply_clicked)
        self._jobs.progressed.connect(self._on_progress)
        self._jobs.finished.connect(self._on_finished)
        self._jobs.failed.connect(self._on_failed)

    def refresh_theme(self) -> None:
        self.plot.setBackground(colours().base)

    def start(self) -> bool:
        if self._jobs.busy():
            return False
        if self.document.analysis is not None and not self.document.analysis.valid:
            self.status.setText("The model has problems (red blocks): fix them first.")
            return False
        self.result = None
        self._points = []
        self.curve.setData([], [])
        self.raw_curve.setData([], [])
        self.marker.setVisible(False)
        self.apply_button.setEnabled(False)
        self.find_button.setEnabled(False)
        self.status.setText("loading the data…")
        self._jobs.submit(_range_test, copy.deepcopy(self.document.project), self.steps)
        self.started.emit()
        return True

    def _on_find_clicked(self) -> None:
        self.start()

    def _on_progress(self, _number: int, report: Progress) -> None:
        step, total, (lr, loss) = report.done, report.total, report.detail
        if math.isfinite(loss):
            self._points.append((lr, loss))
            self.curve.setData([p[0] for p in self._points], [p[1] for p in self._points])
        self.status.setText(f"step {step}/{total} · lr {format_rate(lr)}")

    def _on_finished(self, number: int, result: LRFinderResult) -> None:
        self.result = result
        self.find_button.setEnabled(True)
        self.curve.setData(result.lrs, result.losses)
        self.raw_curve.setData(result.lrs, result.raw_losses)
        self.marker.setValue(math.log10(result.suggestion))
        self.marker.setVisible(True)
        self.apply_button.setEnabled(True)
        self.apply_button.setText(f"Apply lr = {format_rate(result.suggestion, 2)}")
        note = f" ({result.note})" if result.note else ""
        self.status.setText(f"suggested learning rate {format_rate(result.suggestion, 2)}{note}")
        self.ended.emit()

    def _on_failed(self, number: int, message: str) -> None:
        self.find_button.setEnabled(True)
        self.status.setText(message)
        self.ended.emit()

    def _on_apply_clicked(self) -> None:
        if self.result is None:
            return
        value = float(format_rate(self.result.suggestion, 2))  # the rate the button shows
        self.document.set_training("lr", value)
        self.status.setText(f"learning rate set to {format_rate(value)}")
        self.applied.emit(value)

    def busy(self) -> bool:
        return self._jobs.busy()

    def shutdown(self) -> None:
        self._jobs.shutdown()
