"""The Train view: the training settings (generated from their description) with the batch's
memory estimate, Start / Pause / Resume / Stop and resume-from-checkpoint, a progress bar with
epoch, step, images/s and ETA, and tabs for the live curves (hover for values, export as CSV and
PNG), the run list (overlay runs, delete), a run's results and the learning-rate finder. Curves
redraw at most 20 times a second whatever the step rate."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.files import atomic_write_text
from cnnstudio.runs import RunInfo, read_evaluation, read_history, read_settings
from cnnstudio.train import (
    Failed,
    available_devices,
    estimate_memory,
    free_memory,
    pick_device,
)
from cnnstudio.train_settings import TRAIN_PARAMS
from ui.editor.properties import make_editor
from ui.icons import icon
from ui.theme import colours
from ui.training.lr_view import LRFinderView
from ui.training.results_view import ImageSource, ResultsView
from ui.training.runs_view import RunsView
from ui.training.worker import TrainingRunner

OVERLAY_COLOURS = ("#2a9d8f", "#e76f51", "#8e44ad", "#f4a261", "#27ae60", "#d6336c")

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


class _EpochAxis(pg.AxisItem):
    """Ticks on whole epochs only: no "epoch 1.5" on a three-epoch run."""

    def tickValues(self, minVal, maxVal, size):
        levels = super().tickValues(minVal, maxVal, size)
        return [(max(spacing, 1.0), [v for v in values if float(v).is_integer()])
                for spacing, values in levels]  # fmt: skip


class TrainPanel(QWidget):
    """Starts runs of the document's project and shows them as they happen."""

    run_finished = Signal(object)
    run_started = Signal(object)
    epoch_ended = Signal(object)
    inspect_requested = Signal(object, str)  # an image from the results gallery

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.runner = TrainingRunner(self)
        self.steps: list[tuple[int, float]] = []
        self.epochs: list = []
        self.lrs: list[tuple[int, float]] = []
        self.result = None
        self.overlays: list[pg.PlotDataItem] = []
        self.image_source_for: Callable[[dict], ImageSource | None] = lambda _data: None
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.setSingleShot(True)  # started by new points: no wake-ups while nothing changes
        self._build_ui()
        self._connect()
        self._set_running(False)
        self.runs_view.set_runs_dir(self.document.project.runs_dir)

    # Building

    def _build_ui(self) -> None:
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(12)
        host = QWidget(self)
        host.setLayout(self._build_controls())
        host.setMaximumWidth(360)
        layout.addWidget(host)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_curves(), icon("train"), "Curves")
        self.runs_view = RunsView(self)
        self.tabs.addTab(self.runs_view, "Runs")
        self.results_view = ResultsView(self)
        self.tabs.addTab(self.results_view, "Results")
        self.lr_view = LRFinderView(self.document, self)
        self.tabs.addTab(self.lr_view, icon("lr"), "Learning rate")
        layout.addWidget(self.tabs, 1)

    def _build_controls(self) -> QVBoxLayout:
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        self.start_button = QPushButton(icon("play", colours().accent), "Train", self)
        self.start_button.setToolTip("Start a new run of the project (saved runs stay)")
        self.pause_button = QPushButton(icon("pause"), "Pause", self)
        self.pause_button.setCheckable(True)
        self.stop_button = QPushButton(icon("stop"), "Stop", self)
        self.stop_button.setToolTip("Stop after the current step; a checkpoint is written")
        for button in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        left.addLayout(buttons)
        self.resume_button = QPushButton(icon("resume"), "Resume from checkpoint", self)
        self.resume_button.setToolTip(
            "Continue the selected run (or the latest one) from its last checkpoint, with its "
            "optimizer, schedule and random state"
        )
        left.addWidget(self.resume_button)
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
        self.form.setContentsMargins(0, 4, 8, 4)
        self.editors = {}
        self.memory_hint = QLabel(form_host)
        self.memory_hint.setProperty("role", "muted")
        self.memory_hint.setWordWrap(True)
        self._fill_form()
        scroll = QScrollArea(self)
        scroll.setWidget(form_host)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left.addWidget(scroll, 1)
        return left

    def _build_curves(self) -> QWidget:
        page = QWidget(self)
        column = QVBoxLayout(page)
        column.setContentsMargins(0, 6, 0, 0)
        row = QHBoxLayout()
        self.hover_label = QLabel("Hover over a curve for its values.", page)
        self.hover_label.setProperty("role", "muted")
        self.csv_button = QPushButton(icon("export"), "CSV…", page)
        self.csv_button.setToolTip("Save the curves of this run as a CSV file")
        self.png_button = QPushButton(icon("export"), "PNG…", page)
        self.png_button.setToolTip("Save the plots as a PNG image")
        row.addWidget(self.hover_label, 1)
        row.addWidget(self.csv_button)
        row.addWidget(self.png_button)
        column.addLayout(row)
        plots = pg.GraphicsLayoutWidget(page)
        self.plots = plots
        c = colours()
        plots.setBackground(c.base)
        # one row, so the curves keep their height in a short dock
        self.loss_plot = plots.addPlot(row=0, col=0)
        self.acc_plot = plots.addPlot(
            row=0, col=1, axisItems={"bottom": _EpochAxis(orientation="bottom")}
        )
        self.lr_plot = plots.addPlot(row=0, col=2)
        for col, stretch in enumerate((5, 3, 2)):
            plots.ci.layout.setColumnStretchFactor(col, stretch)
        self.loss_plot.setLabel("left", "loss")
        self.acc_plot.setLabel("left", "accuracy")
        self.lr_plot.setLabel("left", "learning rate")
        for plot in (self.acc_plot, self.lr_plot):
            plot.getAxis("left").enableAutoSIPrefix(False)  # no "(x0.001)" on fractions
        self.acc_plot.setYRange(0, 1, padding=0.02)
        self.acc_plot.enableAutoRange(axis="y", enable=False)
        for plot in (self.loss_plot, self.acc_plot, self.lr_plot):
            plot.showGrid(x=True, y=True, alpha=0.15)
            for side in ("left", "bottom"):
                # the finest of pyqtgraph's three grid levels, dozens of faint lines, was half of a
                # redraw (22 → 10 ms for the three plots) and the time is taken from the run
                plot.getAxis(side).setStyle(maxTickLevel=1)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
        self.loss_plot.addLegend(offset=(-10, 10), labelTextSize="8pt", verSpacing=-4)
        self.acc_plot.addLegend(offset=(-10, -10), labelTextSize="8pt", verSpacing=-4)
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
        column.addWidget(plots, 1)
        return page

    def refresh_theme(self) -> None:
        """Redraw the plots' background and the buttons' icons in the current theme."""
        self.plots.setBackground(colours().base)
        self.lr_view.refresh_theme()
        self.results_view.refresh_theme()
        self.start_button.setIcon(icon("play", colours().accent))
        self.pause_button.setIcon(icon("play" if self.pause_button.isChecked() else "pause"))
        self.stop_button.setIcon(icon("stop"))
        self.resume_button.setIcon(icon("resume"))
        for button in (self.csv_button, self.png_button):
            button.setIcon(icon("export"))
        self.tabs.setTabIcon(0, icon("train"))
        self.tabs.setTabIcon(3, icon("lr"))

    def refresh_form(self) -> None:
        """Show the project's training settings (after another project was opened)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        self.memory_hint = QLabel(self.form.parentWidget())
        self.memory_hint.setProperty("role", "muted")
        self.memory_hint.setWordWrap(True)
        self._fill_form()
        self.runs_view.set_runs_dir(self.document.project.runs_dir)
        self.results_view.set_evaluation(None)

    def _fill_form(self) -> None:
        params = {p.name: p for p in TRAIN_PARAMS}
        for name in FORM_PARAMS:
            param = params[name]
            value = self.document.project.training.get(name, param.default)
            if name == "device":
                editor = self._device_editor(param, value)
            else:
                editor = make_editor(
                    param, value, lambda v, p=param: self._on_setting_changed(p, v)
                )
            editor.setToolTip(f"{param.help}\nAllowed: {param.describe()}")
            self.editors[name] = editor
            self.form.addRow(name.replace("_", " "), editor)
            if name == "batch_size":
                self.form.addRow("", self.memory_hint)
        self.update_memory_hint()

    def _device_editor(self, param, value) -> QComboBox:
        """The devices of this machine by name (GPUs with their memory), not typed names."""
        combo = QComboBox(self)
        for setting, description in available_devices():
            combo.addItem(description, setting)
        index = combo.findData(str(value))
        if index < 0:  # a project made on another machine
            combo.addItem(f"{value} (not on this machine)", str(value))
            index = combo.count() - 1
        combo.setCurrentIndex(index)
        combo.currentIndexChanged.connect(
            lambda i: self._on_setting_changed(param, combo.itemData(i))
        )
        return combo

    def _connect(self) -> None:
        self.start_button.clicked.connect(self._on_start_clicked)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.csv_button.clicked.connect(self._on_csv_clicked)
        self.png_button.clicked.connect(self._on_png_clicked)
        self._timer.timeout.connect(self._redraw)
        self.document.project_replaced.connect(self.refresh_form)
        self.document.analysis_ready.connect(lambda _a: self.update_memory_hint())
        self.runs_view.selection_changed.connect(self._on_runs_selected)
        self.results_view.inspect_requested.connect(self.inspect_requested)
        self.lr_view.applied.connect(self._on_lr_applied)
        self.lr_view.started.connect(lambda: self._set_running(False))
        self.lr_view.ended.connect(lambda: self._set_running(self.running))
        self.loss_plot.scene().sigMouseMoved.connect(self._on_mouse_moved)

    # Settings

    def _on_setting_changed(self, param, value) -> None:
        reason = param.check(value)
        if reason:
            self.message.setText(f"{param.name} {reason}: not applied")
            return
        self.document.set_training(param.name, value)
        if param.name in ("batch_size", "optimizer", "precision", "device"):
            self.update_memory_hint()

    def _on_lr_applied(self, value: float) -> None:
        editor = self.editors.get("lr")
        if editor is not None:
            editor.blockSignals(True)
            if hasattr(editor, "setValue"):
                editor.setValue(value)
            elif hasattr(editor, "setText"):
                editor.setText(f"{value:g}")
            editor.blockSignals(False)
        self.message.setText(f"Learning rate set to {value:g} by the finder.")

    def update_memory_hint(self) -> None:
        """The engine's memory estimate for the chosen batch, and the largest batch that fits the
        chosen device when its free memory is known."""
        analysis = self.document.analysis
        if analysis is None or not analysis.valid or not self.document.analysis_is_current:
            self.memory_hint.setText("")
            return
        settings = self.document.project.training
        batch = settings.get("batch_size", 64)
        precision = settings.get("precision", "fp32")
        precision = "fp32" if precision in ("auto", "fp32") else precision
        estimate = estimate_memory(self.document.spec, settings, precision)
        text = f"≈ {_megabytes(estimate.total(batch))} for a step at batch {batch}"
        try:
            device = pick_device(str(settings.get("device", "auto")))
        except Exception:  # a device named in the settings that this machine lacks
            device = None
        free = free_memory(device) if device is not None else None
        if free is not None:
            text += f"; largest batch that fits now: {estimate.largest_batch(free):,}"
        elif device is not None:
            text += " (CPU: uses main memory)"
        self.memory_hint.setText(text)

    # Runs

    @property
    def running(self) -> bool:
        return self.runner.running

    def _on_start_clicked(self) -> None:
        self.start()

    def _on_resume_clicked(self) -> None:
        chosen = self.runs_view.selected()
        if len(chosen) == 1:
            run = chosen[0]
        else:
            run = next((r for r in self.runs_view.runs if r.has_checkpoint), None)
        if run is None or not run.has_checkpoint:
            name = f"Run {run.name} has" if run is not None else "This project has"
            self.message.setText(f"{name} no checkpoint to resume from.")
            return
        # the run's own plan, or more epochs if the form asks for more
        epochs = max(run.epochs or 0, int(self.document.project.training.get("epochs", 0)))
        self.start(resume=str(run.folder), epochs=epochs or None)

    def start(self, resume: bool | str = False, epochs: int | None = None) -> bool:
        project = self.document.project
        if project.path is None:
            self.message.setText("Save the project first: its runs are kept in its folder.")
            return False
        if self.document.analysis is not None and not self.document.analysis.valid:
            self.message.setText("The model has problems (red blocks): fix them first.")
            return False
        if self.lr_view.busy():
            self.message.setText("The learning-rate finder is running: wait for it to end.")
            return False
        self.steps, self.epochs, self.lrs, self.result = [], [], [], None
        self.message.setText("")
        self._clear_overlays()
        for curve in (self.raw_curve, self.smooth_curve, self.train_loss_curve,
                      self.val_loss_curve, self.train_acc_curve, self.val_acc_curve,
                      self.lr_curve):  # fmt: skip
            curve.setData([], [])
        worker = self.runner.start(project, resume=resume, epochs=epochs)
        worker.run_started.connect(self._on_run_started)
        worker.step_logged.connect(self._on_step_logged)
        worker.epoch_ended.connect(self._on_epoch_ended)
        worker.warned.connect(self._on_warned)
        worker.data_progressed.connect(self._on_data_progressed)
        worker.run_finished.connect(self._on_run_finished)
        self._set_running(True)
        self.tabs.setCurrentIndex(0)
        self.progress.setValue(0)
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

    def busy(self) -> bool:
        return self.running or self.lr_view.busy() or self.results_view.busy()

    def shutdown(self) -> None:
        """Stop the run and every background job, and join their threads."""
        self.stop_and_wait()
        self.lr_view.shutdown()
        self.results_view.shutdown()

    def _set_running(self, running: bool) -> None:
        finding = self.lr_view.busy()
        self.start_button.setEnabled(not running and not finding)
        self.resume_button.setEnabled(not running and not finding)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.lr_view.find_button.setEnabled(not running and not finding)
        for editor in self.editors.values():
            editor.setEnabled(not running)

    # Events from the worker (plain data)

    def _on_run_started(self, event) -> None:
        self._started = time.monotonic()
        self._total_steps = max(1, (event.epochs - event.start_epoch) * event.steps_per_epoch)
        self._first_step = event.start_epoch * event.steps_per_epoch
        self._steps_per_epoch = max(1, event.steps_per_epoch)
        self.progress.setFormat(f"training on {event.device_name}")
        self.runs_view.refresh(select=Path(event.run_dir).name)
        self.run_started.emit(event)

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
        self._mark_dirty()

    def _on_epoch_ended(self, event) -> None:
        self.epochs.append(event)
        self._mark_dirty()
        self.epoch_ended.emit(event)

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
            if result.state in ("finished", "early_stopped"):
                self.progress.setValue(100)
            best = result.best_val_accuracy
            text = f"{result.state.replace('_', ' ')}"
            if best is not None:
                text += f" · best {best:.2%} (epoch {result.best_epoch})"
            self.progress.setFormat(text)
        run_dir = getattr(result, "run_dir", None)
        self.runs_view.refresh(select=Path(run_dir).name if run_dir else None)
        self.run_finished.emit(result)

    # The run list and results

    def _on_runs_selected(self, chosen: list[RunInfo]) -> None:
        self._clear_overlays()
        if self.running:
            return
        if len(chosen) == 1:
            self._show_results(chosen[0])
        if len(chosen) >= 2 or (len(chosen) == 1 and not self.steps):
            for n, info in enumerate(chosen):
                self._overlay(info, OVERLAY_COLOURS[n % len(OVERLAY_COLOURS)])

    def _show_results(self, info: RunInfo) -> None:
        evaluation = read_evaluation(info.folder)
        if evaluation is None:
            self.results_view.set_evaluation(
                None, f"Run {info.name} has no evaluation ({info.state}): it is written when a "
                "run ends."
            )  # fmt: skip
            return
        source = None
        settings = read_settings(info.folder)
        if settings is not None:
            source = self.image_source_for(settings.get("project", {}))
        self.results_view.set_evaluation(evaluation, f"Run {info.name}", source)

    def _overlay(self, info: RunInfo, colour: str) -> None:
        history = read_history(info.folder)
        pen = pg.mkPen(colour, width=2)
        steps = [(r["global_step"], r["loss"]) for r in history.steps if "loss" in r]
        if steps:
            smooth = _smoothed([v for _, v in steps])
            self.overlays.append(
                self.loss_plot.plot([s for s, _ in steps], smooth, pen=pen, name=info.name)
            )
        epochs = [r for r in history.epochs if "val_accuracy" in r]
        if epochs:
            self.overlays.append(
                self.acc_plot.plot(
                    [r["epoch"] for r in epochs],
                    [r["val_accuracy"] for r in epochs],
                    pen=pen,
                    symbol="o",
                    symbolSize=5,
                    symbolBrush=colour,
                    name=info.name,
                )
            )

    def _clear_overlays(self) -> None:
        for item in self.overlays:
            for plot in (self.loss_plot, self.acc_plot):
                if item in plot.listDataItems():
                    plot.removeItem(item)
        self.overlays = []

    # Hover and export

    def _on_mouse_moved(self, position) -> None:
        for plot, points in ((self.loss_plot, self.steps), (self.acc_plot, None)):
            if not plot.sceneBoundingRect().contains(position):
                continue
            x = plot.vb.mapSceneToView(position).x()
            if points:
                step, loss = min(points, key=lambda p: abs(p[0] - x))
                lr = next((v for s, v in self.lrs if s == step), None)
                text = f"step {step:,}: loss {loss:.4f}"
                if lr is not None:
                    text += f", lr {lr:.3g}"
                self.hover_label.setText(text)
            elif plot is self.acc_plot and self.epochs:
                e = min(self.epochs, key=lambda e: abs(e.epoch - x))
                self.hover_label.setText(
                    f"epoch {e.epoch}: train {e.train_accuracy:.2%}, validation "
                    f"{e.val_accuracy:.2%} (loss {e.train_loss:.4f} / {e.val_loss:.4f})"
                )

    def curves_csv(self) -> str:
        """The curves of the current run: one row per logged step, epoch values where an epoch
        ended."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["global_step", "loss", "lr", "epoch", "train_loss", "train_accuracy",
                         "val_loss", "val_accuracy"])  # fmt: skip
        spe = getattr(self, "_steps_per_epoch", 1)
        ends = {e.epoch * spe: e for e in self.epochs}
        lrs = dict(self.lrs)
        for step, loss in self.steps:
            e = ends.pop(step, None)
            extra = [e.epoch, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy] if e \
                else ["", "", "", "", ""]  # fmt: skip
            writer.writerow([step, loss, lrs.get(step, ""), *extra])
        for step, e in sorted(ends.items()):
            writer.writerow([step, "", "", e.epoch, e.train_loss, e.train_accuracy, e.val_loss,
                             e.val_accuracy])  # fmt: skip
        return out.getvalue()

    def save_csv(self, path: str | Path) -> None:
        atomic_write_text(path, self.curves_csv())

    def save_png(self, path: str | Path) -> bool:
        return self.plots.grab().save(str(path))

    def _export_folder(self) -> str:
        runs = self.document.project.runs_dir
        return str(runs) if runs is not None and runs.is_dir() else str(Path.home())

    def _on_csv_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the curves as CSV", str(Path(self._export_folder()) / "curves.csv"),
            "CSV files (*.csv)",
        )  # fmt: skip
        if path:
            self.save_csv(path)
            self.message.setText(f"Curves saved to {path}")

    def _on_png_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the plots as PNG", str(Path(self._export_folder()) / "curves.png"),
            "PNG images (*.png)",
        )  # fmt: skip
        if path:
            saved = self.save_png(path)
            self.message.setText(f"Plots saved to {path}" if saved else f"Cannot write {path}")

    # Drawing, coalesced

    def _mark_dirty(self) -> None:
        """New points: draw them within REDRAW_MS, together with any that arrive meanwhile."""
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if self.steps:
            x = [s for s, _ in self.steps]
            y = [v for _, v in self.steps]
            self.raw_curve.setData(x, y)
            self.smooth_curve.setData(x, _smoothed(y))
            self.lr_curve.setData([s for s, _ in self.lrs], [v for _, v in self.lrs])
        if self.epochs:
            spe = getattr(self, "_steps_per_epoch", 1)
            ends = [e.epoch * spe for e in self.epochs]
            self.train_loss_curve.setData(ends, [e.train_loss for e in self.epochs])
            self.val_loss_curve.setData(ends, [e.val_loss for e in self.epochs])
            numbers = [e.epoch for e in self.epochs]
            self.train_acc_curve.setData(numbers, [e.train_accuracy for e in self.epochs])
            self.val_acc_curve.setData(numbers, [e.val_accuracy for e in self.epochs])
        # auto-range now rather than inside the paint: there it changes the axes and asks for a
        # second, full paint (two to four paints per redraw instead of one)
        self.plots.scene().prepareForPaint()


def _smoothed(values: list[float], beta: float = 0.9) -> list[float]:
    """Exponential moving average, bias-corrected so the first points are not pulled to zero."""
    out, average = [], 0.0
    for n, v in enumerate(values, start=1):
        average = beta * average + (1 - beta) * v
        out.append(average / (1 - beta**n))
    return out


def _megabytes(count: int) -> str:
    return f"{count / 2**20:,.0f} MB" if count < 2**30 else f"{count / 2**30:.1f} GB"
