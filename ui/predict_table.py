"""The Predict view's table: a model over ``cnnstudio.predict.Predictions`` (one row per image:
its thumbnail and file name, predicted class, confidence, folder; the top k in a tooltip) and the
proxy that sorts it by any column and keeps the rows of one class or below a confidence."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QImage, QPixmap

from cnnstudio.predict import ImagePrediction, Predictions

COLUMNS = ("Image", "Class", "Confidence", "Folder")
SORT_ROLE = Qt.ItemDataRole.UserRole
RESULT_ROLE = Qt.ItemDataRole.UserRole + 1
_Index = QModelIndex | QPersistentModelIndex


class PredictionTableModel(QAbstractTableModel):
    """The rows of one ``Predictions``; thumbnails become pixmaps when first shown."""

    def __init__(self, thumbnail_size: int, parent=None) -> None:
        super().__init__(parent)
        self.thumbnail_size = thumbnail_size
        self.predictions: Predictions | None = None
        self._rows: tuple[ImagePrediction, ...] = ()
        self._pixmaps: dict[int, QPixmap] = {}

    def set_predictions(self, predictions: Predictions | None) -> None:
        self.beginResetModel()
        self.predictions = predictions
        self._rows = predictions.results if predictions is not None else ()
        self._pixmaps.clear()
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        result, column = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (result.path.name, result.predicted, f"{100 * result.confidence:.1f}%",
                    str(result.path.parent))[column]  # fmt: skip
        if role == SORT_ROLE:
            return (result.path.name.lower(), result.predicted, result.confidence,
                    str(result.path.parent))[column]  # fmt: skip
        if role == Qt.ItemDataRole.DecorationRole and column == 0:
            return self._pixmap(index.row())
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(result)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == RESULT_ROLE:
            return result
        return None

    def _pixmap(self, row: int) -> QPixmap | None:
        if row not in self._pixmaps:
            picture = self._rows[row].thumbnail
            if picture is None:
                return None
            height, width = picture.shape[:2]
            image = QImage(picture.data, width, height, 3 * width, QImage.Format.Format_RGB888)
            self._pixmaps[row] = QPixmap.fromImage(image).scaled(
                self.thumbnail_size,
                self.thumbnail_size,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )  # a small model's input is enlarged to the row's height
        return self._pixmaps[row]


def _tooltip(result: ImagePrediction) -> str:
    lines = [f"{p.name}: {100 * p.probability:.1f}%" for p in result.top]
    return f"{result.path}\n\ntop {len(lines)}:\n" + "\n".join(lines)


class PredictionFilter(QSortFilterProxyModel):
    """Sorts by the source's SORT_ROLE; keeps the rows of ``class_name`` (None: every class)
    whose confidence is below ``below`` (1.0 or more: any confidence)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.class_name: str | None = None
        self.below = 1.01
        self.setSortRole(SORT_ROLE)

    def set_filter(self, class_name: str | None, below: float) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.10 and later; invalidateRowsFilter before
            self.beginFilterChange()
            self.class_name, self.below = class_name, below
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.class_name, self.below = class_name, below
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        model = self.sourceModel()
        result = model.data(model.index(source_row, 0, source_parent), RESULT_ROLE)
        if self.class_name is not None and result.predicted != self.class_name:
            return False
        return self.below > 1.0 or result.confidence < self.below

    def shown(self) -> list[ImagePrediction]:
        """The rows shown, in the order shown."""
        return [self.data(self.index(row, 0), RESULT_ROLE) for row in range(self.rowCount())]
