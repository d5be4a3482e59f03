"""Named blocks: a subgraph (a residual block, an Inception module) defined once in
``ModelSpec.blocks`` and used by nodes of kind ``BLOCK``.

A definition's nodes name the block's one input ``INPUT``; its last node is its output. Editing a
definition changes every use. ``flatten`` expands every use into plain layers whose ids are the
use's id and the inner id joined by a dot (``res1.conv1``): the builder makes one nested module
per use, so the weights read ``res1.conv1.weight``. The edits here (make a block from a
selection, inline, make unique, rename) return new specs, like ``ModelSpec``'s own.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from cnnstudio.errors import BlockError
from cnnstudio.layers import LAYER_KINDS
from cnnstudio.spec import BLOCK, INPUT, BlockDef, ModelSpec, Node, block_cycle

_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def block_of(node: Node) -> str | None:
    """The block name a node uses, or None for a plain layer."""
    if node.kind != BLOCK:
        return None
    name = node.params.get("block")
    return name if isinstance(name, str) else None


def uses_blocks(spec: ModelSpec) -> bool:
    return bool(spec.blocks) or any(node.kind == BLOCK for node in spec.nodes)


def use_count(spec: ModelSpec, name: str) -> int:
    """How many nodes use the block ``name``, in the model and inside other blocks."""
    nodes = [*spec.nodes, *(n for b in spec.blocks.values() for n in b.nodes)]
    return sum(1 for node in nodes if block_of(node) == name)


def resolved_inputs(nodes: tuple[Node, ...] | list[Node]) -> dict[str, tuple[str, ...]]:
    """Every node's inputs with "the node before me" written out (``INPUT`` for the first)."""
    inputs: dict[str, tuple[str, ...]] = {}
    previous = INPUT
    for node in nodes:
        inputs.setdefault(node.id, tuple(node.inputs) or (previous,))
        previous = node.id
    return inputs


def block_problems(spec: ModelSpec) -> list[tuple[str | None, str]]:
    """(layer id or None, message) for every use of an unknown block, use with other than one
    input, empty definition, bad block name and block that uses itself."""
    problems: list[tuple[str | None, str]] = []
    cycle = block_cycle(spec.blocks)
    if cycle:
        problems.append((None, f"the block {cycle[0]!r} uses itself: " + " → ".join(cycle)))
    for name, block in spec.blocks.items():
        if not _NAME_PATTERN.fullmatch(name):
            problems.append(
                (
                    None,
                    f"block name {name!r} must start with a letter and hold only "
                    "letters, digits and _",
                )
            )
        if not block.nodes:
            problems.append((None, f"the block {name!r} has no layers"))
    scopes = [("", spec.nodes), *((f"block {n!r}: ", b.nodes) for n, b in spec.blocks.items())]
    for label, nodes in scopes:
        for node in nodes:
            if node.kind != BLOCK:
                continue
            name = block_of(node)
            where = node.id if not label else None
            if name is None or name not in spec.blocks:
                known = ", ".join(spec.blocks) or "none"
                problems.append(
                    (
                        where,
                        f"{label}{node.id} uses no known block "
                        f"({node.params.get('block')!r}; known: {known})",
                    )
                )
            elif len(node.inputs) > 1:
                problems.append(
                    (where, f"{label}{node.id}: a block takes one input, got {len(node.inputs)}")
                )
    return problems


def flat_size(spec: ModelSpec) -> int:
    """How many layers ``flatten(spec)`` has, counted without expanding (blocks used twice in
    blocks used twice... grow as powers of two). Assumes no block uses itself."""
    sizes: dict[str, int] = {}

    def size(nodes: tuple[Node, ...]) -> int:
        total = 0
        for node in nodes:
            name = block_of(node)
            if name is None or name not in spec.blocks:
                total += 1
                continue
            if name not in sizes:
                sizes[name] = size(spec.blocks[name].nodes)
            total += sizes[name]
        return total

    return size(spec.nodes)


