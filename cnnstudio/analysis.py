"""The analysis of a model spec: every layer's output shape, parameters and FLOPs, and every
problem attached to the layer it belongs to, in words a user can act on.

``analyze(spec)`` builds nothing; it runs on every edit in the editor. The per-kind arithmetic is in
``cnnstudio.shapes``. Activation memory is measured on the built model instead
(``cnnstudio.activation_memory``): no per-layer formula knows what autograd keeps.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from cnnstudio.blocks import block_outputs, block_problems, flat_size, flatten, uses_blocks
from cnnstudio.layers import LAYER_KINDS, LayerKind, unknown_kind_message
from cnnstudio.params import close_name, format_bytes, show_value
from cnnstudio.shapes import RULES, Shape, Unfit, format_shape
from cnnstudio.spec import BLOCK, INPUT, ModelSpec, Node

BYTES_PER_VALUE = 4  # weights are float32
_MAX_CLASSES = int(
    next(p.maximum for p in LAYER_KINDS["Linear"].params if p.name == "out_features")
)
MAX_LAYERS = 10_000
"""More layers than any network the studio is for (ResNet-152 has about 500): past this a project
is refused with one message instead of an editor and a build that take minutes."""

# a letter first: torch keeps names that start with _ (and dunder names) for itself
_ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# Names the built model (build.SpecModel) has besides nn.Module's: a submodule may not shadow them.
_MODEL_ATTRIBUTES = frozenset(
    {"training", "output_id", "spec", "order", "plan", "output_slot", "run_steps"}
)


_NN_MODULE_WORDS = """
    T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda
    double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule half ipu load_state_dict modules mtia named_buffers named_children
    named_modules named_parameters parameters register_backward_hook register_buffer
    register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
    set_submodule share_memory state_dict to to_empty train type xpu zero_grad
"""
_NN_MODULE_NAMES = frozenset(_NN_MODULE_WORDS.split())
"""The public names of torch's nn.Module (torch 2.14), which the analysis knows without importing
torch (the editor runs before torch has loaded); tests/test_startup.py checks them against the
installed torch, and a newer torch's new names are added once it is imported."""


def _reserved_ids() -> frozenset[str]:
    """Every attribute of nn.Module and of the built model: a layer with such an id passes
    ``add_module`` or breaks the model. Read from torch too when it is imported, so that a newer
    torch's new methods are included; torch is not imported for it."""
    return _reserved_with(getattr(sys.modules.get("torch.nn"), "Module", None))


@functools.cache
def _reserved_with(module: type | None) -> frozenset[str]:
    names = frozenset(dir(module)) if module is not None else frozenset()
    return _MODEL_ATTRIBUTES | _NN_MODULE_NAMES | names


