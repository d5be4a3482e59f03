"""The model as a graph of layer nodes, and its analysis.

A ``ModelSpec`` is plain data (it is what project.json holds under "model"). ``analyze(spec)``
works out, without building anything, every layer's output shape, parameters, FLOPs and activation
memory, and attaches each problem to the layer it belongs to, in words a user can act on. It runs on
every edit in the editor, so it is pure Python arithmetic except for Backbone layers, which are
probed once on torch's meta device and cached.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from cnnstudio import backbones
from cnnstudio.errors import ProjectError
from cnnstudio.layers import LAYER_KINDS, LayerKind, unknown_kind_message
from cnnstudio.params import AUTO, close_name

Shape = tuple[int, ...]

INPUT = "input"
"""The name by which a node's ``inputs`` refer to the model's input."""

BYTES_PER_VALUE = 4  # activations are float32 unless mixed precision is on

_ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Attribute names of nn.Module and of the built model: a submodule may not shadow them.
_RESERVED_IDS = frozenset(
    {
        INPUT,
        "forward",
        "training",
        "to",
        "cuda",
        "cpu",
        "eval",
        "train",
        "state_dict",
        "parameters",
        "modules",
        "children",
        "apply",
        "half",
        "float",
        "double",
        "type",
        "zero_grad",
        "register_buffer",
        "add_module",
        "get_submodule",
        "named_modules",
        "buffers",
        "extra_repr",
        "requires_grad_",
        "share_memory",
        "load_state_dict",
        "bfloat16",
        "ipu",
        "xpu",
        "mtia",
        "compile",
        "order",
        "output_id",
        "spec",
        "dump_patches",
        "call_super_init",
        "T_destination",
    }
)


@dataclass(frozen=True)
class Node:
    """One layer: a unique id, a kind from the catalogue, its parameters and its inputs.

    ``inputs`` empty means "the node before me" (the model input for the first node); merge kinds
    name their inputs explicitly.
    """

    id: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "params": dict(self.params)}
        if self.inputs:
            data["inputs"] = list(self.inputs)
        return data


@dataclass(frozen=True)
class ModelSpec:
    """A model: its layer nodes in display order, the input shape (C, H, W) and the class count.

    The last node is the output. Specs are immutable; edits make new specs.
    """

    nodes: tuple[Node, ...]
    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "nodes": [node.to_dict() for node in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "model") -> ModelSpec:
        """Read a spec from JSON data; ProjectError naming the position when the structure is wrong.

        Only the structure is checked here (objects, lists, strings where they belong). Whether the
        layers make sense is the analysis' job, so that a project with a bad layer still opens and
        can be fixed in the editor.
        """
        _expect(data, dict, where, "an object")
        _no_unknown_keys(data, ("input_shape", "num_classes", "nodes"), where)
        nodes_data = data.get("nodes")
        if nodes_data is None:
            raise ProjectError(None, "'nodes' is missing (a list of layers)", where)
        _expect(nodes_data, list, f"{where}.nodes", "a list of layers")
        nodes = tuple(
            _node_from_dict(item, f"{where}.nodes[{i}]") for i, item in enumerate(nodes_data)
        )
        shape = data.get("input_shape", [3, 32, 32])
        if (
            not isinstance(shape, list)
            or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
        ):
            raise ProjectError(
                None,
                f"must be three integers [channels, height, width], got {shape!r}",
                f"{where}.input_shape",
            )
        num_classes = data.get("num_classes", 10)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool):
            raise ProjectError(
                None, f"must be an integer, got {num_classes!r}", f"{where}.num_classes"
            )
        return cls(nodes=nodes, input_shape=tuple(shape), num_classes=num_classes)

    # Edits. Each returns a new spec; the editor's undo commands are built on these.

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"no layer with id {node_id!r}")

    def index(self, node_id: str) -> int:
        return next(i for i, node in enumerate(self.nodes) if node.id == node_id)

    def with_nodes(self, nodes: tuple[Node, ...] | list[Node]) -> ModelSpec:
        return replace(self, nodes=tuple(nodes))

    def insert(self, index: int, node: Node) -> ModelSpec:
        nodes = list(self.nodes)
        nodes.insert(index, node)
        return self.with_nodes(nodes)

    def remove(self, node_id: str) -> ModelSpec:
        """Without the layer ``node_id``; layers that named it as an input take its input
        instead, so a removed layer inside a residual block does not leave a dangling edge."""
        index = self.index(node_id)
        node = self.nodes[index]
        replacement = node.inputs or ((self.nodes[index - 1].id,) if index > 0 else (INPUT,))
        nodes = []
        for other in self.nodes:
            if other.id == node_id:
                continue
            if node_id in other.inputs:
                rewired: list[str] = []
                for name in other.inputs:
                    for new in replacement if name == node_id else (name,):
                        if new not in rewired:
                            rewired.append(new)
                other = replace(other, inputs=tuple(rewired))
            nodes.append(other)
        return self.with_nodes(nodes)

    def move(self, node_id: str, index: int) -> ModelSpec:
        """The layer ``node_id`` moved to position ``index`` (counted without it)."""
        node = self.node(node_id)
        rest = [n for n in self.nodes if n.id != node_id]
        rest.insert(max(0, min(index, len(rest))), node)
        return self.with_nodes(rest)

    def duplicate(self, node_ids: list[str] | tuple[str, ...]) -> tuple[ModelSpec, list[str]]:
        """Copies of the layers ``node_ids``, each inserted right after its original; returns the
        new spec and the copies' ids."""
        spec, made = self, []
        for node_id in node_ids:
            node = spec.node(node_id)
            copy = replace(node, id=spec.new_id(node.kind), params=dict(node.params), inputs=())
            spec = spec.insert(spec.index(node_id) + 1, copy)
            made.append(copy.id)
        return spec, made

    def connect(self, source: str, target: str) -> ModelSpec:
        """Make ``source`` one more input of the merge layer ``target``. A merge that took the
        layer before it implicitly keeps that layer as its first input."""
        index = self.index(target)
        node = self.nodes[index]
        current = node.inputs or ((self.nodes[index - 1].id,) if index > 0 else (INPUT,))
        if source in current:
            return self
        return self.with_nodes(
            replace(n, inputs=(*current, source)) if n.id == target else n for n in self.nodes
        )

    def with_shape(self, input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
        return replace(self, input_shape=tuple(input_shape), num_classes=num_classes)

    def set_params(self, node_id: str, **params: Any) -> ModelSpec:
        return self.with_nodes(
            replace(n, params={**n.params, **params}) if n.id == node_id else n for n in self.nodes
        )

    def new_id(self, kind: str) -> str:
        """A fresh id for a layer of ``kind``: conv1, conv2, ... (the catalogue's stem)."""
        known = LAYER_KINDS.get(kind)
        stem = known.new_id_stem() if known else re.sub(r"[^a-z0-9]", "", kind.lower()) or "layer"
        taken = {n.id for n in self.nodes}
        i = 1
        while f"{stem}{i}" in taken:
            i += 1
        return f"{stem}{i}"


@dataclass(frozen=True)
class SpecIssue:
    """A problem with the model, attached to a layer (``layer`` None: the model as a whole)."""

    layer: str | None
    message: str
    param: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.layer}: {self.message}" if self.layer else self.message