def flatten(spec: ModelSpec) -> ModelSpec:
    """The model with every block use expanded into plain layers (ids ``use.inner``), for the
    analysis, the builder and the exporters. A spec without blocks comes back as it is. Assumes
    ``block_problems(spec)`` is empty."""
    if not uses_blocks(spec):
        return spec
    nodes, _ = _expand(spec, spec.nodes, "", INPUT)
    return ModelSpec(tuple(nodes), spec.input_shape, spec.num_classes)


def expand_uses(spec: ModelSpec, use_ids: set[str] | frozenset[str]) -> ModelSpec:
    """The model with only the uses ``use_ids`` expanded (nested ones as ``a.b``), the others
    left as one node each: what the editor draws when some blocks are open. Uses of unknown
    blocks stay closed."""
    known = {u for u in use_ids if _expandable(spec, u)}
    if not known:
        return spec
    nodes, _ = _expand(spec, spec.nodes, "", INPUT, None, known)
    return replace(spec, nodes=tuple(nodes))


def _expandable(spec: ModelSpec, use_id: str) -> bool:
    if block_problems(spec):
        return False
    node = node_at(spec, use_id)
    return node is not None and block_of(node) in spec.blocks


def block_outputs(spec: ModelSpec) -> dict[str, str]:
    """Every use's id in the flattened model (nested ones too: ``a.b``) and the flattened id of
    its output layer, in expansion order."""
    outputs: dict[str, str] = {}
    _expand(spec, spec.nodes, "", INPUT, outputs)
    return outputs


def _expand(
    spec: ModelSpec,
    nodes: tuple[Node, ...],
    prefix: str,
    entry: str,
    outputs: dict[str, str] | None = None,
    only: set[str] | None = None,
) -> tuple[list[Node], str]:
    """``nodes`` of one scope expanded, their ids prefixed; ``INPUT`` becomes ``entry``; with
    ``only``, uses not named there stay one node. Returns the nodes and the id of the scope's
    output."""
    rename: dict[str, str] = {INPUT: entry}
    flat: list[Node] = []
    previous = INPUT
    for node in nodes:
        sources = tuple(rename.get(name, prefix + name) for name in node.inputs)
        name = block_of(node)
        if name is None or (only is not None and prefix + node.id not in only):
            explicit = sources or ((entry,) if previous == INPUT and prefix else ())
            flat.append(replace(node, id=prefix + node.id, inputs=explicit))
            rename[node.id] = prefix + node.id
        else:
            source = sources[0] if sources else rename[previous]
            inner, out = _expand(
                spec, spec.blocks[name].nodes, f"{prefix}{node.id}.", source, outputs, only
            )
            flat += inner
            rename[node.id] = out
            if outputs is not None:
                outputs[prefix + node.id] = out
        previous = node.id
    return flat, rename[previous]


def scope_of(flat_id: str) -> tuple[str, str]:
    """(the use the flat layer ``a.b.conv1`` sits in, its own id): ("a.b", "conv1")."""
    use, _, inner = flat_id.rpartition(".")
    return use, inner


def node_at(spec: ModelSpec, flat_id: str) -> Node | None:
    """The node a flat id (``res1.conv1``, or a use's own ``res1``) comes from: the node of a
    definition or of the model; None when there is none."""
    nodes = spec.nodes
    node = None
    for index, part in enumerate(flat_id.split(".")):
        if index:
            name = block_of(node) if node is not None else None
            if name is None or name not in spec.blocks:
                return None
            nodes = spec.blocks[name].nodes
        node = next((n for n in nodes if n.id == part), None)
    return node


def definition_of(spec: ModelSpec, flat_id: str) -> tuple[str, str] | None:
    """(block name, inner id) of the definition node a flat layer id comes from; None for a
    layer of the model itself."""
    use, inner = scope_of(flat_id)
    owner = node_at(spec, use) if use else None
    name = block_of(owner) if owner is not None else None
    return (name, inner) if name is not None else None


# Edits


