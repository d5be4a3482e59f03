"""The Inspect view at the window's default dock sizes (issue 19, item 5): the pictures use the
room they have (small inputs grow pixel by pixel), the top classes never overlap, the empty state
is drawn in the theme's colours, the feature maps and filters fill their boxes, and the heat map's
caption stays clear of the opacity row."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QWidget

from cnnstudio import build_model, create_model_spec
from cnnstudio.model_source import ModelSource
from tests.helpers import spec_of
from ui.inspector import InspectorView
from ui.theme import apply_theme, colours

# the bottom dock's contents at 1280×800 (about 860 wide, 38 % of the height less its title)
# and at 1920×1080
NARROW, WIDE = (860, 280), (1450, 380)
LONG_NAMES = tuple(f"a rather long class name, number {i}" for i in range(10))


def long_named_source() -> ModelSource:
    torch.manual_seed(0)
    return ModelSource(
        model=build_model(create_model_spec("simple-cnn")).eval(),
        input_shape=(3, 32, 32),
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        classes=LONG_NAMES,
        label="simple-cnn (long class names)",
    )


def make_view(qtbot, size: tuple[int, int]) -> InspectorView:
    view = InspectorView()
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    view.set_model_source(long_named_source)
    return view


def inspect_noise(qtbot, view: InspectorView) -> np.ndarray:
    """Inspect a 32×32 picture of random pixels; returns them as the view shows them (uint8)."""
    pixels = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with qtbot.waitSignal(view.inspected, timeout=60000) as got:
        view.inspect_array(pixels)
    return (np.clip(got.args[0].image, 0, 1) * 255).round().astype(np.uint8)


def in_view(view: InspectorView, widget: QWidget, rect: QRect | None = None) -> QRect:
    rect = widget.rect() if rect is None else rect
    return QRect(widget.mapTo(view, rect.topLeft()), rect.size())


@pytest.fixture(params=[NARROW, WIDE], ids=["1280x800", "1920x1080"])
def view(request, qtbot):
    made = make_view(qtbot, request.param)
    yield made
    made.shutdown()


def assert_sharp(view: InspectorView, shown: np.ndarray) -> None:
    """Near both edges of a few input pixels the screen shows exactly that pixel's colour: grown
    by nearest neighbour, not blurred."""
    rect = view.input_view.picture_rect()
    grabbed = view.input_view.grab().toImage()
    rows, cols = shown.shape[:2]
    step = rect.width() / cols
    for row, col in [(0, 0), (rows // 3, cols // 2), (rows - 1, cols - 1), (rows // 2, 1)]:
        for share in (0.2, 0.8):
            x = rect.left() + int((col + share) * step)
            y = rect.top() + int((row + share) * step)
            expected = QColor(*map(int, np.broadcast_to(shown[row, col], (3,))))
            assert grabbed.pixelColor(x, y) == expected, (row, col)


def test_a_32x32_input_is_drawn_large_with_sharp_pixels(qtbot, view) -> None:
    shown = inspect_noise(qtbot, view)
    for picture in (view.input_view, view.heat_view):
        rect = picture.picture_rect()
        assert rect.width() >= 5 * 32 and rect.height() >= 5 * 32, rect
        assert abs(rect.width() - rect.height()) <= 1  # square input, square picture
        assert picture.rect().contains(rect)
    assert_sharp(view, shown)


def test_an_8x8_grey_input_fills_the_narrow_dock(qtbot) -> None:
    spec = spec_of(
        ("conv1", "Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}),
        ("flatten1", "Flatten", {}),
        ("fc1", "Linear", {"out_features": 3}),
        input_shape=(1, 8, 8),
        num_classes=3,
    )
    torch.manual_seed(0)
    source = ModelSource(
        model=build_model(spec).eval(),
        input_shape=(1, 8, 8),
        mean=(0.5,),
        std=(0.25,),
        classes=("a", "b", "c"),
        label="8×8 grey",
    )
    view = make_view(qtbot, NARROW)
    view.set_model_source(source)
    pixels = np.random.default_rng(5).integers(0, 256, (8, 8), dtype=np.uint8)
    with qtbot.waitSignal(view.inspected, timeout=60000) as got:
        view.inspect_array(pixels)
    shown = (np.clip(got.args[0].image[:, :, 0], 0, 1) * 255).round().astype(np.uint8)
    rect = view.input_view.picture_rect()
    assert rect.width() >= 15 * 8 and rect.height() >= 15 * 8, rect
    assert_sharp(view, shown)
    view.shutdown()


def test_top_class_texts_never_overlap(qtbot, view) -> None:
    inspect_noise(qtbot, view)
    chart = view.chart
    texts = chart.text_rects()
    assert len(texts) == 10  # five names and five percentages, all shown
    for a, b in itertools.combinations(texts, 2):
        assert not a.intersects(b), (a, b)
    for index in range(len(chart.rows())):
        name, track, value = chart.row_rects(index)
        assert not track.intersects(name) and not track.intersects(value)
        assert chart.rect().contains(name) and chart.rect().contains(value)
    assert chart.rows()[0].name in LONG_NAMES


def test_the_heat_map_caption_stays_clear_of_the_opacity_row(qtbot, view) -> None:
    inspect_noise(qtbot, view)
    assert view.heat_view.title().startswith("Grad-CAM of a rather long class name")
    caption = in_view(view, view.heat_view, view.heat_view.title_rect())
    picture = in_view(view, view.heat_view, view.heat_view.picture_rect())
    slider = in_view(view, view.opacity)
    assert not caption.intersects(slider) and not picture.intersects(slider)
    assert not caption.intersects(picture)


def test_feature_maps_and_filters_fill_their_boxes(qtbot, view) -> None:
    inspect_noise(qtbot, view)
    if view.pages.isVisible():  # the narrow dock: the layers are on a page of their own
        assert not view.layers_panel.isVisible()
        view.pages.setCurrentIndex(1)
        assert view.layers_panel.isVisible() and not view.prediction_panel.isVisible()
    else:
        assert view.layers_panel.isVisible() and view.prediction_panel.isVisible()
    for box, items in ((view.maps_box, view.map_images), (view.filters_box, view.filter_images)):
        qtbot.waitUntil(lambda box=box: box.sceneBoundingRect().height() > 50)
        box.autoRange(padding=0.01)
        frame = box.sceneBoundingRect()
        drawn = items[0].sceneBoundingRect()
        for item in items[1:]:
            drawn = drawn.united(item.sceneBoundingRect())
        filled = max(drawn.width() / frame.width(), drawn.height() / frame.height())
        assert filled > 0.9, (filled, frame, drawn)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_empty_state_is_drawn_in_the_theme(qtbot, theme) -> None:
    apply_theme(QApplication.instance(), theme)
    try:
        view = make_view(qtbot, NARROW)
        base = QColor(colours().base)
        for widget in (view.chart, view.input_view, view.heat_view):
            image = widget.grab().toImage()
            corner = image.pixelColor(image.width() // 8, image.height() - 6)
            assert corner == base, (widget, corner.name(), base.name())
        assert view.chart.text_rects() == []
        view.shutdown()
    finally:
        apply_theme(QApplication.instance(), "light")
