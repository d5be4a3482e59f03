"""Copy and paste of layers: the Qt-free engine (cnnstudio.selection) and the window's Edit menu
(Copy, Cut, Paste on the system clipboard), within a project and between two windows."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnstudio import analyze, build_model
from cnnstudio.errors import StudioError
from cnnstudio.selection import copy_layers, paste_layers, read_layers
from cnnstudio.spec import INPUT
from cnnstudio.templates import get_template
from tests.helpers import spec_of

BLOCK = ["conv2", "bn2", "relu2", "conv3", "bn3", "add1", "relu3"]  # resnet-small's first block


def resnet_small():
    return get_template("resnet-small").create(10)


def test_copy_writes_every_input_and_outside_inputs_as_the_snippets_input() -> None:
    data = copy_layers(resnet_small(), list(reversed(BLOCK)))  # chosen order does not matter
    layers = data["layers"]
    assert [layer["id"] for layer in layers] == BLOCK
    assert layers[0]["inputs"] == [INPUT]  # conv2 took relu1, outside the selection
    assert layers[1]["inputs"] == ["conv2"]  # implicit "the layer before" written out
    assert layers[5]["inputs"] == ["bn3", INPUT]  # the skip from relu1
    assert json.loads(json.dumps(data)) == data  # plain JSON


def test_residual_block_pasted_twice_gives_a_model_that_builds() -> None:
    spec = resnet_small()
    data = copy_layers(spec, BLOCK)
    once, first = paste_layers(spec, data, after="relu3")
    twice, second = paste_layers(once, data, after=first[-1])
    assert first == ["conv8", "bn8", "relu8", "conv9", "bn9", "add4", "relu9"]
    assert second == ["conv10", "bn10", "relu10", "conv11", "bn11", "add5", "relu11"]
    assert twice.node("add4").inputs == ("bn9", "relu3")  # skip from the insertion point
    assert twice.node("add5").inputs == ("bn11", "relu9")
    assert twice.node("conv8").inputs == ()  # takes relu3, the layer before it
    # the next stage and its projection took relu3: they now take the last pasted block
    assert twice.node("conv4").inputs == ("relu11",) and twice.node("proj1").inputs == ("relu11",)
    assert twice.index("conv10") == twice.index("relu9") + 1
    analysis, before = analyze(twice), analyze(spec)
    assert analysis.valid, analysis.errors
    block = sum(before.layer(i).params for i in BLOCK)
    assert analysis.total_params == before.total_params + 2 * block
    out = build_model(twice).eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_paste_at_the_end_and_free_ids_are_kept() -> None:
    source = spec_of(("a", "Conv2d", {"out_channels": 4, "kernel_size": 3}), ("b", "ReLU", {}))
    target = spec_of(("conv1", "Conv2d", {"out_channels": 8, "kernel_size": 1}))
    spec, ids = paste_layers(target, copy_layers(source, ["a", "b"]))
    assert ids == ["a", "b"] and [n.id for n in spec.nodes] == ["conv1", "a", "b"]
    assert spec.node("a").params == {"out_channels": 4, "kernel_size": 3}
    assert analyze(spec).layer("a").input_shapes[0][0] == 8  # fed by conv1


def test_paste_into_an_empty_model_takes_the_model_input() -> None:
    source = spec_of(("x", "Add", {}, ["input", "input"]))
    empty = source.with_nodes(())
    spec, _ = paste_layers(empty, copy_layers(source, ["x"]))
    assert spec.node("x").inputs == (INPUT, INPUT)


def test_renamed_ids_avoid_the_models_and_the_pasted_ones() -> None:
    source = spec_of(("conv1", "Conv2d", {}), ("conv2", "Conv2d", {}))
    target = spec_of(("conv1", "Conv2d", {}))
    spec, ids = paste_layers(target, copy_layers(source, ["conv1", "conv2"]), after="conv1")
    assert ids == ["conv3", "conv2"]
    assert spec.node("conv2").inputs == ()  # still takes its copied input, now conv3


JUNK = [
    ("not a dict", "no CNN Studio layers"),
    ({"format": "other"}, "no CNN Studio layers"),
    ({"format": "cnnstudio.layers", "version": 9, "layers": []}, "version 9"),
    ({"format": "cnnstudio.layers", "version": 1, "layers": []}, "non-empty list"),
    ({"format": "cnnstudio.layers", "version": 1, "layers": [{"kind": "ReLU"}]}, "'id' is missing"),
    (
        {"format": "cnnstudio.layers", "version": 1, "layers": [{"id": "a", "kind": "Conv"}]},
        "layers[0].kind: unknown layer kind 'Conv' (did you mean 'Conv2d'?)",
    ),
    (
        {
            "format": "cnnstudio.layers",
            "version": 1,
            "layers": [{"id": "a", "kind": "ReLU", "inputs": ["b"]}],
        },
        "layers[0].inputs: 'b' is not a layer before it",
    ),
    (
        {
            "format": "cnnstudio.layers",
            "version": 1,
            "layers": [
                {"id": "a", "kind": "ReLU", "inputs": ["input"]},
                {"id": "a", "kind": "ReLU", "inputs": ["a"]},
            ],
        },
        "layers[1].id: 'a' is used twice",
    ),
]


@pytest.mark.parametrize(("data", "message"), JUNK)
def test_junk_is_refused_in_one_line_naming_the_place(data, message: str) -> None:
    with pytest.raises(StudioError) as caught:
        read_layers(data)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("the clipboard")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# mostly well-formed layers (conv1 is taken in the model, a and b are free), now and then not
LAYER = st.fixed_dictionaries(
    {"id": st.sampled_from(["conv1", "a", "b", "conv1", "a", "b", "input", 3]),
     "kind": st.sampled_from(["Conv2d", "ReLU", "Add", "ReLU", "Add", "Nope"]),
     "inputs": st.lists(st.sampled_from(["input", "input", "input", "a", "conv1", 1]),
                        min_size=1, max_size=2)},
    optional={"params": st.just({}) | JSON},
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    JSON
    | st.lists(LAYER, max_size=3, unique_by=lambda layer: layer["id"]).map(
        lambda layers: {**_HEADER, "layers": layers}
    )
)
def test_any_json_pastes_or_is_refused_with_a_studio_error(data) -> None:
    """Whatever JSON is on the clipboard: layers pasted into a well-formed model, or StudioError."""
    spec = resnet_small()
    try:
        pasted, ids = paste_layers(spec, data, "relu1")
    except StudioError as error:
        assert str(error).startswith("the clipboard") and "\n" not in str(error)
        return
    assert len(pasted.nodes) == len(spec.nodes) + len(ids)
    assert len({n.id for n in pasted.nodes}) == len(pasted.nodes)


_HEADER = {"format": "cnnstudio.layers", "version": 1}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([*BLOCK, "conv1", "fc1", "gap1", "add2"]), min_size=1))
def test_any_selection_pastes_anywhere_as_a_well_formed_model(chosen: list[str]) -> None:
    """Whatever is copied, the pasted model's inputs name only layers before them."""
    spec = resnet_small()
    data = copy_layers(spec, chosen)
    for after in (None, "conv1", "relu3"):
        pasted, ids = paste_layers(spec, data, after)
        assert len(ids) == len(set(chosen)) and len(pasted.nodes) == len(spec.nodes) + len(ids)
        seen = {INPUT}
        for node in pasted.nodes:
            assert set(node.inputs) <= seen
            seen.add(node.id)


