"""The analysis: shapes, parameter counts and FLOPs match torch; every bad input gets a message that
names its layer."""

from __future__ import annotations

import torch

from cnnstudio import ModelSpec, Node, analyze, build_model
from cnnstudio.spec import INPUT
from tests.helpers import flops_of, forward_shapes, messages, spec_of

CONV = {"out_channels": 8, "kernel_size": 3, "padding": 1}


def small_net(*middle: tuple, input_shape=(3, 16, 16), classes: int = 10) -> ModelSpec:
    return spec_of(
        *middle,
        ("flat", "Flatten", {}),
        ("head", "Linear", {"out_features": classes}),
        input_shape=input_shape,
        num_classes=classes,
    )


def test_linear_mismatch_names_the_numbers_and_the_fix() -> None:
    spec = spec_of(
        ("conv", "Conv2d", {"out_channels": 64, "kernel_size": 3, "padding": 1}),
        ("pool", "MaxPool2d", {"kernel_size": 4}),
        ("flatten", "Flatten", {}),
        ("fc", "Linear", {"in_features": 1000, "out_features": 10}),
    )
    analysis = analyze(spec)
    assert not analysis.valid
    assert messages(analysis, "fc") == [
        "Linear expects 1000 input features but receives 4096 from flatten: set in_features to "
        "4096 or auto"
    ]
    assert analysis.layer("fc").output_shape is None
    assert analysis.layer("flatten").output_shape == (4096,)


def test_auto_resolves_from_the_incoming_shape() -> None:
    spec = small_net(("conv", "Conv2d", CONV), ("bn", "BatchNorm2d", {}))
    analysis = analyze(spec)
    assert analysis.valid
    assert analysis.layer("conv").resolved["in_channels"] == 3
    assert analysis.layer("bn").resolved["num_features"] == 8
    assert analysis.layer("head").resolved["in_features"] == 8 * 16 * 16


def test_unknown_kind() -> None:
    analysis = analyze(small_net(("c", "Conv3d", CONV)))
    assert messages(analysis, "c") == ["unknown layer kind 'Conv3d': did you mean Conv2d?"]


def test_missing_required_parameter() -> None:
    analysis = analyze(small_net(("c", "Conv2d", {"kernel_size": 3})))
    assert messages(analysis, "c") == ["Conv2d needs out_channels (an integer from 1 to 65536)"]


def test_unknown_parameter_suggests_the_right_name() -> None:
    analysis = analyze(small_net(("c", "Conv2d", {**CONV, "kernal_size": 5})))
    assert messages(analysis, "c") == [
        "Conv2d has no parameter 'kernal_size': did you mean kernel_size?"
    ]
    assert analysis.errors[0].param == "kernal_size"


def test_ill_typed_parameter() -> None:
    analysis = analyze(small_net(("c", "Conv2d", {**CONV, "out_channels": "8"})))
    assert messages(analysis, "c") == [
        "out_channels must be an integer from 1 to 65536, got '8' (text)"
    ]


def test_value_out_of_range() -> None:
    analysis = analyze(small_net(("d", "Dropout", {"p": 1.5})))
    assert messages(analysis, "d") == ["p must be a number from 0 to 1, got 1.5"]


def test_cycle_is_reported_on_its_members() -> None:
    spec = spec_of(
        ("a", "Conv2d", CONV, ["c"]),
        ("b", "ReLU", {}),
        ("c", "Conv2d", CONV),
        ("flat", "Flatten", {}),
        ("head", "Linear", {"out_features": 10}),
    )
    analysis = analyze(spec)
    cyclic = {i.layer for i in analysis.errors}
    assert cyclic == {"a", "b", "c"}
    assert all("cycle" in m for m in messages(analysis))
    assert messages(analysis, "a") == [
        "is part of a cycle: a → b → c → a; a layer cannot feed its own input"
    ]