@dataclass(frozen=True)
class SpecIssue:
    """A problem with the model, attached to a layer (``layer`` None: the model as a whole)."""

    layer: str | None
    message: str
    param: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        if not self.layer:
            return self.message
        # an id with a newline or other control character would break the one line a user reads
        name = self.layer if self.layer.isprintable() else repr(self.layer)
        return f"{name}: {self.message}"


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
    blocks: tuple[LayerInfo, ...] = ()
    """The block uses as a whole (kind ``BLOCK``): their output shape, and the parameters and
    FLOPs of their layers. ``layers`` holds those layers one by one (ids ``use.inner``)."""

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
        try:
            return self._by_id[layer_id]
        except KeyError:
            raise KeyError(f"no layer with id {layer_id!r}") from None

    @functools.cached_property
    def _by_id(self) -> dict[str, LayerInfo]:
        # callers look layers up one by one, for every layer: a scan each would be quadratic
        return {info.id: info for info in (*self.layers, *self.blocks)}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``cnnstudio summary --json``."""
        return {
            "valid": self.valid,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "flops": self.flops,
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


def analyze(spec: ModelSpec) -> Analysis:
    """Shapes, parameters and FLOPs of every layer, and every problem found.

    Never raises for a bad spec: problems are returned as issues attached to their layer. Layers
    downstream of a broken one get no shape and no further errors of their own. A model with
    blocks is analysed expanded (``cnnstudio.blocks.flatten``).
    """
    if uses_blocks(spec):
        return _analyze_blocks(spec)
    return _analyze_graph(spec, _check_ids(spec))


def _analyze_graph(spec: ModelSpec, id_issues: list[SpecIssue]) -> Analysis:
    if len(spec.nodes) > MAX_LAYERS:
        return _too_many_layers(spec)
    issues: list[SpecIssue] = []
    issues += _check_model(spec) + id_issues
    inputs = _resolve_inputs(spec, issues)
    order = _topological_order(spec, inputs, issues)

    infos, shapes = _analyze_nodes(spec, inputs, order, issues)

    for node in spec.nodes:
        if node.id not in infos:
            infos[node.id] = LayerInfo(node.id, node.kind, inputs.get(node.id, ()), (), None)

    needed = _reaching_output(spec, inputs)
    output_shape = None
    if spec.nodes:
        last = spec.nodes[-1]
        output_shape = shapes.get(last.id)
        if output_shape is not None:
            _check_output(spec, last, output_shape, issues)
        _warn_unused(spec, inputs, order, needed, issues)

    layers = _with_errors(spec, infos, issues)
    built = [i for i in layers if i.id in needed]  # the totals are those of the built model
    _check_memory(built, issues)
    return Analysis(
        layers=tuple(layers),
        issues=tuple(issues),
        order=tuple(order),
        input_shape=tuple(spec.input_shape),
        output_shape=output_shape,
        total_params=sum(i.params for i in built),
        trainable_params=sum(i.trainable_params for i in built),
        flops=sum(i.flops for i in built),
    )


def _analyze_nodes(
    spec: ModelSpec,
    inputs: dict[str, tuple[str, ...]],
    order: list[str],
    issues: list[SpecIssue],
) -> tuple[dict[str, LayerInfo], dict[str, Shape | None]]:
    """Every layer in data order, from the shapes of its inputs; a layer after a broken one (or
    with an issue of its own) gets no shape."""
    model_broken = any(i.layer is None for i in issues)
    shapes: dict[str, Shape | None] = {INPUT: None if model_broken else tuple(spec.input_shape)}
    infos: dict[str, LayerInfo] = {}
    bad_ids = {i.layer for i in issues if i.layer is not None}
    first_nodes: dict[str, Node] = {}
    for node in spec.nodes:
        first_nodes.setdefault(node.id, node)
    for node_id in order:
        node = first_nodes[node_id]
        in_shapes = [shapes.get(name) for name in inputs[node_id]]
        if node_id in bad_ids or any(s is None for s in in_shapes):
            infos[node_id] = LayerInfo(node_id, node.kind, inputs[node_id], (), None)
            shapes[node_id] = None
            continue
        info = _analyze_node(node, inputs[node_id], tuple(in_shapes), issues)  # type: ignore[arg-type]
        infos[node_id] = info
        shapes[node_id] = info.output_shape
    return infos, shapes


def _with_errors(
    spec: ModelSpec, infos: dict[str, LayerInfo], issues: list[SpecIssue]
) -> list[LayerInfo]:
    """The layers in display order (the first of a repeated id), each with its error messages."""
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
    return layers


def machine_memory() -> int:
    """Bytes of physical memory of this machine (1 TiB where the system cannot say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf on Windows
        return 2**40


def _check_memory(built: list[LayerInfo], issues: list[SpecIssue]) -> None:
    """An error on the largest layer when the weights alone do not fit in this machine's memory:
    building the model would die in the allocator."""
    needed = sum(i.params for i in built) * BYTES_PER_VALUE
    available = machine_memory()
    if needed <= available:
        return
    largest = max(built, key=lambda i: i.params)
    share = format_bytes(largest.params * BYTES_PER_VALUE)
    issues.append(
        SpecIssue(
            largest.id,
            f"the model's weights need {format_bytes(needed)} ({needed // BYTES_PER_VALUE:,} "
            f"parameters), more than this machine's {format_bytes(available)} of memory; "
            f"{largest.id} alone has {largest.params:,} ({share}): make it smaller",
        )
    )


def _too_many_layers(spec: ModelSpec) -> Analysis:
    issue = SpecIssue(
        None,
        f"the model has {len(spec.nodes):,} layers, more than the {MAX_LAYERS:,} CNN Studio "
        "works with: remove layers, or start from a Backbone, which counts as one",
    )
    layers = {n.id: LayerInfo(n.id, n.kind, n.inputs, (), None) for n in reversed(spec.nodes)}
    return Analysis(
        layers=tuple(reversed(layers.values())),
        issues=(issue,),
        order=(),
        input_shape=tuple(spec.input_shape),
        output_shape=None,
        total_params=0,
        trainable_params=0,
        flops=0,
    )


def _check_model(spec: ModelSpec) -> list[SpecIssue]:
    issues = []
    c, h, w = spec.input_shape
    if not 1 <= c <= 4096 or not 1 <= h <= 8192 or not 1 <= w <= 8192:
        shown = "×".join(show_value(v) for v in (c, h, w))
        issues.append(
            SpecIssue(
                None,
                f"the input shape must be channels 1-4096 and height and width 1-8192, got {shown}",
            )
        )
    if spec.num_classes < 2:
        issues.append(
            SpecIssue(
                None,
                "a classifier needs at least 2 classes, got num_classes="
                + show_value(spec.num_classes),
            )
        )
    elif spec.num_classes > _MAX_CLASSES:
        issues.append(
            SpecIssue(
                None,
                f"num_classes must be at most {_MAX_CLASSES:,} (the most outputs a Linear layer "
                f"has), got {show_value(spec.num_classes)}",
            )
        )
    if not spec.nodes:
        issues.append(SpecIssue(None, "the model has no layers: add some from the palette"))
    return issues


def _analyze_blocks(spec: ModelSpec) -> Analysis:
    """The analysis of the expanded model, with one more ``LayerInfo`` per block use. Problems
    of the blocks themselves (an unknown block, a bad inner id) stop the analysis there."""
    issues = [SpecIssue(layer, message) for layer, message in block_problems(spec)]
    issues += _check_ids(spec)
    for name, block in spec.blocks.items():
        for issue in _check_ids(ModelSpec(block.nodes)):
            issues.append(SpecIssue(None, f"block {name!r}: {issue}"))
    if not issues and flat_size(spec) > MAX_LAYERS:
        issues.append(
            SpecIssue(
                None,
                f"the model's blocks expand into {flat_size(spec):,} layers, more than the "
                f"{MAX_LAYERS:,} CNN Studio works with: use fewer blocks or smaller ones",
            )
        )
    if issues:
        return replace(_too_many_layers(spec), issues=tuple(issues))
    flat_spec = flatten(spec)
    flat = _analyze_graph(flat_spec, [])
    infos = {info.id: info for info in flat.layers}
    needed = _reaching_output(flat_spec, {i.id: i.inputs for i in flat.layers})
    outputs = block_outputs(spec)
    owner: dict[str, str] = {}  # a flat output id -> the outermost use it is the output of
    for use_id, out_id in outputs.items():
        if out_id not in owner or len(use_id) < len(owner[out_id]):
            owner[out_id] = use_id
    uses = []
    for use_id, out_id in outputs.items():
        inner = [i for i in flat.layers if i.id.startswith(use_id + ".")]
        built = [i for i in inner if i.id in needed]
        errors = tuple(f"{i.id[len(use_id) + 1 :]}: {e}" for i in inner for e in i.errors)
        entry = [s for i in inner for s in i.inputs if not s.startswith(use_id + ".")][:1]
        shapes = [infos[s].output_shape if s in infos else flat.input_shape for s in entry]
        uses.append(
            LayerInfo(
                id=use_id,
                kind=BLOCK,
                inputs=tuple(owner.get(s, s) for s in entry),
                input_shapes=tuple(s for s in shapes if s is not None),
                output_shape=infos[out_id].output_shape,
                params=sum(i.params for i in built),
                trainable_params=sum(i.trainable_params for i in built),
                flops=sum(i.flops for i in built),
                errors=errors,
            )
        )
    return replace(flat, blocks=tuple(uses))


def _check_ids(spec: ModelSpec) -> list[SpecIssue]:
    """Every layer id well-formed, not a name the built module uses itself, and unique."""
    issues = []
    seen: dict[str, int] = {}
    for index, node in enumerate(spec.nodes):
        if not _ID_PATTERN.fullmatch(node.id):
            issues.append(
                SpecIssue(
                    node.id,
                    f"layer id {node.id!r} must start with a letter and "
                    "hold only letters, digits and _ (at most 64)",
                )
            )
        elif node.id == INPUT:
            issues.append(
                SpecIssue(
                    node.id,
                    f"layer id {INPUT!r} is reserved: it names the model's input in a "
                    "layer's inputs; choose another",
                )
            )
        elif node.id in _reserved_ids():
            issues.append(
                SpecIssue(
                    node.id,
                    f"layer id {node.id!r} is a name torch's nn.Module uses itself: "
                    f"choose another, such as {node.id}_1",
                )
            )
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
    """Layer ids in an order where every layer follows its inputs; cycles are reported.

    A depth-first walk against the data flow, with its own stack: a chain of thousands of layers
    listed against the data order is as deep as it is long, too deep for Python's recursion."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    in_cycle: set[str] = set()
    for root in spec.nodes:
        if root.id in state:
            continue
        state[root.id] = 1
        path = [root.id]
        pending = [iter(inputs.get(root.id, ()))]
        while pending:
            name = next(pending[-1], None)
            if name is None:
                done = path.pop()
                pending.pop()
                state[done] = 2
                order.append(done)
            elif name == INPUT or state.get(name) == 2:
                continue
            elif state.get(name) == 1:
                _report_cycle(path, name, in_cycle, issues)
            else:
                state[name] = 1
                path.append(name)
                pending.append(iter(inputs.get(name, ())))
    return [n for n in order if n not in in_cycle]


def _report_cycle(path: list[str], again: str, in_cycle: set[str], issues: list[SpecIssue]) -> None:
    # the walk goes against the data flow: reverse it to read as the data moves
    cycle = [again, *reversed(path[path.index(again) :])]
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
        out, n_params, trainable, flops, resolved = RULES[kind.name](values, in_shapes, sources)
    except Unfit as unfit:
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
        resolved=resolved,
    )


def _sources(inputs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("the input" if name == INPUT else name for name in inputs)


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


def _reaching_output(spec: ModelSpec, inputs: dict[str, tuple[str, ...]]) -> set[str]:
    """The layers the output layer depends on (itself included): only these are built."""
    seen: set[str] = set()
    stack = [spec.nodes[-1].id] if spec.nodes else []
    while stack:
        current = stack.pop()
        if current in seen or current == INPUT:
            continue
        seen.add(current)
        stack.extend(inputs.get(current, ()))
    return seen


def _warn_unused(
    spec: ModelSpec,
    inputs: dict[str, tuple[str, ...]],
    order: list[str],
    needed: set[str],
    issues: list[SpecIssue],
) -> None:
    used = {name for names in inputs.values() for name in names}
    in_order = set(order)
    for node in spec.nodes[:-1]:
        if node.id in needed or node.id not in in_order:
            continue
        why = (
            "only layers that do not reach the output use it"
            if node.id in used
            else "no later layer uses it"
        )
        issues.append(
            SpecIssue(
                node.id,
                f"its output goes nowhere: {why}; it is left out of the built model and its "
                "parameters are not counted",
                severity="warning",
            )
        )
