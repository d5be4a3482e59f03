"""A panel that scrolls up and down only: the dock it sits in can never be narrower than the panel
needs, so a focused field is never scrolled sideways out of view (the training form's labels were
cut to "armup epochs" once a field took the focus), and wheel turns over a chart inside scroll the
panel instead of stopping at the chart."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QScrollArea, QWidget


class VerticalScroll(QScrollArea):
    """``widget`` at the scroll area's width, scrolled vertically when it is taller."""

    def __init__(self, widget: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidget(widget)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustIgnored)

    def minimumSizeHint(self) -> QSize:
        """As wide as the panel's least width and its scroll bar; any height."""
        inner = self.widget().minimumSizeHint() if self.widget() else QSize(0, 0)
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(inner.width() + bar + 2 * self.frameWidth(), 60)

    def scroll_wheel_over(self, widget: QWidget) -> None:
        """Wheel turns over ``widget`` (a chart that does not zoom) scroll this panel."""
        target = widget.viewport() if isinstance(widget, QAbstractScrollArea) else widget
        target.installEventFilter(_WheelToPanel(self, widget))


class _WheelToPanel(QObject):
    def __init__(self, panel: VerticalScroll, parent: QWidget) -> None:
        super().__init__(parent)
        self.panel = panel

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel:
            bar = self.panel.verticalScrollBar()
            steps = event.angleDelta().y() / 120
            bar.setValue(bar.value() - round(steps * bar.singleStep() * 3))
            return True
        return False