def test_input_that_names_no_layer() -> None:
    spec = small_net(("conv1", "Conv2d", CONV), ("add", "Add", {}, ["conv1", "conv9"]))
    analysis = analyze(spec)
    assert messages(analysis, "add") == ["input 'conv9' names no layer: did you mean conv1?"]


def test_merge_of_incompatible_shapes() -> None:
    spec = small_net(
        ("a", "Conv2d", CONV),
        ("b", "Conv2d", {**CONV, "out_channels": 16}),
        ("add", "Add", {}, ["a", "b"]),
    )
    assert messages(analyze(spec), "add") == [
        "Add needs inputs of one shape but receives 8×16×16 from a and 16×16×16 from b; make the "
        "channels match (for example a 1×1 Conv2d with out_channels 8 on the shortcut)"
    ]


def test_concat_needs_matching_sizes() -> None:
    spec = small_net(
        ("a", "Conv2d", CONV),
        ("b", "MaxPool2d", {"kernel_size": 2}),
        ("cat", "Concat", {}, ["a", "b"]),
    )
    assert messages(analyze(spec), "cat") == [
        "Concat needs feature maps of one height and width but receives 8×16×16 from a and 8×8×8 "
        "from b; pad b so it keeps 16×16 (a k×k Conv2d keeps the size with padding k // 2), or "
        "pool or stride a to 8×8"
    ]


def test_concat_adds_channels() -> None:
    spec = small_net(
        ("a", "Conv2d", CONV),
        ("b", "Conv2d", {**CONV, "out_channels": 5}, [INPUT]),
        ("cat", "Concat", {}, ["a", "b"]),
    )
    assert analyze(spec).layer("cat").output_shape == (13, 16, 16)


def test_merge_with_one_input_asks_for_another() -> None:
    analysis = analyze(small_net(("a", "Conv2d", CONV), ("add", "Add", {})))
    assert messages(analysis, "add") == [
        "Add needs 2 or more inputs but has 1: drag from another layer's output onto it"
    ]


def test_spatial_size_shrinking_below_one() -> None:
    spec = small_net(
        ("p1", "MaxPool2d", {"kernel_size": 4}),
        ("p2", "MaxPool2d", {"kernel_size": 4}),
        ("c", "Conv2d", CONV | {"padding": 0}),
    )
    assert messages(analyze(spec), "c") == [
        "Conv2d output would be 0×0: its input 1×1 is too small for a 3×3 window; remove a "
        "pooling or strided layer before it, add padding, or use a smaller kernel_size"
    ]


def test_wrong_number_of_classes_at_the_output() -> None:
    five_outputs = small_net(("c", "Conv2d", CONV), classes=5)
    analysis = analyze(ModelSpec(five_outputs.nodes, (3, 16, 16), num_classes=10))
    assert messages(analysis, "head") == [
        "the model must end with 10 outputs, one per class, but head gives 5: set out_features "
        "to 10"
    ]


def test_model_ending_in_a_feature_map() -> None:
    analysis = analyze(spec_of(("c", "Conv2d", CONV)))
    assert messages(analysis, "c") == [
        "the model ends with a feature map 8×32×32, but a classifier must end with 10 values, "
        "one per class: add Flatten and Linear(out_features=10)"
    ]


def test_linear_on_a_feature_map_asks_for_flatten() -> None:
    spec = spec_of(("c", "Conv2d", CONV), ("fc", "Linear", {"out_features": 10}))
    assert messages(analyze(spec), "fc") == [
        "Linear receives a feature map 8×32×32 from c; add a Flatten before it (it will give "
        "8192 features)"
    ]


def test_conv_after_flatten() -> None:
    spec = spec_of(("f", "Flatten", {}), ("c", "Conv2d", CONV), ("fc", "Linear",
                   {"out_features": 10}))  # fmt: skip
    assert messages(analyze(spec), "c") == [
        "Conv2d needs a feature map (channels×height×width) but receives a flat vector of 3072 "
        "features from f; move it before Flatten"
    ]


