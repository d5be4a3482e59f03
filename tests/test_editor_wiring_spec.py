"""Wiring the model graph (``ModelSpec.wire``, ``unwire``, ``move_wire``, ``set_inputs``): an edge
at a time, the layers kept in an order that builds, refusals that say why."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnstudio import analyze, build_model
from cnnstudio.errors import WiringError
from cnnstudio.layers import get_layer_kind
from cnnstudio.spec import INPUT, ModelSpec, Node


def node(node_id: str, kind: str, inputs: tuple[str, ...] = (), **params) -> Node:
    return Node(node_id, kind, {**get_layer_kind(kind).default_params(), **params}, inputs)


def edges(spec: ModelSpec) -> set[tuple[str, str]]:
    return {(s, t) for t, sources in spec.resolved_inputs().items() for s in sources}


def in_order(spec: ModelSpec) -> bool:
    """Every layer comes after the layers that feed it."""
    seen = {INPUT}
    for n in spec.nodes:
        if not set(spec.inputs_of(n.id)) <= seen:
            return False
        seen.add(n.id)
    return True


def chain(*kinds: str) -> ModelSpec:
    nodes = [node(f"{k.lower()}{i}", k) for i, k in enumerate(kinds)]
    return ModelSpec(tuple(nodes), (3, 8, 8), 4)


def test_wiring_a_one_input_layer_replaces_its_input() -> None:
    spec = chain("Conv2d", "ReLU", "Conv2d")
    wired = spec.wire(INPUT, "conv2d2")
    assert wired.inputs_of("conv2d2") == (INPUT,)
    assert edges(wired) == {(INPUT, "conv2d0"), ("conv2d0", "relu1"), (INPUT, "conv2d2")}


def test_wiring_a_merge_adds_an_input_and_keeps_the_implicit_one() -> None:
    spec = ModelSpec((node("a", "Conv2d"), node("b", "Conv2d"), node("cat", "Concat")))
    assert spec.wire("a", "cat").inputs_of("cat") == ("b", "a")


def test_a_source_listed_after_its_target_moves_the_target_down() -> None:
    # cat is listed before c; wiring c into cat moves cat (and what follows it) below c
    spec = ModelSpec(
        (
            node("a", "Conv2d"),
            node("cat", "Concat", ("a", INPUT)),
            node("pool", "AdaptiveAvgPool2d"),
            node("c", "Conv2d", (INPUT,)),
            node("fc", "Flatten", ("pool",)),
        )
    )
    wired = spec.wire("c", "cat")
    assert [n.id for n in wired.nodes] == ["a", "c", "cat", "pool", "fc"]
    assert wired.inputs_of("cat") == ("a", INPUT, "c")
    assert in_order(wired) and edges(wired) == edges(spec) | {("c", "cat")}


def test_an_implicit_input_is_spelled_out_when_the_reorder_would_change_it() -> None:
    spec = ModelSpec(
        (
            node("a", "Conv2d"),
            node("b", "ReLU", (INPUT,)),
            node("c", "ReLU"),  # takes b, the layer before it
            node("d", "Conv2d", ("a",)),
            node("out", "Flatten", ("c",)),
        )
    )
    wired = spec.wire("d", "b")  # b moves after d: c must keep b as its input
    assert [n.id for n in wired.nodes] == ["a", "d", "b", "c", "out"]
    assert wired.node("c").inputs == ()  # still right after b: nothing to spell out
    moved = spec.set_inputs("a", ("c",))  # a after c: b and c move up, d names a already
    assert [n.id for n in moved.nodes] == ["b", "c", "a", "d", "out"]
    assert moved.node("b").inputs == (INPUT,)
    assert edges(moved) == edges(spec) - {(INPUT, "a")} | {("c", "a")}


def test_a_cycle_is_refused_naming_the_path() -> None:
    spec = chain("Conv2d", "ReLU", "Conv2d", "Flatten")
    with pytest.raises(WiringError, match=r"would make a cycle: relu1 already feeds conv2d2 "):
        spec.wire("conv2d2", "relu1")
    with pytest.raises(WiringError, match="its own output"):
        spec.wire("relu1", "relu1")


def test_the_output_stays_last() -> None:
    spec = ModelSpec((node("a", "Conv2d"), node("b", "Conv2d", (INPUT,)), node("out", "ReLU")))
    with pytest.raises(WiringError, match="out is the model's output"):
        spec.wire("out", "a")
    assert "out" not in spec.input_candidates("a")
    assert spec.input_candidates("b") == (INPUT, "a")
    assert spec.input_candidates("out") == (INPUT, "a", "b")


def test_a_one_input_layer_refuses_two() -> None:
    spec = chain("Conv2d", "ReLU")
    with pytest.raises(WiringError, match="takes one input: join branches with Add"):
        spec.set_inputs("relu1", ("conv2d0", INPUT))


def test_unwire_a_merge_input_and_the_only_input_of_a_layer() -> None:
    spec = ModelSpec(
        (node("a", "Conv2d"), node("b", "Conv2d", (INPUT,)), node("add", "Add", ("a", "b")))
    )
    assert spec.unwire("a", "add").inputs_of("add") == ("b",)
    # a one-input layer whose input is removed takes the model's input
    assert spec.unwire("b", "add").unwire("a", "add").inputs_of("add") == (INPUT,)
    with pytest.raises(WiringError, match="needs an input and has only the model's"):
        spec.unwire(INPUT, "a")
    with pytest.raises(WiringError, match="does not feed"):
        spec.unwire("b", "a")


def test_move_wire_ends_an_edge_elsewhere() -> None:
    spec = ModelSpec(
        (
            node("a", "Conv2d"),
            node("b", "Conv2d", (INPUT,)),
            node("cat", "Concat", ("a", "b")),
            node("relu", "ReLU", ("cat",)),
        )
    )
    moved = spec.move_wire("b", "cat", "relu")
    assert moved.inputs_of("cat") == ("a",) and moved.inputs_of("relu") == ("b",)


def test_the_built_model_follows_the_wires() -> None:
    """An Inception-style module wired an edge at a time: the built Concat joins all three."""
    spec = ModelSpec(
        (
            node("c1", "Conv2d", out_channels=4, kernel_size=1, padding=0),
            node("c3", "Conv2d", out_channels=5),
            node("c5", "Conv2d", out_channels=6, kernel_size=5, padding=2),
            node("cat", "Concat"),
            node("pool", "AdaptiveAvgPool2d"),
            node("flat", "Flatten"),
            node("fc", "Linear", out_features=10),
        ),
        (3, 8, 8),
        10,
    )
    for source, target in ((INPUT, "c3"), (INPUT, "c5"), ("c1", "cat"), ("c3", "cat")):
        spec = spec.wire(source, target)
    assert spec.inputs_of("cat") == ("c5", "c1", "c3")
    analysis = analyze(spec)
    assert analysis.valid and analysis.layer("cat").output_shape == (15, 8, 8)
    model = build_model(spec).eval()
    x = torch.randn(2, 3, 8, 8)
    joined = torch.cat([model.c5(x), model.c1(x), model.c3(x)], dim=1)
    expected = model.fc(model.flat(model.pool(joined)))
    torch.testing.assert_close(model(x), expected)


KINDS = ("ReLU", "Identity", "Add", "Concat")


@st.composite
def graphs(draw) -> ModelSpec:
    """Random graphs: each layer takes the one before it or names earlier ones (merges, several)."""
    size = draw(st.integers(2, 9))
    nodes: list[Node] = []
    for i in range(size):
        kind = draw(st.sampled_from(KINDS))
        earlier = [INPUT, *(n.id for n in nodes)]
        count = draw(st.integers(2, 3)) if get_layer_kind(kind).is_merge else 1
        inputs = tuple(
            dict.fromkeys(draw(st.lists(st.sampled_from(earlier), min_size=count, max_size=count)))
        )
        implicit = count == 1 and draw(st.booleans())
        nodes.append(Node(f"n{i}", kind, {}, () if implicit else inputs))
    return ModelSpec(tuple(nodes))


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(graphs(), st.data())
def test_any_wiring_keeps_every_other_edge_and_an_order_that_builds(spec, data) -> None:
    ids = [n.id for n in spec.nodes]
    source = data.draw(st.sampled_from([INPUT, *ids]))
    target = data.draw(st.sampled_from(ids))
    try:
        wired = spec.wire(source, target)
    except WiringError as error:
        assert str(error)
        assert (
            source == target
            or source in spec.inputs_of(target)
            or target in spec.downstream(source) | {source}
            or source in spec.downstream(target)
            or source == ids[-1]
        )
        return
    merge = get_layer_kind(spec.node(target).kind).is_merge
    before = edges(spec)
    dropped = set() if merge else {(s, target) for s in spec.inputs_of(target)}
    assert edges(wired) == (before - dropped) | {(source, target)}
    assert in_order(wired)
    assert wired.nodes[-1].id == ids[-1]
    assert sorted(n.id for n in wired.nodes) == sorted(ids)
    assert {n.id: (n.kind, n.params) for n in wired.nodes} == {
        n.id: (n.kind, n.params) for n in spec.nodes
    }


def test_an_add_of_two_sizes_names_the_shortcut_that_fixes_it() -> None:
    spec = ModelSpec(
        (
            node("a", "Conv2d", out_channels=8, stride=2),
            node("add", "Add", ("a", INPUT)),
            node("flat", "Flatten"),
        )
    )
    (problem,) = [e.message for e in analyze(spec).errors if e.layer == "add"]
    assert problem.endswith(
        "make the sizes match: for example a 1×1 Conv2d with stride 2 and out_channels 8 "
        "between the input and the Add"
    )


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(graphs(), st.data())
def test_every_input_candidate_is_accepted(spec, data) -> None:
    """What the Properties panel offers never gets refused, and changes only that layer's inputs."""
    target = data.draw(st.sampled_from([n.id for n in spec.nodes]))
    source = data.draw(st.sampled_from(spec.input_candidates(target)))
    current = spec.inputs_of(target)
    if get_layer_kind(spec.node(target).kind).is_merge:
        inputs = current if source in current else (*current, source)
    else:
        inputs = (source,)
    wired = spec.set_inputs(target, inputs)
    assert in_order(wired) and wired.nodes[-1].id == spec.nodes[-1].id
    others = {(s, t) for s, t in edges(spec) if t != target}
    assert {(s, t) for s, t in edges(wired) if t != target} == others
    assert source in wired.inputs_of(target)
