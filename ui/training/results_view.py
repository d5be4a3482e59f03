"""A run's results: the confusion matrix as a heat map with counts, the per-class precision /
recall / F1 table, and a gallery of the images behind a clicked cell (most confident mistakes
first), each openable in the Inspect view. Above them, ``evaluate_bar``: evaluate the selected
run now, on its validation split or a labelled folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.metrics import Evaluation, Mistake
from cnnstudio.progress import TaskState
from ui.background import Jobs
from ui.theme import colours
from ui.training.evaluate_bar import EvaluateBar

THUMB = 72
GALLERY_LIMIT = 60

ImageSource = Callable[[list[int]], np.ndarray]  # dataset indices -> N×H×W×C uint8


CAPTION = "Rows: true class · columns: predicted"
MATRIX_CELL = 26  # a numbered column: three digits and the margins
GALLERY_MIN = THUMB + 24


def array_to_pixmap(image: np.ndarray) -> QPixmap:
    """An H×W×C uint8 array (C = 1 or 3) as a QPixmap."""
    image = np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = np.ascontiguousarray(image[:, :, 0])
    height, width = image.shape[:2]
    if image.ndim == 2:
        qimage = QImage(image.data, width, height, width, QImage.Format.Format_Grayscale8)
    else:
        qimage = QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimage.copy())


def _blend(a: str, b: str, t: float) -> QColor:
    ca, cb = QColor(a), QColor(b)
    return QColor(
        round(ca.red() + (cb.red() - ca.red()) * t),
        round(ca.green() + (cb.green() - ca.green()) * t),
        round(ca.blue() + (cb.blue() - ca.blue()) * t),
    )


def _load_images(_state: TaskState, source: ImageSource, mistakes: list[Mistake]) -> tuple:
    return mistakes, source([m.index for m in mistakes])


def _name(mistake: Mistake) -> str:
    """How a gallery image is named: its file, else its place in the validation split."""
    return Path(mistake.path).name if mistake.path else f"validation image {mistake.index}"


def _header(text: str, tip: str) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setToolTip(tip)
    return item


class _NumberItem(QTableWidgetItem):
    """A table cell showing ``value`` to three decimals that sorts by the value itself."""

    def __init__(self, value: float) -> None:
        super().__init__(f"{value:.3f}")
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, _NumberItem):
            return self.value < other.value
        return super().__lt__(other)


PER_CLASS_TIPS = (
    "precision: of the images predicted as the class, the share that are",
    "recall: of the class's images, the share predicted as it",
    "F1: the harmonic mean of precision and recall",
    "support: the class's images in this evaluation",
)


class ResultsView(QWidget):
    """Shows one Evaluation; ``image_source`` turns dataset indices into images for the gallery."""

    inspect_requested = Signal(object, str)  # H×W×C uint8 image, a label

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.evaluation: Evaluation | None = None
        self.image_source: ImageSource | None = None
        self.cell: tuple[int, int] | None = None
        self.shown: list[Mistake] = []
        self._images: np.ndarray | None = None
        self._jobs = Jobs(self, newest_wins=True)
        self._panes_sized = False  # the splitter fitted to the per-class table once
        self._build_ui()
        self._connect()
        self.set_evaluation(None)

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        self.evaluate_bar = EvaluateBar(self)
        layout.addWidget(self.evaluate_bar)
        self.title = QLabel(self)
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        left = QWidget(splitter)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        caption = self.caption = QLabel(CAPTION, left)
        caption.setToolTip("The confusion matrix: rows are the true class, columns the prediction")
        caption.setProperty("role", "muted")
        caption.setWordWrap(True)  # not the width the pane must keep
        left_layout.addWidget(caption)
        self.confusion = QTableWidget(0, 0, left)
        self.confusion.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.confusion.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.horizontalHeader().setMinimumSectionSize(22)  # ten classes in a narrow pane
        # narrow columns: "triang…" with the whole name as a tooltip, not a name cut at both ends
        self.confusion.horizontalHeader().setTextElideMode(Qt.TextElideMode.ElideRight)
        self.confusion.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.setToolTip("Click a cell to see those images")
        left_layout.addWidget(self.confusion, 1)
        middle = self.per_class_pane = QWidget(splitter)
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 0, 0, 0)
        self.per_class = QTableWidget(0, 5, middle)
        self.per_class.setHorizontalHeaderLabels(["class", "prec.", "recall", "F1", "images"])
        for column, tip in enumerate(PER_CLASS_TIPS, start=1):
            self.per_class.horizontalHeaderItem(column).setToolTip(tip)
        self.per_class.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.per_class.verticalHeader().setVisible(False)
        self.per_class.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.per_class.horizontalHeader().setStretchLastSection(False)  # as wide as its columns
        middle_layout.addWidget(self.per_class, 1)
        right = QWidget(splitter)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.gallery_title = QLabel(right)
        self.gallery_title.setWordWrap(True)
        right_layout.addWidget(self.gallery_title)
        self.gallery = QListWidget(right)
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMB, THUMB))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.setSpacing(4)
        self.gallery.setToolTip("Double-click an image to open it in the Inspect view")
        right_layout.addWidget(self.gallery, 1)
        splitter.splitterMoved.connect(lambda _pos, _index: self._label_classes())
        splitter.setSizes([370, 340, 270])
        for pane, stretch in enumerate((3, 0, 1)):  # room goes to the matrix and the images
            splitter.setStretchFactor(pane, stretch)
        row = QHBoxLayout()
        row.addWidget(splitter)
        layout.addLayout(row, 1)

    def _connect(self) -> None:
        self.confusion.cellClicked.connect(self._on_cell_clicked)
        self.gallery.itemDoubleClicked.connect(self._on_gallery_double_clicked)
        self._jobs.finished.connect(self._on_images_loaded)
        self._jobs.failed.connect(self._on_images_failed)
        self.evaluate_bar.evaluated.connect(self.set_evaluation)

    def set_evaluation(self, evaluation: Evaluation | None, title: str = "",
                       image_source: ImageSource | None = None) -> None:  # fmt: skip
        """Show ``evaluation`` (None: explain that there is nothing yet)."""
        self.evaluation = evaluation
        self.image_source = image_source
        self.cell = None
        self.gallery.clear()
        self.shown = []
        if evaluation is None:
            self.title.setText(title or "Select a run to see its results, or to evaluate it.")
            self.confusion.setRowCount(0)
            self.confusion.setColumnCount(0)
            self.per_class.setRowCount(0)
            self.gallery_title.setText("")
            return
        checkpoint = f" ({evaluation.checkpoint})" if evaluation.checkpoint else ""
        self.title.setText(
            f"{title}{checkpoint}{' · ' if title else ''}accuracy {evaluation.accuracy:.2%} · "
            f"loss {evaluation.loss:.4f} on {int(evaluation.confusion.sum())} images of the "
            f"{evaluation.data or 'validation split'}"
        )
        self._fill_confusion(evaluation)
        self._fill_per_class(evaluation)
        self.gallery_title.setText(
            "Click a cell of the matrix to see its images."
            if image_source is not None
            else "The images are not available: the run used other data than the project now."
        )

    def _fill_confusion(self, evaluation: Evaluation) -> None:
        c = colours()
        matrix = evaluation.confusion
        n = len(evaluation.classes)
        self.confusion.setRowCount(n)
        self.confusion.setColumnCount(n)
        for index, name in enumerate(evaluation.classes):
            self.confusion.setHorizontalHeaderItem(index, _header(name, f"predicted {name}"))
            self.confusion.setVerticalHeaderItem(index, _header(name, f"true {name}"))
        self._label_classes()
        totals = matrix.sum(axis=1)
        for i in range(n):
            for j in range(n):
                count = int(matrix[i, j])
                share = count / totals[i] if totals[i] else 0.0
                item = QTableWidgetItem(str(count))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                colour = c.accent if i == j else c.error
                item.setBackground(_blend(c.base, colour, min(1.0, share) * 0.9))
                item.setForeground(QColor(c.accent_text if share > 0.55 else c.text))
                item.setToolTip(
                    f"true {evaluation.classes[i]}, predicted {evaluation.classes[j]}: "
                    f"{count} ({share:.1%} of {evaluation.classes[i]})"
                )
                self.confusion.setItem(i, j, item)

    def _fill_per_class(self, evaluation: Evaluation) -> None:
        self.per_class.setSortingEnabled(False)
        self.per_class.setRowCount(len(evaluation.per_class))
        for row, m in enumerate(evaluation.per_class):
            self.per_class.setItem(row, 0, QTableWidgetItem(m.name))
            for column, value in enumerate((m.precision, m.recall, m.f1), start=1):
                self.per_class.setItem(row, column, _NumberItem(value))
            support = QTableWidgetItem()
            support.setData(Qt.ItemDataRole.DisplayRole, m.support)
            support.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.per_class.setItem(row, 4, support)
        # sortable by clicking a header; shown in the classes' own order until then
        self.per_class.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.per_class.setSortingEnabled(True)
        self._keep_per_class_whole()

    def _keep_per_class_whole(self) -> None:
        """The splitter may not squeeze the per-class table below its columns ("support" was cut
        off at 1280 wide): its pane is at least as wide as they are, a long class name cut with …
        (the whole name in its tooltip)."""
        table, header = self.per_class, self.per_class.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        table.resizeColumnToContents(0)
        header.resizeSection(0, min(header.sectionSize(0), 160))
        for row in range(table.rowCount()):
            item = table.item(row, 0)
            if item is not None:
                item.setToolTip(item.text())
        others = sum(
            max(table.sizeHintForColumn(c), header.sectionSizeHint(c))
            for c in range(1, table.columnCount())
        )
        scroll = table.verticalScrollBar().sizeHint().width()
        needed = header.sectionSize(0) + others + scroll + 2 * table.frameWidth()
        self.per_class_pane.setMinimumWidth(needed)
        splitter = self.per_class_pane.parentWidget()
        sizes = splitter.sizes()
        if not self._panes_sized and sum(sizes) > needed:  # once: later, the user's sizes stay
            self._panes_sized = True
            rest = sum(sizes) - needed
            # the whole matrix first (its columns numbered), the gallery what is left, not less
            # than a thumbnail's width
            matrix = max(round(rest * 0.6), min(self._matrix_width(), rest - GALLERY_MIN))
            splitter.setSizes([matrix, needed, rest - matrix])

    def _matrix_width(self) -> int:
        """The width the confusion matrix needs with numbered columns of MATRIX_CELL pixels."""
        n = len(self.evaluation.classes) if self.evaluation is not None else 0
        table = self.confusion
        labels = [f"{i} {name}" for i, name in enumerate(self.evaluation.classes)] if n else []
        metrics = table.verticalHeader().fontMetrics()
        header = max((metrics.horizontalAdvance(text) for text in labels), default=0) + 16
        scroll = table.verticalScrollBar().sizeHint().width()
        return header + n * MATRIX_CELL + scroll + 2 * table.frameWidth()

    def _label_classes(self) -> None:
        """Class names on the matrix's columns where they fit; where they do not (ten classes in a
        narrow pane showed "c…", "r…"), the columns are numbered and each row names its number:
        "3 frame" on the row, "3" on the column."""
        evaluation = self.evaluation
        if evaluation is None or not evaluation.classes:
            return
        header = self.confusion.horizontalHeader()
        metrics = header.fontMetrics()
        widest = max(metrics.horizontalAdvance(name) for name in evaluation.classes)
        column = self.confusion.viewport().width() / len(evaluation.classes)
        numbered = widest + 12 > column
        self.caption.setText(f"{CAPTION} (numbered as the rows)" if numbered else CAPTION)
        for index, name in enumerate(evaluation.classes):
            self.confusion.horizontalHeaderItem(index).setText(str(index) if numbered else name)
            self.confusion.verticalHeaderItem(index).setText(
                f"{index} {name}" if numbered else name
            )

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.evaluation is not None and not self._panes_sized:  # filled while hidden
            self._keep_per_class_whole()
        self._label_classes()

    def refresh_theme(self) -> None:
        """Recolour the heat map in the current theme."""
        if self.evaluation is not None:
            self._fill_confusion(self.evaluation)

    # The gallery

    def show_cell(self, true: int, predicted: int) -> None:
        """Show the images of one cell: the mistakes, most confident first."""
        evaluation = self.evaluation
        if evaluation is None:
            return
        self.cell = (true, predicted)
        self.gallery.clear()
        names = evaluation.classes
        count = int(evaluation.confusion[true, predicted])
        if true == predicted:
            self.shown = []
            self.gallery_title.setText(
                f"{count} {names[true]} images classified correctly. "
                "Click a cell off the diagonal to see mistakes."
            )
            return
        self.shown = [m for m in evaluation.mistakes if (m.true, m.predicted) == (true, predicted)]
        self.shown = self.shown[:GALLERY_LIMIT]
        head = f"{names[true]} taken for {names[predicted]}: {count} images"
        if len(self.shown) < count:
            head += f" (the {len(self.shown)} most confident shown)"
        self.gallery_title.setText(head + ". Double-click one to inspect it.")
        if self.image_source is None or not self.shown:
            return
        self._jobs.submit(_load_images, self.image_source, list(self.shown))

    def _on_cell_clicked(self, row: int, column: int) -> None:
        self.show_cell(row, column)

    def _on_images_loaded(self, _number: int, result) -> None:
        mistakes, images = result
        self._images = images
        names = self.evaluation.classes if self.evaluation else []
        for mistake, image in zip(mistakes, images, strict=True):
            pixmap = array_to_pixmap(image).scaled(
                THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )  # fmt: skip
            item = QListWidgetItem(QIcon(pixmap), f"{mistake.confidence:.0%}")
            item.setToolTip(
                f"{_name(mistake)}: true {names[mistake.true]}, predicted "
                f"{names[mistake.predicted]} with {mistake.confidence:.1%} confidence "
                f"(loss {mistake.loss:.3f})"
            )
            self.gallery.addItem(item)

    def _on_images_failed(self, _number: int, message: str) -> None:
        self.gallery_title.setText(f"Cannot show the images: {message}")

    def _on_gallery_double_clicked(self, item: QListWidgetItem) -> None:
        row = self.gallery.row(item)
        if self._images is None or row >= len(self.shown):
            return
        mistake = self.shown[row]
        names = self.evaluation.classes if self.evaluation else []
        label = f"{_name(mistake)} (true {names[mistake.true]})"
        self.inspect_requested.emit(self._images[row], label)

    def busy(self) -> bool:
        return self._jobs.busy() or self.evaluate_bar.busy()

    def shutdown(self) -> None:
        self.evaluate_bar.shutdown()
        self._jobs.shutdown()
