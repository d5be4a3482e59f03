"""The Curves tab of the Train view: the loss of every logged step with its smoothed line and the
epoch losses, the accuracy per epoch, the learning rate; hover for values; earlier runs overlaid;
export as CSV and PNG.

Points arrive far faster than the eye needs (a step every few ms on a small model): they are kept
as they come and drawn on a single-shot timer that new points start, so the plots redraw at most
every REDRAW_MS whatever the step rate, and not at all while nothing changes.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from cnnstudio.files import atomic_write_text
from cnnstudio.params import format_rate
from cnnstudio.runs import RunInfo, read_history
from ui.icons import icon
from ui.theme import colours

OVERLAY_COLOURS = ("#2a9d8f", "#e76f51", "#8e44ad", "#f4a261", "#27ae60", "#d6336c")
REDRAW_MS = 50


def overlay_colour(n: int) -> str:
    """The colour of the ``n``-th overlaid run (the same run, the same colour in every plot)."""
    return OVERLAY_COLOURS[n % len(OVERLAY_COLOURS)]


class _EpochAxis(pg.AxisItem):
    """Ticks on whole epochs only: no "epoch 1.5" on a three-epoch run."""

    def tickValues(self, minVal, maxVal, size):
        levels = super().tickValues(minVal, maxVal, size)
        return [(max(spacing, 1.0), [v for v in values if float(v).is_integer()])
                for spacing, values in levels]  # fmt: skip


class CurvesView(QWidget):
    """The curves of the run in progress (or the last one), and overlays of saved runs.

    ``saved`` carries a line for the user after an export: where the file went, or why not.
    """

    saved = Signal(str)

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.steps: list[tuple[int, float]] = []  # (global step, loss)
        self.lrs: list[tuple[int, float]] = []  # (global step, learning rate)
        self.epochs: list = []  # EpochEnded events
        self.steps_per_epoch = 1
        self.overlays: list[pg.PlotDataItem] = []
        self.live = True  # False: only overlaid runs are shown (Compare), the legend names them
        self._labels: dict[pg.PlotDataItem, str] = {}  # each overlay's run name, for hovering
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.setSingleShot(True)  # started by new points: no wake-ups while nothing changes
        self._build_ui()
        self._connect()

    def _build_ui(self) -> None:
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 6, 0, 0)
        row = QHBoxLayout()
        self.hover_label = QLabel("Hover over a curve for its values.", self)
        self.hover_label.setProperty("role", "muted")
        self.csv_button = QPushButton(icon("export"), "CSV…", self)
        self.csv_button.setToolTip("Save the curves of this run as a CSV file")
        self.png_button = QPushButton(icon("export"), "PNG…", self)
        self.png_button.setToolTip("Save the plots as a PNG image")
        row.addWidget(self.hover_label, 1)
        row.addWidget(self.csv_button)
        row.addWidget(self.png_button)
        column.addLayout(row)
        self.legend = QLabel(self)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        column.addWidget(self.legend)
        self.plots = pg.GraphicsLayoutWidget(self)
        self.plots.setBackground(colours().base)
        self._build_plots()
        self._build_curves()
        self._show_legend()
        column.addWidget(self.plots, 1)

    def _build_plots(self) -> None:
        plots = self.plots
        # one row, so the curves keep their height in a short dock; the legend is a line of text
        # above the plots (``legend``), where it covers no point and takes one line, not three
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
        # the narrowest plot: half the ticks, or its step numbers ran together ("0.20.40.6")
        self.lr_plot.getAxis("bottom").setTickDensity(0.5)
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

    def _build_curves(self) -> None:
        c = colours()
        self.raw_curve = self.loss_plot.plot(pen=pg.mkPen(c.accent, width=1), name="loss (step)")
        self.raw_curve.setOpacity(0.3)
        self.smooth_curve = self.loss_plot.plot(pen=pg.mkPen(c.accent, width=2), name="smoothed")
        self.train_loss_curve = self.loss_plot.plot(
            pen=None, symbol="o", symbolSize=6, symbolBrush=c.accent, name="loss (epoch)"
        )
        self.val_loss_curve = self.loss_plot.plot(
            pen=pg.mkPen(c.warning, width=2),
            symbol="o",
            symbolSize=6,
            symbolBrush=c.warning,
            name="validation loss",
        )
        self.train_acc_curve = self.acc_plot.plot(
            pen=pg.mkPen(c.accent, width=2), symbol="o", symbolSize=6, name="train accuracy"
        )
        self.val_acc_curve = self.acc_plot.plot(
            pen=pg.mkPen(c.warning, width=2), symbol="o", symbolSize=6, name="validation accuracy"
        )
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen(c.muted, width=1.5))
        for plot in (self.loss_plot, self.acc_plot, self.lr_plot):
            plot.setLabel("bottom", "step" if plot is not self.acc_plot else "epoch")

    def _connect(self) -> None:
        self.csv_button.clicked.connect(self._on_csv_clicked)
        self.png_button.clicked.connect(self._on_png_clicked)
        self._timer.timeout.connect(self._redraw)
        self.loss_plot.scene().sigMouseMoved.connect(self._on_mouse_moved)

    def refresh_theme(self) -> None:
        """Redraw the plots' background and the buttons' icons in the current theme."""
        self.plots.setBackground(colours().base)
        self._show_legend()
        for button in (self.csv_button, self.png_button):
            button.setIcon(icon("export"))

    # The run's points

    def clear(self) -> None:
        """Forget the points and the overlays: a new run starts."""
        self.steps, self.epochs, self.lrs = [], [], []
        self.clear_overlays()
        for curve in (self.raw_curve, self.smooth_curve, self.train_loss_curve,
                      self.val_loss_curve, self.train_acc_curve, self.val_acc_curve,
                      self.lr_curve):  # fmt: skip
            curve.setData([], [])
        # an empty plot keeps the ranges of the run before unless told: start from nothing
        for plot in (self.loss_plot, self.lr_plot):
            plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            plot.enableAutoRange()
        self.acc_plot.setXRange(1, 2, padding=0.05)
        self.acc_plot.enableAutoRange(axis="x")

    def add_step(self, event) -> None:
        """A logged step (StepLogged): drawn with the next redraw."""
        self.steps.append((event.global_step, event.loss))
        self.lrs.append((event.global_step, event.lr))
        self._mark_dirty()

    def add_epoch(self, event) -> None:
        """An ended epoch (EpochEnded): drawn with the next redraw."""
        self.epochs.append(event)
        self._mark_dirty()

    def flush(self) -> None:
        """Draw what is waiting now (the run ended)."""
        self._timer.stop()
        self._redraw()

    # Saved runs

    def overlay(self, runs: list[RunInfo], labels: list[str] | None = None) -> None:
        """Draw the smoothed loss and the validation accuracy of each run, one colour each,
        named in the legend by ``labels`` (default: the run names)."""
        for n, info in enumerate(runs):
            label = labels[n] if labels is not None else info.name
            self._overlay(info, overlay_colour(n), label)
        self._show_legend()

    def _overlay(self, info: RunInfo, colour: str, label: str) -> None:
        history = read_history(info.folder)
        pen = pg.mkPen(colour, width=2)
        steps = [(r["global_step"], r["loss"]) for r in history.steps if "loss" in r]
        if steps:
            smooth = _smoothed([v for _, v in steps])
            self.overlays.append(
                self.loss_plot.plot([s for s, _ in steps], smooth, pen=pen, name=label)
            )
            self._labels[self.overlays[-1]] = info.name
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
                )
            )
            self._labels[self.overlays[-1]] = info.name

    def clear_overlays(self) -> None:
        for item in self.overlays:
            for plot in (self.loss_plot, self.acc_plot):
                if item in plot.listDataItems():
                    plot.removeItem(item)
        self.overlays = []
        self._labels.clear()
        self._show_legend()

    def _show_legend(self) -> None:
        """One line over the plots: the colour of training and of validation (the same in the
        loss and the accuracy plot), then each overlaid run's colour and name."""
        c = colours()

        def entry(colour: str, glyph: str, text: str) -> str:
            return f"<span style='color:{colour}'>{glyph}</span>&nbsp;{html.escape(text)}"

        entries = [entry(c.accent, "━●", "training (the faint line: every step)"),
                   entry(c.warning, "━●", "validation")] if self.live else []  # fmt: skip
        runs = [(item.opts["pen"].color().name(), item.name()) for item in self.overlays
                if item.name()]  # fmt: skip
        entries += [entry(colour, "━", name) for colour, name in runs]
        self.legend.setText("&nbsp;&nbsp;&nbsp; ".join(entries))

    # Hover and export

    def _on_mouse_moved(self, position) -> None:
        for plot, points in ((self.loss_plot, self.steps), (self.acc_plot, None)):
            if not plot.sceneBoundingRect().contains(position):
                continue
            x = plot.vb.mapSceneToView(position).x()
            if not self.live:
                self.hover_label.setText(self.overlay_values(plot, x))
            elif points:
                step, loss = min(points, key=lambda p: abs(p[0] - x))
                lr = next((v for s, v in self.lrs if s == step), None)
                text = f"step {step:,}: loss {loss:.4f}"
                if lr is not None:
                    text += f", lr {format_rate(lr)}"
                self.hover_label.setText(text)
            elif plot is self.acc_plot and self.epochs:
                e = min(self.epochs, key=lambda e: abs(e.epoch - x))
                self.hover_label.setText(
                    f"epoch {e.epoch}: train {e.train_accuracy:.2%}, validation "
                    f"{e.val_accuracy:.2%} (loss {e.train_loss:.4f} / {e.val_loss:.4f})"
                )

    def overlay_values(self, plot, x: float) -> str:
        """Each overlaid run's value in ``plot`` at the logged step or epoch nearest ``x``."""
        found = []
        for item in self.overlays:
            xs, ys = item.getData()
            if item not in plot.listDataItems() or xs is None or not len(xs):
                continue
            spacing = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else 1.0
            if not xs[0] - spacing / 2 <= x <= xs[-1] + spacing / 2:
                continue  # a run that ended earlier (or was logged later) has no value here
            i = min(range(len(xs)), key=lambda n: abs(xs[n] - x))
            value = f"{ys[i]:.2%}" if plot is self.acc_plot else f"{ys[i]:.4f}"
            found.append(f"{self._labels.get(item, '')} {value}".strip())
        where = "epoch" if plot is self.acc_plot else "step"
        return f"{where} {round(x):,}: " + "; ".join(found) if found else ""

    def curves_csv(self) -> str:
        """The curves of the current run: one row per logged step, epoch values where an epoch
        ended."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["global_step", "loss", "lr", "epoch", "train_loss", "train_accuracy",
                         "val_loss", "val_accuracy"])  # fmt: skip
        ends = {e.epoch * self.steps_per_epoch: e for e in self.epochs}
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
            self.saved.emit(f"Curves saved to {path}")

    def _on_png_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the plots as PNG", str(Path(self._export_folder()) / "curves.png"),
            "PNG images (*.png)",
        )  # fmt: skip
        if path:
            saved = self.save_png(path)
            self.saved.emit(f"Plots saved to {path}" if saved else f"Cannot write {path}")

    def _range_lr(self, values: list[float]) -> None:
        flat = _flat_range(values)
        if flat is None:
            self.lr_plot.enableAutoRange(axis="y")
        else:
            self.lr_plot.setYRange(*flat, padding=0)

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
            self._range_lr([v for _, v in self.lrs])
        if self.epochs:
            ends = [e.epoch * self.steps_per_epoch for e in self.epochs]
            self.train_loss_curve.setData(ends, [e.train_loss for e in self.epochs])
            self.val_loss_curve.setData(ends, [e.val_loss for e in self.epochs])
            numbers = [e.epoch for e in self.epochs]
            self.train_acc_curve.setData(numbers, [e.train_accuracy for e in self.epochs])
            self.val_acc_curve.setData(numbers, [e.val_accuracy for e in self.epochs])
        # auto-range now rather than inside the paint: there it changes the axes and asks for a
        # second, full paint (two to four paints per redraw instead of one)
        self.plots.scene().prepareForPaint()


def _flat_range(values: list[float]) -> tuple[float, float] | None:
    """The y range for a constant curve (a constant learning rate): from zero to above it,
    where pyqtgraph would centre it in ±0.5 and show "0"; None when the values vary."""
    if not values or max(values) != min(values):
        return None
    value = values[0]
    return (0.0, value * 1.5) if value > 0 else (value - 1.0, value + 1.0)


def _smoothed(values: list[float], beta: float = 0.9) -> list[float]:
    """Exponential moving average, bias-corrected so the first points are not pulled to zero."""
    out, average = [], 0.0
    for n, v in enumerate(values, start=1):
        average = beta * average + (1 - beta) * v
        out.append(average / (1 - beta**n))
    return out
