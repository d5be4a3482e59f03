"""The model canvas: the layers drawn as blocks in a layered layout (ui/editor/layout.py), a chain
as one column, branches side by side, the tensor shape on every edge. Layers are dropped in from
the palette, dragged to reorder, and wired by dragging from an output port to an input port
(ui/editor/wiring.py). Every change is one undo command on the document."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

from PySide6.QtCore import QByteArray, QMimeData, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QDrag,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QStaticText,
)
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
from cnnstudio.blocks import block_of, expand_uses, node_at, use_count
from cnnstudio.errors import BlockError
from cnnstudio.layers import LAYER_KINDS
from cnnstudio.params import human
from cnnstudio.shapes import format_shape
from cnnstudio.spec import BLOCK, INPUT
from ui.editor.block_commands import InsertBlockCommand
from ui.editor.commands import InsertLayerCommand, MoveLayerCommand
from ui.editor.layout import INPUT_H, INPUT_TOP, ROW_GAP, ROW_H, GraphLayout, Route, layout_spec
from ui.editor.layout import row_top as _row_top
from ui.editor.navigation import (
    OverviewPanel,
    graph_rect,
    readable_fit_zoom,
    set_zoom,
    show_at_top,
    whole_zoom,
)
from ui.editor.wiring import EdgeItem, Wiring
from ui.icons import GROUP_ICONS, icon
from ui.theme import Colours, colours

MIME_KIND = "application/x-cnnstudio-layer-kind"
MIME_MOVE = "application/x-cnnstudio-move"
MIME_BLOCK = "application/x-cnnstudio-block"

BLOCK_W, BLOCK_H, GAP = 300.0, ROW_H, ROW_GAP
"""A block's least width (wider when its text needs it), its height, the room between rows."""
PORT_R = 6.0
TEXT_X, DESCRIBE_MAX = 44.0, 280.0
"""Where a block's text starts (after the icon); the widest a description gets before eliding."""
INPUT_W = 180.0
TEXT_LOD = 0.35
"""Below this zoom a block's text is too small to read: a block is drawn as its box alone, so a
300-layer model fitted to the view repaints fast."""


def block_top(index: int) -> float:
    """The top of the ``index``-th layer of a chain (a chain has a layer per row)."""
    return _row_top(index + 1)


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
        if kind == BLOCK:
            return "block"
    except (KeyError, TypeError):
        return ""
    return ""


@dataclass(frozen=True)
class BlockText:
    """What a block says and how wide it must be to say it all: the kind and a description on the
    left, the parameter count with the id and the output shape (never elided) on the right."""

    title: str
    describe: str
    right: str
    shape: str
    left_w: float
    right_w: float

    @property
    def width(self) -> float:
        """Rounded up to 20 px: a block whose text grows by a few pixels (the analysis arriving)
        keeps its width, so the graph's layout is reused from the cache."""
        needed = TEXT_X + self.left_w + 24.0 + self.right_w + 10.0
        return max(BLOCK_W, math.ceil(needed / 20.0) * 20.0)


def block_text(node: Node, info: LayerInfo | None, font: QFont) -> BlockText:
    """The block's texts, measured in ``font`` (bold for the title and the shape)."""
    bold = QFont(font)
    bold.setBold(True)
    plain, strong = QFontMetricsF(font), QFontMetricsF(bold)
    describe = plain.elidedText(
        describe_params(node, info), Qt.TextElideMode.ElideRight, DESCRIBE_MAX
    )
    right, shape = node.id, ""
    if info is not None and info.output_shape is not None:
        shape = format_shape(info.output_shape)
        if info.params:
            right = f"{human(info.params)} params · {node.id}"
    elif info is not None and info.errors:
        shape = "does not fit"
    title = block_of(node) or node.kind
    left_w = max(strong.horizontalAdvance(title), plain.horizontalAdvance(describe))
    right_w = max(plain.horizontalAdvance(right), strong.horizontalAdvance(shape))
    return BlockText(title, describe, right, shape, left_w + 2, right_w + 2)


