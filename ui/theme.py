"""Light and dark looks: one palette of named colours per theme, applied to the whole application.

Widgets take their colours from ``colours()``, never from literals.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

THEMES = ("system", "light", "dark")


@dataclass(frozen=True)
class Colours:
    name: str
    window: str
    base: str
    alternate: str
    text: str
    muted: str
    accent: str
    accent_text: str
    border: str
    block: str
    block_border: str
    frozen: str
    error: str
    error_fill: str
    warning: str
    edge: str
    canvas: str
    grid: str


LIGHT = Colours(
    name="light", window="#f4f5f7", base="#ffffff", alternate="#f0f2f5", text="#1d2330",
    muted="#6b7385", accent="#3b6fd8", accent_text="#ffffff", border="#d5d9e0",
    block="#ffffff", block_border="#c4cad4", frozen="#e6e9ef", error="#c9302c",
    error_fill="#fdecea", warning="#b7791f", edge="#8a94a6", canvas="#eef0f4", grid="#e3e6ec",
)  # fmt: skip
DARK = Colours(
    name="dark", window="#1f2229", base="#262a33", alternate="#2c313b", text="#e3e6ec",
    muted="#9aa3b5", accent="#5b8def", accent_text="#ffffff", border="#3a404c",
    block="#2c313b", block_border="#465061", frozen="#23272e", error="#f0605a",
    error_fill="#4a2628", warning="#e0a84a", edge="#7d879a", canvas="#1a1d23", grid="#23272f",
)  # fmt: skip

_current = LIGHT


def set_role(widget: QWidget, role: str | None) -> None:
    """Give ``widget`` the style sheet's ``role`` (error, muted, heading; None: plain) and apply
    the sheet again: a changed property does not restyle a widget by itself."""
    widget.setProperty("role", role)
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def colours() -> Colours:
    """The colours of the theme in use."""
    return _current


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", None)
    return scheme is not None and scheme() == Qt.ColorScheme.Dark


def resolve(theme: str) -> Colours:
    if theme == "dark" or (theme == "system" and system_is_dark()):
        return DARK
    return LIGHT


def apply_theme(app: QApplication, theme: str = "system") -> Colours:
    """Set the application's palette and style sheet for ``theme`` ('system', 'light', 'dark')."""
    global _current
    _current = c = resolve(theme)
    app.setStyle("Fusion")
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: c.window,
        QPalette.ColorRole.WindowText: c.text,
        QPalette.ColorRole.Base: c.base,
        QPalette.ColorRole.AlternateBase: c.alternate,
        QPalette.ColorRole.Text: c.text,
        QPalette.ColorRole.Button: c.alternate,
        QPalette.ColorRole.ButtonText: c.text,
        QPalette.ColorRole.Highlight: c.accent,
        QPalette.ColorRole.HighlightedText: c.accent_text,
        QPalette.ColorRole.ToolTipBase: c.base,
        QPalette.ColorRole.ToolTipText: c.text,
        QPalette.ColorRole.PlaceholderText: c.muted,
        QPalette.ColorRole.Mid: c.border,
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(c.muted))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(c.muted))
    app.setPalette(palette)
    app.setStyleSheet(f"""
        QMainWindow::separator {{ background: {c.border}; width: 1px; height: 1px; }}
        QDockWidget {{ font-weight: 600; }}
        QDockWidget::title {{ padding: 6px 8px; background: {c.window}; }}
        QToolBar {{ border: none; spacing: 4px; padding: 4px; }}
        QStatusBar {{ border-top: 1px solid {c.border}; }}
        QStatusBar QLabel {{ color: {c.muted}; padding: 0 8px; }}
        QLineEdit {{
            padding: 3px 6px; border: 1px solid {c.border}; border-radius: 4px;
            background: {c.base};
        }}
        QLineEdit:focus {{ border-color: {c.accent}; }}
        QTreeWidget, QListWidget, QTableWidget {{ border: none; background: {c.base}; }}
        QLabel[role="heading"] {{ font-weight: 600; font-size: 11pt; }}
        QLabel[role="muted"] {{ color: {c.muted}; }}
        QLabel[role="error"] {{ color: {c.error}; }}
        QFrame[role="banner"] {{
            background: {c.alternate}; border: 1px solid {c.warning}; border-radius: 4px;
        }}
    """)  # fmt: skip
    return c
