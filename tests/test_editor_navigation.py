"""Finding one's way in a big graph: the overview (shown only when the graph does not fit, a click
moves the view), a Fit that keeps text readable, Whole Graph, the first view on the input, and an
edit that redraws only the block it changed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QKeySequence

from cnnstudio import new_project
from cnnstudio.layers import get_layer_kind
from cnnstudio.spec import INPUT, ModelSpec, Node
from ui.document import ProjectDocument
from ui.editor.canvas import TEXT_LOD, ModelCanvas
from ui.editor.commands import InsertLayerCommand, ReplaceModelCommand, SetParamCommand
from ui.editor.navigation import READABLE_ZOOM


def node(node_id: str, kind: str, inputs: tuple[str, ...] = (), **params) -> Node:
    return Node(node_id, kind, {**get_layer_kind(kind).default_params(), **params}, inputs)


def chain(blocks: int) -> ModelSpec:
    """A plain chain of ``blocks`` conv + ReLU pairs: one tall column."""
    nodes = []
    for i in range(blocks):
        nodes += [node(f"conv{i}", "Conv2d", out_channels=8), node(f"relu{i}", "ReLU")]
    nodes += [node("pool", "AdaptiveAvgPool2d"), node("flat", "Flatten"), node("fc", "Linear")]
    return ModelSpec(tuple(nodes), (3, 16, 16), 10)


def wide(branches: int) -> ModelSpec:
    """``branches`` convolutions side by side on the input, concatenated: one wide row."""
    convs = [node(f"b{i}", "Conv2d", (INPUT,), out_channels=4) for i in range(branches)]
    cat = node("cat", "Concat", tuple(c.id for c in convs))
    tail = [node("pool", "AdaptiveAvgPool2d"), node("flat", "Flatten"), node("fc", "Linear")]
    return ModelSpec((*convs, cat, *tail), (3, 16, 16), 10)


@pytest.fixture
def canvas_with(qtbot):
    """A shown 800×600 canvas on a document holding ``spec``, drawn."""
    documents = []

    def make(spec: ModelSpec) -> ModelCanvas:
        document = ProjectDocument()
        documents.append(document)
        canvas = ModelCanvas(document)
        qtbot.addWidget(canvas)
        canvas.resize(800, 600)
        canvas.show()
        qtbot.waitExposed(canvas)
        document.replace_project(replace(new_project(), model=spec))  # as File > Open does
        qtbot.waitUntil(lambda: document.analysis_is_current and document.analysis is not None)
        return canvas

    yield make
    for document in documents:
        document.shutdown()
        document.undo_stack.clear()  # before the stack outlives its document's signals


def visible(canvas: ModelCanvas):
    return canvas.mapToScene(canvas.viewport().rect()).boundingRect()


def test_overview_appears_for_a_big_graph_and_not_for_a_small_one(canvas_with, qtbot):
    big = canvas_with(chain(30))
    qtbot.waitUntil(big.overview.isVisible)
    small = canvas_with(chain(1))
    qtbot.wait(50)  # the overview is drawn on the next turn of the event loop
    assert not small.overview.isVisible()
    big.zoom_whole()  # the whole graph in view: nothing to find
    qtbot.waitUntil(lambda: not big.overview.isVisible())


def test_clicking_the_overview_moves_the_view_there(canvas_with, qtbot):
    canvas = canvas_with(chain(30))
    qtbot.waitUntil(canvas.overview.isVisible)
    overview = canvas.overview
    assert visible(canvas).top() <= canvas.sceneRect().top() + 1  # at the input
    near_bottom = QPoint(overview.width() // 2, overview.height() - 6)
    target = overview.scene_point(QPointF(near_bottom))
    qtbot.mouseClick(overview, Qt.MouseButton.LeftButton, pos=near_bottom)
    assert visible(canvas).contains(target)
    assert visible(canvas).top() > canvas.sceneRect().center().y()
    frame = overview.visible_rect()
    assert frame.top() > overview.height() / 2  # the frame follows the view


def test_the_overview_fits_a_smaller_view(canvas_with, qtbot):
    canvas = canvas_with(chain(60))
    qtbot.waitUntil(canvas.overview.isVisible)
    canvas.resize(800, 300)
    qtbot.waitUntil(lambda: canvas.overview.height() < canvas.viewport().height())


def test_overview_toggle_hides_it(canvas_with, qtbot):
    canvas = canvas_with(chain(30))
    qtbot.waitUntil(canvas.overview.isVisible)
    canvas.overview.set_enabled(False)
    assert not canvas.overview.isVisible()
    canvas.overview.set_enabled(True)
    assert canvas.overview.isVisible()


def test_fit_of_a_tall_graph_keeps_text_readable_and_shows_the_selection(canvas_with, qtbot):
    canvas = canvas_with(chain(60))
    canvas.select(["conv40"])
    canvas.zoom_to_fit()
    zoom = canvas.transform().m11()
    assert zoom >= READABLE_ZOOM > TEXT_LOD
    assert visible(canvas).contains(canvas.blocks["conv40"].sceneBoundingRect())
    canvas.zoom_whole()
    assert canvas.transform().m11() < TEXT_LOD  # everything, text hidden
    assert visible(canvas).adjusted(-1, -1, 1, 1).contains(canvas.sceneRect())


def test_fit_of_a_small_graph_shows_it_whole_at_most_at_1_to_1(canvas_with):
    canvas = canvas_with(chain(1))
    canvas.zoom_to_fit()
    assert canvas.transform().m11() <= 1.0
    assert visible(canvas).adjusted(-1, -1, 1, 1).contains(canvas.sceneRect())


def test_zooming_out_stops_at_the_whole_graph(canvas_with):
    canvas = canvas_with(chain(60))
    for _ in range(60):
        canvas.zoom_by(1 / 1.2)
    canvas.zoom_whole()
    whole = canvas.transform().m11()
    canvas.zoom_by(1 / 1.2)
    assert canvas.transform().m11() == pytest.approx(whole)
    assert whole < 0.25  # below the old floor: a 300-layer graph can be seen whole


def test_the_first_view_of_a_wide_graph_is_centred_on_the_input(canvas_with, qtbot):
    canvas = canvas_with(wide(8))
    assert canvas.sceneRect().width() > canvas.viewport().width()  # wider than the view
    x = canvas.graph_layout.places[INPUT].x
    qtbot.waitUntil(
        lambda: abs(canvas.mapFromScene(QPointF(x, 0)).x() - canvas.viewport().width() / 2) <= 2
    )
    assert visible(canvas).top() <= canvas.sceneRect().top() + 1


def test_an_edit_of_one_setting_keeps_the_other_blocks(canvas_with, qtbot):
    canvas = canvas_with(chain(10))
    document = canvas.document
    before = dict(canvas.blocks)
    bias = before["conv5"].node.params["bias"]
    document.push(SetParamCommand(document, "conv5", "bias", not bias))
    qtbot.waitUntil(lambda: document.analysis_is_current)
    assert canvas.blocks["conv5"] is not before["conv5"]
    assert canvas.blocks["conv5"].node.params["bias"] is not bias
    kept = [i for i in before if i != "conv5" and canvas.blocks[i] is before[i]]
    assert len(kept) == len(before) - 1
    assert all(canvas.blocks[i].scene() is canvas.scene() for i in canvas.blocks)
    document.undo_stack.undo()
    qtbot.waitUntil(lambda: document.analysis_is_current)
    assert canvas.blocks["conv5"].node.params["bias"] is bias
    assert canvas.blocks["conv0"] is before["conv0"]


def test_an_edit_that_changes_shapes_redraws_the_blocks_downstream(canvas_with, qtbot):
    canvas = canvas_with(chain(3))
    document = canvas.document
    before = dict(canvas.blocks)
    document.push(SetParamCommand(document, "conv1", "out_channels", 16))
    qtbot.waitUntil(lambda: document.analysis_is_current)
    assert canvas.blocks["conv0"] is before["conv0"]  # upstream: unchanged
    assert canvas.blocks["conv2"] is not before["conv2"]  # its input has 16 channels now
    assert canvas.blocks["conv2"].text.describe.startswith("16 →")


def test_the_view_menu_has_whole_graph_and_the_overview_toggle(window):
    assert window.fit_action.shortcut() == QKeySequence("Ctrl+0")
    assert window.whole_graph_action.shortcut() == QKeySequence("Ctrl+9")
    assert QKeySequence("Ctrl+=") in window.zoom_in_action.shortcuts()  # Ctrl++ without Shift
    window.overview_action.setChecked(False)
    assert not window.canvas.overview.enabled
    window.overview_action.setChecked(True)
    assert window.canvas.overview.enabled


def test_a_new_model_in_the_canvas_is_shown_from_its_input(canvas_with, qtbot):
    canvas = canvas_with(chain(30))
    canvas.verticalScrollBar().setValue(canvas.verticalScrollBar().maximum())
    document = canvas.document
    document.push(ReplaceModelCommand(document, wide(8), "a template"))
    qtbot.waitUntil(lambda: document.analysis_is_current)
    x = canvas.graph_layout.places[INPUT].x
    qtbot.waitUntil(
        lambda: abs(canvas.mapFromScene(QPointF(x, 0)).x() - canvas.viewport().width() / 2) <= 2
    )
    assert visible(canvas).top() <= canvas.sceneRect().top() + 1
    assert canvas.horizontalScrollBar().maximum() > 0  # the wider scene can be scrolled across


def test_a_layer_added_keeps_the_blocks_around_it(canvas_with, qtbot):
    canvas = canvas_with(chain(10))
    document = canvas.document
    before = dict(canvas.blocks)
    command = InsertLayerCommand(document, "ReLU", document.spec.index("conv5"))
    document.push(command)
    assert canvas.blocks["conv0"] is before["conv0"]  # drawn at once, the analysis still to come
    qtbot.waitUntil(lambda: document.analysis_is_current)
    assert command.node.id in canvas.blocks
    assert canvas.blocks["conv0"] is before["conv0"]
    assert canvas.blocks["fc"] is before["fc"]


def test_the_rightmost_blocks_of_a_wide_graph_can_be_scrolled_out_from_under_the_overview(
    canvas_with, qtbot
):
    branches = wide(12)
    tail = chain(20).nodes  # a long column under the row: the overview grows tall
    spec = replace(branches, nodes=(*branches.nodes[:-3], *tail))
    canvas = canvas_with(spec)
    overview = canvas.overview
    qtbot.waitUntil(overview.isVisible)
    assert overview.height() > 100  # as tall as the top row of blocks is low
    bar = canvas.horizontalScrollBar()
    bar.setValue(bar.maximum())
    canvas.verticalScrollBar().setValue(0)
    last = canvas.blocks["b11"].sceneBoundingRect()
    on_screen = canvas.mapFromScene(last).boundingRect()
    assert canvas.viewport().rect().contains(on_screen)  # the whole block is in view...
    assert not on_screen.intersects(overview.geometry())  # ...and none of it under the overview
    overview.set_enabled(False)  # without the overview the scene ends at the graph's margin
    assert canvas.sceneRect() == canvas.scene().sceneRect()