def make_block(
    spec: ModelSpec, node_ids: list[str] | tuple[str, ...], name: str
) -> tuple[ModelSpec, str]:
    """The layers ``node_ids`` made a block named ``name``, replaced by one use of it; returns
    the new spec and the use's id. BlockError when the selection has more than one input or
    output, or the name is taken."""
    check_name(spec, name)
    chosen = set(node_ids)
    if not chosen:
        raise BlockError("select the layers to make a block of")
    missing = [n for n in node_ids if n not in {node.id for node in spec.nodes}]
    if missing:
        raise BlockError(f"no layer {missing[0]!r} in the model")
    inputs = resolved_inputs(spec.nodes)
    members = [n for n in spec.nodes if n.id in chosen]
    entry = _single_entry(members, inputs, chosen)
    exit_id = _single_exit(spec, members, inputs, chosen)
    definition = _definition(members, inputs, entry)
    use = Node(new_use_id(spec, name), BLOCK, {"block": name}, ())
    rest: list[Node] = []
    for node in spec.nodes:
        if node.id == exit_id:
            rest.append(use)
        elif node.id not in chosen:
            rest.append(node)
    new_inputs = {
        n.id: tuple(use.id if s == exit_id else s for s in inputs[n.id])
        for n in spec.nodes
        if n.id not in chosen
    }
    new_inputs[use.id] = (entry,)
    nodes = _simplified(rest, new_inputs, {n.id: n for n in spec.nodes})
    return replace(spec, nodes=tuple(nodes), blocks={**spec.blocks, name: definition}), use.id


def _single_entry(members: list[Node], inputs: dict, chosen: set[str]) -> str:
    outside: dict[str, str] = {}
    for node in members:
        for source in inputs[node.id]:
            if source not in chosen:
                outside.setdefault(source, node.id)
    if len(outside) > 1:
        shown = ", ".join(f"{taker} takes {_named(src)}" for src, taker in outside.items())
        raise BlockError(
            f"a block has one input, but the selection takes {len(outside)} from outside "
            f"({shown}): add or leave out layers so that one input enters"
        )
    return next(iter(outside), INPUT)


def _single_exit(spec: ModelSpec, members: list[Node], inputs: dict, chosen: set[str]) -> str:
    used_outside: dict[str, str] = {}
    for node in spec.nodes:
        if node.id in chosen:
            continue
        for source in inputs[node.id]:
            if source in chosen:
                used_outside.setdefault(source, node.id)
    if spec.nodes[-1].id in chosen:
        used_outside.setdefault(spec.nodes[-1].id, "the model's output")
    if len(used_outside) > 1:
        shown = ", ".join(f"{user} takes {src}" for src, user in used_outside.items())
        raise BlockError(
            f"a block has one output, but {len(used_outside)} layers of the selection feed "
            f"layers outside it ({shown}): add those layers to the selection or leave some out"
        )
    exit_id = next(iter(used_outside), members[-1].id)
    if exit_id != members[-1].id:
        raise BlockError(
            f"{members[-1].id} comes after the selection's output {exit_id} and leads nowhere "
            "outside: leave it out of the selection"
        )
    return exit_id


def _named(source: str) -> str:
    return "the model's input" if source == INPUT else source


def _definition(members: list[Node], inputs: dict, entry: str) -> BlockDef:
    own = {entry: INPUT}
    local = {n.id: tuple(own.get(s, s) for s in inputs[n.id]) for n in members}
    return BlockDef(tuple(_simplified(members, local, {n.id: n for n in members})))


def _simplified(nodes: list[Node], inputs: dict, originals: dict[str, Node]) -> list[Node]:
    """``nodes`` with ``inputs``, written implicitly ("the node before me") where a node had
    no explicit inputs before and still takes the node before it."""
    out = []
    previous = INPUT
    for node in nodes:
        wanted = inputs[node.id]
        original = originals.get(node.id)
        implicit = (original is None or not original.inputs) and wanted == (previous,)
        out.append(replace(node, inputs=() if implicit else wanted))
        previous = node.id
    return out


