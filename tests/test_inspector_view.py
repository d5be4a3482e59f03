"""The Inspect view, driven as a user drives it (offscreen): drops, pastes, layer choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from cnnstudio import build_model, create_model_spec
from cnnstudio.model_source import ModelSource
from tests.helpers import spec_of
from ui.inspector import InspectorView

ACTIONS = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction | Qt.DropAction.LinkAction
CLASSES = [f"class {i}" for i in range(10)]


def simple_source() -> ModelSource:
    torch.manual_seed(0)
    model = build_model(create_model_spec("simple-cnn")).eval()
    return ModelSource(
        model=model,
        input_shape=(3, 32, 32),
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        classes=tuple(CLASSES),
        label="simple-cnn (test)",
    )


def picture(path: Path, seed: int = 0, size: tuple[int, int] = (40, 48)) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def drop_files(view: InspectorView, *paths: Path) -> bool:
    """Drag files over the view and release them; returns whether the drag was accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    point = QPointF(view.width() / 2, view.height() / 2)
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    try:
        enter = QDragEnterEvent(point, ACTIONS, mime, buttons, modifiers)
    except TypeError:  # older PySide6 takes a QPoint
        enter = QDragEnterEvent(point.toPoint(), ACTIONS, mime, buttons, modifiers)
    QApplication.sendEvent(view, enter)
    if enter.isAccepted():
        QApplication.sendEvent(view, QDropEvent(point, ACTIONS, mime, buttons, modifiers))
    return enter.isAccepted()


@pytest.fixture
def view(qtbot):
    made = InspectorView()
    qtbot.addWidget(made)
    made.resize(1100, 760)
    made.show()
    made.set_model_source(simple_source)
    yield made
    made.shutdown()
    assert not made.busy(), "the inspection thread outlived the view"


def test_a_dropped_image_shows_the_maps_of_the_selected_layer(qtbot, view, tmp_path) -> None:
    with qtbot.waitSignal(view.inspected, timeout=60000) as got:
        assert drop_files(view, picture(tmp_path / "cat.png"))
    result = got.args[0]
    assert view.result is result and view.layer == "conv1"
    assert len(view.map_images) == 32
    assert all(item.image.shape == (32, 32) for item in view.map_images)
    assert len(view.filter_images) == 32
    assert all(item.image.shape == (3, 3, 3) for item in view.filter_images)  # RGB filters
    assert view.model_label.text() == "simple-cnn (test)"
    assert [row.probability for row in view.chart.rows()] == [
        p.probability for p in result.predictions
    ]
    assert [row.chosen for row in view.chart.rows()] == [
        p.index == result.target for p in result.predictions
    ]
    heat = view.heat_view.heat()
    assert (heat.width(), heat.height()) == (32, 32)
    tree = view.layer_tree
    assert tree.topLevelItemCount() == len(result.layers)
    assert tree.topLevelItem(0).text(2) == "32×32×32"


def test_a_text_file_gives_a_message_and_keeps_the_result(qtbot, view, tmp_path) -> None:
    with qtbot.waitSignal(view.inspected, timeout=60000):
        drop_files(view, picture(tmp_path / "cat.png"))
    before, images = view.result, list(view.map_images)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with qtbot.waitSignal(view.failed, timeout=60000) as got:
        drop_files(view, notes)
    assert "notes.txt: not an image" in got.args[0]
    assert view.message.isVisible() and "notes.txt" in view.message.text()
    assert view.result is before and view.map_images == images
    assert not drop_files(view, tmp_path)  # a folder is not taken


def test_choosing_another_layer_redraws_the_maps(qtbot, view, tmp_path) -> None:
    with qtbot.waitSignal(view.inspected, timeout=60000):
        drop_files(view, picture(tmp_path / "cat.png"))
    tree = view.layer_tree
    item = tree.findItems("conv3", Qt.MatchFlag.MatchExactly)[0]
    tree.scrollToItem(item)
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton,
                     pos=tree.visualItemRect(item).center())  # fmt: skip
    assert view.layer == "conv3"
    assert len(view.map_images) == 64
    assert all(item.image.shape == (16, 16) for item in view.map_images)
    assert all(item.image.shape == (3, 3) for item in view.filter_images)  # mean over inputs
    view.select_layer("relu2")
    assert len(view.map_images) == 32 and view.filter_images == []
    assert "only convolutions" in view.filters_note.text()
    view.select_layer("fc1")
    assert len(view.map_images) == 1 and view.map_images[0].image.shape == (1, 512)


