"""The layer catalogue: every kind is described completely and builds with its defaults."""

from __future__ import annotations

import pytest
import torch

from cnnstudio import analyze, build_model, get_layer_kind, list_layer_kinds
from cnnstudio.build import make_layer
from cnnstudio.layers import GROUPS, LAYER_KINDS
from cnnstudio.params import Param
from tests.helpers import spec_of

REQUIRED_KINDS = {
    "Conv2d", "BatchNorm2d", "BatchNorm1d", "ReLU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Tanh",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Dropout", "Dropout2d", "Flatten", "Linear",
    "Identity", "Add", "Concat", "Backbone",
}  # fmt: skip

# Kinds that take a flat vector rather than a feature map.
VECTOR_KINDS = {"BatchNorm1d", "Linear"}


def test_catalogue_has_every_required_kind() -> None:
    assert set(list_layer_kinds()) >= REQUIRED_KINDS


@pytest.mark.parametrize("kind_name", list_layer_kinds())
def test_kind_is_fully_described(kind_name: str) -> None:
    kind = get_layer_kind(kind_name)
    assert kind.group in GROUPS
    assert kind.help.strip()
    for param in kind.params:
        assert param.help.strip(), f"{kind_name}.{param.name} has no help"
        assert param.check(param.default) is None
        assert param.describe()
        if param.type in ("int", "float"):
            assert param.minimum is not None and param.maximum is not None


@pytest.mark.parametrize("kind_name", sorted(set(list_layer_kinds()) - {"Backbone"}))
def test_kind_with_default_params_builds_and_matches_torch(kind_name: str) -> None:
    kind = get_layer_kind(kind_name)
    params = kind.default_params()
    if kind_name in VECTOR_KINDS:
        layers = [("flat", "Flatten", {}), ("x", kind_name, params)]
    elif kind.is_merge:
        layers = [("a", "Conv2d", {"out_channels": 4, "kernel_size": 1, "padding": 0}),
                  ("b", "Conv2d", {"out_channels": 4, "kernel_size": 1, "padding": 0},
                   ["input"]),
                  ("x", kind_name, params, ["a", "b"])]  # fmt: skip
    else:
        layers = [("x", kind_name, params)]
    tail = [] if kind_name in VECTOR_KINDS else [("flatten", "Flatten", {})]
    spec = spec_of(*layers, *tail, ("out", "Linear", {"out_features": 10}), input_shape=(3, 8, 8))
    analysis = analyze(spec)
    assert analysis.valid, [str(e) for e in analysis.errors]
    model = build_model(spec)
    assert type(model.x).__name__ == kind_name
    real = sum(p.numel() for p in model.x.parameters())
    assert analysis.layer("x").params == real


def test_torch_layers_are_built_from_catalogue_names() -> None:
    conv = make_layer("Conv2d", {**get_layer_kind("Conv2d").default_params(), "in_channels": 3})
    assert isinstance(conv, torch.nn.Conv2d)
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.out_channels == 32


@pytest.mark.parametrize(
    ("param", "value", "fragment"),
    [
        (Param("n", "int", 1, "h", 1, 8), 1.5, "must be an integer from 1 to 8, got 1.5"),
        (Param("n", "int", 1, "h", 1, 8), True, "got true"),
        (Param("n", "int", 1, "h", 1, 8), "3", "got '3' (text)"),
        (Param("n", "int", 1, "h", 1, 8), 9, "from 1 to 8, got 9"),
        (Param("p", "float", 0.5, "h", 0, 1), float("nan"), "a number from 0 to 1"),
        (Param("b", "bool", True, "h"), 1, "true or false"),
        (Param("c", "choice", "a", "h", choices=("a", "b")), "z", "one of 'a', 'b'"),
    ],
)
def test_param_check_refuses_with_reason(param: Param, value, fragment: str) -> None:
    reason = param.check(value)
    assert reason is not None and fragment in reason


def test_auto_is_accepted_only_where_allowed() -> None:
    conv = get_layer_kind("Conv2d")
    assert conv.param("in_channels").check("auto") is None
    assert conv.param("out_channels").check("auto") is not None


def test_unknown_kind_suggests_the_close_one() -> None:
    with pytest.raises(KeyError, match="did you mean Conv2d"):
        get_layer_kind("conv2d")


def test_every_kind_name_is_a_torch_class_or_ours() -> None:
    ours = {"Add", "Mul", "Concat", "Backbone"}
    for name in LAYER_KINDS:
        assert name in ours or hasattr(torch.nn, name)
