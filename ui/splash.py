"""The splash shown while torch loads (about 1.5 s of the studio's start): the window itself
appears as soon as the engine is imported."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QSplashScreen

from ui.theme import colours

WIDTH, HEIGHT = 420, 180


def show_splash(app: QApplication) -> QSplashScreen:
    """A small card with the name and what is loading, drawn in the theme's colours."""
    c = colours()
    ratio = app.devicePixelRatio() if hasattr(app, "devicePixelRatio") else 1.0
    pixmap = QPixmap(int(WIDTH * ratio), int(HEIGHT * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(QColor(c.window))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QColor(c.border))
    painter.drawRect(QRectF(0.5, 0.5, WIDTH - 1, HEIGHT - 1))
    painter.fillRect(QRectF(0, 0, 8, HEIGHT), QColor(c.accent))
    title = QFont(app.font())
    title.setPointSizeF(title.pointSizeF() * 2.0)
    title.setBold(True)
    painter.setFont(title)
    painter.setPen(QColor(c.text))
    painter.drawText(QRectF(32, 40, WIDTH - 48, 48), Qt.AlignmentFlag.AlignLeft, "CNN Studio")
    painter.setFont(app.font())
    painter.setPen(QColor(c.muted))
    painter.drawText(
        QRectF(32, 92, WIDTH - 48, 60),
        Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap,
        "Design, train and understand convolutional networks.\nLoading PyTorch…",
    )
    painter.end()
    splash = QSplashScreen(pixmap)
    splash.show()
    app.processEvents()
    return splash
