"""Named blocks in the engine: flatten, build (nested modules), parameter counts, the edits
(make a block from a selection, inline, make unique, rename), export, and project files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnstudio import (
    ModelSpec,
    Node,
    ProjectError,
    build_model,
    create_model_spec,
    load_project,
    new_project,
)
from cnnstudio.analysis import analyze
from cnnstudio.blocks import (
    BUILTIN_BLOCKS,
    block_of,
    flatten,
    inline,
    make_block,
    make_unique,
    rename_block,
    set_inner_params,
    use_count,
)
from cnnstudio.errors import BlockError
from cnnstudio.spec import BLOCK, INPUT, BlockDef


def use(node_id: str, block: str, *inputs: str) -> Node:
    return Node(node_id, BLOCK, {"block": block}, tuple(inputs))


def residual_model(*uses: Node) -> ModelSpec:
    """A stem, the given uses of the built-in blocks, and a classifier head."""
    return ModelSpec(
        (
            Node("stem", "Conv2d", {"out_channels": 64, "kernel_size": 3, "padding": 1}),
            *uses,
            Node("pool", "AdaptiveAvgPool2d", {"output_size": 1}),
            Node("flat", "Flatten"),
            Node("fc", "Linear", {"out_features": 10}),
        ),
        blocks=dict(BUILTIN_BLOCKS),
    )


def hand_built_residual() -> ModelSpec:
    """The built-in residual block written out layer by layer, twice, in a plain model."""
    nodes = [Node("stem", "Conv2d", {"out_channels": 64, "kernel_size": 3, "padding": 1})]
    entry = "stem"
    for name in ("res1", "res2"):
        for inner in BUILTIN_BLOCKS["residual"].nodes:
            inputs = tuple(entry if s == INPUT else f"{name}_{s}" for s in inner.inputs)
            if not inner.inputs and inner is BUILTIN_BLOCKS["residual"].nodes[0]:
                inputs = (entry,)
            nodes.append(replace(inner, id=f"{name}_{inner.id}", inputs=inputs))
        entry = nodes[-1].id
    nodes += [
        Node("pool", "AdaptiveAvgPool2d", {"output_size": 1}),
        Node("flat", "Flatten"),
        Node("fc", "Linear", {"out_features": 10}),
    ]
    return ModelSpec(tuple(nodes))


def test_flatten_names_inner_layers_by_use() -> None:
    spec = residual_model(use("res1", "residual"), use("res2", "residual"))
    flat = flatten(spec)
    ids = [n.id for n in flat.nodes]
    assert ids[:3] == ["stem", "res1.conv1", "res1.bn1"] and "res2.add1" in ids
    assert flat.node("res1.conv1").inputs == ("stem",)
    assert flat.node("res1.shortcut").inputs == ("stem",)
    assert flat.node("res2.conv1").inputs == ("res1.relu2",)
    assert flat.node("res1.add1").inputs == ("res1.bn2", "res1.shortcut")
    assert flat.blocks == {}


def test_build_equals_the_hand_built_model() -> None:
    spec = residual_model(use("res1", "residual"), use("res2", "residual"))
    model, plain = build_model(spec), build_model(hand_built_residual())
    assert "res1.conv1.weight" in model.state_dict() and "res2.add1" not in model.state_dict()
    state = {
        (key.replace(".", "_", 1) if key.startswith("res") else key): value
        for key, value in model.state_dict().items()
    }
    plain.load_state_dict(state)
    model.eval(), plain.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), plain(x))
    analysis = analyze(spec)
    assert analysis.total_params == sum(p.numel() for p in model.parameters())
    assert analysis.total_params == analyze(hand_built_residual()).total_params


def test_analysis_describes_each_use_as_a_whole() -> None:
    spec = residual_model(use("res1", "residual"), use("se1", "squeeze_excitation"))
    analysis = analyze(spec)
    assert analysis.valid, analysis.issues
    whole = analysis.layer("res1")
    assert whole.kind == BLOCK and whole.output_shape == (64, 32, 32)
    assert whole.inputs == ("stem",) and whole.input_shapes == ((64, 32, 32),)
    inner = [i for i in analysis.layers if i.id.startswith("res1.")]
    assert whole.params == sum(i.params for i in inner) > 0
    assert analysis.layer("se1").inputs == ("res1",)
    assert analysis.layer("res1.conv1").output_shape == (64, 32, 32)


@pytest.mark.parametrize("name", sorted(BUILTIN_BLOCKS))
def test_every_built_in_block_builds_and_runs(name: str) -> None:
    spec = residual_model(use("b1", name), use("b2", name))
    analysis = analyze(spec)
    assert analysis.valid, analysis.issues
    model = build_model(spec)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert analysis.total_params == sum(p.numel() for p in model.parameters())


def test_an_inner_error_reaches_the_use_and_names_the_layer() -> None:
    spec = residual_model(use("res1", "residual"))
    spec = set_inner_params(spec, "residual", "conv2", out_channels=32)
    analysis = analyze(spec)
    assert not analysis.valid
    assert any(e.layer == "res1.add1" for e in analysis.errors)
    assert any(e.startswith("add1: ") for e in analysis.layer("res1").errors)


def test_unknown_block_and_recursion_are_refused_by_name() -> None:
    spec = residual_model(use("res1", "nothing"))
    assert "res1 uses no known block ('nothing'" in str(analyze(spec).errors[0])
    looped = replace(
        residual_model(use("a1", "a")),
        blocks={"a": BlockDef((use("b1", "b"),)), "b": BlockDef((use("a1", "a"),))},
    )
    assert "the block 'a' uses itself: a → b → a" in str(analyze(looped).errors[0])
    with pytest.raises(Exception, match="uses itself"):
        build_model(looped)


def test_nested_blocks_build_as_nested_modules() -> None:
    spec = residual_model(use("double1", "double"))
    spec = replace(
        spec,
        blocks={**spec.blocks, "double": BlockDef((use("r1", "residual"), use("r2", "residual")))},
    )
    model = build_model(spec)
    assert "double1.r2.conv1.weight" in model.state_dict()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert analyze(spec).layer("double1.r1").output_shape == (64, 32, 32)


def plain_residual() -> ModelSpec:
    """stem → conv → bn → (+ stem) → relu → head: the middle a residual block by hand."""
    return ModelSpec(
        (
            Node("stem", "Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}),
            Node("conv1", "Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}),
            Node("bn1", "BatchNorm2d"),
            Node("add1", "Add", inputs=("bn1", "stem")),
            Node("relu1", "ReLU"),
            Node("flat", "Flatten"),
            Node("fc", "Linear", {"out_features": 10}),
        )
    )


def test_make_block_replaces_the_selection_by_one_use() -> None:
    spec = plain_residual()
    made, use_id = make_block(spec, ["conv1", "bn1", "add1", "relu1"], "res")
    assert [n.id for n in made.nodes] == ["stem", use_id, "flat", "fc"]
    assert block_of(made.node(use_id)) == "res"
    inner = made.blocks["res"].nodes
    assert [n.id for n in inner] == ["conv1", "bn1", "add1", "relu1"]
    assert inner[2].inputs == ("bn1", INPUT)
    assert analyze(made).total_params == analyze(spec).total_params
    model, plain = build_model(made), build_model(spec)
    plain.load_state_dict(
        {
            k.split(".", 1)[-1] if k.startswith(use_id) else k: v
            for k, v in model.state_dict().items()
        }
    )
    model.eval(), plain.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), plain(x))
    assert inline(made, use_id) == spec


def test_make_block_refuses_two_inputs_and_two_outputs_saying_which() -> None:
    spec = plain_residual()
    with pytest.raises(BlockError, match=r"one input.*add1 takes stem"):
        make_block(spec, ["bn1", "add1"], "x")
    with pytest.raises(BlockError, match=r"one output.*add1 takes stem"):
        make_block(spec, ["stem", "conv1"], "x")
    with pytest.raises(BlockError, match="already a block named"):
        make_block(make_block(spec, ["conv1", "bn1"], "x")[0], ["flat"], "x")
    with pytest.raises(BlockError, match="must start with a letter"):
        make_block(spec, ["flat"], "2 words")


def test_make_unique_and_rename() -> None:
    spec = residual_model(use("res1", "residual"), use("res2", "residual"))
    assert use_count(spec, "residual") == 2
    unique, name = make_unique(spec, "res2")
    assert name == "residual_2" and block_of(unique.node("res2")) == name
    edited = set_inner_params(unique, name, "conv1", out_channels=32)
    assert analyze(edited).layer("res2.conv1").output_shape == (32, 32, 32)
    assert analyze(edited).layer("res1.conv1").output_shape == (64, 32, 32)
    renamed = rename_block(spec, "residual", "basic")
    assert "basic" in renamed.blocks and "residual" not in renamed.blocks
    assert {block_of(renamed.node(u)) for u in ("res1", "res2")} == {"basic"}
    assert analyze(renamed).total_params == analyze(spec).total_params


def test_editing_the_definition_changes_every_use() -> None:
    spec = residual_model(use("res1", "residual"), use("res2", "residual"))
    edited = set_inner_params(spec, "residual", "conv1", kernel_size=5, padding=2)
    analysis = analyze(edited)
    assert analysis.layer("res1.conv1").resolved["kernel_size"] == 5
    assert analysis.layer("res2.conv1").resolved["kernel_size"] == 5


def test_python_export_writes_one_class_per_block(tmp_path: Path) -> None:
    from cnnstudio.export.python_file import python_code
    from cnnstudio.model_source import ready_model

    spec = residual_model(use("res1", "residual"), use("res2", "residual"))
    text = python_code(ready_model(spec, None))
    assert text.count("class Residual(nn.Module):") == 1
    assert "self.res1 = Residual()" in text and "self.res2 = Residual()" in text


@pytest.mark.slow
def test_python_export_of_blocks_computes_the_same(tmp_path: Path) -> None:
    from cnnstudio.export import export
    from cnnstudio.model_source import ready_model

    spec = residual_model(use("inc1", "inception"), use("fire1", "fire"))
    result = export(ready_model(spec, None), "python", tmp_path / "net.py")
    assert result.max_abs_diff <= 1e-5


def test_schema_1_file_loads_and_saves_as_schema_2_unchanged(tmp_path: Path) -> None:
    old = new_project("resnet-small").to_dict()
    old["schema_version"] = 1
    (tmp_path / "project.json").write_text(json.dumps(old))
    project = load_project(tmp_path)
    project.save()
    data = json.loads((tmp_path / "project.json").read_text())
    assert data["schema_version"] == 2
    assert {k: v for k, v in data.items() if k != "schema_version"} == {
        k: v for k, v in old.items() if k != "schema_version"
    }


def test_blocks_round_trip_through_project_json(tmp_path: Path) -> None:
    project = new_project("lenet5", path=tmp_path)
    project.model = make_block(project.model, ["conv1", "tanh1"], "conv_tanh")[0]
    project.save()
    assert load_project(tmp_path).model == project.model


@pytest.mark.parametrize(
    ("blocks", "where", "message"),
    [
        ([], "model.blocks", "must be an object"),
        ({"b": {"nodes": [{"id": "c", "kind": 3}]}}, "model.blocks.b.nodes[0].kind", "text"),
        ({"b": {"nodes": []}}, "model.blocks.b.nodes", "at least one layer"),
        ({"b": {"layers": []}}, "model.blocks.b", "unknown key 'layers'"),
        (
            {"b": {"nodes": [{"id": "u", "kind": "Block", "params": {"block": "b"}}]}},
            "model.blocks.b",
            "the block 'b' uses itself",
        ),
    ],
)
def test_malformed_blocks_name_the_place(tmp_path: Path, blocks, where, message) -> None:
    data = new_project("lenet5").to_dict()
    data["model"]["blocks"] = blocks
    (tmp_path / "project.json").write_text(json.dumps(data))
    with pytest.raises(ProjectError, match=message) as caught:
        load_project(tmp_path)
    assert caught.value.where == where


SMALL_TEMPLATES = ("simple-cnn", "resnet-small", "inception-small", "squeezenet-small")


@given(
    template=st.sampled_from(SMALL_TEMPLATES),
    start=st.integers(0, 60),
    length=st.integers(1, 12),
)
@settings(max_examples=60, deadline=None)
def test_any_run_of_layers_becomes_a_block_or_says_why(template, start, length) -> None:
    """Make a block of any run of layers in display order: refused with a BlockError, or the
    model computes the same (same layers, shapes and parameters) and ungrouping restores it."""
    spec = create_model_spec(template)
    chosen = [n.id for n in spec.nodes[start : start + length]]
    assume(chosen)
    try:
        made, use_id = make_block(spec, chosen, "part")
    except BlockError as error:
        assert str(error)
        return
    before, after = analyze(spec), analyze(made)
    assert after.valid and after.total_params == before.total_params
    assert after.output_shape == before.output_shape
    assert after.layer(use_id).output_shape == before.layer(chosen[-1]).output_shape
    assert inline(made, use_id) == spec


def test_blocks_that_expand_into_too_many_layers_are_refused_without_expanding() -> None:
    blocks = {"b0": BlockDef((Node("r", "ReLU"),))}
    for level in range(1, 40):  # each block uses the one below twice: 2**39 layers
        below = f"b{level - 1}"
        blocks[f"b{level}"] = BlockDef((use("u1", below), use("u2", below)))
    spec = ModelSpec((use("top", "b39"),), blocks=blocks)
    analysis = analyze(spec)
    assert "expand into 549,755,813,888 layers" in str(analysis.errors[0])


@pytest.mark.slow
def test_a_model_with_blocks_trains_and_its_run_reloads(tmp_path: Path) -> None:
    from cnnstudio import Project
    from cnnstudio.data import DataSettings
    from cnnstudio.model_source import from_run
    from cnnstudio.train import Trainer
    from cnnstudio.train_settings import check_training
    from tests.test_train import colour_folder, tiny_model

    spec, use_id = make_block(tiny_model(), ["conv1", "bn1", "relu1"], "cbr")
    spec = spec.duplicate([use_id])[0]
    training = check_training({"epochs": 1, "batch_size": 16, "workers": 0})
    project = Project(
        model=spec,
        name="blocks",
        data=DataSettings(source="folder", path=str(colour_folder(tmp_path / "images"))),
        training=training,
        path=tmp_path / "proj",
    )
    project.save()
    result = Trainer(project).run()
    assert result.state == "finished"
    source = from_run(Path(result.run_dir))
    assert "cbr2.conv1.weight" in source.model.state_dict()
    assert source.model(torch.zeros(1, 3, 16, 16)).shape == (1, 4)