@cache
def block_pens(c: Colours, has_error: bool, frozen: bool) -> dict:
    """A block's box pens (selected or not) and brush, its port's pen and brush, its text
    colours: shared by the blocks that look alike, made once per theme."""
    fill = c.error_fill if has_error else c.frozen if frozen else c.block
    border = c.error if has_error else c.block_border
    dash = Qt.PenStyle.DashLine if frozen else Qt.PenStyle.SolidLine
    return {
        False: QPen(QColor(border), 2.0 if has_error else 1.0, dash),
        True: QPen(QColor(c.accent), 2.0, dash),
        "fill": QBrush(QColor(fill)),
        "port": QPen(QColor(c.accent), 1.5),
        "port_fill": QBrush(QColor(c.base)),
        "text": QColor(c.text),
        "muted": QColor(c.muted),
        "error": QColor(c.error),
        "far": QBrush(QColor(c.error if has_error else c.muted)),
    }


@cache
def block_glyph(group: str, colour: str) -> QPixmap:
    """The icon of a layer group, drawn once at the size a block shows it (22 px)."""
    return icon(GROUP_ICONS.get(group, "model"), colour).pixmap(22, 22)


class BlockItem(QGraphicsObject):
    """One layer on the canvas, its top centre at (x, y)."""

    def __init__(
        self, node: Node, info: LayerInfo | None, text: BlockText, view: ModelCanvas
    ) -> None:
        super().__init__()
        self.node, self.info, self.text, self.view = node, info, text, view
        self.width = text.width
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self._press: QPointF | None = None
        errors = info.errors if info else ()
        tip = f"<b>{node.kind}</b> {node.id}"
        kind = LAYER_KINDS.get(node.kind)
        if kind:
            tip += f"<br>{kind.help}"
        if errors:
            tip += "<br><span style='color:#c9302c'>" + "<br>".join(errors) + "</span>"
        self.setToolTip(tip)
        self._style = self._make_style()
        self._texts: tuple[QStaticText, ...] | None = None

    def _make_style(self) -> tuple:
        """Fonts, the icon and the pens, made once per block (or shared) rather than on every
        paint (a 300-layer model repaints 300 blocks)."""
        c = colours()
        plain = QFont(self.view.font())
        title = QFont(plain)
        title.setBold(True)
        kind = LAYER_KINDS.get(self.node.kind)
        group = kind.group if kind else "Merge"
        glyph = block_glyph(group, c.error if self.has_error else c.accent)
        return plain, title, glyph, block_pens(c, self.has_error, self.frozen)

    def _static_texts(self, painter: QPainter) -> tuple[QStaticText, ...]:
        """The texts laid out once (QStaticText), on the block's first paint with text: only the
        blocks ever seen pay for it."""
        if self._texts is None:
            plain, title, _glyph, _pens = self._style
            text, texts = self.text, []
            for value, font in ((text.title, title), (text.describe, plain),
                                (text.right, plain), (text.shape, title)):  # fmt: skip
                static = QStaticText(value)
                static.setTextFormat(Qt.TextFormat.PlainText)
                static.prepare(painter.worldTransform(), font)
                texts.append(static)
            self._texts = tuple(texts)
        return self._texts

    def place(self, x_centre: float, y: float) -> None:
        self.setPos(x_centre - self.width / 2, y)

    @property
    def has_error(self) -> bool:
        return bool(self.info and self.info.errors)

    @property
    def frozen(self) -> bool:
        return self.node.kind == "Backbone" and bool(self.node.params.get("freeze", True))

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -PORT_R - 2, self.width + 4, BLOCK_H + 2 * PORT_R + 4)

    def port_rect(self) -> QRectF:
        return QRectF(self.width / 2 - PORT_R, BLOCK_H - PORT_R, 2 * PORT_R, 2 * PORT_R)

    def input_port_rect(self) -> QRectF:
        """Where wires arrive: the top centre."""
        return QRectF(self.width / 2 - PORT_R, -PORT_R, 2 * PORT_R, 2 * PORT_R)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        pens = self._style[3]
        if option.levelOfDetailFromTransform(painter.worldTransform()) < TEXT_LOD:
            self._paint_far(painter, pens)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pens[self.isSelected()])
        painter.setBrush(pens["fill"])
        painter.drawRoundedRect(QRectF(0, 0, self.width, BLOCK_H), 8, 8)
        if self.node.kind == BLOCK:
            paint_toggle(painter, TOGGLE_RECT, expanded=False)
        else:
            painter.drawPixmap(12, 12, self._style[2])
        self._paint_text(painter)
        painter.setPen(pens["port"])
        painter.setBrush(pens["port_fill"])
        painter.drawEllipse(self.port_rect())
        painter.drawEllipse(self.input_port_rect())

    def _paint_far(self, painter: QPainter, pens: dict) -> None:
        """Seen from afar (a whole 300-layer graph, the overview): a solid box in the border's
        colour, which reads at a few pixels where a white box with a thin border vanishes."""
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(pens[True].color() if self.isSelected() else pens["far"])
        painter.drawRect(QRectF(0, 0, self.width, BLOCK_H))

    def _paint_text(self, painter: QPainter) -> None:
        plain, title, _glyph, pens = self._style
        kind, describe, right, shape = self._static_texts(painter)
        right_end = self.width - 10
        painter.setFont(title)
        painter.setPen(pens["text"])
        painter.drawStaticText(QPointF(TEXT_X, 8), kind)
        painter.setFont(plain)
        painter.setPen(pens["muted"])
        painter.drawStaticText(QPointF(TEXT_X, 30), describe)
        painter.drawStaticText(QPointF(right_end - right.size().width(), 8), right)
        if self.text.shape:
            fits = self.info is not None and self.info.output_shape is not None
            painter.setPen(pens["text"] if fits else pens["error"])
            painter.setFont(title)
            painter.drawStaticText(QPointF(right_end - shape.size().width(), 30), shape)

    def mousePressEvent(self, event) -> None:
        if self.node.kind == BLOCK and TOGGLE_RECT.contains(event.pos()):
            self.view.set_expanded(self.node.id, True)
            event.accept()
            return
        self._press = event.pos()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._press is None or "." in self.node.id:  # a block's inner layer stays put
            return
        distance = (event.pos() - self._press).manhattanLength()
        if distance < QApplication.startDragDistance():
            return
        self._press = None
        mime = QMimeData()
        mime.setData(MIME_MOVE, QByteArray(self.node.id.encode()))
        drag = QDrag(self.view.viewport())
        drag.setMimeData(mime)
        drag.exec(Qt.DropAction.MoveAction | Qt.DropAction.LinkAction)

    def mouseReleaseEvent(self, event) -> None:
        self._press = None
        super().mouseReleaseEvent(event)