def test_explicit_channel_mismatch() -> None:
    analysis = analyze(small_net(("c", "Conv2d", {**CONV, "in_channels": 1})))
    assert messages(analysis, "c") == [
        "Conv2d expects 1 input channels but receives 3 from the input: set in_channels to 3 or "
        "auto"
    ]


def test_duplicate_and_reserved_and_malformed_ids() -> None:
    spec = small_net(("c", "Conv2d", CONV), ("c", "ReLU", {}), ("forward", "ReLU", {}),
                     ("2x", "ReLU", {}))  # fmt: skip
    analysis = analyze(spec)
    text = [str(e) for e in analysis.errors]
    assert "c: layer id 'c' is used by layers 1 and 2: ids must be unique" in text
    assert (
        "forward: layer id 'forward' is a name torch's nn.Module uses itself: choose another, "
        "such as forward_1" in text
    )
    assert any(t.startswith("2x: layer id '2x' must start with a letter") for t in text)


def test_empty_model_and_bad_input_shape() -> None:
    assert messages(analyze(ModelSpec((), (3, 32, 32), 10))) == [
        "the model has no layers: add some from the palette"
    ]
    bad = analyze(small_net(("c", "Conv2d", CONV), input_shape=(0, 16, 16)))
    assert bad.errors[0].layer is None and "input shape" in bad.errors[0].message
    assert analyze(ModelSpec(small_net(("c", "Conv2d", CONV)).nodes, (3, 16, 16), 1)).errors


def test_errors_do_not_cascade_downstream() -> None:
    analysis = analyze(small_net(("c", "Conv2d", {**CONV, "out_channels": -1}), ("r", "ReLU", {})))
    assert [e.layer for e in analysis.errors] == ["c"]
    assert analysis.layer("r").output_shape is None


def test_unused_branch_is_a_warning_and_is_not_built() -> None:
    spec = small_net(("side", "Conv2d", CONV), ("main", "Conv2d", CONV, [INPUT]))
    analysis = analyze(spec)
    assert analysis.valid
    assert [str(w) for w in analysis.warnings] == [
        "side: its output goes nowhere: no later layer uses it; it is left out of the built "
        "model and its parameters are not counted"
    ]
    model = build_model(spec)
    assert not hasattr(model, "side") and hasattr(model, "main")


def test_padding_same_and_pool_padding_rules() -> None:
    same = analyze(small_net(("c", "Conv2d", {**CONV, "kernel_size": 4, "padding": "same"})))
    assert same.valid and same.layer("c").output_shape == (8, 16, 16)
    strided = analyze(small_net(("c", "Conv2d", {**CONV, "padding": "same", "stride": 2})))
    assert messages(strided, "c") == [
        "padding 'same' works only with stride 1: set padding to a number"
    ]
    pool = analyze(small_net(("p", "MaxPool2d", {"kernel_size": 2, "padding": 2})))
    assert messages(pool, "p") == ["padding (2) must be at most half of kernel_size (2)"]


def test_groups_must_divide_channels() -> None:
    analysis = analyze(small_net(("c", "Conv2d", {**CONV, "groups": 2})))
    assert messages(analysis, "c") == [
        "groups (2) must divide both in_channels (3) and out_channels (8)"
    ]


BRANCHY = (
    ("stem", "Conv2d", CONV),
    ("a", "Conv2d", {**CONV, "stride": 2, "dilation": 2, "padding": 2}),
    ("b", "MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
     ["stem"]),
    ("b2", "Conv2d", {"out_channels": 8, "kernel_size": 1, "padding": 0, "groups": 1}),
    ("cat", "Concat", {}, ["a", "b2"]),
    ("dw", "Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": "same", "groups": 16}),
    ("bn", "BatchNorm2d", {}),
    ("act", "GELU", {"approximate": "tanh"}),
    ("sum", "Add", {}, ["act", "cat"]),
    ("avg", "AvgPool2d", {"kernel_size": 3, "stride": 1, "padding": 1, "ceil_mode": True}),
    ("gap", "AdaptiveAvgPool2d", {"output_size": 2}),
    ("d2", "Dropout2d", {"p": 0.1}),
)  # fmt: skip


