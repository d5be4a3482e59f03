"""Hostile input (issue 15): whatever a user types or opens ends in one clear message naming the
place, an engine error or an analysis issue on the layer, never a Python exception."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from cnnstudio import analyze, build_model
from cnnstudio.analysis import MAX_LAYERS, machine_memory
from cnnstudio.backbones import BACKBONES, trained_size
from cnnstudio.build import SpecModel
from cnnstudio.errors import ModelError, ProjectError
from cnnstudio.project import load_project, new_project
from tests.helpers import spec_of

HUGE = 10**400  # a JSON integer no float can hold


def write_project(tmp_path: Path, change) -> Path:
    folder = tmp_path / "p"
    new_project("simple-cnn", path=folder).save()
    data = json.loads((folder / "project.json").read_text())
    change(data)
    (folder / "project.json").write_text(json.dumps(data))
    return folder


def test_training_number_too_large_for_a_float_names_the_field_and_its_range(
    tmp_path: Path,
) -> None:
    folder = write_project(tmp_path, lambda data: data["training"].update(epochs=HUGE))
    with pytest.raises(ProjectError) as caught:
        load_project(folder)
    assert caught.value.where == "training.epochs"
    assert caught.value.message == (
        "must be an integer from 1 to 100000, got an integer of 401 digits"
    )


@pytest.mark.parametrize("value", [HUGE, -HUGE])
def test_layer_number_too_large_for_a_float_is_an_issue_on_the_layer(value: int) -> None:
    spec = spec_of(
        ("drop", "Dropout", {"p": value}),
        ("flat", "Flatten", {}),
        ("head", "Linear", {"out_features": 10}),
    )
    analysis = analyze(spec)
    (issue,) = analysis.errors
    assert (issue.layer, issue.param) == ("drop", "p")
    assert issue.message.startswith("p must be a number from 0 to 1, got a")
    assert issue.message.endswith("integer of 401 digits")


def net_with_id(layer_id: str):
    return spec_of(
        (layer_id, "Conv2d", {"out_channels": 4, "kernel_size": 3}),
        ("flat", "Flatten", {}),
        ("head", "Linear", {"out_features": 10}),
    )


@pytest.mark.parametrize("layer_id", ["conv1\n", "conv1\r", "\nconv1", "_private", "__init__"])
def test_layer_id_with_a_newline_or_leading_underscore_is_refused(layer_id: str) -> None:
    (issue,) = analyze(net_with_id(layer_id)).errors
    assert issue.layer == layer_id
    assert issue.message == (
        f"layer id {layer_id!r} must start with a letter and hold only letters, digits and _ "
        "(at most 64)"
    )
    assert "\n" not in str(issue) and "\r" not in str(issue)


def attribute_names() -> list[str]:
    """Every attribute name of nn.Module and of the built model a layer id could spell."""
    from torch import nn

    names = set(dir(nn.Module)) | set(dir(SpecModel))
    return sorted(n for n in names if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", n))


@pytest.mark.parametrize("layer_id", attribute_names())
def test_layer_id_that_is_a_module_attribute_is_flagged_or_builds(layer_id: str) -> None:
    spec = net_with_id(layer_id)
    analysis = analyze(spec)
    if analysis.valid:
        model = build_model(spec, analysis=analysis)
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    else:
        (issue,) = analysis.errors
        assert issue.layer == layer_id


def test_layer_id_that_is_a_module_method_says_what_to_do() -> None:
    (issue,) = analyze(net_with_id("named_children")).errors
    assert issue.message == (
        "layer id 'named_children' is a name torch's nn.Module uses itself: choose another, "
        "such as named_children_1"
    )


def test_long_chain_listed_against_the_data_order_is_analysed() -> None:
    n = 1500  # each layer's input is the next one in the list: a walk 1,500 deep
    layers = [("flat", "Flatten", {}, ["r0"])]
    layers += [(f"r{i}", "ReLU", {}, [f"r{i + 1}"]) for i in range(n - 1)]
    layers += [
        (f"r{n - 1}", "ReLU", {}, ["input"]),
        ("head", "Linear", {"out_features": 10}, ["flat"]),
    ]
    spec = spec_of(*layers)
    analysis = analyze(spec)
    assert analysis.valid
    assert analysis.order[0] == f"r{n - 1}" and analysis.order[-1] == "head"
    assert analysis.output_shape == (10,)


def test_long_cycle_is_reported_on_each_member() -> None:
    n = 1500
    layers = [(f"r{i}", "ReLU", {}, [f"r{(i + 1) % n}"]) for i in range(n)]
    analysis = analyze(spec_of(*layers))
    assert {e.layer for e in analysis.errors} == {f"r{i}" for i in range(n)}
    assert analysis.errors[0].message.startswith("is part of a cycle: r0 → r")


@pytest.mark.slow  # every backbone is built on the meta device: about 30 s for all
@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_is_analysed(name: str) -> None:
    size = trained_size(name)
    spec = spec_of(
        ("backbone", "Backbone", {"name": name}),
        ("head", "Linear", {"out_features": 10}),
        input_shape=(3, size, size),
    )
    analysis = analyze(spec)
    assert analysis.valid, analysis.errors
    assert analysis.layer("backbone").params > 0


@pytest.mark.slow  # builds a real regnet on the CPU: 2-6 s
def test_regnet_backbone_is_analysed_as_built() -> None:
    spec = spec_of(
        ("backbone", "Backbone", {"name": "regnet_x_400mf", "weights": "none"}),
        ("head", "Linear", {"out_features": 10}),
        input_shape=(3, 64, 64),
    )
    analysis = analyze(spec)
    model = build_model(spec, analysis=analysis)
    assert analysis.total_params == sum(p.numel() for p in model.parameters())
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)


def test_layers_that_do_not_reach_the_output_are_warned_and_not_counted() -> None:
    spec = spec_of(
        ("side", "Conv2d", {"out_channels": 8, "kernel_size": 3}),
        ("side_bn", "BatchNorm2d", {}),
        ("main", "Conv2d", {"out_channels": 4, "kernel_size": 3}, ["input"]),
        ("flat", "Flatten", {}),
        ("head", "Linear", {"out_features": 10}),
        input_shape=(3, 8, 8),
    )
    analysis = analyze(spec)
    assert [str(w) for w in analysis.warnings] == [
        "side: its output goes nowhere: only layers that do not reach the output use it; it is "
        "left out of the built model and its parameters are not counted",
        "side_bn: its output goes nowhere: no later layer uses it; it is left out of the built "
        "model and its parameters are not counted",
    ]
    model = build_model(spec, analysis=analysis)
    assert analysis.total_params == sum(p.numel() for p in model.parameters())
    assert analysis.trainable_params == analysis.total_params


def test_backbone_too_small_input_names_the_size_it_was_trained_on() -> None:
    spec = spec_of(
        ("backbone", "Backbone", {"name": "vit_h_14"}),
        ("head", "Linear", {"out_features": 10}),
        input_shape=(3, 224, 224),
    )
    (issue,) = analyze(spec).errors
    assert issue.layer == "backbone"
    assert issue.message.endswith("try the size it was trained on, 3×518×518")


def relu_chain(n: int):
    layers = [(f"r{i}", "ReLU", {}) for i in range(n - 2)]
    return spec_of(*layers, ("flat", "Flatten", {}), ("head", "Linear", {"out_features": 10}))


def test_largest_allowed_model_is_analysed_in_full() -> None:
    spec = relu_chain(MAX_LAYERS)
    analysis = analyze(spec)
    assert analysis.valid and analysis.output_shape == (10,)
    assert analysis.order == tuple(node.id for node in spec.nodes)
    assert analysis.layer("r9000").output_shape == (3, 32, 32)
    assert analysis.total_params == 3 * 32 * 32 * 10 + 10


def test_model_with_too_many_layers_gets_one_message() -> None:
    spec = relu_chain(MAX_LAYERS + 1)
    analysis = analyze(spec)
    assert [str(e) for e in analysis.errors] == [
        "the model has 10,001 layers, more than the 10,000 CNN Studio works with: remove layers, "
        "or start from a Backbone, which counts as one"
    ]
    assert len(analysis.layers) == MAX_LAYERS + 1
    with pytest.raises(ModelError):
        build_model(spec)


def test_model_larger_than_the_memory_names_its_largest_layer() -> None:
    spec = spec_of(
        ("wide", "Conv2d", {"out_channels": 65536, "kernel_size": 1}),
        ("huge", "Conv2d", {"out_channels": 65536, "kernel_size": 64}),
        ("flat", "Flatten", {}),
        ("head", "Linear", {"out_features": 10}),
        input_shape=(3, 64, 64),
    )
    analysis = analyze(spec)
    (issue,) = analysis.errors
    assert issue.layer == "huge"
    assert issue.message.startswith("the model's weights need 64.00 TiB (17,592,202,756,106 ")
    assert "more than this machine's " in issue.message and machine_memory() < 2**40 * 64
    assert issue.message.endswith("huge alone has 17,592,186,109,952 (64.00 TiB): make it smaller")
    with pytest.raises(ModelError):
        build_model(spec)


def test_huge_class_count_and_input_shape_get_short_messages() -> None:
    layers = (("flat", "Flatten", {}), ("head", "Linear", {"out_features": 10}))
    classes = analyze(spec_of(*layers, num_classes=HUGE))
    assert [str(e) for e in classes.errors] == [
        "num_classes must be at most 1,000,000 (the most outputs a Linear layer has), got an "
        "integer of 401 digits"
    ]
    shape = analyze(spec_of(*layers, input_shape=(HUGE, 32, 32)))
    assert [str(e) for e in shape.errors] == [
        "the input shape must be channels 1-4096 and height and width 1-8192, got an integer of "
        "401 digits×32×32"
    ]