TOGGLE_RECT = QRectF(12, 12, 22, 22)
"""Where a block use's expand / collapse toggle is, in the box's (or frame's) coordinates."""
FRAME_SIDE = 120.0
"""The room on an open block's frame, left of its layers, for its toggle and name."""


def paint_toggle(painter: QPainter, rect: QRectF, expanded: bool) -> None:
    """A small box with + (closed: click to open) or − (open: click to close)."""
    c = colours()
    painter.setPen(QPen(QColor(c.accent), 1.5))
    painter.setBrush(QBrush(QColor(c.base)))
    painter.drawRoundedRect(rect, 4, 4)
    middle = rect.center()
    painter.drawLine(QPointF(rect.left() + 5, middle.y()), QPointF(rect.right() - 5, middle.y()))
    if not expanded:
        painter.drawLine(
            QPointF(middle.x(), rect.top() + 5), QPointF(middle.x(), rect.bottom() - 5)
        )


def current_infos(spec, analysis: Analysis | None) -> dict[str, LayerInfo]:
    """The analysis' facts by layer id (layers and block uses alike) for the layers drawn that
    it knows as the same kind."""
    if analysis is None:
        return {}
    infos = {i.id: i for i in (*analysis.layers, *analysis.blocks)}
    # until an edit's analysis comes, a layer keeps what it showed (blocks are reused by id)
    return {n.id: infos[n.id] for n in spec.nodes if n.id in infos and infos[n.id].kind == n.kind}


def _use_exists(spec, use_id: str) -> bool:
    node = node_at(spec, use_id)
    return node is not None and node.kind == BLOCK


def _block_name(spec, use_id: str) -> str:
    return block_of(node_at(spec, use_id)) or "?"


