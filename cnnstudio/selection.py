"""A selection of layers as JSON, and that JSON pasted into a model: the editor's Copy and Paste.

``copy_layers`` writes the chosen layers (their kinds, parameters and the edges among them) as
plain JSON data; every input is written out, and an input from outside the selection becomes
``"input"``: the snippet's own input, the layer it is pasted after. ``paste_layers`` reads such
data back (validated with the project file's rules, every problem one message naming the place),
renames the ids that the model already uses and inserts the layers. Only the architecture
travels: weights are not copied (a pasted layer starts from fresh values).
"""

from __future__ import annotations

import json
from typing import Any

from cnnstudio.errors import ProjectError, StudioError
from cnnstudio.layers import LAYER_KINDS
from cnnstudio.params import close_name
from cnnstudio.spec import INPUT, ModelSpec, Node

FORMAT = "cnnstudio.layers"
"""What the ``format`` key of copied layers says: other JSON on the clipboard is refused."""
VERSION = 1


def copy_layers(spec: ModelSpec, node_ids: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The layers ``node_ids`` (in the model's order, whatever order they were chosen in) as
    JSON data: ``{"format", "version", "layers": [{"id", "kind", "params", "inputs"}]}``."""
    chosen = set(node_ids)
    unknown = chosen - {n.id for n in spec.nodes}
    if unknown:
        raise KeyError(f"no layer with id {sorted(unknown)[0]!r}")
    layers = []
    for index, node in enumerate(spec.nodes):
        if node.id not in chosen:
            continue
        before = spec.nodes[index - 1].id if index > 0 else INPUT
        inputs = [name if name in chosen else INPUT for name in node.inputs or (before,)]
        layers.append({**node.to_dict(), "inputs": inputs})
    return {"format": FORMAT, "version": VERSION, "layers": layers}


def layers_text(data: dict[str, Any]) -> str:
    """Copied layers as the text a text editor shows (and ``parse_layers_text`` reads back)."""
    return json.dumps(data, indent=2)


def parse_layers_text(text: str) -> Any:
    """The JSON data in ``text``; StudioError when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as error:
        raise StudioError(f"the clipboard holds no CNN Studio layers (not JSON: {error})") from None


def read_layers(data: Any) -> tuple[Node, ...]:
    """The layers in copied data, checked: the project file's rules for each layer, kinds from
    the catalogue, ids unique, every input ``"input"`` or a layer before it. StudioError "the
    clipboard ...: PLACE: PROBLEM" otherwise."""
    where = "the clipboard"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StudioError(f"{where} holds no CNN Studio layers (no format {FORMAT!r})")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > VERSION:
        raise StudioError(
            f"{where}: layers of version {version!r}; this CNN Studio reads version {VERSION}"
        )
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise StudioError(f"{where}: 'layers' must be a non-empty list of layers")
    try:
        nodes = ModelSpec.from_dict({"nodes": layers}, "layers").nodes
    except ProjectError as error:
        place = (error.where or "layers").replace("layers.nodes[", "layers[", 1)
        raise StudioError(f"{where}: {place}: {error.message}") from None
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        place = f"{where}: layers[{i}]"
        if node.kind not in LAYER_KINDS:
            hint = close_name(node.kind, tuple(LAYER_KINDS))
            fix = f" (did you mean {hint!r}?)" if hint else ""
            raise StudioError(f"{place}.kind: unknown layer kind {node.kind!r}{fix}")
        if node.id in seen or node.id == INPUT:
            raise StudioError(f"{place}.id: {node.id!r} is used twice")
        if not node.inputs:
            raise StudioError(f"{place}.inputs: empty (name 'input' or a layer before it)")
        for name in node.inputs:
            if name != INPUT and name not in seen:
                raise StudioError(
                    f"{place}.inputs: {name!r} is not a layer before it (nor 'input')"
                )
        seen.add(node.id)
    return nodes


def paste_layers(
    spec: ModelSpec, data: Any, after: str | None = None
) -> tuple[ModelSpec, list[str]]:
    """``spec`` with the copied layers in ``data`` inserted after the layer ``after`` (at the end
    when None); returns the new spec and the pasted layers' ids.

    An id the model already uses is renamed as a new layer of its kind would be (conv1 becomes
    conv3); inputs among the pasted layers follow the renaming and ``"input"`` becomes the layer
    pasted after (the model's input at the top). The pasted layers go between that layer and
    what used it: the layers after them that took it (implicitly, or by name as a residual
    stage's projection does) take the last pasted layer instead.
    """
    nodes = read_layers(data)
    index = spec.index(after) + 1 if after is not None else len(spec.nodes)
    point = spec.nodes[index - 1].id if index > 0 else INPUT
    renamed = {INPUT: point, **_new_ids(spec, nodes)}
    pasted: list[Node] = []
    previous = point
    for node in nodes:
        inputs = tuple(renamed[name] for name in node.inputs)
        if inputs == (previous,):
            inputs = ()  # the layer before it: written the way the editor writes it
        pasted.append(Node(renamed[node.id], node.kind, dict(node.params), inputs))
        previous = renamed[node.id]
    after_block = [_rewired(node, point, previous) for node in spec.nodes[index:]]
    result = spec.with_nodes((*spec.nodes[:index], *pasted, *after_block))
    return result, [node.id for node in pasted]


def _rewired(node: Node, old: str, new: str) -> Node:
    if old not in node.inputs:
        return node
    return Node(node.id, node.kind, node.params, tuple(new if n == old else n for n in node.inputs))


def _new_ids(spec: ModelSpec, nodes: tuple[Node, ...]) -> dict[str, str]:
    """Each pasted id, or a fresh one where ``spec`` uses it (fresh ids avoid both the model's
    ids and the pasted ones)."""
    taken = {n.id for n in spec.nodes}
    pool = spec.with_nodes((*spec.nodes, *nodes))
    renamed = {}
    for node in nodes:
        new = node.id
        if new in taken:
            new = pool.new_id(node.kind)
            pool = pool.with_nodes((*pool.nodes, Node(new, node.kind)))
        renamed[node.id] = new
    return renamed
