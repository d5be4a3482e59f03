"""Icons: SVG files in resources/icons, loaded by name and drawn in the theme's text colour."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from ui.theme import colours

ICON_DIR = Path(__file__).resolve().parents[1] / "resources" / "icons"

GROUP_ICONS = {
    "Convolution": "convolution",
    "Pooling": "pooling",
    "Normalization": "normalization",
    "Activation": "activation",
    "Regularization": "regularization",
    "Linear": "linear",
    "Merge": "merge",
    "Backbones": "backbones",
}


def icon(name: str, colour: str | None = None) -> QIcon:
    """The icon ``name`` (a file resources/icons/<name>.svg) in ``colour`` (default: text)."""
    return _icon(name, colour or colours().text)


@cache
def _icon(name: str, colour: str) -> QIcon:
    svg = (ICON_DIR / f"{name}.svg").read_text().replace("#COLOR#", colour)
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    result = QIcon()
    for size in (16, 20, 24, 32, 48):
        pixmap = QPixmap(QSize(size, size) * 2)
        pixmap.setDevicePixelRatio(2)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        result.addPixmap(pixmap)
    return result


def clear_cache() -> None:
    """Forget drawn icons (after a theme change)."""
    _icon.cache_clear()
