"""Finding one's way in a large graph: the zooms (readable fit, whole graph, limits) and the
overview, a small picture of the whole graph in the canvas's corner with the visible part framed;
a click or a drag in it moves the view there.

Qt-only and independent of what the canvas draws: it works on any QGraphicsView."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QGraphicsView, QWidget

from ui.theme import colours

READABLE_ZOOM = 0.6
"""The least zoom at which a block's text is comfortably read: Fit goes no lower."""
MAX_ZOOM = 3.0
MIN_ZOOM = 0.25
"""The zoom limits; a graph that needs less to be seen whole may go down to its whole-graph zoom."""
OVERVIEW_MAX = (180, 440)
"""The overview's largest width and height, in pixels (and never taller than the view leaves)."""
OVERVIEW_MARGIN = 12


def graph_rect(view: QGraphicsView) -> QRectF:
    """The scene's own rectangle: the graph and its margins. The view may scroll further (room
    to the right for the overview to sit beside the graph's edge, not over it)."""
    scene = view.scene()
    return scene.sceneRect() if scene is not None else view.sceneRect()


def whole_zoom(view: QGraphicsView) -> float:
    """The zoom at which the whole scene fits the viewport."""
    rect, port = graph_rect(view), view.viewport().rect()
    if rect.isEmpty() or port.isEmpty():
        return 1.0
    return min(port.width() / rect.width(), port.height() / rect.height())


def zoom_limits(view: QGraphicsView) -> tuple[float, float]:
    """The least and largest zoom: the least allows the whole graph to be seen."""
    return min(MIN_ZOOM, whole_zoom(view)), MAX_ZOOM


def set_zoom(view: QGraphicsView, zoom: float) -> float:
    """Set ``view``'s scale to ``zoom`` (clamped to the limits) and return it."""
    low, high = zoom_limits(view)
    zoom = max(low, min(high, zoom))
    current = view.transform().m11()
    view.scale(zoom / current, zoom / current)
    return zoom


def readable_fit_zoom(view: QGraphicsView) -> float:
    """The zoom Fit gives: the whole graph when its text can be read there (at most 1:1, a small
    graph is not blown up), else its width, but never below READABLE_ZOOM."""
    rect, port = graph_rect(view), view.viewport().rect()
    whole = whole_zoom(view)
    if whole >= READABLE_ZOOM:
        return min(whole, 1.0)
    width = port.width() / rect.width() if rect.width() else 1.0
    return max(READABLE_ZOOM, min(width, 1.0))


def show_at_top(view: QGraphicsView, x: float, top: float) -> None:
    """Scroll so that scene x ``x`` is in the middle of the viewport and ``top`` at its top."""
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    view.centerOn(QPointF(x, top + visible.height() / 2))


