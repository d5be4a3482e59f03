"""The model canvas: the layers drawn top to bottom as blocks, with skip connections beside the
stack. Layers are dropped in from the palette, dragged to reorder, and a merge gets another input
by dragging from a block's output port onto it. Every change is one undo command on the document."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QMimeData, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QDrag, QFont, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QApplication,
    QGraphicsItem,
    QGraphicsObject,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from cnnstudio import Analysis, LayerInfo, Node
from cnnstudio.cli import human
from cnnstudio.layers import LAYER_KINDS
from cnnstudio.shapes import format_shape
from cnnstudio.spec import INPUT
from ui.editor.commands import ConnectInputCommand, InsertLayerCommand, MoveLayerCommand
from ui.icons import GROUP_ICONS, icon
from ui.theme import colours

MIME_KIND = "application/x-cnnstudio-layer-kind"
MIME_MOVE = "application/x-cnnstudio-move"
MIME_CONNECT = "application/x-cnnstudio-connect"

BLOCK_W, BLOCK_H, GAP, TOP = 300.0, 58.0, 22.0, 52.0
PORT_R = 6.0


def block_top(index: int) -> float:
    return TOP + index * (BLOCK_H + GAP)


def describe_params(node: Node, info: LayerInfo | None) -> str:
    """The few parameters that say what a block does: '32 filters 3×3, stride 2'."""
    p = (
        {**LAYER_KINDS[node.kind].default_params(), **node.params}
        if node.kind in LAYER_KINDS
        else dict(node.params)
    )
    if info is not None and info.resolved:
        p.update(info.resolved)
    kind = node.kind
    try:
        if kind == "Conv2d":
            k = p["kernel_size"]
            text = f"{p['in_channels']} → {p['out_channels']}, {k}×{k}"
            if p["stride"] != 1:
                text += f", stride {p['stride']}"
            if p["groups"] != 1:
                text += f", groups {p['groups']}"
            return text
        if kind in ("MaxPool2d", "AvgPool2d"):
            k = p["kernel_size"]
            return f"{k}×{k}, stride {p['stride']}"
        if kind == "AdaptiveAvgPool2d":
            return f"to {p['output_size']}×{p['output_size']}"
        if kind == "Linear":
            return f"{p['in_features']} → {p['out_features']}"
        if kind in ("BatchNorm2d", "BatchNorm1d"):
            return f"{p['num_features']} features"
        if kind in ("Dropout", "Dropout2d"):
            return f"p = {p['p']}"
        if kind == "LeakyReLU":
            return f"slope {p['negative_slope']}"
        if kind == "Backbone":
            state = "frozen" if p["freeze"] else "trainable"
            weights = "ImageNet" if p["weights"] == "DEFAULT" else "random"
            return f"{p['name']}, {weights} weights, {state}"
        if kind in ("Add", "Concat"):
            return " + ".join(node.inputs) if node.inputs else "needs 2 inputs"
    except (KeyError, TypeError):
        return ""
    return ""


class BlockItem(QGraphicsObject):
    """One layer on the canvas."""

    def __init__(self, node: Node, index: int, info: LayerInfo | None, view: ModelCanvas) -> None:
        super().__init__()
        self.node, self.index, self.info, self.view = node, index, info, view
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setPos(0, block_top(index))
        self._press: QPointF | None = None
        self._on_port = False
        errors = info.errors if info else ()
        tip = f"<b>{node.kind}</b> {node.id}"
        kind = LAYER_KINDS.get(node.kind)
        if kind:
            tip += f"<br>{kind.help}"
        if errors:
            tip += "<br><span style='color:#c9302c'>" + "<br>".join(errors) + "</span>"
        self.setToolTip(tip)

    @property
    def has_error(self) -> bool:
        return bool(self.info and self.info.errors)

    @property
    def frozen(self) -> bool:
        return self.node.kind == "Backbone" and bool(self.node.params.get("freeze", True))

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, BLOCK_W + 4, BLOCK_H + PORT_R + 4)

    def port_rect(self) -> QRectF:
        return QRectF(BLOCK_W / 2 - PORT_R, BLOCK_H - PORT_R, 2 * PORT_R, 2 * PORT_R)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        c = colours()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        fill = c.error_fill if self.has_error else c.frozen if self.frozen else c.block
        border = c.error if self.has_error else c.block_border
        if self.isSelected():
            border = c.accent
        painter.setPen(
            QPen(
                QColor(border),
                2.0 if self.isSelected() or self.has_error else 1.0,
                Qt.PenStyle.DashLine if self.frozen else Qt.PenStyle.SolidLine,
            )
        )
        painter.setBrush(QBrush(QColor(fill)))
        painter.drawRoundedRect(QRectF(0, 0, BLOCK_W, BLOCK_H), 8, 8)
        kind = LAYER_KINDS.get(self.node.kind)
        group = kind.group if kind else "Merge"
        glyph = icon(GROUP_ICONS.get(group, "model"), c.error if self.has_error else c.accent)
        glyph.paint(painter, 12, 12, 22, 22)
        title = QFont(painter.font())
        title.setBold(True)
        painter.setFont(title)
        painter.setPen(QColor(c.text))
        painter.drawText(QRectF(44, 8, 150, 20), Qt.AlignmentFlag.AlignLeft, self.node.kind)
        painter.setFont(QFont(painter.font().family(), -1))
        plain = QFont(painter.font())
        plain.setBold(False)
        painter.setFont(plain)
        painter.setPen(QColor(c.muted))
        painter.drawText(
            QRectF(44, 30, 160, 20),
            Qt.AlignmentFlag.AlignLeft,
            self.view.fit_text(describe_params(self.node, self.info), 160),
        )
        info = self.info
        right = self.node.id
        if info is not None and info.output_shape is not None and info.params:
            right = f"{human(info.params)} params · {self.node.id}"
        painter.drawText(QRectF(BLOCK_W - 170, 8, 160, 20), Qt.AlignmentFlag.AlignRight, right)
        if info is not None and info.output_shape is not None:
            painter.setPen(QColor(c.text))
            painter.setFont(title)
            shape = format_shape(info.output_shape)
            painter.drawText(QRectF(BLOCK_W - 90, 30, 80, 20), Qt.AlignmentFlag.AlignRight, shape)
        elif self.has_error:
            painter.setPen(QColor(c.error))
            painter.setFont(title)
            painter.drawText(
                QRectF(BLOCK_W - 110, 30, 100, 20), Qt.AlignmentFlag.AlignRight, "does not fit"
            )
        painter.setPen(QPen(QColor(c.accent), 1.5))
        painter.setBrush(QBrush(QColor(c.base)))
        painter.drawEllipse(self.port_rect())

    def mousePressEvent(self, event) -> None:
        self._press = event.pos()
        self._on_port = self.port_rect().adjusted(-3, -3, 3, 3).contains(event.pos())
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._press is None:
            return
        distance = (event.pos() - self._press).manhattanLength()
        if distance < QApplication.startDragDistance():
            return
        self._press = None
        mime = QMimeData()
        kind = MIME_CONNECT if self._on_port else MIME_MOVE
        mime.setData(kind, QByteArray(self.node.id.encode()))
        drag = QDrag(self.view.viewport())
        drag.setMimeData(mime)
        drag.exec(Qt.DropAction.MoveAction | Qt.DropAction.LinkAction)

    def mouseReleaseEvent(self, event) -> None:
        self._press = None
        super().mouseReleaseEvent(event)


class ModelCanvas(QGraphicsView):
    """Draws the document's model and turns drops into undo commands."""

    selection_changed = Signal(list)

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.setScene(QGraphicsScene(self))
        self.setAcceptDrops(True)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.blocks: dict[str, BlockItem] = {}
        self._indicator = None
        self._zoom = 1.0
        self._connect()
        self.rebuild()

    def _connect(self) -> None:
        self.document.spec_changed.connect(lambda _spec: self.rebuild())
        self.document.analysis_ready.connect(lambda _analysis: self.rebuild())
        self.scene().selectionChanged.connect(self._on_scene_selection_changed)

    # Drawing

    def fit_text(self, text: str, width: float) -> str:
        return self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, int(width))

    def rebuild(self) -> None:
        selected = self.selected_ids()
        scene = self.scene()
        scene.blockSignals(True)
        scene.clear()
        self._indicator = None
        self.blocks = {}
        spec = self.document.spec
        analysis: Analysis | None = self.document.analysis
        infos = {}
        if analysis is not None and [i.id for i in analysis.layers] == [n.id for n in spec.nodes]:
            infos = {i.id: i for i in analysis.layers}
        c = colours()
        self.setBackgroundBrush(QBrush(QColor(c.canvas)))
        self._draw_input(spec)
        for index, node in enumerate(spec.nodes):
            block = BlockItem(node, index, infos.get(node.id), self)
            scene.addItem(block)
            self.blocks[node.id] = block
            if node.id in selected:
                block.setSelected(True)
        self._draw_edges(spec)
        height = block_top(len(spec.nodes)) + 40
        scene.setSceneRect(QRectF(-60, 0, BLOCK_W + 220, max(height, 200)))
        scene.blockSignals(False)
        self.viewport().update()

    def _draw_input(self, spec) -> None:
        c = colours()
        pill = QPainterPath()
        pill.addRoundedRect(QRectF(BLOCK_W / 2 - 90, 8, 180, 28), 14, 14)
        item = self.scene().addPath(pill, QPen(QColor(c.block_border)), QBrush(QColor(c.base)))
        item.setToolTip("The model's input: channels × height × width")
        text = self.scene().addSimpleText(f"Input {format_shape(spec.input_shape)}")
        text.setBrush(QBrush(QColor(c.text)))
        bounds = text.boundingRect()
        text.setPos(BLOCK_W / 2 - bounds.width() / 2, 22 - bounds.height() / 2)

    def _draw_edges(self, spec) -> None:
        c = colours()
        pen = QPen(QColor(c.edge), 1.6)
        skip_pen = QPen(QColor(c.accent), 1.6)
        positions = {INPUT: -1, **{n.id: i for i, n in enumerate(spec.nodes)}}
        lane = 0
        for index, node in enumerate(spec.nodes):
            previous = spec.nodes[index - 1].id if index else INPUT
            sources = node.inputs or (previous,)
            for source in sources:
                if source not in positions:
                    continue
                if source == previous:
                    y0 = block_top(index - 1) + BLOCK_H if index else 36.0
                    self.scene().addLine(
                        BLOCK_W / 2, y0 + PORT_R, BLOCK_W / 2, block_top(index), pen
                    )
                    continue
                lane += 1
                y0 = (block_top(positions[source]) if positions[source] >= 0 else 0) + BLOCK_H / 2
                y1 = block_top(index) + BLOCK_H / 2
                x = BLOCK_W + 18 + 14 * (lane % 6)
                path = QPainterPath(QPointF(BLOCK_W, y0))
                path.cubicTo(QPointF(x, y0), QPointF(x, y0), QPointF(x, (y0 + y1) / 2))
                path.cubicTo(QPointF(x, y1), QPointF(x, y1), QPointF(BLOCK_W + 2, y1))
                edge = self.scene().addPath(path, skip_pen)
                edge.setToolTip(f"{source} → {node.id}")
                arrow = QPainterPath(QPointF(BLOCK_W + 2, y1))
                arrow.lineTo(BLOCK_W + 9, y1 - 4)
                arrow.lineTo(BLOCK_W + 9, y1 + 4)
                arrow.closeSubpath()
                self.scene().addPath(arrow, skip_pen, QBrush(QColor(c.accent)))

    # Selection

    def selected_ids(self) -> list[str]:
        return [b.node.id for b in self.blocks.values() if b.isSelected()]

    def select(self, node_ids: list[str]) -> None:
        for node_id, block in self.blocks.items():
            block.setSelected(node_id in node_ids)

    def _on_scene_selection_changed(self) -> None:
        self.selection_changed.emit(self.selected_ids())

    # Zoom

    def zoom_by(self, factor: float) -> None:
        new = max(0.25, min(3.0, self._zoom * factor))
        self.scale(new / self._zoom, new / self._zoom)
        self._zoom = new

    def zoom_to_fit(self) -> None:
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._zoom = self.transform().m11()

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15 if event.angleDelta().y() > 0 else 1 / 1.15)
            event.accept()
            return
        super().wheelEvent(event)

    # Drops

    def insertion_index(self, scene_y: float) -> int:
        """Where a layer dropped at ``scene_y`` goes: before the first block whose middle is
        below it."""
        count = len(self.document.spec.nodes)
        for index in range(count):
            if scene_y < block_top(index) + BLOCK_H / 2:
                return index
        return count

    def _block_at(self, scene_pos: QPointF) -> BlockItem | None:
        for item in self.scene().items(scene_pos):
            if isinstance(item, BlockItem):
                return item
        return None

    def _show_indicator(self, index: int | None) -> None:
        if self._indicator is not None:
            self.scene().removeItem(self._indicator)
            self._indicator = None
        if index is None:
            return
        y = block_top(index) - GAP / 2
        pen = QPen(QColor(colours().accent), 3)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        self._indicator = self.scene().addLine(-8, y, BLOCK_W + 8, y, pen)

    def dragEnterEvent(self, event) -> None:
        if any(event.mimeData().hasFormat(m) for m in (MIME_KIND, MIME_MOVE, MIME_CONNECT)):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        mime = event.mimeData()
        scene_pos = self.mapToScene(event.position().toPoint())
        if mime.hasFormat(MIME_CONNECT):
            target = self._block_at(scene_pos)
            ok = (
                target is not None
                and LAYER_KINDS.get(target.node.kind) is not None
                and LAYER_KINDS[target.node.kind].is_merge
            )
            self._show_indicator(None)
            event.setAccepted(ok)
            return
        if mime.hasFormat(MIME_KIND) or mime.hasFormat(MIME_MOVE):
            self._show_indicator(self.insertion_index(scene_pos.y()))
            event.acceptProposedAction()
            return
        event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self._show_indicator(None)

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        scene_pos = self.mapToScene(event.position().toPoint())
        self._show_indicator(None)
        index = self.insertion_index(scene_pos.y())
        if mime.hasFormat(MIME_KIND):
            kind = bytes(mime.data(MIME_KIND)).decode()
            if kind in LAYER_KINDS:
                command = InsertLayerCommand(self.document, kind, index)
                self.document.push(command)
                self.select([command.node.id])
                event.acceptProposedAction()
                return
        elif mime.hasFormat(MIME_MOVE):
            node_id = bytes(mime.data(MIME_MOVE)).decode()
            current = self.document.spec.index(node_id)
            target = index - 1 if index > current else index
            if target != current:
                self.document.push(MoveLayerCommand(self.document, node_id, target))
            self.select([node_id])
            event.acceptProposedAction()
            return
        elif mime.hasFormat(MIME_CONNECT):
            source = bytes(mime.data(MIME_CONNECT)).decode()
            block = self._block_at(scene_pos)
            if block is not None and block.node.id != source:
                self.document.push(ConnectInputCommand(self.document, source, block.node.id))
                event.acceptProposedAction()
                return
        event.ignore()