def check_name(spec: ModelSpec, name: str) -> None:
    """BlockError when ``name`` is not a usable new block name."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise BlockError(
            f"block name {name!r} must start with a letter and hold only letters, digits and _ "
            "(at most 64)"
        )
    if name in spec.blocks:
        raise BlockError(f"there is already a block named {name!r}: choose another name")


def new_use_id(spec: ModelSpec, name: str) -> str:
    """A fresh layer id for a use of ``name``: its name in lower case and a number."""
    return spec.new_id(BLOCK, name)


def new_block_name(spec: ModelSpec, stem: str) -> str:
    """``stem``, or ``stem_2``, ``stem_3``... whichever no block has yet."""
    name, i = stem, 1
    while name in spec.blocks:
        i += 1
        name = f"{stem}_{i}"
    return name


def inline(spec: ModelSpec, use_id: str) -> ModelSpec:
    """The use ``use_id`` replaced by its block's layers (ids made unique in the model); the
    definition is dropped when nothing uses it any more."""
    use = spec.node(use_id)
    name = block_of(use)
    if name is None or name not in spec.blocks:
        raise BlockError(f"{use_id} is not a use of a block")
    inputs = resolved_inputs(spec.nodes)
    entry = inputs[use_id][0]
    taken = {n.id for n in spec.nodes if n.id != use_id}
    rename: dict[str, str] = {INPUT: entry}
    inner_nodes = []
    for node in spec.blocks[name].nodes:
        new_id = _free_id(node.id, taken)
        taken.add(new_id)
        rename[node.id] = new_id
        inner_nodes.append(node)
    out_id = rename[spec.blocks[name].nodes[-1].id]
    inner_inputs = resolved_inputs(list(spec.blocks[name].nodes))
    nodes: list[Node] = []
    new_inputs: dict[str, tuple[str, ...]] = {}
    originals: dict[str, Node] = {}
    for node in spec.nodes:
        if node.id != use_id:
            nodes.append(node)
            originals[node.id] = node
            new_inputs[node.id] = tuple(out_id if s == use_id else s for s in inputs[node.id])
            continue
        for inner in inner_nodes:
            copy = replace(inner, id=rename[inner.id], params=dict(inner.params))
            nodes.append(copy)
            originals[copy.id] = inner
            new_inputs[copy.id] = tuple(rename[s] for s in inner_inputs[inner.id])
    result = replace(spec, nodes=tuple(_simplified(nodes, new_inputs, originals)))
    if use_count(result, name) == 0:
        result = replace(result, blocks={k: v for k, v in spec.blocks.items() if k != name})
    return result


def _free_id(wanted: str, taken: set[str]) -> str:
    if wanted not in taken:
        return wanted
    stem = wanted.rstrip("0123456789") or "layer"
    i = 1
    while f"{stem}{i}" in taken:
        i += 1
    return f"{stem}{i}"


def make_unique(spec: ModelSpec, use_id: str, new_name: str | None = None) -> tuple[ModelSpec, str]:
    """The use ``use_id`` given its own copy of its block (``new_name``, or the block's name
    with a number); returns the spec and the copy's name."""
    use = spec.node(use_id)
    name = block_of(use)
    if name is None or name not in spec.blocks:
        raise BlockError(f"{use_id} is not a use of a block")
    new_name = new_name or new_block_name(spec, name)
    check_name(spec, new_name)
    blocks = {**spec.blocks, new_name: spec.blocks[name]}
    spec = replace(spec, blocks=blocks).set_params(use_id, block=new_name)
    return spec, new_name