def test_clicking_a_map_enlarges_it(qtbot, view, tmp_path) -> None:
    with qtbot.waitSignal(view.inspected, timeout=60000):
        drop_files(view, picture(tmp_path / "cat.png"))
    target = view.map_images[7]
    centre = target.mapRectToScene(target.boundingRect()).center()
    point = view.maps_widget.mapFromScene(centre)
    qtbot.mouseClick(view.maps_widget.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert view.enlarged_title.text() == "enlarged: map 8 of 32"
    np.testing.assert_array_equal(view.enlarged_item.image, view.result.maps["conv1"][7])


def test_explaining_another_class_and_the_opacity(qtbot, view, tmp_path) -> None:
    with qtbot.waitSignal(view.inspected, timeout=60000):
        drop_files(view, picture(tmp_path / "cat.png"))
    assert view.target_box.count() == 11
    other = next(i for i in range(10) if i != view.result.target)
    view.target_box.setCurrentIndex(other + 1)
    with qtbot.waitSignal(view.inspected, timeout=60000):
        view.target_box.activated.emit(other + 1)
    assert view.result.target == other and f"class {other}" in view.heat_view.title()
    view.opacity.setValue(80)
    assert view.heat_view.opacity() == pytest.approx(0.8)


def test_saliency_beside_grad_cam(qtbot, view, tmp_path) -> None:
    """The heat map's method is a choice; saliency is computed on the pool thread like Grad-CAM
    and matches the engine's ``saliency`` for the same image and class."""
    from cnnstudio.inspect import preprocess, saliency

    image = picture(tmp_path / "cat.png")
    with qtbot.waitSignal(view.inspected, timeout=60000):
        drop_files(view, image)
    grad_cam = view.result.heat
    assert [view.method_box.itemText(i) for i in range(view.method_box.count())] == [
        "Grad-CAM", "Saliency"
    ]  # fmt: skip
    view.method_box.setCurrentIndex(1)
    with qtbot.waitSignal(view.inspected, timeout=60000):
        view.method_box.activated.emit(1)
    result = view.result
    assert result.heat_method == "saliency" and view.heat_view.title().startswith("Saliency of")
    source = simple_source()
    x = preprocess(image, source.input_shape, source.mean, source.std)
    expected = saliency(source.model, x, result.target)
    assert result.heat.shape == expected.shape and not np.allclose(result.heat, grad_cam)
    assert np.allclose(result.heat, expected, atol=1e-5)
    view.grab().save("/tmp/win-inspect-saliency.png")


def test_paste_and_arrays(qtbot, view) -> None:
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, :15] = (250, 20, 20)
    image = QImage(pixels.data, 30, 20, 90, QImage.Format.Format_RGB888).copy()
    QApplication.clipboard().setImage(image)
    with qtbot.waitSignal(view.inspected, timeout=60000) as got:
        view.paste()
    shown = got.args[0].image
    assert shown.shape == (32, 32, 3)
    assert shown[:, :10, 0].min() > 0.9 and shown[:, 22:, 0].max() < 0.1
    with qtbot.waitSignal(view.inspected, timeout=60000) as got:
        view.inspect_array(np.full((8, 8), 0.5, np.float32))
    assert np.allclose(got.args[0].image, 128 / 255)


def test_a_backbone_model_lists_its_children(qtbot, view, tmp_path) -> None:
    spec = spec_of(
        ("backbone1", "Backbone", {"name": "resnet18", "weights": "none", "freeze": True}),
        ("fc", "Linear", {"out_features": 2}),
        input_shape=(3, 64, 64),
        num_classes=2,
    )
    model = build_model(spec, pretrained=False).eval()
    with qtbot.waitSignal(view.inspected, timeout=60000):
        view.set_model_source(
            ModelSource(
                model=model,
                input_shape=(3, 64, 64),
                mean=(0.5,) * 3,
                std=(0.25,) * 3,
                classes=("a", "b"),
            )
        )
        view.inspect_files([picture(tmp_path / "dog.png", 2)])
    top = view.layer_tree.topLevelItem(0)
    assert top.text(0) == "backbone1" and top.childCount() == 10
    assert top.child(7).text(0) == "layer4" and top.child(7).text(2) == "512×2×2"
    assert view.result.cam_layer == "backbone1.layer4"
    view.select_layer("backbone1.layer4")
    assert len(view.map_images) == 256 and "first 256 shown" in view.maps_note.text()


def test_no_model_says_so_and_shutdown_joins(qtbot, tmp_path) -> None:
    view = InspectorView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.failed, timeout=60000) as got:
        view.inspect_files([picture(tmp_path / "cat.png")])
    assert "no model to inspect" in got.args[0]
    view.set_model_source(simple_source)
    for seed in range(3):  # newest wins; shutdown joins whatever still runs
        view.inspect_files([picture(tmp_path / f"p{seed}.png", seed)])
    view.shutdown()
    assert not view.busy()


def test_a_burst_of_drops_costs_one_inspection_more(qtbot, view, tmp_path, monkeypatch) -> None:
    """Requests queued behind the running one are dropped unstarted when a newer one comes."""
    from ui.inspector import requests

    inspected, real = [], requests.inspect_image

    def counted(model, image, *args, **kwargs):
        inspected.append(image)
        return real(model, image, *args, **kwargs)

    monkeypatch.setattr(requests, "inspect_image", counted)
    paths = [picture(tmp_path / f"p{seed}.png", seed) for seed in range(6)]
    with qtbot.waitSignal(view.inspected, timeout=60000) as got:
        for path in paths:
            drop_files(view, path)
    qtbot.waitUntil(lambda: not view.busy(), timeout=60000)
    assert inspected[-1] == paths[-1] and len(inspected) <= 2
    assert view.result is got.args[0]


def test_a_source_is_loaded_once_for_all_its_inspections(qtbot, view, tmp_path) -> None:
    loads = []

    def load() -> ModelSource:
        loads.append(1)
        return simple_source()

    view.set_model_source(load)
    for seed in range(3):
        with qtbot.waitSignal(view.inspected, timeout=60000):
            view.inspect_files([picture(tmp_path / f"p{seed}.png", seed)])
    assert loads == [1]