class OverviewPanel(QWidget):
    """The whole scene drawn small in the top-right corner of ``view``, with the visible part
    framed. Shown only when enabled and the scene does not fit the view. The picture is drawn
    once per ``refresh`` (after the scene is rebuilt), so panning repaints only the frame."""

    def __init__(self, view: QGraphicsView) -> None:
        super().__init__(view)
        self.view = view
        self.enabled = True
        self._picture = QImage()
        self._scale = 1.0
        self._reserving = False
        self._redraw = QTimer(self, singleShot=True, interval=0)
        self._redraw.timeout.connect(self.refresh)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview of the whole graph: click or drag to move the view")
        self.hide()
        self._connect()

    def _connect(self) -> None:
        view = self.view
        view.horizontalScrollBar().valueChanged.connect(self._on_view_moved)
        view.verticalScrollBar().valueChanged.connect(self._on_view_moved)
        view.horizontalScrollBar().rangeChanged.connect(self._on_view_moved)
        view.verticalScrollBar().rangeChanged.connect(self._on_view_moved)
        view.viewport().installEventFilter(self)

    def set_enabled(self, enabled: bool) -> None:
        """Whether the overview may be shown at all (the View menu's toggle)."""
        self.enabled = enabled
        self._update_visibility()

    def schedule_refresh(self) -> None:
        """Draw the picture again on the next turn of the event loop: a burst of changes (an edit,
        then its analysis; a window being resized) draws it once."""
        self._redraw.start()

    def refresh(self) -> None:
        """Draw the scene's picture again, sized to the view (call after the scene changed)."""
        rect = graph_rect(self.view)
        if rect.isEmpty():
            self._picture = QImage()
            self._update_visibility()
            return
        high_w, high_h = OVERVIEW_MAX
        high_h = max(40, min(high_h, self.view.viewport().height() - 2 * OVERVIEW_MARGIN))
        self._scale = min(high_w / rect.width(), high_h / rect.height())
        size = (
            max(8, round(rect.width() * self._scale)),
            max(8, round(rect.height() * self._scale)),
        )
        self._picture = QImage(*size, QImage.Format.Format_ARGB32_Premultiplied)
        self._picture.fill(QColor(colours().canvas))
        painter = QPainter(self._picture)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.view.scene().render(painter, QRectF(self._picture.rect()), rect)
        painter.end()
        self.setFixedSize(size[0] + 2, size[1] + 2)
        self._update_visibility()

    def graph_fits(self) -> bool:
        """Whether the whole scene is visible in the view as it is zoomed now."""
        visible = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        return visible.adjusted(-1, -1, 1, 1).contains(graph_rect(self.view))

    def visible_rect(self) -> QRectF:
        """The part of the scene the view shows, in the overview's pixels."""
        visible = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        visible = visible.intersected(graph_rect(self.view))
        origin = graph_rect(self.view).topLeft()
        return QRectF(
            1 + (visible.left() - origin.x()) * self._scale,
            1 + (visible.top() - origin.y()) * self._scale,
            visible.width() * self._scale,
            visible.height() * self._scale,
        )

    def scene_point(self, pos: QPointF) -> QPointF:
        """The scene point under the overview's pixel ``pos``."""
        origin = graph_rect(self.view).topLeft()
        return QPointF(
            origin.x() + (pos.x() - 1) / self._scale, origin.y() + (pos.y() - 1) / self._scale
        )

    def _update_visibility(self) -> None:
        show = self.enabled and not self._picture.isNull() and not self.graph_fits()
        if show:
            self._place()
        self.setVisible(show)
        if show:
            self.raise_()
            self.update()
        self.reserve(show)

    def reserve(self, shown: bool | None = None) -> None:
        """Let the view scroll past the graph's right edge by the overview's width (at the zoom
        of the moment) while it is shown, so that the rightmost blocks can be brought out from
        under it; the graph's own rectangle otherwise. Call after the scene's rectangle changed."""
        if self._reserving:  # the scroll bars it changes report back here
            return
        rect = graph_rect(self.view)
        shown = self.isVisible() if shown is None else shown
        if shown:
            zoom = self.view.transform().m11() or 1.0
            rect = rect.adjusted(0, 0, (self.width() + 2 * OVERVIEW_MARGIN) / zoom, 0)
        if self.view.sceneRect() != rect:
            self._reserving = True
            try:
                self.view.setSceneRect(rect)
            finally:
                self._reserving = False

    def _place(self) -> None:
        port = self.view.viewport().geometry()
        self.move(port.right() - self.width() - OVERVIEW_MARGIN, port.top() + OVERVIEW_MARGIN)

    def _on_view_moved(self, *_args) -> None:
        self._update_visibility()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self._update_visibility()
            self.schedule_refresh()  # as tall as the view allows
        return False

    def paintEvent(self, event: QPaintEvent) -> None:
        c = colours()
        painter = QPainter(self)
        painter.setPen(QPen(QColor(c.block_border), 1))
        painter.setBrush(QColor(c.canvas))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        painter.drawImage(1, 1, self._picture)
        frame = QColor(c.accent)
        painter.setPen(QPen(frame, 1.5))
        frame.setAlpha(40)
        painter.setBrush(frame)
        painter.drawRect(self.visible_rect())
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.view.centerOn(self.scene_point(event.position()))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.view.centerOn(self.scene_point(event.position()))
        event.accept()