@dataclass(frozen=True)
class LayerInfo:
    """What the analysis knows about one layer. Shapes are per sample, without the batch."""

    id: str
    kind: str
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape | None
    params: int = 0
    trainable_params: int = 0
    flops: int = 0
    activation_bytes: int = 0
    resolved: dict[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Analysis:
    """The result of ``analyze``: per-layer facts, issues and totals (per sample)."""

    layers: tuple[LayerInfo, ...]
    issues: tuple[SpecIssue, ...]
    order: tuple[str, ...]
    input_shape: Shape
    output_shape: Shape | None
    total_params: int
    trainable_params: int
    flops: int
    activation_bytes: int

    @property
    def errors(self) -> tuple[SpecIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[SpecIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def valid(self) -> bool:
        return not self.errors

    def layer(self, layer_id: str) -> LayerInfo:
        for info in self.layers:
            if info.id == layer_id:
                return info
        raise KeyError(f"no layer with id {layer_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``cnnstudio summary --json``."""
        return {
            "valid": self.valid,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "layers": [
                {
                    "id": info.id,
                    "kind": info.kind,
                    "output_shape": list(info.output_shape) if info.output_shape else None,
                    "params": info.params,
                    "trainable_params": info.trainable_params,
                    "flops": info.flops,
                    "error": "; ".join(info.errors) if info.errors else None,
                }
                for info in self.layers
            ],
            "errors": [{"layer": i.layer, "message": i.message} for i in self.errors],
            "warnings": [{"layer": i.layer, "message": i.message} for i in self.warnings],
        }


def format_shape(shape: Shape | None) -> str:
    """64×8×8 for a feature map, 512 for a vector."""
    return "?" if shape is None else "×".join(str(v) for v in shape)


class _Unfit(Exception):
    """Raised by a shape rule: the layer does not fit its input. Carries the user's message."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def analyze(spec: ModelSpec) -> Analysis:
    """Shapes, parameters, FLOPs and activation memory of every layer, and every problem found.

    Never raises for a bad spec: problems are returned as issues attached to their layer. Layers
    downstream of a broken one get no shape and no further errors of their own.
    """
    issues: list[SpecIssue] = []
    issues += _check_model(spec)
    inputs = _resolve_inputs(spec, issues)
    order = _topological_order(spec, inputs, issues)

    model_broken = any(i.layer is None for i in issues)
    shapes: dict[str, Shape | None] = {INPUT: None if model_broken else tuple(spec.input_shape)}
    infos: dict[str, LayerInfo] = {}
    bad_ids = {i.layer for i in issues if i.layer is not None}
    for node_id in order:
        node = _first_node(spec, node_id)
        in_shapes = [shapes.get(name) for name in inputs[node_id]]
        if node_id in bad_ids or any(s is None for s in in_shapes):
            infos[node_id] = LayerInfo(node_id, node.kind, inputs[node_id], (), None)
            shapes[node_id] = None
            continue
        info = _analyze_node(node, inputs[node_id], tuple(in_shapes), issues)  # type: ignore[arg-type]
        infos[node_id] = info
        shapes[node_id] = info.output_shape

    for node in spec.nodes:
        if node.id not in infos:
            infos[node.id] = LayerInfo(node.id, node.kind, inputs.get(node.id, ()), (), None)

    output_shape = None
    if spec.nodes:
        last = spec.nodes[-1]
        output_shape = shapes.get(last.id)
        if output_shape is not None:
            _check_output(spec, last, output_shape, issues)
        _warn_unused(spec, inputs, order, issues)

    errors_by_layer: dict[str, list[str]] = {}
    for issue in issues:
        if issue.layer is not None and issue.severity == "error":
            errors_by_layer.setdefault(issue.layer, []).append(issue.message)
    seen: set[str] = set()
    layers = []
    for node in spec.nodes:
        if node.id in seen:
            continue
        seen.add(node.id)
        layers.append(replace(infos[node.id], errors=tuple(errors_by_layer.get(node.id, ()))))
    return Analysis(
        layers=tuple(layers),
        issues=tuple(issues),
        order=tuple(order),
        input_shape=tuple(spec.input_shape),
        output_shape=output_shape,
        total_params=sum(i.params for i in layers),
        trainable_params=sum(i.trainable_params for i in layers),
        flops=sum(i.flops for i in layers),
        activation_bytes=sum(i.activation_bytes for i in layers),
    )


def _first_node(spec: ModelSpec, node_id: str) -> Node:
    return next(n for n in spec.nodes if n.id == node_id)


def _check_model(spec: ModelSpec) -> list[SpecIssue]:
    issues = []
    c, h, w = spec.input_shape
    if not 1 <= c <= 4096 or not 1 <= h <= 8192 or not 1 <= w <= 8192:
        issues.append(
            SpecIssue(
                None,
                f"the input shape must be channels 1-4096 and height and width "
                f"1-8192, got {c}×{h}×{w}",
            )
        )
    if spec.num_classes < 2:
        issues.append(
            SpecIssue(
                None, f"a classifier needs at least 2 classes, got num_classes={spec.num_classes}"
            )
        )
    if not spec.nodes:
        issues.append(SpecIssue(None, "the model has no layers: add some from the palette"))
    seen: dict[str, int] = {}
    for index, node in enumerate(spec.nodes):
        if not _ID_PATTERN.match(node.id):
            issues.append(
                SpecIssue(
                    node.id,
                    f"layer id {node.id!r} must start with a letter and "
                    "hold only letters, digits and _ (at most 64)",
                )
            )
        elif node.id in _RESERVED_IDS:
            issues.append(SpecIssue(node.id, f"layer id {node.id!r} is reserved: choose another"))
        if node.id in seen:
            issues.append(
                SpecIssue(
                    node.id,
                    f"layer id {node.id!r} is used by layers "
                    f"{seen[node.id] + 1} and {index + 1}: ids must be unique",
                )
            )
        else:
            seen[node.id] = index
    return issues


def _resolve_inputs(spec: ModelSpec, issues: list[SpecIssue]) -> dict[str, tuple[str, ...]]:
    ids = {n.id for n in spec.nodes}
    inputs: dict[str, tuple[str, ...]] = {}
    previous = INPUT
    for node in spec.nodes:
        names = tuple(node.inputs) if node.inputs else (previous,)
        known = []
        for name in names:
            if name == INPUT or name in ids:
                known.append(name)
            else:
                hint = close_name(name, sorted(ids))
                fix = f": did you mean {hint}?" if hint else ""
                issues.append(
                    SpecIssue(node.id, f"input {name!r} names no layer{fix}", param="inputs")
                )
        if node.id not in inputs:
            inputs[node.id] = tuple(known) if len(known) == len(names) else ()
        previous = node.id
    return inputs


def _topological_order(
    spec: ModelSpec, inputs: dict[str, tuple[str, ...]], issues: list[SpecIssue]
) -> list[str]:
    """Layer ids in an order where every layer follows its inputs; cycles are reported."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: visiting, 2: done
    in_cycle: set[str] = set()

    def visit(node_id: str, path: list[str]) -> None:
        if state.get(node_id) == 2 or node_id == INPUT:
            return
        if state.get(node_id) == 1:
            # the walk goes against the data flow: reverse it to read as the data moves
            cycle = [node_id, *reversed(path[path.index(node_id) :])]
            for member in cycle[:-1]:
                if member not in in_cycle:
                    in_cycle.add(member)
                    issues.append(
                        SpecIssue(
                            member,
                            "is part of a cycle: " + " → ".join(cycle) + "; a layer cannot feed "
                            "its own input",
                            param="inputs",
                        )
                    )
            return
        state[node_id] = 1
        for name in inputs.get(node_id, ()):
            visit(name, [*path, node_id])
        state[node_id] = 2
        order.append(node_id)

    for node in spec.nodes:
        visit(node.id, [])
    return [n for n in order if n not in in_cycle]


def _check_params(kind: LayerKind, node: Node) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Params with defaults filled in, and the (param, message) problems found."""
    problems: list[tuple[str, str]] = []
    if not isinstance(node.params, dict):
        return {}, [("params", "params must be an object of name: value")]
    names = kind.param_names()
    for name in node.params:
        if name not in names:
            if not names:
                problems.append((name, f"{kind.name} takes no parameters, got {name!r}"))
                continue
            hint = close_name(name, names)
            fix = f": did you mean {hint}?" if hint else f" (it has {', '.join(names)})"
            problems.append((name, f"{kind.name} has no parameter {name!r}{fix}"))
    values: dict[str, Any] = {}
    for param in kind.params:
        if param.name not in node.params:
            if param.required:
                problems.append(
                    (param.name, f"{kind.name} needs {param.name} ({param.describe()})")
                )
            values[param.name] = param.default
            continue
        value = node.params[param.name]
        reason = param.check(value)
        if reason:
            problems.append((param.name, f"{param.name} {reason}"))
        values[param.name] = value
    return values, problems


def _analyze_node(
    node: Node, inputs: tuple[str, ...], in_shapes: tuple[Shape, ...], issues: list[SpecIssue]
) -> LayerInfo:
    def fail(message: str, param: str | None = None) -> LayerInfo:
        issues.append(SpecIssue(node.id, message, param=param))
        return LayerInfo(node.id, node.kind, inputs, in_shapes, None)

    kind = LAYER_KINDS.get(node.kind) if isinstance(node.kind, str) else None
    if kind is None:
        return fail(unknown_kind_message(node.kind), param="kind")
    values, problems = _check_params(kind, node)
    if problems:
        for param, message in problems:
            issues.append(SpecIssue(node.id, message, param=param))
        return LayerInfo(node.id, node.kind, inputs, in_shapes, None)
    if not kind.min_inputs <= len(in_shapes) <= kind.max_inputs:
        if kind.is_merge:
            return fail(
                f"{kind.name} needs {kind.min_inputs} or more inputs but has "
                f"{len(in_shapes)}: drag from another layer's output onto it",
                param="inputs",
            )
        return fail(
            f"{kind.name} takes one input but has {len(in_shapes)}: use Add or Concat "
            "to merge branches",
            param="inputs",
        )
    sources = _sources(inputs)
    try:
        out, n_params, trainable, flops, resolved = _RULES[kind.name](values, in_shapes, sources)
    except _Unfit as unfit:
        return fail(unfit.args[0], unfit.param)
    return LayerInfo(
        id=node.id,
        kind=node.kind,
        inputs=inputs,
        input_shapes=in_shapes,
        output_shape=out,
        params=n_params,
        trainable_params=trainable,
        flops=flops,
        activation_bytes=math.prod(out) * BYTES_PER_VALUE,
        resolved=resolved,
    )


def _sources(inputs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("the input" if name == INPUT else name for name in inputs)


# Shape rules: (values, input shapes, source names)
#   -> (out shape, params, trainable params, flops, resolved values)


def _need_map(kind: str, shape: Shape, source: str, instead: str) -> None:
    if len(shape) != 3:
        raise _Unfit(
            f"{kind} needs a feature map (channels×height×width) but receives a flat "
            f"vector of {shape[0]} features from {source}; {instead}"
        )


def _need_vector(kind: str, shape: Shape, source: str, instead: str) -> None:
    if len(shape) != 1:
        raise _Unfit(
            f"{kind} needs a flat vector but receives a feature map "
            f"{format_shape(shape)} from {source}; {instead}"
        )


def _auto(values: dict[str, Any], name: str, actual: int, kind: str, source: str, what: str) -> int:
    given = values[name]
    if given == AUTO:
        return actual
    if given != actual:
        raise _Unfit(
            f"{kind} expects {given} input {what} but receives {actual} from {source}: "
            f"set {name} to {actual} or auto",
            param=name,
        )
    return given


def _window(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _too_small(kind: str, shape: Shape, out_h: int, out_w: int, kernel: int) -> _Unfit:
    return _Unfit(
        f"{kind} output would be {out_h}×{out_w}: its input {shape[1]}×{shape[2]} is "
        f"too small for a {kernel}×{kernel} window; remove a pooling or strided layer "
        "before it, add padding, or use a smaller kernel_size"
    )


def _conv2d(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    _need_map("Conv2d", shape, source, "move it before Flatten")
    in_channels = _auto(values, "in_channels", shape[0], "Conv2d", source, "channels")
    out_channels, k, stride = values["out_channels"], values["kernel_size"], values["stride"]
    dilation, groups, padding = values["dilation"], values["groups"], values["padding"]
    if in_channels % groups or out_channels % groups:
        raise _Unfit(
            f"groups ({groups}) must divide both in_channels ({in_channels}) and "
            f"out_channels ({out_channels})",
            param="groups",
        )
    if padding == "same":
        if stride != 1:
            raise _Unfit(
                "padding 'same' works only with stride 1: set padding to a number", param="padding"
            )
        out_h, out_w = shape[1], shape[2]
    else:
        pad = 0 if padding == "valid" else padding
        out_h = _window(shape[1], k, stride, pad, dilation, False)
        out_w = _window(shape[2], k, stride, pad, dilation, False)
    if out_h < 1 or out_w < 1:
        raise _too_small("Conv2d", shape, out_h, out_w, k)
    n = out_channels * (in_channels // groups) * k * k + (out_channels if values["bias"] else 0)
    flops = 2 * out_h * out_w * out_channels * (in_channels // groups) * k * k
    resolved = {**values, "in_channels": in_channels}
    return (out_channels, out_h, out_w), n, n, flops, resolved


def _pool(name: str):
    def rule(values, shapes, sources):
        (shape,), (source,) = shapes, sources
        _need_map(name, shape, source, "move it before Flatten")
        k, padding, ceil = values["kernel_size"], values["padding"], values["ceil_mode"]
        stride = k if values["stride"] == AUTO else values["stride"]
        if 2 * padding > k:
            raise _Unfit(
                f"padding ({padding}) must be at most half of kernel_size ({k})", param="padding"
            )
        out_h = _window(shape[1], k, stride, padding, 1, ceil)
        out_w = _window(shape[2], k, stride, padding, 1, ceil)
        if out_h < 1 or out_w < 1:
            raise _too_small(name, shape, out_h, out_w, k)
        return (shape[0], out_h, out_w), 0, 0, 0, {**values, "stride": stride}

    return rule


def _adaptive_avg_pool(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    _need_map("AdaptiveAvgPool2d", shape, source, "move it before Flatten")
    size = values["output_size"]
    return (shape[0], size, size), 0, 0, 0, dict(values)


def _batch_norm_2d(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    _need_map("BatchNorm2d", shape, source, "use BatchNorm1d after Flatten")
    c = _auto(values, "num_features", shape[0], "BatchNorm2d", source, "channels")
    return shape, 2 * c, 2 * c, 0, {**values, "num_features": c}


def _batch_norm_1d(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    _need_vector("BatchNorm1d", shape, source, "use BatchNorm2d here, or put it after Flatten")
    c = _auto(values, "num_features", shape[0], "BatchNorm1d", source, "features")
    return shape, 2 * c, 2 * c, 0, {**values, "num_features": c}


def _same(values, shapes, sources):
    return shapes[0], 0, 0, 0, dict(values)


def _dropout_2d(values, shapes, sources):
    _need_map("Dropout2d", shapes[0], sources[0], "use Dropout for flat vectors")
    return _same(values, shapes, sources)


def _flatten(values, shapes, sources):
    return (math.prod(shapes[0]),), 0, 0, 0, {}


def _linear(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    if len(shape) != 1:
        raise _Unfit(
            f"Linear receives a feature map {format_shape(shape)} from {source}; add a "
            f"Flatten before it (it will give {math.prod(shape)} features)"
        )
    in_features = _auto(values, "in_features", shape[0], "Linear", source, "features")
    out = values["out_features"]
    n = in_features * out + (out if values["bias"] else 0)
    return (out,), n, n, 2 * in_features * out, {**values, "in_features": in_features}


def _listing(shapes: tuple[Shape, ...], sources: tuple[str, ...]) -> str:
    return " and ".join(
        f"{format_shape(s)} from {src}" for s, src in zip(shapes, sources, strict=True)
    )


def _add(values, shapes, sources):
    if any(s != shapes[0] for s in shapes):
        got = _listing(shapes, sources)
        fix = ""
        if all(len(s) == 3 for s in shapes) and len({s[1:] for s in shapes}) == 1:
            fix = (
                f"; make the channels match (for example a 1×1 Conv2d with out_channels "
                f"{shapes[0][0]} on the shortcut)"
            )
        elif all(len(s) == 3 for s in shapes):
            fix = "; make the sizes match (for example a strided 1×1 Conv2d on the shortcut)"
        raise _Unfit(f"Add needs inputs of one shape but receives {got}{fix}")
    return shapes[0], 0, 0, 0, {}


def _concat(values, shapes, sources):
    got = _listing(shapes, sources)
    if len({len(s) for s in shapes}) != 1:
        raise _Unfit(
            f"Concat cannot join feature maps with flat vectors: it receives {got}; "
            "add Flatten to the feature maps first"
        )
    if len(shapes[0]) == 3 and len({s[1:] for s in shapes}) != 1:
        raise _Unfit(
            f"Concat needs feature maps of one height and width but receives {got}; "
            "pool or stride the larger ones to match"
        )
    return (sum(s[0] for s in shapes), *shapes[0][1:]), 0, 0, 0, {}


def _backbone(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    name = values["name"]
    _need_map("Backbone", shape, source, "a backbone takes images: put it first")
    if shape[0] != 3:
        raise _Unfit(
            f"Backbone {name} expects 3 input channels (RGB) but receives {shape[0]} "
            f"from {source}: set the model input to 3 channels"
        )
    try:
        probe = backbones.probe(name, shape, values["weights"])
    except backbones.ProbeError as error:
        raise _Unfit(str(error)) from None
    trainable = 0 if values["freeze"] else probe.params
    return probe.output_shape, probe.params, trainable, probe.flops, dict(values)


_RULES = {
    "Conv2d": _conv2d,
    "MaxPool2d": _pool("MaxPool2d"),
    "AvgPool2d": _pool("AvgPool2d"),
    "AdaptiveAvgPool2d": _adaptive_avg_pool,
    "BatchNorm2d": _batch_norm_2d,
    "BatchNorm1d": _batch_norm_1d,
    "ReLU": _same,
    "LeakyReLU": _same,
    "GELU": _same,
    "SiLU": _same,
    "Sigmoid": _same,
    "Tanh": _same,
    "Dropout": _same,
    "Dropout2d": _dropout_2d,
    "Flatten": _flatten,
    "Linear": _linear,
    "Identity": _same,
    "Add": _add,
    "Concat": _concat,
    "Backbone": _backbone,
}


def _check_output(spec: ModelSpec, last: Node, shape: Shape, issues: list[SpecIssue]) -> None:
    n = spec.num_classes
    if len(shape) != 1:
        issues.append(
            SpecIssue(
                last.id,
                f"the model ends with a feature map "
                f"{format_shape(shape)}, but a classifier must end with "
                f"{n} values, one per class: add Flatten and "
                f"Linear(out_features={n})",
            )
        )
    elif shape[0] != n:
        fix = (
            f"set out_features to {n}"
            if last.kind == "Linear"
            else f"end with Linear(out_features={n})"
        )
        issues.append(
            SpecIssue(
                last.id,
                f"the model must end with {n} outputs, one per class, "
                f"but {last.id} gives {shape[0]}: {fix}",
                param="out_features" if last.kind == "Linear" else None,
            )
        )


def _warn_unused(
    spec: ModelSpec, inputs: dict[str, tuple[str, ...]], order: list[str], issues: list[SpecIssue]
) -> None:
    used = {name for names in inputs.values() for name in names}
    for node in spec.nodes[:-1]:
        if node.id not in used and node.id in order:
            issues.append(
                SpecIssue(
                    node.id, "its output goes nowhere: no later layer uses it", severity="warning"
                )
            )


def _expect(value: Any, type_: type, where: str, noun: str) -> None:
    if not isinstance(value, type_):
        found = "null" if value is None else type(value).__name__
        raise ProjectError(None, f"must be {noun}, got {found}", where)


def _no_unknown_keys(data: dict, known: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in known:
            hint = close_name(str(key), known)
            fix = f" (did you mean {hint!r}?)" if hint else f" (known: {', '.join(known)})"
            raise ProjectError(None, f"unknown key {key!r}{fix}", where)


def _node_from_dict(data: Any, where: str) -> Node:
    _expect(data, dict, where, "an object with id, kind and params")
    _no_unknown_keys(data, ("id", "kind", "params", "inputs"), where)
    for key in ("id", "kind"):
        if key not in data:
            raise ProjectError(None, f"{key!r} is missing", where)
        _expect(data[key], str, f"{where}.{key}", "text")
    params = data.get("params", {})
    _expect(params, dict, f"{where}.params", "an object of name: value")
    inputs = data.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(v, str) for v in inputs):
        raise ProjectError(None, f"must be a list of layer ids, got {inputs!r}", f"{where}.inputs")
    return Node(id=data["id"], kind=data["kind"], params=dict(params), inputs=tuple(inputs))
