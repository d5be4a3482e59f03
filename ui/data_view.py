"""The Data view: choose the images (built-in sample, a standard set, an image folder), see the
classes with their counts, the warnings of the data summary and augmented samples, and edit the
augmentation. Scanning and downloading run on a pool thread with progress and a cancel button."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.augment import AUGMENT_PARAMS, augment_warnings
from cnnstudio.data import (
    DataSettings,
    display_names,
    load_dataset,
    preview,
    rename_class,
    suggested_defaults,
    summarize,
    summarize_dataset,
)
from cnnstudio.errors import ProjectError
from cnnstudio.fit import adaptation, data_needs, fitted, misfits
from cnnstudio.progress import Progress, TaskState
from cnnstudio.standard_sets import STANDARD_SETS, download, is_downloaded
from ui.background import Jobs
from ui.editor.commands import AdaptModelCommand, RenameClassCommand
from ui.editor.properties import make_editor
from ui.theme import colours

SOURCES = [
    ("sample", "Built-in sample set"),
    ("cifar10", "CIFAR-10"),
    ("cifar100", "CIFAR-100"),
    ("mnist", "MNIST"),
    ("fashionmnist", "FashionMNIST"),
    ("folder", "Image folder"),
]
PREVIEW_COUNT = 8
SAMPLE_SIZE = 84  # pixels per sample tile: four fit the Data dock


def _read_data(state: TaskState, settings: DataSettings, input_shape, chosen: bool) -> tuple:
    """The defaults that suit the data; then downloads when needed, summarises and loads the data
    (for the previews). Data just ``chosen`` takes the suggested augmentation. The summary's
    warnings are the data's own: the view adds those of the augmentation as it is edited."""
    defaults = suggested_defaults(settings)
    if chosen:
        settings = replace(settings, augment=defaults.augment.settings)
    source = settings.source
    if source in STANDARD_SETS and not is_downloaded(source):
        download(source, state=state)
    dataset = load_dataset(settings, input_shape, state=state)
    if dataset.in_memory:  # decoded once: its summary needs no second pass
        summary = summarize_dataset(dataset)
    else:  # read on the fly while training: verify every file now
        summary = summarize(settings, input_shape, state=state, check_augment=False)
    return settings, defaults, summary, dataset


def array_to_pixmap(image: np.ndarray, scale: int = 3) -> QPixmap:
    """An H×W×C uint8 array as a pixmap, enlarged without smoothing."""
    height, width, channels = image.shape
    data = np.ascontiguousarray(image if channels == 3 else image[:, :, :1].repeat(3, axis=2))
    qimage = QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimage).scaled(
        width * scale,
        height * scale,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.FastTransformation,
    )


def _data_needs(_state: TaskState, settings: DataSettings):
    return data_needs(settings)


def _augmented_samples(_state: TaskState, dataset, class_index: int, augment, seed: int):
    return class_index, preview(dataset, class_index, PREVIEW_COUNT, augment, seed=seed)


class _SampleLabel(QLabel):
    """One picture of the sample grid; a double-click asks to inspect it."""

    double_clicked = Signal()

    def mouseDoubleClickEvent(self, event) -> None:
        self.double_clicked.emit()
        event.accept()