# The window: Edit > Copy / Cut / Paste on the system clipboard


def _load(window, spec) -> None:
    from ui.editor.commands import ReplaceModelCommand

    window.document.push(ReplaceModelCommand(window.document, spec, "Template"))


def _press(qtbot, window, key: str) -> None:
    from PySide6.QtCore import Qt

    window.activateWindow()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, key, Qt.KeyboardModifier.ControlModifier)


def test_copy_and_paste_a_residual_block_with_the_keys_is_one_undo_step(qtbot, window) -> None:
    from PySide6.QtGui import QGuiApplication

    from ui.editor.clipboard import MIME_TYPE

    _load(window, resnet_small())
    window.canvas.select(BLOCK)
    _press(qtbot, window, "c")
    mime = QGuiApplication.clipboard().mimeData()
    assert mime.hasFormat(MIME_TYPE)
    assert json.loads(mime.text())["layers"][0]["id"] == "conv2"  # a text editor gets JSON
    window.canvas.select(["relu3"])
    steps = window.document.undo_stack.count()
    _press(qtbot, window, "v")
    spec = window.document.spec
    assert "add4" in [n.id for n in spec.nodes] and spec.node("conv4").inputs == ("relu9",)
    assert window.document.undo_stack.count() == steps + 1
    assert sorted(window.canvas.selected_ids()) == sorted(
        ["conv8", "bn8", "relu8", "conv9", "bn9", "add4", "relu9"]
    )
    qtbot.waitUntil(lambda: window.document.analysis_is_current, timeout=30000)
    assert window.document.analysis.valid
    window.document.undo_stack.undo()
    assert window.document.spec == resnet_small()


def test_cut_removes_the_layers_and_paste_puts_them_back_at_the_end(qtbot, window) -> None:
    spec = spec_of(
        ("conv1", "Conv2d", {"out_channels": 4}),
        ("relu1", "ReLU", {}),
        ("flat", "Flatten", {}),
        ("fc", "Linear", {"out_features": 10}),
    )
    _load(window, spec)
    window.canvas.select(["relu1"])
    window.clipboard.cut_action.trigger()
    assert [n.id for n in window.document.spec.nodes] == ["conv1", "flat", "fc"]
    assert window.document.undo_stack.undoText() == "Cut relu1"
    window.canvas.select([])
    window.clipboard.paste_action.trigger()
    assert [n.id for n in window.document.spec.nodes] == ["conv1", "flat", "fc", "relu1"]


def test_layers_copied_in_one_window_paste_into_another(qtbot, window, app_settings) -> None:
    from cnnstudio import new_project
    from ui.main_window import MainWindow

    _load(window, resnet_small())
    window.canvas.select(BLOCK)
    window.clipboard.copy_action.trigger()
    other = MainWindow(new_project(), app_settings)
    other.show()
    try:
        before = [n.id for n in other.document.spec.nodes]
        other.canvas.select([before[0]])
        pasted = other.clipboard.paste()
        spec = other.document.spec
        assert len(pasted) == len(BLOCK) and spec.index(pasted[0]) == 1
        assert spec.node(pasted[5]).kind == "Add" and before[0] in spec.node(pasted[5]).inputs
    finally:
        qtbot.waitUntil(lambda: not other.document.busy(), timeout=60000)
        other.document.discard_changes()
        other.close()
    assert not other.document.busy()


def test_junk_on_the_clipboard_is_a_message_and_no_edit(qtbot, window, monkeypatch) -> None:
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QMessageBox

    said: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text: said.append(text))
    before = window.document.spec
    for junk in ("hello", '{"format": "cnnstudio.layers", "version": 1, "layers": [7]}'):
        QGuiApplication.clipboard().setText(junk)
        assert window.clipboard.paste() == []
    assert window.document.spec is before and window.document.undo_stack.count() == 0
    assert said[0].startswith("the clipboard holds no CNN Studio layers (not JSON")
    assert said[1] == (
        "the clipboard: layers[0]: must be an object with id, kind and params, got int"
    )
