"""Hostile inputs at random (hypothesis): damaged project files go through load, analyze, build and
one training step, and damaged image files through scanning, loading and summarising. Nothing may
end in an exception that is not the engine's own (StudioError, which the window and the command
line turn into one message), and a model the analysis calls valid must build as it predicted."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

from cnnstudio import StudioError, analyze, build_model, list_layer_kinds, load_project
from cnnstudio.data import DataSettings, load_dataset, summarize
from cnnstudio.images import scan_folder
from cnnstudio.project import Project
from cnnstudio.train import make_optimizer
from cnnstudio.train_settings import TrainSettings
from tests.helpers import spec_of

BUILD_LIMIT = 20_000_000  # parameters: larger valid models are the analysis's to refuse, not built
MODULE_NAMES = sorted(n for n in dir(nn.Module) if n.isidentifier())


def _base_project() -> dict[str, Any]:
    spec = spec_of(
        ("conv1", "Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}),
        ("bn1", "BatchNorm2d", {}),
        ("relu1", "ReLU", {}),
        ("pool1", "MaxPool2d", {"kernel_size": 2}),
        ("flat", "Flatten", {}),
        ("fc", "Linear", {"out_features": 3}),
        input_shape=(3, 8, 8),
        num_classes=3,
    )
    return Project(model=spec, name="fuzz").to_dict()


BASE = _base_project()
SMALL_BACKBONES = ["resnet18", "mobilenet_v3_small", "squeezenet1_0", "regnet_x_400mf", "alexnet"]


@st.composite
def backbone_projects(draw) -> dict[str, Any]:
    """The base project with a Backbone (random weights: nothing to download) in front."""
    data = json.loads(json.dumps(BASE))
    name = draw(st.sampled_from(SMALL_BACKBONES))
    freeze = draw(st.booleans())
    backbone = {"name": name, "weights": "none", "freeze": freeze}
    data["model"]["nodes"][:5] = [{"id": "backbone1", "kind": "Backbone", "params": backbone}]
    side = draw(st.sampled_from([8, 32, 64, 224]))
    data["model"]["input_shape"] = [3, side, side]
    return data


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**5), max_value=10**5),
    st.sampled_from([0, -1, 2**31, 2**63, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["auto", "same", "conv1\n", "", "input", *MODULE_NAMES[:40]]),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value, as a tuple of keys and indices."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], tuple(rest), new)
    return copy


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def _new_value(draw, old: Any, path: tuple) -> Any:
    """Mostly a value of the old one's kind (so that many damaged projects still load and reach
    the analysis, the build and training), sometimes any JSON at all."""
    if draw(st.integers(0, 3)) == 0:
        return draw(json_values)
    if path and path[-1] == "id":
        return draw(st.sampled_from([*MODULE_NAMES, "conv1", "fc", "conv1\n", "x" * 80]))
    if path and path[-1] == "kind":
        return draw(st.sampled_from([*list_layer_kinds(), "Conv3d", ""]))
    if isinstance(old, bool):
        return draw(st.booleans())
    if isinstance(old, int):
        return draw(st.one_of(st.integers(0, 64), st.sampled_from([2**31, 10**400, -1])))
    if isinstance(old, float):
        return draw(st.floats(allow_nan=True, allow_infinity=True))
    if isinstance(old, str):
        return draw(st.sampled_from(["auto", "same", "input", "sgd", "cosine", "fp16", "", old]))
    return draw(json_values)


@st.composite
def damaged_projects(draw, base: Any = BASE) -> str:
    """project.json text: ``base`` with a few places replaced (ids by nn.Module attributes among
    others), or (rarely) its text cut short or nested very deeply."""
    data = draw(base) if isinstance(base, st.SearchStrategy) else base
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        paths = _paths(data)
        leaves = [p for p in paths if not isinstance(_get(data, p), (dict, list))]
        path = draw(st.sampled_from(leaves if leaves and draw(st.integers(0, 4)) else paths))
        data = _replace(data, path, draw(_new_value(_get(data, path), path)))
    text = json.dumps(data, allow_nan=True)
    roll = draw(st.integers(0, 19))
    if roll == 0:
        return text[: draw(st.integers(0, len(text)))]
    if roll == 1:
        depth = draw(st.sampled_from([10, 1_000, 100_000]))
        return text.replace('"params": {}', '"params": ' + "[" * depth + "]" * depth, 1)
    return text


def _one_training_step(project) -> None:
    analysis = analyze(project.model)
    event("valid" if analysis.valid else "invalid")
    if not analysis.valid or analysis.total_params > BUILD_LIMIT:
        return
    model = build_model(project.model, pretrained=False, analysis=analysis)
    built = sum(p.numel() for p in model.parameters())
    assert built == analysis.total_params, "the analysis counted other parameters than built"
    x = torch.rand(2, *project.model.input_shape)
    logits = model(x)
    assert tuple(logits.shape) == (2, project.model.num_classes) == (2, *analysis.output_shape)
    settings_ = TrainSettings.from_dict(project.training)
    optimizer = make_optimizer(model, settings_)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    optimizer.step()


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=damaged_projects())
def test_a_damaged_project_file_ends_in_the_engines_own_error_or_trains(
    text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "project.json").write_text(text, encoding="utf-8")
    try:
        project = load_project(folder)
        _one_training_step(project)
    except StudioError as error:
        event(type(error).__name__)
        assert str(error)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=damaged_projects(backbone_projects()))
def test_a_damaged_project_with_a_backbone_ends_in_the_engines_own_error_or_trains(
    text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    test_a_damaged_project_file_ends_in_the_engines_own_error_or_trains.hypothesis.inner_test(
        text, tmp_path_factory
    )


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format="PNG")
    return buffer.getvalue()


@st.composite
def damaged_images(draw) -> bytes:
    """Bytes of a small image with random damage: cut, flipped bytes, junk, a huge claimed size."""
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "P", "1", "I;16"]))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    data = bytearray(_png(size, mode))
    roll = draw(st.integers(0, 4))
    if roll == 0:
        data = data[: draw(st.integers(0, len(data)))]
    elif roll == 1:
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif roll == 2:
        data = bytearray(draw(st.binary(max_size=64)))
    elif roll == 3:  # the header claims an enormous image (PNG IHDR width and height)
        side = draw(st.sampled_from([2**15, 100_000, 2**31 - 1]))
        data[16:24] = side.to_bytes(4, "big") * 2
    return bytes(data)


@pytest.mark.slow
@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(images=st.lists(damaged_images(), min_size=1, max_size=4))
def test_damaged_image_files_are_skipped_or_refused_never_a_crash(
    images: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("images")
    good = _png((12, 12))
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(2):
            (root / label / f"good{i}.png").write_bytes(good)
    for i, data in enumerate(images):
        (root / "ab"[i % 2] / f"damaged{i}.png").write_bytes(data)
    settings_ = DataSettings(source="folder", path=str(root))
    try:
        scan = scan_folder(root, verify=True)
        event(f"{len(scan.skipped)} skipped")
        summary = summarize(settings_, (3, 8, 8))
        dataset = load_dataset(settings_, (3, 8, 8))
    except StudioError as error:
        event(type(error).__name__)
        return
    assert summary.classes == ["a", "b"] == dataset.classes
    assert len(dataset) >= 4 and dataset.images is not None
    assert not math.isnan(float(dataset.images.float().mean()))
