"""The editor's layered layout: chains stay one column, branches sit side by side, every edge
carries its shape, blocks are as wide as their text."""

from __future__ import annotations

from itertools import pairwise

import pytest
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsSimpleTextItem

from cnnstudio import create_model_spec
from cnnstudio.layers import get_layer_kind
from cnnstudio.spec import INPUT, ModelSpec, Node
from ui.document import ProjectDocument
from ui.editor.canvas import ModelCanvas
from ui.editor.commands import SpecCommand
from ui.editor.layout import edges_of, layout_spec


def two_branches(input_shape=(3, 32, 32)) -> ModelSpec:
    """Two parallel convolution paths from the input, merged by a Concat (an Inception-ish
    module), then a classifier."""

    def node(node_id: str, kind: str, inputs: tuple[str, ...] = (), **params) -> Node:
        return Node(node_id, kind, {**get_layer_kind(kind).default_params(), **params}, inputs)

    nodes = (
        node("conv1", "Conv2d", out_channels=16),
        node("relu1", "ReLU"),
        node("conv2", "Conv2d", (INPUT,), out_channels=16, kernel_size=1, padding=0),
        node("cat1", "Concat", ("relu1", "conv2")),
        node("pool1", "AdaptiveAvgPool2d"),
        node("flatten1", "Flatten"),
        node("fc1", "Linear", out_features=10),
    )
    return ModelSpec(nodes, input_shape, 10)


def widths(spec: ModelSpec, w: float = 300.0) -> dict[str, float]:
    return {n.id: w for n in spec.nodes}


def test_a_chain_is_one_straight_column_in_model_order() -> None:
    spec = create_model_spec("simple-cnn", 10, (3, 32, 32))
    layout = layout_spec(spec, widths(spec), 180)
    xs = {round(layout.places[n.id].x, 3) for n in spec.nodes}
    assert xs == {layout.places[INPUT].x}
    tops = [layout.places[n.id].y for n in spec.nodes]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    assert all(len(route.points) == 2 for route in layout.routes)


def test_parallel_branches_sit_side_by_side_and_merge_below() -> None:
    spec = two_branches()
    layout = layout_spec(spec, widths(spec), 180)
    conv1, conv2, cat = (layout.places[i] for i in ("conv1", "conv2", "cat1"))
    assert conv1.row == conv2.row == 1
    assert abs(conv1.x - conv2.x) >= 300  # side by side, not overlapping
    assert cat.y > layout.places["relu1"].y


def test_no_two_blocks_overlap_and_every_edge_runs_downwards() -> None:
    spec = create_model_spec("resnet-small", 10, (3, 32, 32))
    layout = layout_spec(spec, widths(spec, 340), 180)
    by_row: dict[int, list] = {}
    for place in layout.places.values():
        by_row.setdefault(place.row, []).append(place)
    for row in by_row.values():
        row.sort(key=lambda p: p.x)
        for a, b in pairwise(row):
            assert a.x + a.w / 2 <= b.x - b.w / 2
    assert {(r.source, r.target) for r in layout.routes} == set(edges_of(spec))
    for route in layout.routes:
        ys = [y for _x, y in route.points]
        assert ys == sorted(ys)
        assert route.points[-1] == (layout.places[route.target].x, layout.places[route.target].y)


@pytest.mark.parametrize(
    "nodes",
    [
        (Node("a", "ReLU", {}, ("nowhere",)), Node("b", "Add", {}, ("x", "y"))),  # cut off
        (Node("a", "ReLU", {}, ("b",)), Node("b", "ReLU"), Node("c", "Add", {}, ("a", "b"))),
        (Node("a", "ReLU", {}, ("a",)),),  # its own input
        (),
    ],
    ids=["missing-inputs", "cycle", "self-loop", "empty"],
)
def test_a_broken_graph_still_lays_out_below_the_input(nodes) -> None:
    spec = ModelSpec(tuple(nodes))
    layout = layout_spec(spec, widths(spec), 180)
    assert set(layout.places) == {INPUT, *(n.id for n in nodes)}
    assert all(p.row >= 1 for i, p in layout.places.items() if i != INPUT)


def settle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.document.analysis_is_current)


def test_the_canvas_draws_branches_side_by_side_with_shapes_on_edges(qtbot, window) -> None:
    window.document.push(SpecCommand(window.document, two_branches(), "branches"))
    settle(qtbot, window)
    blocks = window.canvas.blocks
    assert blocks["conv1"].pos().y() == blocks["conv2"].pos().y()
    assert (
        blocks["conv1"]
        .sceneBoundingRect()
        .intersected(blocks["conv2"].sceneBoundingRect())
        .isEmpty()
    )
    labels = [
        i.text() for i in window.canvas.scene().items() if isinstance(i, QGraphicsSimpleTextItem)
    ]
    assert labels.count("3×32×32") >= 2  # the input feeds both branches
    assert "32×32×32" in labels  # the Concat's output, on its edge to the pool
    window.grab().save("/tmp/layout-branches-window.png")


@pytest.fixture
def canvas(qtbot):
    """The canvas alone on a document (the whole window with a 32-channel 224×224 model
    is left to the window tests)."""
    document = ProjectDocument()
    view = ModelCanvas(document)
    qtbot.addWidget(view)
    yield view
    document.shutdown()
    document.undo_stack.clear()


def test_blocks_are_wide_enough_for_their_shape(qtbot, canvas) -> None:
    spec = two_branches((32, 224, 224))  # the example: "2×224×224" was shown
    canvas.document.push(SpecCommand(canvas.document, spec, "wide"))
    qtbot.waitUntil(lambda: canvas.document.analysis_is_current)
    assert canvas.blocks["conv1"].text.shape == "16×224×224"
    block = canvas.blocks["cat1"]
    assert block.text.shape == "32×224×224"
    bold = canvas.font()
    bold.setBold(True)
    title_w = QFontMetricsF(bold).horizontalAdvance("Concat")
    shape_w = QFontMetricsF(bold).horizontalAdvance(block.text.shape)
    right_w = QFontMetricsF(canvas.font()).horizontalAdvance(block.text.right)
    assert block.width >= 44 + title_w + max(shape_w, right_w)


def test_shape_labels_keep_clear_of_every_block_and_port(qtbot, window) -> None:
    window.document.push(SpecCommand(window.document, two_branches(), "branches"))
    settle(qtbot, window)
    items = window.canvas.scene().items()
    labels = [
        i
        for i in items
        if isinstance(i, QGraphicsSimpleTextItem) and "×" in i.text() and "Input" not in i.text()
    ]
    boxes = [b.sceneBoundingRect() for b in window.canvas.blocks.values()]  # ports included
    boxes += [i.sceneBoundingRect() for i in items if isinstance(i, QGraphicsEllipseItem)]
    boxes += [i.sceneBoundingRect() for i in items if i.toolTip().startswith("The model's input")]
    assert len(labels) >= 3 and len(boxes) >= 4
    for label in labels:  # the input's edge label touched the pill's port and conv1's
        rect = label.sceneBoundingRect()
        assert not any(rect.intersects(box) for box in boxes), label.text()
