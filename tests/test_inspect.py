"""The inspector's engine: feature maps, filters, top-k, Grad-CAM (checked against captum),
saliency, the one-call inspection, the pictures, and the `inspect` command."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

from cnnstudio import analyze, build_model, create_model_spec
from cnnstudio.errors import InspectError
from cnnstudio.inspect import (
    Inspection,
    default_cam_layer,
    feature_maps,
    filters,
    grad_cam,
    inspect_image,
    inspectable_layers,
    load_pixels,
    preprocess,
    saliency,
    top_k,
)
from cnnstudio.pictures import grid_image, overlay
from tests.helpers import every_template, spec_of

ROOT = Path(__file__).resolve().parents[1]


def seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and batch-norm statistics, so that no layer is the identity."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def backbone_spec(size: int = 64, freeze: bool = True):
    return spec_of(
        ("backbone1", "Backbone", {"name": "resnet18", "weights": "none", "freeze": freeze}),
        ("fc", "Linear", {"out_features": 3}),
        input_shape=(3, size, size),
        num_classes=3,
    )


# Feature maps


def test_the_classic_worked_example_of_a_convolution() -> None:
    image = torch.tensor(
        [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]],
        dtype=torch.float32,
    )
    conv = nn.Conv2d(1, 1, kernel_size=3, bias=False)
    conv.weight.data[:] = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.float32)
    model = nn.Sequential(OrderedDict(conv=conv))
    maps = feature_maps(model, image[None, None], ["conv"])
    assert maps["conv"].shape == (1, 3, 3)
    np.testing.assert_array_equal(maps["conv"][0], [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


@pytest.mark.parametrize("template", every_template())
def test_feature_maps_have_the_shapes_the_analysis_predicts(template: str) -> None:
    spec = create_model_spec(template)
    analysis = analyze(spec)
    model = build_model(spec, pretrained=False, analysis=analysis)
    x = torch.randn(1, *spec.input_shape)
    names = [info.id for info in analysis.layers]
    maps = feature_maps(model, x, names)
    for info in analysis.layers:
        assert maps[info.id].shape == tuple(info.output_shape), info.id
    listed = {entry.name: entry.output_shape for entry in inspectable_layers(spec)}
    assert all(listed[info.id] == tuple(info.output_shape) for info in analysis.layers)


def test_feature_maps_are_taken_before_an_inplace_relu_changes_them() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    model = seeded(nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU(inplace=True))))
    x = torch.randn(1, 3, 8, 8)
    maps = feature_maps(model, x, ["conv", "relu"])
    expected = conv(x).detach()[0].numpy()
    np.testing.assert_allclose(maps["conv"], expected, atol=1e-6)
    assert maps["conv"].min() < 0 and maps["relu"].min() >= 0


def test_an_unknown_layer_names_the_valid_ones() -> None:
    model = build_model(create_model_spec("simple-cnn"))
    with pytest.raises(InspectError, match=r"no layer 'conv9'.*conv1, bn1, relu1") as caught:
        feature_maps(model, torch.randn(1, 3, 32, 32), ["conv9"])
    assert caught.value.layer == "conv9"


def test_hooks_are_removed_also_when_the_forward_pass_fails() -> None:
    model = build_model(create_model_spec("simple-cnn"))
    with pytest.raises(RuntimeError):
        feature_maps(model, torch.randn(1, 3, 20, 20), ["conv1"])  # wrong size for fc1
    assert all(not m._forward_hooks for m in model.modules())


# Inside a Backbone


@pytest.mark.slow
def test_a_backbone_submodule_can_be_inspected() -> None:
    spec = backbone_spec()
    model = build_model(spec, pretrained=False)
    model.train()
    x = torch.randn(1, 3, 64, 64)
    maps = feature_maps(model, x, ["backbone1.layer4", "backbone1.net.layer4", "backbone1"])
    assert maps["backbone1.layer4"].shape == (512, 2, 2)
    np.testing.assert_array_equal(maps["backbone1.layer4"], maps["backbone1.net.layer4"])
    heat = grad_cam(model, x, "backbone1.layer4")
    assert heat.shape == (64, 64) and heat.max() == pytest.approx(1.0)
    # the frozen backbone stays frozen and in eval mode, the head keeps training mode
    assert all(not p.requires_grad for p in model.backbone1.parameters())
    assert model.fc.weight.requires_grad and model.training and model.fc.training
    assert not model.backbone1.net.training
    assert all(p.grad is None for p in model.parameters())
    names = [entry.name for entry in inspectable_layers(model, spec.input_shape)]
    assert names[:3] == ["backbone1", "backbone1.conv1", "backbone1.bn1"]
    assert "backbone1.layer4" in names and names[-1] == "fc"


# Filters


def test_filters_of_an_rgb_convolution_are_colour_pictures() -> None:
    conv = nn.Conv2d(3, 6, 5)
    model = nn.Sequential(OrderedDict(conv1=conv, conv2=nn.Conv2d(6, 4, 3)))
    rgb = filters(model, "conv1")
    assert rgb.shape == (6, 5, 5, 3) and rgb.dtype == np.float32
    assert np.allclose(rgb.reshape(6, -1).min(1), 0) and np.allclose(rgb.reshape(6, -1).max(1), 1)
    # the order of the values is kept: the brightest pixel is the largest weight
    weight = conv.weight.detach().permute(0, 2, 3, 1).numpy()
    assert np.argmax(rgb[0]) == np.argmax(weight[0])
    mean = filters(model, "conv2")
    assert mean.shape == (4, 3, 3)
    one = filters(model, "conv2", channel=5)
    expected = model.conv2.weight.detach()[:, 5].numpy()
    assert np.argmin(one[1]) == np.argmin(expected[1])
    with pytest.raises(InspectError, match="no channel 6"):
        filters(model, "conv2", channel=6)


def test_a_constant_filter_is_mid_grey_and_a_non_convolution_has_none() -> None:
    conv = nn.Conv2d(1, 2, 3)
    conv.weight.data[0] = 0.7
    model = nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU()))
    shown = filters(model, "conv")
    assert np.all(shown[0] == 0.5) and not np.isnan(shown).any()
    with pytest.raises(InspectError, match="layer relu is a ReLU, not a convolution"):
        filters(model, "relu")


# Top-k


def test_top_k_is_sorted_and_named() -> None:
    model = seeded(build_model(create_model_spec("simple-cnn", num_classes=6)), 3)
    classes = ["ant", "bee", "cat", "dog", "eel", "fox"]
    x = torch.randn(1, 3, 32, 32)
    best = top_k(model, x, 3, classes)
    assert len(best) == 3
    probabilities = [p.probability for p in best]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1 + 1e-6
    logits = model(x)[0]
    assert best[0].index == int(logits.argmax()) and best[0].name == classes[best[0].index]
    assert all(name == classes[index] for index, name, _ in best)
    every = top_k(model, x, 50, classes)
    assert len(every) == 6 and sum(p.probability for p in every) == pytest.approx(1, abs=1e-5)


# Grad-CAM


def planted_model() -> nn.Module:
    """Channel 0 finds red, channel 1 green; class 0 is "how red", class 1 "how green"."""
    conv = nn.Conv2d(3, 2, 1, bias=False)
    conv.weight.data[:, :, 0, 0] = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]])
    head = nn.Linear(2, 2, bias=False)
    head.weight.data = torch.eye(2)
    layers = OrderedDict(conv=conv, relu=nn.ReLU(inplace=True), pool=nn.AdaptiveAvgPool2d(1),
                         flat=nn.Flatten(), fc=head)  # fmt: skip
    return nn.Sequential(layers).eval()


def planted_image() -> torch.Tensor:
    """A red square top left, a green one bottom right, black elsewhere (16×16)."""
    x = torch.zeros(1, 3, 16, 16)
    x[0, 0, 2:6, 2:6] = 1.0
    x[0, 1, 10:14, 10:14] = 1.0
    return x


def test_grad_cam_looks_where_the_class_is_decided() -> None:
    model, x = planted_model(), planted_image()
    red = grad_cam(model, x, "relu", target=0)
    green = grad_cam(model, x, "relu", target=1)
    for heat in (red, green):
        assert heat.shape == (16, 16) and heat.dtype == np.float32
        assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert red[2:6, 2:6].mean() > 0.5 and red[10:14, 10:14].max() == 0
    assert green[10:14, 10:14].mean() > 0.5 and green[2:6, 2:6].max() == 0
    outside = np.ones((16, 16), bool)
    outside[1:7, 1:7] = False
    assert red[2:6, 2:6].mean() > 10 * red[outside].mean()
    salient = saliency(model, x, target=0)
    assert salient.shape == (16, 16) and salient.min() >= 0 and salient.max() == pytest.approx(1)
    assert salient[2:6, 2:6].mean() > salient[outside].mean()


def test_an_empty_heat_map_stays_zero() -> None:
    heat = grad_cam(planted_model(), torch.zeros(1, 3, 16, 16), "relu", target=0)
    assert not np.isnan(heat).any() and np.all(heat == 0)


def test_grad_cam_works_through_inplace_relus() -> None:
    def make(inplace: bool) -> nn.Module:
        torch.manual_seed(7)
        layers = OrderedDict(
            conv1=nn.Conv2d(3, 8, 3, padding=1), bn1=nn.BatchNorm2d(8), relu1=nn.ReLU(inplace),
            conv2=nn.Conv2d(8, 8, 3, padding=1), relu2=nn.ReLU(inplace),
            pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(8, 4),
        )  # fmt: skip
        return seeded(nn.Sequential(layers), 7)

    x = torch.randn(1, 3, 12, 12)
    for layer in ("conv1", "bn1", "conv2"):
        plain = grad_cam(make(False), x, layer, target=2)
        inplace = grad_cam(make(True), x, layer, target=2)
        np.testing.assert_allclose(inplace, plain, atol=1e-6)
        assert plain.max() > 0


def test_grad_cam_leaves_the_model_as_it_was() -> None:
    model = build_model(create_model_spec("simple-cnn"))
    model.train()
    model.conv1.requires_grad_(False)
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    heat = grad_cam(model, torch.randn(1, 3, 32, 32), "relu4")
    assert heat.shape == (32, 32)
    assert all(m.training for m in model.modules())
    assert not model.conv1.weight.requires_grad and model.conv2.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # BN stats too
    assert all(not m._forward_hooks for m in model.modules())


def test_grad_cam_needs_a_spatial_layer() -> None:
    model = build_model(create_model_spec("simple-cnn"))
    with pytest.raises(InspectError, match="layer fc1 gives a 512 output"):
        grad_cam(model, torch.randn(1, 3, 32, 32), "fc1")
    with pytest.raises(InspectError, match="no class 'zebra'"):
        grad_cam(model, torch.randn(1, 3, 32, 32), "conv1", target="zebra", classes=["a"] * 10)


def captum_grad_cam(model: nn.Module, x: torch.Tensor, layer: str, target: int) -> np.ndarray:
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(model, model.get_submodule(layer))
    attribution = cam.attribute(x, target=target, relu_attributions=True)
    upsampled = LayerAttribution.interpolate(attribution, tuple(x.shape[-2:]), "bilinear")
    heat = upsampled[0, 0].detach()
    return (heat / heat.max() if heat.max() > 0 else heat).numpy()


@pytest.mark.parametrize(
    ("template", "layers"),
    [("simple-cnn", ["conv2", "relu4", "pool2"]), ("resnet-small", ["conv1", "conv4", "relu7"])],
)
@pytest.mark.slow
def test_grad_cam_matches_captum(template: str, layers: list[str]) -> None:
    model = seeded(build_model(create_model_spec(template)), 11)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    shown = 0
    for layer in layers:
        for target in (0, 3, 7):
            ours = grad_cam(model, x, layer, target=target)
            theirs = captum_grad_cam(model, x, layer, target)
            assert np.abs(ours - theirs).max() < 1e-5, (layer, target)
            shown += ours.max() == pytest.approx(1.0)
    assert shown >= 4  # most maps are not empty


# One call for the view


def test_inspect_image_gives_what_the_view_draws(tmp_path: Path) -> None:
    spec = create_model_spec("resnet-small", num_classes=4)
    model = seeded(build_model(spec), 2)
    path = tmp_path / "photo.png"
    pixels = np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    classes = ["w", "x", "y", "z"]
    result = inspect_image(model, path, spec.input_shape, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3),
                           classes, k=3)  # fmt: skip
    assert isinstance(result, Inspection)
    assert result.image.shape == (32, 32, 3) and result.image.dtype == np.float32
    assert result.image.min() >= 0 and result.image.max() <= 1
    assert [p.name for p in result.predictions] == [classes[p.index] for p in result.predictions]
    assert len(result.predictions) == 3 and result.target == result.predictions[0].index
    assert result.cam_layer == "relu7" == default_cam_layer(result.layers)
    assert result.heat.shape == (32, 32)
    assert result.layer == "conv1" and result.feature_maps.shape == (16, 32, 32)
    names = [entry.name for entry in result.layers]
    assert names == [info.id for info in analyze(spec).layers]
    assert set(result.maps) == set(names)
    assert set(result.filters) == {e.name for e in result.layers if e.kind == "Conv2d"}
    # the same numbers as the single-purpose functions
    x = preprocess(path, spec.input_shape, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    np.testing.assert_allclose(result.heat, grad_cam(model, x, "relu7"), atol=1e-6)
    np.testing.assert_allclose(result.maps["conv4"], feature_maps(model, x, "conv4")["conv4"])
    chosen = inspect_image(model, path, spec.input_shape, (0.5,) * 3, (0.2,) * 3, classes,
                           "conv3", cam_layer="conv4", target="y")  # fmt: skip
    assert chosen.layer == "conv3" and chosen.cam_layer == "conv4" and chosen.target == 2
    assert chosen.target_name == "y"


def test_default_grad_cam_layers() -> None:
    simple = inspectable_layers(create_model_spec("simple-cnn"))
    assert default_cam_layer(simple) == "relu4"
    assert default_cam_layer(inspectable_layers(backbone_spec())) == "backbone1.layer4"
    dense = inspectable_layers(
        spec_of(("flat", "Flatten", {}), ("fc", "Linear", {"out_features": 10}))
    )
    assert default_cam_layer(dense) is None


# Images in


def test_preprocess_matches_training_normalisation(tmp_path: Path) -> None:
    from cnnstudio.images import decode_image

    path = tmp_path / "a.jpg"
    pixels = np.random.default_rng(2).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = preprocess(path, (3, 24, 24), mean, std)
    decoded = torch.from_numpy(decode_image(path, 3, (24, 24))).float() / 255
    expected = (decoded - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert x.shape == (1, 3, 24, 24)
    torch.testing.assert_close(x[0], expected, atol=1e-5, rtol=1e-5)
    same = preprocess(Image.open(path), (3, 24, 24), mean, std)
    torch.testing.assert_close(same, x)
    grey = preprocess(pixels, (1, 16, 16), (0.5,), (0.5,))
    assert grey.shape == (1, 1, 16, 16) and grey.min() >= -1 and grey.max() <= 1


def test_a_file_that_is_not_an_image_is_named(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(InspectError, match=r"notes\.txt: not an image") as caught:
        preprocess(text, (3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    assert caught.value.path == text
    with pytest.raises(InspectError, match="no such file"):
        load_pixels(tmp_path / "missing.png", (3, 8, 8))
    truncated = tmp_path / "cut.png"
    Image.new("RGB", (64, 64), "red").save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(InspectError, match=r"cut\.png"):
        load_pixels(truncated, (3, 8, 8))


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    channels=st.sampled_from([None, 1, 2, 3, 4, 5]),
    floating=st.booleans(),
    target=st.sampled_from([(1, 9, 7), (3, 12, 12)]),
)
def test_any_array_becomes_the_input_shape_or_a_clear_error(
    height: int, width: int, channels: int | None, floating: bool, target: tuple
) -> None:
    shape = (height, width) if channels is None else (height, width, channels)
    array = np.random.default_rng(0).random(shape)
    if not floating:
        array = (array * 255).astype(np.uint8)
    if channels in (2, 5):
        with pytest.raises(InspectError, match="an image array must be"):
            load_pixels(array, target)
        return
    pixels = load_pixels(array, target)
    assert pixels.shape == (target[1], target[2], target[0]) and pixels.dtype == np.uint8


# Pictures out


def test_grid_and_overlay_pictures() -> None:
    maps = np.random.default_rng(0).random((10, 8, 6)).astype(np.float32)
    grid = grid_image(maps, cell=32, pad=2)
    # 4 columns, 3 rows of 8×6 maps enlarged 4 times
    assert grid.mode == "RGB" and grid.size == (4 * (24 + 2) + 2, 3 * (32 + 2) + 2)
    rgb = grid_image(np.random.default_rng(0).random((3, 5, 5, 3)), columns=3, cell=5, pad=1)
    assert rgb.size == (3 * 6 + 1, 7)
    flat = grid_image(np.zeros((2, 4, 4)))
    assert np.isfinite(np.asarray(flat)).all()
    heat = np.zeros((16, 16), np.float32)
    heat[:8] = 1
    picture = overlay(np.full((16, 16, 3), 0.5, np.float32), heat, alpha=0.6, scale=2)
    assert picture.size == (32, 32)
    top, bottom = np.asarray(picture)[0, 0], np.asarray(picture)[-1, 0]
    assert top[0] > bottom[0] and bottom[2] > top[2]  # hot is red, cold is blue (jet)


# The command


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnstudio", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny four-colour project trained for one epoch."""
    from cnnstudio import Project
    from cnnstudio.data import DataSettings
    from cnnstudio.train import Trainer
    from cnnstudio.train_settings import check_training
    from tests.test_train import colour_folder, tiny_model

    root = tmp_path_factory.mktemp("trained")
    images = colour_folder(root / "images")
    training = check_training({"epochs": 1, "batch_size": 16, "lr": 0.01, "workers": 0})
    project = Project(model=tiny_model(), name="tiny", training=training, path=root / "proj",
                      data=DataSettings(source="folder", path=str(images)))  # fmt: skip
    project.save()
    assert type(Trainer(project).run()).__name__ == "Finished"
    return root