def rename_block(spec: ModelSpec, old: str, new: str) -> ModelSpec:
    """The block ``old`` named ``new``, every use (in the model and in other blocks) with it."""
    if old not in spec.blocks:
        raise BlockError(f"no block named {old!r}")
    if new == old:
        return spec
    check_name(spec, new)

    def renamed(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
        return tuple(
            replace(n, params={**n.params, "block": new}) if block_of(n) == old else n
            for n in nodes
        )

    blocks = {
        (new if key == old else key): BlockDef(renamed(block.nodes))
        for key, block in spec.blocks.items()
    }
    return replace(spec, nodes=renamed(spec.nodes), blocks=blocks)


def set_inner_params(spec: ModelSpec, name: str, inner_id: str, **params: Any) -> ModelSpec:
    """The parameters of layer ``inner_id`` of the block ``name`` changed: every use sees it."""
    block = spec.blocks[name]
    nodes = tuple(
        replace(n, params={**n.params, **params}) if n.id == inner_id else n for n in block.nodes
    )
    return replace(spec, blocks={**spec.blocks, name: BlockDef(nodes)})


def with_block(spec: ModelSpec, name: str) -> ModelSpec:
    """``spec`` holding a definition of ``name``: its own, or the built-in one added."""
    if name in spec.blocks:
        return spec
    if name not in BUILTIN_BLOCKS:
        raise BlockError(f"no block named {name!r}")
    return replace(spec, blocks={**spec.blocks, name: BUILTIN_BLOCKS[name]})


# Built-in blocks, offered in the palette. Channel counts read 'auto' where the layer allows it,
# so that a block fits wherever it is inserted.


def _n(node_id: str, kind: str, inputs: tuple[str, ...] = (), **params: Any) -> Node:
    assert kind in LAYER_KINDS
    return Node(node_id, kind, params, inputs)


def _residual() -> BlockDef:
    """A ResNet basic block keeping the channel count (64 out; 'auto' cannot be an output)."""
    return BlockDef(
        (
            _n("conv1", "Conv2d", out_channels=64, kernel_size=3, padding=1, bias=False),
            _n("bn1", "BatchNorm2d"),
            _n("relu1", "ReLU"),
            _n("conv2", "Conv2d", out_channels=64, kernel_size=3, padding=1, bias=False),
            _n("bn2", "BatchNorm2d"),
            _n(
                "shortcut",
                "Conv2d",
                (INPUT,),
                out_channels=64,
                kernel_size=1,
                padding=0,
                bias=False,
            ),
            _n("add1", "Add", ("bn2", "shortcut")),
            _n("relu2", "ReLU"),
        )
    )


def _inception() -> BlockDef:
    return BlockDef(
        (
            _n("b1", "Conv2d", (INPUT,), out_channels=16, kernel_size=1, padding=0),
            _n("b3r", "Conv2d", (INPUT,), out_channels=24, kernel_size=1, padding=0),
            _n("b3", "Conv2d", out_channels=32, kernel_size=3, padding=1),
            _n("b5r", "Conv2d", (INPUT,), out_channels=4, kernel_size=1, padding=0),
            _n("b5", "Conv2d", out_channels=8, kernel_size=5, padding=2),
            _n("pool", "MaxPool2d", (INPUT,), kernel_size=3, stride=1, padding=1),
            _n("bp", "Conv2d", out_channels=8, kernel_size=1, padding=0),
            _n("cat", "Concat", ("b1", "b3", "b5", "bp")),
            _n("relu", "ReLU"),
        )
    )


def _fire() -> BlockDef:
    return BlockDef(
        (
            _n("squeeze", "Conv2d", out_channels=16, kernel_size=1, padding=0),
            _n("relu1", "ReLU"),
            _n("expand1", "Conv2d", ("relu1",), out_channels=64, kernel_size=1, padding=0),
            _n("expand3", "Conv2d", ("relu1",), out_channels=64, kernel_size=3, padding=1),
            _n("cat", "Concat", ("expand1", "expand3")),
            _n("relu2", "ReLU"),
        )
    )


def _squeeze_excitation() -> BlockDef:
    """Squeeze-and-excitation on a 64-channel map: the gate scales each channel."""
    return BlockDef(
        (
            _n("pool", "AdaptiveAvgPool2d", output_size=1),
            _n("reduce", "Conv2d", out_channels=16, kernel_size=1, padding=0),
            _n("relu", "ReLU"),
            _n("expand", "Conv2d", out_channels=64, kernel_size=1, padding=0),
            _n("gate", "Sigmoid"),
            _n("scale", "Mul", (INPUT, "gate")),
        )
    )


BUILTIN_BLOCKS: dict[str, BlockDef] = {
    "residual": _residual(),
    "inception": _inception(),
    "fire": _fire(),
    "squeeze_excitation": _squeeze_excitation(),
}
"""The blocks every project can insert from the palette; inserting one copies its definition
into the project, where it can be edited."""
