"""Property-based: any spec either analyses as valid, and then builds and runs with exactly the
predicted shapes, or reports errors; the analysis never raises."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnnstudio import (
    ModelError,
    ModelSpec,
    Node,
    analyze,
    build_model,
    get_layer_kind,
    list_layer_kinds,
)
from cnnstudio.spec import INPUT
from tests.helpers import forward_shapes

KINDS = [k for k in list_layer_kinds() if k != "Backbone"]
# Small caps keep every generated model tiny and fast to run.
CAPS = {"out_channels": 8, "kernel_size": 5, "stride": 3, "padding": 3, "dilation": 3,
        "groups": 4, "output_size": 4, "out_features": 16, "in_channels": 8,
        "in_features": 64, "num_features": 8}  # fmt: skip
MAP_PHASE = [k for k in KINDS if k not in ("Linear", "BatchNorm1d")]
VECTOR_PHASE = [k for k in KINDS if get_layer_kind(k).group in ("Activation", "Linear", "Merge")
                or k in ("Dropout", "BatchNorm1d")]  # fmt: skip
BAD_VALUES = [-1, 0, 0.5, "x", None, True, 10**7, [3]]


@st.composite
def param_value(draw, param, clean: bool):
    roll = draw(st.integers(0, 19))
    if roll == 0 and not clean:
        return draw(st.sampled_from(BAD_VALUES))
    if param.allows_auto and (clean or roll < 10):
        return "auto"
    if param.words and roll < 5:
        return draw(st.sampled_from(param.words))
    if param.type == "int":
        low = int(param.minimum)
        cap = 1 if clean and param.name in ("padding", "groups") else CAPS.get(param.name, 4)
        return draw(st.integers(low, max(low, min(int(param.maximum), cap))))
    if param.type == "float":
        return draw(st.floats(param.minimum, param.maximum, allow_nan=False))
    if param.type == "bool":
        return draw(st.booleans())
    return draw(st.sampled_from(param.choices))


@st.composite
def node(draw, index: int, earlier: list[str], clean: bool, flat: bool):
    # Clean specs draw kinds that suit the phase (feature maps, then flat vectors after Flatten).
    pool = KINDS if not clean else VECTOR_PHASE if flat else MAP_PHASE
    kind = get_layer_kind(draw(st.sampled_from(pool)))
    params = {}
    for param in kind.params:
        if draw(st.integers(0, 9)) == 0 and not param.required:
            continue  # omitted: the default applies
        if draw(st.integers(0, 29)) == 0 and not clean:
            continue  # omitted even when required: an error
        params[param.name] = draw(param_value(param, clean))
    if draw(st.integers(0, 29)) == 0 and not clean:
        params["bogus"] = 1
    choices = [*earlier, INPUT]
    inputs: tuple[str, ...] = ()
    if kind.is_merge:
        size = 2 if clean else 1
        inputs = tuple(draw(st.lists(st.sampled_from(choices), min_size=size, max_size=3)))
    elif draw(st.integers(0, 9)) == 0:
        wild = [] if clean else ["nowhere", f"n{index + 1}"]
        inputs = (draw(st.sampled_from([*choices, *wild])),)
    return Node(f"n{index}", kind.name, params, inputs)


@st.composite
def specs(draw):
    count = draw(st.integers(1, 8))
    clean = draw(st.booleans())  # half the specs have no deliberate mistakes in their values
    nodes: list[Node] = []
    for i in range(count):
        flat = any(n.kind == "Flatten" for n in nodes)
        nodes.append(draw(node(i, [n.id for n in nodes], clean, flat)))
    classes = draw(st.integers(2, 5))
    if draw(st.integers(0, 3)):
        nodes.append(Node("flat", "Flatten"))
        nodes.append(Node("head", "Linear", {"out_features": classes}))
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 20)), draw(st.integers(1, 20)))
    return ModelSpec(tuple(nodes), shape, classes)


@pytest.mark.slow
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_random_spec_is_valid_and_runs_as_predicted_or_reports_errors(spec: ModelSpec) -> None:
    analysis = analyze(spec)
    event("valid" if analysis.valid else "errors reported")
    if not analysis.valid:
        assert all(isinstance(e.message, str) and e.message for e in analysis.errors)
        try:
            build_model(spec, analysis=analysis)
        except ModelError as error:
            assert error.issues == analysis.errors
        else:
            raise AssertionError("an invalid spec was built")
        return
    model = build_model(spec, analysis=analysis)
    real = forward_shapes(model, spec.input_shape)
    for layer_id, shape in real.items():
        assert analysis.layer(layer_id).output_shape == shape, layer_id
    out = model(torch.randn(2, *spec.input_shape))
    assert tuple(out.shape) == (2, spec.num_classes)
    assert analysis.total_params >= sum(p.numel() for p in model.parameters())