@pytest.mark.slow
def test_inspect_command_writes_pictures_and_prints_the_top_classes(trained: Path) -> None:
    out = trained / "out"
    image = trained / "images" / "c2" / "0.png"
    done = cli("inspect", str(trained / "proj"), str(image), "--top", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(".")[0] for line in lines[:3]] == ["1", "2", "3"]
    for line in lines[:3]:
        name, share = line.split(" ")[1:]
        assert name in {"c0", "c1", "c2", "c3"} and share.endswith("%")
    assert "Grad-CAM of" in lines[3]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["filters_conv1.png", "gradcam.png", "maps_conv1.png"]
    for name in files:
        with Image.open(out / name) as picture:
            picture.verify()
    with Image.open(out / "filters_conv1.png") as picture:
        assert picture.size == (3 * (63 + 2) + 2, 3 * (63 + 2) + 2)  # 8 filters of 3×3
    more = cli("inspect", str(trained / "proj"), str(image), "--layer", "relu1", "--layer",
               "fc", "--target", "c0", "--out", str(trained / "more"))  # fmt: skip
    assert more.returncode == 0, more.stderr
    assert "Grad-CAM of c0 at relu1" in more.stdout
    assert {p.name for p in (trained / "more").iterdir()} == {
        "maps_relu1.png", "maps_fc.png", "filters_conv1.png", "gradcam.png"}  # fmt: skip


@pytest.mark.slow
def test_inspect_command_errors_are_one_line(trained: Path, tmp_path: Path) -> None:
    fresh = cli("new", str(tmp_path / "fresh"))
    assert fresh.returncode == 0, fresh.stderr
    image = trained / "images" / "c0" / "1.png"
    no_run = cli("inspect", str(tmp_path / "fresh"), str(image), "--out", str(tmp_path / "o"))
    assert no_run.returncode == 2
    assert no_run.stderr.count("\n") == 1 and "train first" in no_run.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    bad = cli("inspect", str(trained / "proj"), str(text), "--out", str(tmp_path / "o"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "notes.txt: not an image" in bad.stderr
    layer = cli("inspect", str(trained / "proj"), str(image), "--layer", "conv7", "--out",
                str(tmp_path / "o"))  # fmt: skip
    assert layer.returncode == 2 and "no layer 'conv7'" in layer.stderr
    assert not (tmp_path / "o").exists()
