"""The model as a graph of layer nodes: plain data, what project.json holds under "model".

A ``ModelSpec`` is immutable; every edit (insert, remove, move, connect, set_params) makes a new
one. ``from_dict`` reads it from JSON with a ProjectError naming the place of any problem.
``cnnstudio.analysis`` works out its shapes and problems.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field, replace
from typing import Any

from cnnstudio.errors import ProjectError, WiringError
from cnnstudio.layers import LAYER_KINDS
from cnnstudio.params import close_name

INPUT = "input"
"""The name by which a node's ``inputs`` refer to the model's input."""

BLOCK = "Block"
"""The kind of a node that is a use of a named block (params ``{"block": name}``); see
``cnnstudio.blocks``. Not a catalogue kind: the analysis and the builder expand it."""


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
class BlockDef:
    """A named block's definition: its layer nodes in display order. ``INPUT`` inside names the
    block's one input (a first node with no inputs takes it); the last node is its output."""

    nodes: tuple[Node, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [node.to_dict() for node in self.nodes]}


@dataclass(frozen=True)
class ModelSpec:
    """A model: its layer nodes in display order, the input shape (C, H, W) and the class count.

    The last node is the output. ``blocks`` holds the named block definitions that nodes of kind
    ``BLOCK`` use. Specs are immutable; edits make new specs.
    """

    nodes: tuple[Node, ...]
    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    blocks: dict[str, BlockDef] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "nodes": [node.to_dict() for node in self.nodes],
        }
        if self.blocks:
            data["blocks"] = {name: block.to_dict() for name, block in self.blocks.items()}
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "model") -> ModelSpec:
        """Read a spec from JSON data; ProjectError naming the position when the structure is wrong.

        Only the structure is checked here (objects, lists, strings where they belong). Whether the
        layers make sense is the analysis' job, so that a project with a bad layer still opens and
        can be fixed in the editor.
        """
        _expect(data, dict, where, "an object")
        _no_unknown_keys(data, ("input_shape", "num_classes", "nodes", "blocks"), where)
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
        blocks = _blocks_from_dict(data.get("blocks", {}), f"{where}.blocks")
        return cls(nodes=nodes, input_shape=tuple(shape), num_classes=num_classes, blocks=blocks)

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
            copy = replace(
                node,
                id=spec.new_id(node.kind, node.params.get("block")),
                params=dict(node.params),
                inputs=(),
            )
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

    # Wiring: the graph's edges changed one at a time, the order fixed up so the model builds.

    def resolved_inputs(self) -> dict[str, tuple[str, ...]]:
        """Every layer's inputs by id, "the layer before me" spelled out."""
        resolved, previous = {}, INPUT
        for node in self.nodes:
            resolved.setdefault(node.id, node.inputs or (previous,))
            previous = node.id
        return resolved

    def inputs_of(self, node_id: str) -> tuple[str, ...]:
        """The layers (or INPUT) that feed ``node_id``; WiringError when there is no such layer."""
        self._wired_node(node_id)
        return self.resolved_inputs()[node_id]

    def downstream(self, node_id: str) -> set[str]:
        """The layers that ``node_id``'s output reaches (itself excluded)."""
        users: dict[str, list[str]] = {}
        for user, sources in self.resolved_inputs().items():
            for source in sources:
                users.setdefault(source, []).append(user)
        seen: set[str] = set()
        stack = list(users.get(node_id, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(users.get(current, ()))
        return seen

    def input_candidates(self, node_id: str) -> tuple[str, ...]:
        """What may feed ``node_id`` without a cycle or a layer behind the output: INPUT and
        the layers its output does not reach, in display order."""
        after = self.downstream(node_id)
        last = self.nodes[-1].id
        fit = [
            n.id
            for n in self.nodes
            if n.id != node_id and n.id not in after and (n.id != last or node_id == last)
        ]
        return (INPUT, *fit)

    def set_inputs(self, node_id: str, inputs: tuple[str, ...] | list[str]) -> ModelSpec:
        """``node_id`` fed by ``inputs`` (layer ids or INPUT), the layers reordered so each comes
        after its inputs (``in_data_order``). WiringError, saying why, when a one-input layer
        would get several, a name is unknown, or the edges would make a cycle."""
        inputs = tuple(inputs)
        node = self._wired_node(node_id)
        _check_input_count(node, inputs)
        after = self.downstream(node_id)
        known = {n.id for n in self.nodes}
        for source in inputs:
            if source == node_id:
                raise WiringError(f"{node_id} cannot take its own output as its input")
            if source != INPUT and source not in known:
                raise WiringError(f"{node_id}: input {source!r} names no layer")
            if source in after:
                path = " → ".join(self._path(node_id, source))
                raise WiringError(
                    f"{source} → {node_id} would make a cycle: {node_id} already feeds "
                    f"{source} ({path}); a layer cannot feed its own input"
                )
        if len(set(inputs)) != len(inputs):
            raise WiringError(f"{node_id} takes each input once; got {', '.join(inputs)}")
        wired = self.with_nodes(
            replace(n, inputs=inputs) if n.id == node_id else n for n in self.nodes
        )
        return wired.in_data_order()

    def wire(self, source: str, target: str) -> ModelSpec:
        """An edge ``source`` → ``target``: one more input of a merge (Add, Concat, Mul), the
        new input of any other layer (it has one)."""
        current = self.inputs_of(target)
        if source in current:
            raise WiringError(f"{source} already feeds {target}")
        kind = LAYER_KINDS.get(self.node(target).kind)
        merged = (*current, source) if kind is not None and kind.is_merge else (source,)
        return self.set_inputs(target, merged)

    def unwire(self, source: str, target: str) -> ModelSpec:
        """Without the edge ``source`` → ``target``. A layer left with no input takes the model's
        input (every layer has one); WiringError when it takes only that already."""
        current = self.inputs_of(target)
        if source not in current:
            raise WiringError(f"{source} does not feed {target}")
        rest = tuple(name for name in current if name != source)
        if not rest and source == INPUT:
            raise WiringError(
                f"{target} needs an input and has only the model's: drag another layer's "
                f"output onto {target} to change it, or delete {target}"
            )
        return self.set_inputs(target, rest or (INPUT,))

    def move_wire(self, source: str, target: str, new_target: str) -> ModelSpec:
        """The edge ``source`` → ``target`` ending at ``new_target`` instead (``unwire`` then
        ``wire``)."""
        if new_target == target:
            return self
        return self.unwire(source, target).wire(source, new_target)

    def in_data_order(self) -> ModelSpec:
        """The layers in a stable topological order: each after its inputs, and otherwise in the
        order they had. A layer that took "the layer before me" and gets another one before it
        names its input explicitly, so the reorder changes no edge. WiringError on a cycle or
        when the output layer would no longer be last."""
        resolved = self.resolved_inputs()
        index = {n.id: i for i, n in enumerate(self.nodes)}
        if len(index) != len(self.nodes):
            raise WiringError("layer ids must be unique before the layers can be rewired")
        waiting = {
            n.id: {s for s in resolved[n.id] if s in index and s != n.id} for n in self.nodes
        }
        users: dict[str, list[str]] = {}
        for user, sources in waiting.items():
            for source in sources:
                users.setdefault(source, []).append(user)
        ready = [index[i] for i, sources in waiting.items() if not sources]
        heapq.heapify(ready)
        order: list[Node] = []
        while ready:
            node = self.nodes[heapq.heappop(ready)]
            order.append(node)
            for user in users.get(node.id, ()):
                waiting[user].discard(node.id)
                if not waiting[user]:
                    heapq.heappush(ready, index[user])
        if len(order) < len(self.nodes):
            stuck = ", ".join(n.id for n in self.nodes if waiting[n.id])
            raise WiringError(f"layers {stuck} feed each other in a cycle: change their inputs")
        last = self.nodes[-1].id if self.nodes else None
        if order and order[-1].id != last:
            raise WiringError(
                f"{last} is the model's output: a layer it feeds would come after it and become "
                f"the output; add layers after {last} and wire those instead"
            )
        fixed, previous = [], INPUT
        for node in order:
            if not node.inputs and resolved[node.id] != (previous,):
                node = replace(node, inputs=resolved[node.id])
            fixed.append(node)
            previous = node.id
        return self.with_nodes(fixed)

    def _wired_node(self, node_id: str) -> Node:
        try:
            return self.node(node_id)
        except KeyError:
            raise WiringError(f"no layer with id {node_id!r} to wire") from None

    def _path(self, start: str, end: str) -> list[str]:
        """Layer ids along the data flow from ``start`` to ``end`` (a path known to exist)."""
        resolved = self.resolved_inputs()
        came_from: dict[str, str] = {}
        stack = [end]
        while stack:
            current = stack.pop()
            for source in resolved.get(current, ()):
                if source not in came_from and source != end:
                    came_from[source] = current
                    stack.append(source)
        path = [start]
        while path[-1] != end:
            path.append(came_from[path[-1]])
        return path

    def with_shape(self, input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
        return replace(self, input_shape=tuple(input_shape), num_classes=num_classes)

    def set_params(self, node_id: str, **params: Any) -> ModelSpec:
        return self.with_nodes(
            replace(n, params={**n.params, **params}) if n.id == node_id else n for n in self.nodes
        )

    def new_id(self, kind: str, block: Any = None) -> str:
        """A fresh id for a layer of ``kind``: conv1, conv2, ... (the catalogue's stem); a use
        of a block is named after its ``block``: residual1, residual2, ..."""
        known = LAYER_KINDS.get(kind)
        stem = known.new_id_stem() if known else re.sub(r"[^a-z0-9]", "", kind.lower()) or "layer"
        if kind == BLOCK and isinstance(block, str):
            stem = re.sub(r"[^a-z0-9_]", "", block.lower()) or "block"
        taken = {n.id for n in self.nodes}
        i = 1
        while f"{stem}{i}" in taken:
            i += 1
        return f"{stem}{i}"


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


def _check_input_count(node: Node, inputs: tuple[str, ...]) -> None:
    kind = LAYER_KINDS.get(node.kind)
    if not inputs:
        raise WiringError(f"{node.id} needs an input")
    if kind is None:
        return
    if not kind.is_merge and len(inputs) > 1:
        raise WiringError(
            f"{node.id} ({kind.name}) takes one input: join branches with Add, Concat or Mul "
            "first and feed it that"
        )
    if len(inputs) > kind.max_inputs:
        raise WiringError(f"{node.id} ({kind.name}) takes at most {kind.max_inputs} inputs")


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


def _blocks_from_dict(data: Any, where: str) -> dict[str, BlockDef]:
    """The block definitions; a block that uses itself, directly or through others, is refused
    by name (expanding it would never end)."""
    _expect(data, dict, where, "an object of block name: definition")
    blocks = {}
    for name, item in data.items():
        place = f"{where}.{name}"
        _expect(item, dict, place, "an object with the block's nodes")
        _no_unknown_keys(item, ("nodes",), place)
        nodes_data = item.get("nodes")
        if nodes_data is None:
            raise ProjectError(None, "'nodes' is missing (the block's layers)", place)
        _expect(nodes_data, list, f"{place}.nodes", "a list of layers")
        if not nodes_data:
            raise ProjectError(None, "a block needs at least one layer", f"{place}.nodes")
        blocks[name] = BlockDef(
            tuple(_node_from_dict(n, f"{place}.nodes[{i}]") for i, n in enumerate(nodes_data))
        )
    cycle = block_cycle(blocks)
    if cycle:
        raise ProjectError(None, _cycle_message(cycle), f"{where}.{cycle[0]}")
    return blocks


def block_cycle(blocks: dict[str, BlockDef]) -> list[str]:
    """A chain of block names that comes back to its start (``[a, b, a]``), or [] when no block
    uses itself through others."""
    done: set[str] = set()

    def walk(name: str, path: list[str]) -> list[str]:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done or name not in blocks:
            return []
        for node in blocks[name].nodes:
            used = node.params.get("block") if node.kind == BLOCK else None
            if isinstance(used, str):
                found = walk(used, [*path, name])
                if found:
                    return found
        done.add(name)
        return []

    for name in blocks:
        found = walk(name, [])
        if found:
            return found
    return []


def _cycle_message(cycle: list[str]) -> str:
    if len(cycle) == 2:
        return f"the block {cycle[0]!r} uses itself: a block cannot contain itself"
    return (
        f"the block {cycle[0]!r} uses itself through " + " → ".join(cycle) + ": a block cannot "
        "contain itself"
    )
