"""A picture drawn as large as its box allows, keeping its aspect, with its title above it and an
optional heat map over it.

Small inputs (8×8, 32×32) grow with nearest-neighbour sampling, so each pixel stays a sharp
square instead of a blur; pictures larger than the box shrink smoothly.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.theme import colours

GAP = 4  # px between the title and the picture


def rgb_image(pixels: np.ndarray) -> QImage:
    """An H×W (grey) or H×W×3 uint8 array as a QImage that owns its bytes."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    if pixels.ndim == 2:
        return QImage(pixels.data, width, height, width, QImage.Format.Format_Grayscale8).copy()
    return QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def fitted(size: QSize, box: QRect) -> QRect:
    """The largest rectangle of ``size``'s aspect inside ``box``, centred."""
    if size.isEmpty() or box.isEmpty():
        return QRect()
    scale = min(box.width() / size.width(), box.height() / size.height())
    width, height = round(size.width() * scale), round(size.height() * scale)
    left = box.left() + (box.width() - width) // 2
    top = box.top() + (box.height() - height) // 2
    return QRect(left, top, width, height)


class PictureView(QWidget):
    """A titled picture that fills its box; ``set_heat`` lays a coloured map over it."""

    def __init__(self, title: str, empty_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title = title
        self._empty_text = empty_text
        self._picture: QImage | None = None
        self._heat: QImage | None = None
        self._opacity = 0.5
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(80, 80)

    # Public

    def set_title(self, text: str) -> None:
        self._title = text
        self.setToolTip(text)  # the full text when the drawn one is elided
        self.update()

    def title(self) -> str:
        return self._title

    def set_picture(self, pixels: np.ndarray | None) -> None:
        """Show an H×W or H×W×3 uint8 picture (None: the empty state)."""
        self._picture = None if pixels is None else rgb_image(pixels)
        self.update()

    def set_heat(self, rgb: np.ndarray | None) -> None:
        """Lay an H×W×3 uint8 heat map over the picture, stretched to it (None: no heat map)."""
        self._heat = None if rgb is None else rgb_image(rgb)
        self.update()

    def heat(self) -> QImage | None:
        return self._heat

    def set_opacity(self, value: float) -> None:
        self._opacity = min(max(value, 0.0), 1.0)
        self.update()

    def opacity(self) -> float:
        return self._opacity

    def title_rect(self) -> QRect:
        return QRect(0, 0, self.width(), self.fontMetrics().height())

    def picture_rect(self) -> QRect:
        """Where the picture is drawn, in this widget's coordinates (empty before one is set)."""
        if self._picture is None:
            return QRect()
        return fitted(self._picture.size(), self._box())

    def sizeHint(self) -> QSize:
        return QSize(260, 260)  # the dock's height decides; ask for room beside the layers

    # Drawing

    def _box(self) -> QRect:
        top = self.title_rect().bottom() + 1 + GAP
        return QRect(0, top, self.width(), max(0, self.height() - top))

    def paintEvent(self, _event: QPaintEvent) -> None:
        c = colours()
        painter = QPainter(self)
        painter.setPen(QColor(c.muted))
        title = self.fontMetrics().elidedText(
            self._title, Qt.TextElideMode.ElideRight, self.width()
        )
        painter.drawText(self.title_rect(), Qt.AlignmentFlag.AlignCenter, title)
        box = self._box()
        painter.fillRect(box, QColor(c.base))
        target = self.picture_rect()
        if self._picture is None:
            painter.setPen(QPen(QColor(c.border), 1, Qt.PenStyle.DashLine))
            painter.drawRect(box.adjusted(0, 0, -1, -1))
            painter.setPen(QColor(c.muted))
            flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
            painter.drawText(box.adjusted(8, 8, -8, -8), flags, self._empty_text)
            return
        # nearest neighbour when growing (sharp pixels), smooth when shrinking
        shrink = target.width() < self._picture.width()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, shrink)
        painter.drawImage(target, self._picture)
        if self._heat is not None and self._opacity > 0:
            painter.setOpacity(self._opacity)
            painter.drawImage(target, self._heat)