class BlockFrameItem(QGraphicsObject):
    """The frame around an open block use's layers, with a header and a collapse toggle."""

    def __init__(self, use_id: str, label: str, rect: QRectF, view: ModelCanvas) -> None:
        super().__init__()
        self.use_id, self.label, self.rect, self.view = use_id, label, rect, view
        self.setZValue(-1)
        self.setToolTip(f"{label}: editing a layer here edits the block, in every use")

    def toggle_rect(self) -> QRectF:
        return QRectF(self.rect.left() + 10, self.rect.top() + 10, 22, 22)

    def boundingRect(self) -> QRectF:
        return self.rect.adjusted(-2, -2, 2, 2)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        c = colours()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor(c.accent), 1.4, Qt.PenStyle.DashLine))
        fill = QColor(c.accent)
        fill.setAlpha(18)
        painter.setBrush(QBrush(fill))
        painter.drawRoundedRect(self.rect, 10, 10)
        paint_toggle(painter, self.toggle_rect(), expanded=True)
        painter.setPen(QColor(c.text))
        title = QFont(self.view.font())
        title.setBold(True)
        painter.setFont(title)
        first, _, rest = self.label.partition("\n")
        painter.drawText(
            QRectF(self.rect.left() + 38, self.rect.top() + 10, FRAME_SIDE - 40, 22),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            first,
        )
        painter.setFont(self.view.font())
        painter.setPen(QColor(c.muted))
        painter.drawText(
            QRectF(self.rect.left() + 10, self.rect.top() + 36, FRAME_SIDE - 14, 40),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
            rest,
        )

    def mousePressEvent(self, event) -> None:
        if self.toggle_rect().contains(event.pos()):
            self.view.set_expanded(self.use_id, False)
            event.accept()
            return
        event.ignore()


def edge_path(route: Route) -> QPainterPath:
    """The edge through its points, each step an S-curve that leaves and arrives vertically."""
    path = QPainterPath(QPointF(*route.points[0]))
    for (x0, y0), (x1, y1) in pairwise(route.points):
        if x0 == x1:
            path.lineTo(x1, y1)
            continue
        middle = (y0 + y1) / 2
        path.cubicTo(QPointF(x0, middle), QPointF(x1, middle), QPointF(x1, y1))
    return path


