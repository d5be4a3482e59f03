"""Wiring on the canvas: a wire dragged from a block's output port (or the input's) to another
block's input port, an edge's arrow end dragged to another block, edges selected and deleted.

The drag is plain mouse press / move / release on the view (no QDrag), so a test drives it with
qtbot's mouse events. The wire being dragged and the port it would land on are painted in the
view's foreground: they outlive the scene's rebuild when the analysis arrives mid-drag. Every
change is one undo command; a refused one (a cycle, a second input on a one-input layer) changes
nothing and says why in the status bar and a tooltip."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QToolTip

from cnnstudio.errors import WiringError
from cnnstudio.spec import INPUT
from ui.editor.commands import MoveWireCommand, UnwireCommand, WireCommand
from ui.editor.layout import INPUT_H, INPUT_TOP
from ui.theme import colours

PORT_HIT = 10.0
"""How near a port (in scene units) a press must be to take it."""
EDGE_HIT = 12.0
"""The width of an edge's invisible hit area: a 1.6 px line is too thin to click."""


class EdgeItem(QGraphicsPathItem):
    """One edge, ``source`` → ``target``: selectable, highlighted when selected, clickable on a
    band wider than the line it draws. It lies under the blocks, so a block keeps its clicks."""

    def __init__(self, source: str, target: str, path: QPainterPath, pen: QPen) -> None:
        super().__init__(path)
        self.source, self.target = source, target
        self.setPen(pen)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(-1)
        self._hit: QPainterPath | None = None  # made on the first hit test, not per rebuild
        half = EDGE_HIT / 2
        self._bounds = path.boundingRect().adjusted(-half, -half, half, half)

    @property
    def key(self) -> tuple[str, str]:
        return self.source, self.target

    def shape(self) -> QPainterPath:
        if self._hit is None:
            stroker = QPainterPathStroker()
            stroker.setWidth(EDGE_HIT)
            self._hit = stroker.createStroke(self.path())
        return self._hit

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if not self.isSelected():
            super().paint(painter, option, widget)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        glow = QColor(colours().accent)
        glow.setAlpha(70)
        painter.setPen(QPen(glow, 8.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawPath(self.path())
        painter.setPen(QPen(QColor(colours().accent), 2.6))
        painter.drawPath(self.path())


@dataclass
class WireDrag:
    """The wire being dragged: from ``source``'s output, to the pointer. ``moving`` is the target
    of the edge whose end is being moved (None for a new wire); ``target`` the block under the
    pointer and ``problem`` why it refuses the wire (None: it accepts)."""

    source: str
    moving: str | None
    pointer: QPointF
    target: str | None = None
    problem: str | None = None


class Wiring:
    """The canvas's wiring gestures; ``ModelCanvas`` hands it its mouse events first."""

    def __init__(self, canvas) -> None:
        self.canvas = canvas
        self.drag: WireDrag | None = None
        self.message = ""  # the last refusal or result, as shown in the status bar
        self._verdicts: dict[str | None, str | None] = {}

    # Ports

    def output_port(self, node_id: str) -> QPointF:
        if node_id == INPUT:
            return QPointF(self.canvas.graph_layout.places[INPUT].x, INPUT_TOP + INPUT_H)
        block = self.canvas.blocks[node_id]
        return block.mapToScene(block.port_rect().center())

    def input_port(self, node_id: str) -> QPointF:
        block = self.canvas.blocks[node_id]
        return block.mapToScene(block.input_port_rect().center())

    def _near(self, point: QPointF, port: QPointF) -> bool:
        return (point - port).manhattanLength() <= PORT_HIT * 1.4

    def output_at(self, point: QPointF) -> str | None:
        """The layer (or INPUT) whose output port is under ``point``."""
        if self.canvas.graph_layout is None:
            return None
        for node_id in (INPUT, *self.canvas.blocks):
            if self._near(point, self.output_port(node_id)):
                return node_id
        return None

    def input_at(self, point: QPointF) -> str | None:
        """The layer whose input port is under ``point``."""
        for node_id in self.canvas.blocks:
            if self._near(point, self.input_port(node_id)):
                return node_id
        return None

    def target_at(self, point: QPointF) -> str | None:
        """The layer a wire released at ``point`` goes to: its input port or anywhere on it."""
        for node_id, block in self.canvas.blocks.items():
            if block.sceneBoundingRect().contains(point):
                return node_id
        return self.input_at(point)

    # Gestures

    def press(self, point: QPointF, button: Qt.MouseButton) -> bool:
        """Start a wire on an output port, or move an edge's end taken at an input port."""
        if button != Qt.MouseButton.LeftButton:
            return False
        source = self.output_at(point)
        if source is not None:
            self._start(WireDrag(source, None, point))
            return True
        target = self.input_at(point)
        if target is not None:
            source = self._edge_ending_at(target)[0]
            if source != INPUT and source not in self.canvas.blocks:
                return False  # an input naming no layer (a hand-edited file): nothing to drag
            self._start(WireDrag(source, target, point))
            return True
        return False

    def move(self, point: QPointF) -> bool:
        drag = self.drag
        if drag is None:
            over_port = self.output_at(point) or self.input_at(point)
            cursor = Qt.CursorShape.CrossCursor if over_port else Qt.CursorShape.ArrowCursor
            self.canvas.viewport().setCursor(cursor)
            return False
        drag.pointer = point
        before, drag.target = drag.target, self.target_at(point)
        if drag.target not in self._verdicts:
            self._verdicts[drag.target] = self._verdict(drag)
        drag.problem = self._verdicts[drag.target]
        self.canvas.viewport().update()
        if drag.problem and drag.target is not None and drag.target != before:
            self._tell(drag.problem)
        return True

    def cancel(self) -> bool:
        """Drop the wire being dragged (Escape, or its source gone in an undo); False if none."""
        dragging, self.drag = self.drag is not None, None
        self.canvas.viewport().update()
        return dragging

    def release(self, point: QPointF) -> bool:
        drag = self.drag
        if drag is None:
            return False
        self.move(point)
        self.drag = None
        self.canvas.viewport().update()
        if drag.target is None and drag.moving is None:
            return True  # a new wire let go on nothing: nothing happens
        if drag.target == drag.moving:
            return True
        self.push(lambda document: self._command(document, drag))
        return True

    def delete_selected(self) -> bool:
        """Remove the selected edges, one undo step each; False when none is selected."""
        keys = self.canvas.selected_wires()
        for source, target in keys:
            self.push(lambda document, s=source, t=target: UnwireCommand(document, s, t))
        return bool(keys)

    def push(self, make) -> bool:
        """Push the command ``make(document)`` makes, or say why it was refused."""
        document = self.canvas.document
        try:
            command = make(document)
        except WiringError as error:
            self._tell(str(error))
            return False
        document.push(command)
        self._tell(command.text())
        return True

    # Inside

    def _start(self, drag: WireDrag) -> None:
        self.drag = drag
        self._verdicts = {}
        self.canvas.scene().clearSelection()

    def _edge_ending_at(self, target: str) -> tuple[str, str]:
        """The edge into ``target`` that a press on its input port takes: the selected one,
        else its last input."""
        for key in self.canvas.selected_wires():
            if key[1] == target:
                return key
        return self.canvas.document.spec.inputs_of(target)[-1], target

    def _verdict(self, drag: WireDrag) -> str | None:
        if drag.target is None:
            return None if drag.moving is not None else "let go on a block's input port"
        try:
            self._command(self.canvas.document, drag)
        except WiringError as error:
            return str(error)
        return None

    def _command(self, document, drag: WireDrag):
        if drag.target is None:
            return UnwireCommand(document, drag.source, drag.moving)
        if drag.moving is None:
            return WireCommand(document, drag.source, drag.target)
        return MoveWireCommand(document, drag.source, drag.moving, drag.target)

    def _tell(self, message: str) -> None:
        self.message = message
        self.canvas.wiring_message.emit(message)
        view = self.canvas
        if self.drag is not None:
            where = view.viewport().mapToGlobal(view.mapFromScene(self.drag.pointer))
            QToolTip.showText(where, message, view.viewport())

    # Painting

    def paint(self, painter: QPainter) -> None:
        """The wire being dragged and the port it would land on (scene coordinates)."""
        drag = self.drag
        if drag is None:
            return
        known = (INPUT, *self.canvas.blocks)
        if drag.source not in known or drag.target not in (None, *known):
            self.drag = None  # the model changed under the drag (an undo): nothing to draw
            return
        c = colours()
        start, end = self.output_port(drag.source), drag.pointer
        ok = drag.target is not None and drag.problem is None
        colour = QColor(c.error if drag.problem and drag.target else c.accent)
        if drag.target is not None:
            end = self.input_port(drag.target)
            block = self.canvas.blocks[drag.target]
            painter.setPen(QPen(colour, 2.5, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(block.sceneBoundingRect().adjusted(2, 2, -2, -2), 9, 9)
        path = QPainterPath(start)
        middle = (start.y() + end.y()) / 2
        path.cubicTo(QPointF(start.x(), middle), QPointF(end.x(), middle), end)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(colour, 2.2, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        painter.setBrush(QColor(colour) if ok else QColor(c.base))
        painter.drawEllipse(end, 7.0, 7.0)