class DataPanel(QWidget):
    """The project's data: source, classes and counts, warnings, samples, augmentation."""

    summary_ready = Signal(object)
    sample_activated = Signal(object, str)  # an H×W×C uint8 image and what it is
    load_failed = Signal(str)

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.summary = None
        self.dataset = None
        self.needs = None  # what the data asks of the model (cnnstudio.fit.DataNeeds)
        self.defaults = None  # the settings suggested for the data (DataDefaults)
        self._choice: DataSettings | None = None  # data chosen, taken when its read ends
        self._read_settings: DataSettings | None = None  # the data settings last read
        self._applying = False  # the view's own edit: it shows it already
        self._seed = 0
        self._reads = Jobs(self, newest_wins=True)
        self._previews = Jobs(self, newest_wins=True)
        self._needs = Jobs(self, newest_wins=True)
        self._build_ui()
        self._connect()
        self._show_settings()
        self.reload()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        row = QHBoxLayout()
        self.source = QComboBox(self)
        for key, title in SOURCES:
            self.source.addItem(title, key)
        self.folder_button = QPushButton("Choose folder…", self)
        row.addWidget(self.source, 1)
        row.addWidget(self.folder_button)
        layout.addLayout(row)
        self.path_label = QLabel(self)
        self.path_label.setProperty("role", "muted")
        self.path_label.setWordWrap(True)
        layout.addWidget(self.path_label)
        progress_row = QHBoxLayout()
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", self)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._build_fit_banner(layout)
        self._build_summary(layout)
        self._build_samples(layout)
        heading = QLabel("Augmentation", self)
        heading.setProperty("role", "heading")
        layout.addWidget(heading)
        self.defaults_label = QLabel(self)
        self.defaults_label.setProperty("role", "muted")
        self.defaults_label.setWordWrap(True)
        layout.addWidget(self.defaults_label)
        self.augment_form = QFormLayout()
        layout.addLayout(self.augment_form)
        self.augment_editors = {}

    def _build_fit_banner(self, layout: QVBoxLayout) -> None:
        """The bar that offers to make the model follow the data when they differ."""
        self.fit_banner = QFrame(self)
        self.fit_banner.setProperty("role", "banner")
        row = QHBoxLayout(self.fit_banner)
        row.setContentsMargins(10, 8, 10, 8)
        self.fit_label = QLabel(self.fit_banner)
        self.fit_label.setWordWrap(True)
        self.adapt_button = QPushButton("Adapt model", self.fit_banner)
        self.adapt_button.setToolTip("One edit: Edit > Undo takes it back")
        row.addWidget(self.fit_label, 1)
        row.addWidget(self.adapt_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.fit_banner.hide()
        layout.addWidget(self.fit_banner)

    def _build_summary(self, layout: QVBoxLayout) -> None:
        """The class table (double-click a name to rename the class), the class-count chart and
        the warnings."""
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["Class", "Train", "Validation"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(
            QTableWidget.EditTrigger.DoubleClicked | QTableWidget.EditTrigger.EditKeyPressed
        )
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        for column in (0, 1):  # names and counts as wide as they need, validation takes the rest
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(150)
        layout.addWidget(self.table, 2)
        self.chart = pg.PlotWidget(self)
        self.chart.setMinimumHeight(140)
        self.chart.setMouseEnabled(x=False, y=False)
        self.chart.hideButtons()
        self.chart.setMenuEnabled(False)
        self.chart.getPlotItem().setLabel("bottom", "images (train + validation)")
        layout.addWidget(self.chart, 1)
        self.warnings = QLabel(self)
        self.warnings.setWordWrap(True)
        self.warnings.setProperty("role", "error")
        layout.addWidget(self.warnings)

    def _build_samples(self, layout: QVBoxLayout) -> None:
        """The grid of augmented samples with its Re-roll button."""
        samples_row = QHBoxLayout()
        heading = QLabel("Augmented samples", self)
        heading.setProperty("role", "heading")
        self.reroll_button = QPushButton("Re-roll", self)
        samples_row.addWidget(heading, 1)
        samples_row.addWidget(self.reroll_button)
        layout.addLayout(samples_row)
        self.grid_host = QWidget(self)
        self.grid = QGridLayout(self.grid_host)
        self.grid.setSpacing(4)
        self.sample_labels = []
        self.samples = None  # the images shown in the grid
        for i in range(PREVIEW_COUNT):
            label = _SampleLabel(self.grid_host)
            label.setFixedSize(SAMPLE_SIZE, SAMPLE_SIZE)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setToolTip("Double-click to inspect this image")
            label.double_clicked.connect(lambda i=i: self._on_sample_double_clicked(i))
            self.grid.addWidget(label, i // 4, i % 4)
            self.sample_labels.append(label)
        layout.addWidget(self.grid_host)

    def _connect(self) -> None:
        self.source.activated.connect(self._on_source_activated)
        self.folder_button.clicked.connect(self._on_folder_button_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.reroll_button.clicked.connect(self._on_reroll_clicked)
        self.table.itemSelectionChanged.connect(self._show_samples)
        self._reads.progressed.connect(self._on_read_progressed)
        self._reads.finished.connect(self._on_read_finished)
        self._reads.failed.connect(self._on_read_failed)
        self._previews.finished.connect(self._on_samples_ready)
        self._previews.failed.connect(lambda _n, message: self.status.setText(message))
        self._needs.finished.connect(self._on_needs_ready)
        self._needs.failed.connect(lambda _n, _message: self._show_fit(None))
        self.table.itemChanged.connect(self._on_class_item_changed)
        self.adapt_button.clicked.connect(self._on_adapt_clicked)
        self.document.project_replaced.connect(self._on_project_replaced)
        self.document.spec_changed.connect(self._on_spec_changed)
        self.document.class_names_changed.connect(self._on_class_names_changed)
        self.document.data_changed.connect(self._on_data_changed)

    # Settings

    @property
    def settings(self) -> DataSettings:
        return self.document.project.data

    def _show_settings(self) -> None:
        data = self._choice or self.settings
        self.source.setCurrentIndex([k for k, _ in SOURCES].index(data.source))
        self.path_label.setText(data.path or "")
        self.path_label.setVisible(data.source == "folder")
        while self.augment_form.rowCount():
            self.augment_form.removeRow(0)
        self.augment_editors = {}
        for param in AUGMENT_PARAMS:
            value = data.augment.get(param.name, param.default)
            editor = make_editor(param, value, lambda v, p=param: self._on_augment_changed(p, v))
            editor.setToolTip(self._tooltip(param))
            self.augment_editors[param.name] = editor
            label = QLabel(param.name.replace("_", " "))
            label.setToolTip(editor.toolTip())  # the reason shows over the name too
            self.augment_form.addRow(label, editor)
        self._show_defaults()

    def _tooltip(self, param) -> str:
        if self.defaults is None or self._choice is not None:
            return param.help
        return f"{param.help}\nDefault for this data: {self.defaults.augment.reasons[param.name]}"

    def _show_defaults(self) -> None:
        """The line that says which augmentation suits the data, and which settings differ."""
        if self.defaults is None or self._choice is not None:
            self.defaults_label.clear()
            return
        suggested = self.defaults.augment.settings
        differ = [
            name.replace("_", " ")
            for name, value in suggested.items()
            if self.settings.augment.get(name) != value
        ]
        text = self.defaults.augment.summary + " (hover a setting for why)."
        if differ:
            text += f" This project differs in: {', '.join(differ)}."
        self.defaults_label.setText(text)

    def choose_source(self, settings: DataSettings) -> None:
        """Switch the project to other data: it is read first, then taken with the augmentation
        (and, unless it was changed by hand, the batch size) that suit it, in one edit."""
        self._choice = settings
        self._show_settings()
        self.reload()

    def _take_choice(self, settings: DataSettings, defaults) -> None:
        """Make the chosen data the project's, with its suggested defaults."""
        follows = self.defaults is None or (
            self.document.project.training.get("batch_size") == self.defaults.batch_size
        )
        self._choice = None
        training = {"batch_size": defaults.batch_size} if follows and defaults is not None else {}
        where = Path(settings.path).name if settings.source == "folder" and settings.path else None
        text = f"Use the data {where or dict(SOURCES).get(settings.source, settings.source)}"
        self._set_data(settings, text, training)

    def _set_data(self, settings: DataSettings, text: str, training: dict | None = None) -> None:
        """One undo step; the view shows it already, so its own data_changed is not redrawn."""
        self._applying = True
        try:
            self.document.set_data(settings, text, training)
        finally:
            self._applying = False

    def _on_data_changed(self) -> None:
        """The data settings changed by undo or redo: other data is read again, other
        augmentation shown."""
        if self._applying:
            return
        read = self._read_settings
        same = read is not None and all(
            getattr(read, name) == getattr(self.settings, name)
            for name in ("source", "path", "val_fraction", "split_seed")
        )
        self._choice = None
        self._show_settings()
        if same:
            self._show_warnings()
            self._show_samples()
        else:
            self.reload()

    def _on_source_activated(self, index: int) -> None:
        key = self.source.itemData(index)
        if key == "folder":
            self._on_folder_button_clicked()
            return
        self.choose_source(
            replace(self.settings, source=key, path=None, mean=None, std=None, stats_key=None)
        )

    def _on_folder_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose an image folder")
        if folder:
            self.choose_folder(folder)
        else:
            self._show_settings()

    def choose_folder(self, folder: str | Path) -> None:
        self.choose_source(
            replace(
                self.settings,
                source="folder",
                path=str(folder),
                mean=None,
                std=None,
                stats_key=None,
            )
        )

    def _on_augment_changed(self, param, value) -> None:
        if param.check(value):
            return
        augment = {**self.settings.augment, param.name: value}
        shown = f"{value:g}" if isinstance(value, float) else value
        text = f"Set {param.name.replace('_', ' ')} to {shown}"
        self._set_data(replace(self.settings, augment=augment), text)
        self._show_defaults()
        self._show_warnings()
        self._show_samples()

    # Loading

    def reload(self) -> None:
        """Read the data again (a read still going is stopped: the newest wins)."""
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        self.status.setText("Reading the data…")
        self.warnings.clear()
        chosen = self._choice is not None
        settings = self._choice or self.settings
        self._reads.submit(_read_data, settings, self.document.spec.input_shape, chosen)

    def _on_read_progressed(self, _number: int, report: Progress) -> None:
        if report.total:
            self.progress.setRange(0, report.total)
            self.progress.setValue(report.done)
        self.progress.setFormat(f"{report.what}: %p%")

    def _on_read_finished(self, _number: int, result: tuple) -> None:
        settings, defaults, summary, dataset = result
        self._read_settings = settings
        if self._choice is not None:
            self._take_choice(settings, defaults)
        self.defaults = defaults
        self._show_settings()
        self.summary, self.dataset = summary, dataset
        self.progress.hide()
        self.cancel_button.hide()
        counts = summary.counts
        total = {k: sum(v) for k, v in counts.items()}
        self.status.setText(
            f"{len(summary.classes)} classes · {total.get('train', 0):,} training "
            f"and {total.get('val', 0):,} validation images"
        )
        self._fill_table(summary)
        self._draw_chart(summary)
        self._show_warnings()
        if summary.classes and not self.table.selectedItems():
            self.table.selectRow(0)
        self._show_samples()
        self._needs.submit(_data_needs, self.settings)
        self.summary_ready.emit(summary)

    def _fill_table(self, summary) -> None:
        """One row per class: its display name (editable; the folder name in its tooltip), its
        training and validation images."""
        counts = summary.counts
        self.table.blockSignals(True)  # filling is not renaming
        self.table.setRowCount(len(summary.classes))
        shown = display_names(summary.classes, self.settings)
        for row, folder in enumerate(summary.classes):
            name = QTableWidgetItem(shown[row])
            name.setToolTip(f"folder {folder} · double-click to rename the class")
            name.setData(Qt.ItemDataRole.UserRole, folder)
            self.table.setItem(row, 0, name)
            for column, count in (
                (1, counts["train"][row]),
                (2, counts.get("val", [0] * 999)[row]),
            ):
                item = QTableWidgetItem(str(count))
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        self.table.blockSignals(False)

    # Class names

    def rename_class(self, folder: str, name: str) -> bool:
        """Show class ``folder`` as ``name`` (one undoable edit); False, with the reason shown,
        when the name is empty or taken."""
        if self.summary is None:
            return False
        try:
            data = rename_class(self.settings, self.summary.classes, folder, name)
        except ProjectError as error:
            self.status.setText(f"Class {folder}: {error.message}")
            self._fill_table(self.summary)
            return False
        if data.class_names != self.settings.class_names:
            self.document.push(RenameClassCommand(self.document, data, folder))
        return True

    def _on_class_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == 0:
            self.rename_class(item.data(Qt.ItemDataRole.UserRole), item.text())

    def refresh_theme(self) -> None:
        """Draw the class chart again in the colours of the theme just chosen."""
        if self.summary is not None:
            self._draw_chart(self.summary)

    def _on_class_names_changed(self) -> None:
        if self.summary is not None:
            self._fill_table(self.summary)
            self._draw_chart(self.summary)

    # The model follows the data

    def _on_needs_ready(self, _number: int, needs) -> None:
        self._show_fit(needs)

    def _show_fit(self, needs) -> None:
        """Show the banner when the model differs from the data in classes, channels or size."""
        self.needs = needs
        spec = self.document.spec
        found = misfits(spec, needs) if needs is not None else []
        change = adaptation(spec, fitted(spec, needs)) if found else ""
        self.fit_banner.setVisible(bool(found))
        if not found:
            return
        said = "; ".join(m.message for m in found)
        action = (
            f"Adapt model sets {change}; Undo takes it back."
            if change
            else "The model cannot take the data's image size; it stays as it is."
        )
        self.fit_label.setText(
            f"<b>The model does not fit this data.</b> {said[0].upper()}{said[1:]}. {action}"
        )
        self.adapt_button.setEnabled(bool(change))

    def adapt_model(self) -> bool:
        """Make the model follow the data (one undoable edit); False when nothing changes."""
        if self.needs is None:
            return False
        spec = self.document.spec
        after = fitted(spec, self.needs)
        change = adaptation(spec, after)
        if not change:
            return False
        self.document.push(AdaptModelCommand(self.document, after, change))
        return True

    def _on_adapt_clicked(self) -> None:
        self.adapt_model()

    def _show_warnings(self) -> None:
        """The summary's warnings, those of the augmentation at the model's input size, and the
        files skipped."""
        if self.summary is None or self.dataset is None:
            return
        _, height, width = self.dataset.input_shape
        notes = list(self.summary.warnings)
        notes += augment_warnings(self.settings.augment, height, width)
        notes += [f"skipped {Path(s.path).name}: {s.reason}" for s in self.summary.skipped[:20]]
        self.warnings.setText("\n".join(notes))

    def _draw_chart(self, summary) -> None:
        """One horizontal bar per class: its images in all splits."""
        c = colours()
        self.chart.setBackground(c.base)
        self.chart.clear()
        totals = [
            sum(split[i] for split in summary.counts.values()) for i in range(len(summary.classes))
        ]
        self.bars = pg.BarGraphItem(
            x0=0,
            y=list(range(len(totals))),
            height=0.7,
            width=totals,
            brush=c.accent,
            pen=pg.mkPen(None),
        )
        self.chart.addItem(self.bars)
        axis = self.chart.getAxis("left")
        axis.setStyle(hideOverlappingLabels=False)
        shown = display_names(summary.classes, self.settings)
        widest = max((self.fontMetrics().horizontalAdvance(n) for n in shown), default=40)
        axis.setWidth(min(widest + 16, 220))
        axis.setTicks([[(i, name) for i, name in enumerate(shown)]])
        for name in ("left", "bottom"):
            # the line pen first: pyqtgraph's setPen colours the axis caption too
            self.chart.getAxis(name).setPen(c.border)
            self.chart.getAxis(name).setTextPen(c.muted)
        self.chart.setMinimumHeight(max(140, 20 * len(totals) + 50))
        self.chart.getViewBox().invertY(True)
        self.chart.setYRange(-0.6, len(totals) - 0.4, padding=0)
        self.chart.setXRange(0, max(totals or [1]) * 1.05, padding=0)

    def _on_read_failed(self, _number: int, message: str) -> None:
        if self._choice is not None:  # the choice stands, as chosen: the message says what is wrong
            self._take_choice(self._choice, None)
            self._show_settings()
        self.progress.hide()
        self.cancel_button.hide()
        self.summary = self.dataset = None
        self._show_fit(None)
        self.table.setRowCount(0)
        self.status.setText("")
        self.warnings.setText(message)
        for label in self.sample_labels:
            label.clear()
        self.load_failed.emit(message)

    def _on_cancel_clicked(self) -> None:
        self._reads.stop()

    def _on_reroll_clicked(self) -> None:
        self._seed += 1
        self._show_samples()

    def _show_samples(self) -> None:
        """Augment a few images of the selected class on the preview thread (torch work on the
        GUI thread makes a run started later train measurably slower)."""
        if self.dataset is None:
            return
        rows = self.table.selectionModel().selectedRows()
        class_index = rows[0].row() if rows else 0
        self._previews.submit(
            _augmented_samples, self.dataset, class_index, self.settings.augment, self._seed
        )

    def _on_samples_ready(self, _number: int, result) -> None:
        class_index, images = result
        self.samples = (class_index, images)
        for label, image in zip(self.sample_labels, images, strict=False):
            scale = max(1, (SAMPLE_SIZE - 4) // max(image.shape[:2]))
            label.setPixmap(array_to_pixmap(image, scale))

    def _on_sample_double_clicked(self, index: int) -> None:
        if self.samples is None or self.dataset is None:
            return
        class_index, images = self.samples
        if index < len(images):
            name = display_names(self.dataset.classes, self.settings)[class_index]
            self.sample_activated.emit(images[index], f"a training image of {name} (augmented)")

    def _on_project_replaced(self) -> None:
        self._choice = None
        self.defaults = None
        self._show_settings()
        self.reload()

    def _on_spec_changed(self, spec) -> None:
        if self.dataset is not None and tuple(self.dataset.input_shape) != tuple(spec.input_shape):
            self.reload()
        elif self.needs is not None:
            self._show_fit(self.needs)

    def busy(self) -> bool:
        return self._reads.busy() or self._previews.busy() or self._needs.busy()

    def wait(self, msecs: int = 60000) -> bool:
        return self._reads.wait(msecs) and self._previews.wait(msecs) and self._needs.wait(msecs)

    def shutdown(self) -> None:
        self._reads.shutdown()
        self._previews.shutdown()
        self._needs.shutdown()