class ModelCanvas(QGraphicsView):
    """Draws the document's model and turns drops into undo commands."""

    selection_changed = Signal(list)
    wiring_message = Signal(str)  # a wire made, or why it was refused
    rebuilt = Signal()  # the scene was drawn again

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
        self.edges: dict[tuple[str, str], EdgeItem] = {}
        self.wiring = Wiring(self)
        self.graph_layout: GraphLayout | None = None
        self._widths: dict[str, float] = {}
        self._indicator = None
        self._zoom = 1.0
        self._home_pending = True  # scroll to the input once the view has its size
        self._home_at: tuple[int, int] | None = None  # where the view was put on the input
        self._style_key: tuple = ()
        self.overview = OverviewPanel(self)
        self.expanded: set[str] = set()
        """The block uses drawn open (view state: not saved, not undone)."""
        self._connect()
        self.rebuild()

    def _connect(self) -> None:
        self.document.spec_changed.connect(lambda _spec: self.rebuild())
        self.document.analysis_ready.connect(lambda _analysis: self.rebuild())
        self.scene().selectionChanged.connect(self._on_scene_selection_changed)
        self.document.project_replaced.connect(self._on_project_replaced)
        self.rebuilt.connect(self.overview.schedule_refresh)

    # Drawing

    def fit_text(self, text: str, width: float) -> str:
        return self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, int(width))

    def rebuild(self) -> None:
        selected, wires = self.selected_ids(), self.selected_wires()
        scene = self.scene()
        scene.blockSignals(True)
        spec = self.document.spec
        self._note_home(spec)
        old = self._take_blocks()
        scene.clear()
        self._indicator = None
        self.blocks, self.edges = {}, {}
        spec = self.display_spec()
        analysis: Analysis | None = self.document.analysis
        infos = current_infos(spec, analysis)
        self.setBackgroundBrush(QBrush(QColor(colours().canvas)))
        font, last = self.font(), self._widths
        for node in spec.nodes:
            info = infos.get(node.id)
            block = old.get(node.id)
            if block is not None and block.node == node and block.info == info:
                self.blocks[node.id] = block  # unchanged: the same item, only placed again
                continue
            block = BlockItem(node, info, block_text(node, info, font), self)
            if info is None:  # until the analysis comes, as wide as the block was (same layout)
                block.width = max(block.width, last.get(node.id, 0.0))
            self.blocks[node.id] = block
        self._widths = {i: b.width for i, b in self.blocks.items()}
        self.graph_layout = layout_spec(spec, self._widths, INPUT_W)
        self._draw_input(spec)
        for node_id, block in self.blocks.items():
            place = self.graph_layout.places[node_id]
            block.place(place.x, place.y)
            scene.addItem(block)
            block.setSelected(node_id in selected)
        self._draw_edges(spec, infos)
        for key in wires:
            if key in self.edges:
                self.edges[key].setSelected(True)
        frames = self._draw_frames()
        left, right = self.graph_layout.span
        height = self.graph_layout.height + 40
        scene.setSceneRect(QRectF(left - 60, 0, right - left + 120, max(height, 200)) | frames)
        scene.blockSignals(False)
        self.overview.reserve()  # the view's scrolling room: the scene's, and the overview's
        self.viewport().update()
        if self._home_pending and self.isVisible():
            QTimer.singleShot(0, self._show_input_once)  # the scroll bars learn the new size first
        self.rebuilt.emit()

    def _take_blocks(self) -> dict[str, BlockItem]:
        """The blocks drawn, taken out of the scene to be reused by a rebuild (a keyed update: an
        edit of one layer on a 300-layer graph makes one block, not 300); none when the theme or
        the font changed since they were made."""
        key = (colours(), self.font().key())
        if key != self._style_key:
            self._style_key = key
            return {}
        for block in self.blocks.values():
            self.scene().removeItem(block)
        return self.blocks

    def _draw_input(self, spec) -> None:
        c = colours()
        x = self.graph_layout.places[INPUT].x
        pill = QPainterPath()
        pill.addRoundedRect(QRectF(x - INPUT_W / 2, INPUT_TOP, INPUT_W, INPUT_H), 14, 14)
        item = self.scene().addPath(pill, QPen(QColor(c.block_border)), QBrush(QColor(c.base)))
        item.setToolTip("The model's input: channels × height × width")
        text = self.scene().addSimpleText(f"Input {format_shape(spec.input_shape)}")
        text.setBrush(QBrush(QColor(c.text)))
        bounds = text.boundingRect()
        text.setPos(x - bounds.width() / 2, INPUT_TOP + INPUT_H / 2 - bounds.height() / 2)
        port = QRectF(x - PORT_R, INPUT_TOP + INPUT_H - PORT_R, 2 * PORT_R, 2 * PORT_R)
        self.scene().addEllipse(port, QPen(QColor(c.accent), 1.5), QBrush(QColor(c.base)))

    def _draw_edges(self, spec, infos: dict[str, LayerInfo]) -> None:
        """Every edge, with the shape it carries at its middle; an edge that does not come from
        the layer just before its target is a skip and drawn in the accent colour."""
        c = colours()
        pens = {False: QPen(QColor(c.edge), 1.6), True: QPen(QColor(c.accent), 1.6)}
        label_font = QFont(self.font())
        label_font.setPointSizeF(max(6.0, label_font.pointSizeF() - 1.5))
        order = {INPUT: -1, **{n.id: i for i, n in enumerate(spec.nodes)}}
        for route in self.graph_layout.routes:
            skip = order[route.source] != order[route.target] - 1
            edge = EdgeItem(route.source, route.target, edge_path(route), pens[skip])
            self.scene().addItem(edge)
            self.edges[edge.key] = edge
            arrow = QPainterPath(QPointF(*route.points[-1]))
            x, y = route.points[-1]
            arrow.lineTo(x - 4, y - 7)
            arrow.lineTo(x + 4, y - 7)
            arrow.closeSubpath()
            self.scene().addPath(arrow, pens[skip], QBrush(pens[skip].color()))
            info = infos.get(route.source)
            shape = spec.input_shape if route.source == INPUT else info and info.output_shape
            edge.setToolTip(
                f"{route.source} → {route.target}: click to select (Delete removes it), "
                "drag its arrow end to another block to move it"
            )
            if shape:
                self._draw_edge_label(route, format_shape(shape), label_font)

    def _draw_edge_label(self, route: Route, text: str, font: QFont) -> None:
        label = self.scene().addSimpleText(text, font)
        label.setBrush(QBrush(QColor(colours().muted)))
        (x0, y0), (x1, y1) = route.points[len(route.points) // 2 - 1 : len(route.points) // 2 + 1]
        bounds = label.boundingRect()
        # beside the arriving end, on the side the curve does not come from
        x = x1 - 6 - bounds.width() if x0 > x1 else x1 + 6
        label.setPos(x, (y0 + y1) / 2 - bounds.height() / 2)
        label.setToolTip(f"{route.source} → {route.target}: {text}")

    # Blocks

    def display_spec(self):
        """The spec as drawn: the open block uses expanded into their layers (``res1.conv1``)."""
        spec = self.document.spec
        self.expanded = {u for u in self.expanded if _use_exists(spec, u)}
        return expand_uses(spec, self.expanded) if self.expanded else spec

    def set_expanded(self, use_id: str, expanded: bool) -> None:
        """Draw the block use ``use_id`` open (its layers in a frame) or closed (one box)."""
        if expanded:
            self.expanded.add(use_id)
        else:
            self.expanded = {
                u for u in self.expanded if u != use_id and not u.startswith(use_id + ".")
            }
        self.rebuild()

    def is_expanded(self, use_id: str) -> bool:
        return use_id in self.expanded

    def _draw_frames(self) -> QRectF:
        """A frame around the layers of every open use, its header naming the block and how many
        times the model uses it; a click on its toggle closes it. Returns the frames' extent."""
        spec = self.document.spec
        extent = QRectF()
        for use_id in sorted(self.expanded, key=len, reverse=True):
            members = [b for i, b in self.blocks.items() if i.startswith(use_id + ".")]
            if not members:
                continue
            rect = QRectF()
            for block in members:
                rect = rect.united(block.sceneBoundingRect())
            depth = use_id.count(".")
            # the header goes on the frame's left, beside the first layer: above and below
            # are the edges from and to the rest of the model
            rect = rect.adjusted(-FRAME_SIDE - 6 * depth, -8 - 4 * depth, 12 + 6 * depth, 8)
            name = _block_name(spec, use_id)
            label = f"{use_id}\nblock {name}\nused {use_count(spec, name)}×"
            self.scene().addItem(BlockFrameItem(use_id, label, rect, self))
            extent |= rect.adjusted(-20, 0, 20, 0)
        return extent

    # Selection

    def selected_ids(self) -> list[str]:
        return [b.node.id for b in self.blocks.values() if b.isSelected()]

    def select(self, node_ids: list[str]) -> None:
        for node_id, block in self.blocks.items():
            block.setSelected(node_id in node_ids)

    def selected_wires(self) -> list[tuple[str, str]]:
        """The selected edges as (source, target)."""
        return [key for key, edge in self.edges.items() if edge.isSelected()]

    def select_wire(self, source: str, target: str) -> None:
        self.scene().clearSelection()
        self.edges[(source, target)].setSelected(True)

    def delete_selected_wires(self) -> bool:
        """Remove the selected edges (one undo step each); False when none is selected."""
        return self.wiring.delete_selected()

    def _on_scene_selection_changed(self) -> None:
        self.selection_changed.emit(self.selected_ids())

    # Zoom

    def zoom_by(self, factor: float) -> None:
        self._zoom = set_zoom(self, self._zoom * factor)

    def zoom_to_fit(self) -> None:
        """Fit the graph, as long as its text stays readable; a graph too big for that is fitted
        by its width and shown from the selection (or the input) on."""
        self._zoom = set_zoom(self, readable_fit_zoom(self))
        if self._zoom <= whole_zoom(self) * 1.001:  # the whole graph is in view
            self.centerOn(graph_rect(self).center())
            return
        selected = [self.blocks[i] for i in self.selected_ids()]
        if selected:
            self.centerOn(selected[0].sceneBoundingRect().center())
        else:
            self.show_input()

    def zoom_whole(self) -> None:
        """The whole graph in the view, however small its text gets."""
        self._zoom = set_zoom(self, whole_zoom(self))
        self.centerOn(graph_rect(self).center())

    def show_input(self) -> None:
        """Scroll to the model's input: centred across, at the top."""
        self._home_pending = False
        if self.graph_layout is not None:
            show_at_top(self, self.graph_layout.places[INPUT].x, graph_rect(self).top())
        self._home_at = self._scroll_position()

    def _note_home(self, spec) -> None:
        """Whether the rebuild about to happen should show the input: for a model that is mostly
        new (a template, an import), or when the view has not moved since it showed the input
        (it stays there as the layout changes)."""
        new = self.blocks and 2 * sum(n.id in self.blocks for n in spec.nodes) < len(spec.nodes)
        if new or self._home_at == self._scroll_position():
            self._home_pending = True

    def _scroll_position(self) -> tuple[int, int]:
        return self.horizontalScrollBar().value(), self.verticalScrollBar().value()

    def _show_input_once(self) -> None:
        if self._home_pending:
            self.show_input()

    def _on_project_replaced(self) -> None:
        self._home_pending = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._home_pending:
            QTimer.singleShot(0, self._show_input_once)  # once the window's layout sized the view

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15 if event.angleDelta().y() > 0 else 1 / 1.15)
            event.accept()
            return
        super().wheelEvent(event)

    # Wiring: the view's own mouse events, so that a test drives them with qtbot

    def mousePressEvent(self, event) -> None:
        if self.wiring.press(self.mapToScene(event.position().toPoint()), event.button()):
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self.wiring.move(self.mapToScene(event.position().toPoint())):
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self.wiring.release(self.mapToScene(event.position().toPoint())):
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape and self.wiring.cancel():
            event.accept()
            return
        super().keyPressEvent(event)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        super().drawForeground(painter, rect)
        self.wiring.paint(painter)

    # Drops

    def insertion_index(self, scene_pos: QPointF) -> int:
        """Where a layer dropped at ``scene_pos`` goes: before the first block, in the model's
        order, whose middle is below it, among the blocks of the column under the pointer (all
        blocks when none is there). A chain is one column, so this is the gap dropped on."""
        nodes = self.document.spec.nodes
        places = self.graph_layout.places if self.graph_layout else {}
        below = [
            (index, places[n.id])
            for index, n in enumerate(nodes)
            if n.id in places and scene_pos.y() < places[n.id].y + BLOCK_H / 2
        ]
        column = [(i, p) for i, p in below if abs(scene_pos.x() - p.x) <= p.w / 2]
        for index, _place in column or below:
            return index
        return len(nodes)

    def _block_at(self, scene_pos: QPointF) -> BlockItem | None:
        for item in self.scene().items(scene_pos):
            if isinstance(item, BlockItem):
                return item
        return None

    def _show_indicator(self, index: int | None) -> None:
        if self._indicator is not None:
            self.scene().removeItem(self._indicator)
            self._indicator = None
        if index is None or self.graph_layout is None:
            return
        nodes = self.document.spec.nodes
        if index < len(nodes):
            place = self.graph_layout.places.get(nodes[index].id)
            if place is None:  # an open block: its use is drawn as its layers
                return
            y = place.y - GAP / 2
        else:
            place = self.graph_layout.places[nodes[-1].id if nodes else INPUT]
            y = place.y + BLOCK_H + GAP / 2
        pen = QPen(QColor(colours().accent), 3)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        half = place.w / 2 + 8
        self._indicator = self.scene().addLine(place.x - half, y, place.x + half, y, pen)

    def dragEnterEvent(self, event) -> None:
        mimes = (MIME_KIND, MIME_MOVE, MIME_BLOCK)
        if any(event.mimeData().hasFormat(m) for m in mimes):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        mime = event.mimeData()
        scene_pos = self.mapToScene(event.position().toPoint())
        if mime.hasFormat(MIME_KIND) or mime.hasFormat(MIME_MOVE) or mime.hasFormat(MIME_BLOCK):
            self._show_indicator(self.insertion_index(scene_pos))
            event.acceptProposedAction()
            return
        event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self._show_indicator(None)

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        scene_pos = self.mapToScene(event.position().toPoint())
        self._show_indicator(None)
        index = self.insertion_index(scene_pos)
        if mime.hasFormat(MIME_KIND):
            kind = bytes(mime.data(MIME_KIND)).decode()
            if kind in LAYER_KINDS:
                command = InsertLayerCommand(self.document, kind, index)
                self.document.push(command)
                self.select([command.node.id])
                event.acceptProposedAction()
                return
        elif mime.hasFormat(MIME_BLOCK):
            self._drop_block(bytes(mime.data(MIME_BLOCK)).decode(), index)
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
        event.ignore()

    def _drop_block(self, name: str, index: int) -> None:
        """A use of the block ``name`` (the project's, or a built-in one) at ``index``."""
        try:
            command = InsertBlockCommand(self.document, name, index)
        except BlockError:
            return  # no such block: the palette offers only known ones
        self.document.push(command)
        self.select([command.node.id])