def test_branching_model_analysis_matches_a_real_forward_pass() -> None:
    spec = small_net(*BRANCHY, input_shape=(3, 15, 17))
    analysis = analyze(spec)
    assert analysis.valid, [str(e) for e in analysis.errors]
    model = build_model(spec)
    real = forward_shapes(model, spec.input_shape)
    for info in analysis.layers:
        assert info.output_shape == real[info.id], info.id
        module = getattr(model, info.id)
        assert info.params == sum(p.numel() for p in module.parameters()), info.id


def test_flops_match_torch_flop_counter_per_layer() -> None:
    spec = small_net(*BRANCHY, input_shape=(3, 15, 17))
    analysis = analyze(spec)
    model = build_model(spec).eval()
    values: dict[str, torch.Tensor] = {INPUT: torch.randn(1, *spec.input_shape)}
    for node_id in analysis.order:
        info = analysis.layer(node_id)
        inputs = [values[name] for name in info.inputs]
        module = getattr(model, node_id)
        assert info.flops == flops_of(module, *inputs), node_id
        with torch.no_grad():
            values[node_id] = module(*inputs)
    assert analysis.flops == flops_of(model, values[INPUT])


def test_analysis_to_dict_is_json_ready() -> None:
    import json

    data = analyze(small_net(("c", "Conv2d", {**CONV, "out_channels": 0}))).to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON's own types: no tuples, no objects
    assert data["valid"] is False
    assert data["layers"][0]["error"] == "out_channels must be an integer from 1 to 65536, got 0"
    assert data["errors"] == [{"layer": "c", "message": data["layers"][0]["error"]}]


def test_spec_edits_return_new_specs() -> None:
    spec = small_net(("c", "Conv2d", CONV))
    grown = spec.insert(1, Node(spec.new_id("ReLU"), "ReLU"))
    assert [n.id for n in grown.nodes] == ["c", "relu1", "flat", "head"]
    assert [n.id for n in spec.nodes] == ["c", "flat", "head"]
    assert grown.set_params("c", out_channels=4).node("c").params["out_channels"] == 4
    assert spec.node("c").params["out_channels"] == 8
    assert [n.id for n in grown.remove("relu1").nodes] == ["c", "flat", "head"]
    assert spec.new_id("Conv2d") == "conv1"


def test_removing_a_layer_rewires_the_layers_that_named_it() -> None:
    spec = small_net(
        ("a", "Conv2d", CONV),
        ("b", "Conv2d", CONV),
        ("c", "Conv2d", CONV),
        ("add", "Add", {}, ["c", "b"]),
    )
    without_b = spec.remove("b")
    assert without_b.node("add").inputs == ("c", "a")
    assert analyze(without_b).valid
    without_c = spec.remove("c")
    assert without_c.node("add").inputs == ("b",)


def test_move_duplicate_connect() -> None:
    spec = small_net(("a", "Conv2d", CONV), ("r", "ReLU", {}), ("add", "Add", {}))
    moved = spec.move("r", 0)
    assert [n.id for n in moved.nodes][:2] == ["r", "a"]
    copied, ids = spec.duplicate(["a"])
    assert ids == ["conv1"] and [n.id for n in copied.nodes][:3] == ["a", "conv1", "r"]
    assert copied.node("conv1").params == spec.node("a").params
    joined = spec.connect("a", "add")
    assert joined.node("add").inputs == ("r", "a")
    assert joined.connect("a", "add") == joined
    assert analyze(joined).valid
