"""The Train view: the training settings (generated from their description), Start / Pause /
Resume / Stop, a progress bar with epoch, step, images/s and ETA, and live curves. Curves redraw
at most 20 times a second whatever the step rate."""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.train import Failed
from cnnstudio.train_settings import TRAIN_PARAMS
from ui.editor.properties import make_editor
from ui.icons import icon
from ui.theme import colours
from ui.training.worker import TrainingRunner

REDRAW_MS = 50
FORM_PARAMS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "backbone_lr",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "grad_clip",
    "precision",
    "early_stopping",
    "device",
    "seed",
)


class TrainPanel(QWidget):
    """Starts runs of the document's project and shows them as they happen."""

    run_finished = Signal(object)

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.runner = TrainingRunner(self)
        self.steps: list[tuple[int, float]] = []
        self.epochs: list = []
        self.lrs: list[tuple[int, float]] = []
        self.result = None
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._build_ui()
        self._connect()
        self._set_running(False)

    def _build_ui(self) -> None:
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        left = QVBoxLayout()
        buttons = QHBoxLayout()
        self.start_button = QPushButton(icon("play", colours().accent), "Train", self)
        self.pause_button = QPushButton(icon("pause"), "Pause", self)
        self.pause_button.setCheckable(True)
        self.stop_button = QPushButton(icon("stop"), "Stop", self)
        for button in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        left.addLayout(buttons)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("ready")
        left.addWidget(self.progress)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        left.addWidget(self.message)
        form_host = QWidget(self)
        self.form = QFormLayout(form_host)
        self.editors = {}
        self._fill_form()
        scroll = QScrollArea(self)
        scroll.setWidget(form_host)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        left.addWidget(scroll, 1)
        host = QWidget(self)
        host.setLayout(left)
        host.setMaximumWidth(340)
        layout.addWidget(host)
        plots = pg.GraphicsLayoutWidget(self)
        self.plots = plots
        c = colours()
        plots.setBackground(c.base)
        self.loss_plot = plots.addPlot(row=0, col=0, title="loss")
        self.acc_plot = plots.addPlot(row=0, col=1, title="accuracy")
        self.lr_plot = plots.addPlot(row=1, col=0, colspan=2, title="learning rate")
        plots.ci.layout.setRowStretchFactor(0, 3)
        plots.ci.layout.setRowStretchFactor(1, 1)
        for plot in (self.loss_plot, self.acc_plot, self.lr_plot):
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
        self.loss_plot.addLegend(offset=(-10, 10))
        self.acc_plot.addLegend(offset=(-10, -10))
        self.raw_curve = self.loss_plot.plot(pen=pg.mkPen(c.accent, width=1), name="step")
        self.raw_curve.setOpacity(0.3)
        self.smooth_curve = self.loss_plot.plot(pen=pg.mkPen(c.accent, width=2), name="smoothed")
        self.train_loss_curve = self.loss_plot.plot(
            pen=None, symbol="o", symbolSize=6, symbolBrush=c.accent, name="train (epoch)"
        )
        self.val_loss_curve = self.loss_plot.plot(
            pen=pg.mkPen(c.warning, width=2),
            symbol="o",
            symbolSize=6,
            symbolBrush=c.warning,
            name="validation",
        )
        self.train_acc_curve = self.acc_plot.plot(
            pen=pg.mkPen(c.accent, width=2), symbol="o", symbolSize=6, name="train"
        )
        self.val_acc_curve = self.acc_plot.plot(
            pen=pg.mkPen(c.warning, width=2), symbol="o", symbolSize=6, name="validation"
        )
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen(c.muted, width=1.5))
        for plot in (self.loss_plot, self.acc_plot, self.lr_plot):
            plot.setLabel("bottom", "step" if plot is not self.acc_plot else "epoch")
        layout.addWidget(plots, 1)

    def refresh_theme(self) -> None:
        """Redraw the plots' background and the buttons' icons in the current theme."""
        self.plots.setBackground(colours().base)
        self.start_button.setIcon(icon("play", colours().accent))
        self.pause_button.setIcon(icon("play" if self.pause_button.isChecked() else "pause"))
        self.stop_button.setIcon(icon("stop"))

    def refresh_form(self) -> None:
        """Show the project's training settings (after another project was opened)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        self._fill_form()

    def _fill_form(self) -> None:
        params = {p.name: p for p in TRAIN_PARAMS}
        for name in FORM_PARAMS:
            param = params[name]
            value = self.document.project.training.get(name, param.default)
            editor = make_editor(param, value, lambda v, p=param: self._on_setting_changed(p, v))
            editor.setToolTip(f"{param.help}\nAllowed: {param.describe()}")
            self.editors[name] = editor
            self.form.addRow(name.replace("_", " "), editor)

    def _connect(self) -> None:
        self.start_button.clicked.connect(self._on_start_clicked)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self._timer.timeout.connect(self._redraw)
        self.document.project_replaced.connect(self.refresh_form)

    # Settings

    def _on_setting_changed(self, param, value) -> None:
        reason = param.check(value)
        if reason:
            self.message.setText(f"{param.name} {reason}: not applied")
            return
        self.document.set_training(param.name, value)

    # Runs

    @property
    def running(self) -> bool:
        return self.runner.running

    def _on_start_clicked(self) -> None:
        self.start()

    def start(self, resume: bool | str = False) -> bool:
        project = self.document.project
        if project.path is None:
            self.message.setText("Save the project first: its runs are kept in its folder.")
            return False
        if self.document.analysis is not None and not self.document.analysis.valid:
            self.message.setText("The model has problems (red blocks): fix them first.")
            return False
        self.steps, self.epochs, self.lrs, self.result = [], [], [], None
        self.message.setText("")
        worker = self.runner.start(project, resume=resume)
        worker.run_started.connect(self._on_run_started)
        worker.step_logged.connect(self._on_step_logged)
        worker.epoch_ended.connect(self._on_epoch_ended)
        worker.warned.connect(self._on_warned)
        worker.data_progressed.connect(self._on_data_progressed)
        worker.run_finished.connect(self._on_run_finished)
        self._set_running(True)
        self._timer.start()
        self.progress.setFormat("loading the data…")
        return True

    def _on_pause_toggled(self, paused: bool) -> None:
        if paused:
            self.runner.pause()
            self.pause_button.setText("Resume")
            self.pause_button.setIcon(icon("play"))
        else:
            self.runner.resume()
            self.pause_button.setText("Pause")
            self.pause_button.setIcon(icon("pause"))

    def _on_stop_clicked(self) -> None:
        self.pause_button.setChecked(False)
        self.runner.stop()
        self.progress.setFormat("stopping: writing a checkpoint…")

    def stop_and_wait(self) -> bool:
        self.pause_button.setChecked(False)
        return self.runner.stop_and_wait()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        for editor in self.editors.values():
            editor.setEnabled(not running)

    # Events from the worker (plain data)

    def _on_run_started(self, event) -> None:
        self._started = time.monotonic()
        self._total_steps = max(1, (event.epochs - event.start_epoch) * event.steps_per_epoch)
        self._first_step = event.start_epoch * event.steps_per_epoch
        self.progress.setFormat(f"training on {event.device_name}")

    def _on_step_logged(self, event) -> None:
        self.steps.append((event.global_step, event.loss))
        self.lrs.append((event.global_step, event.lr))
        done = event.global_step - self._first_step
        self.progress.setValue(int(100 * done / self._total_steps))
        eta = time.strftime("%H:%M:%S", time.gmtime(event.eta_seconds))
        self.progress.setFormat(
            f"epoch {event.epoch} · step {event.step}/{event.steps} · "
            f"{event.images_per_sec:,.0f} img/s · ETA {eta}"
        )
        self._dirty = True

    def _on_epoch_ended(self, event) -> None:
        self.epochs.append(event)
        self._dirty = True

    def _on_warned(self, message: str) -> None:
        self.message.setText(message)

    def _on_data_progressed(self, event) -> None:
        if event.total:
            self.progress.setFormat(f"{event.what}: {100 * event.done // event.total}%")

    def _on_run_finished(self, result) -> None:
        self.result = result
        self._timer.stop()
        self._redraw()
        self.runner.thread.wait()
        self._set_running(False)
        self.pause_button.setChecked(False)
        if isinstance(result, Failed):
            self.message.setText(result.message)
            self.progress.setFormat("failed")
        else:
            if result.state == "finished" or result.state == "early_stopped":
                self.progress.setValue(100)
            best = result.best_val_accuracy
            text = f"{result.state.replace('_', ' ')}"
            if best is not None:
                text += f" · best validation accuracy {best:.2%} (epoch {result.best_epoch})"
            self.progress.setFormat(text)
        self.run_finished.emit(result)

    # Drawing, coalesced

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if self.steps:
            x = [s for s, _ in self.steps]
            y = [v for _, v in self.steps]
            self.raw_curve.setData(x, y)
            smooth, value = [], y[0]
            for v in y:
                value = 0.9 * value + 0.1 * v
                smooth.append(value)
            self.smooth_curve.setData(x, smooth)
            self.lr_curve.setData([s for s, _ in self.lrs], [v for _, v in self.lrs])
        if self.epochs:
            steps_per_epoch = (
                max(1, self.steps[-1][0] // self.epochs[-1].epoch) if self.steps else 1
            )
            ends = [e.epoch * steps_per_epoch for e in self.epochs]
            self.train_loss_curve.setData(ends, [e.train_loss for e in self.epochs])
            self.val_loss_curve.setData(ends, [e.val_loss for e in self.epochs])
            numbers = [e.epoch for e in self.epochs]
            self.train_acc_curve.setData(numbers, [e.train_accuracy for e in self.epochs])
            self.val_acc_curve.setData(numbers, [e.val_accuracy for e in self.epochs])
