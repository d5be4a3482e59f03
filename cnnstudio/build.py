"""Turn a model spec into an ``nn.Module``.

Submodules are named by node id (``model.conv1``), so what inspection and training report maps back
to the blocks in the editor. Layer parameters go to torch as they are: the catalogue uses torch's
own argument names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnstudio import backbones
from cnnstudio.analysis import Analysis, analyze
from cnnstudio.blocks import block_outputs, flatten
from cnnstudio.errors import ModelError
from cnnstudio.spec import INPUT, ModelSpec


class Add(nn.Module):
    """Element-wise sum of its inputs (a residual connection)."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = inputs[0]
        for tensor in inputs[1:]:
            out = out + tensor
        return out


class Mul(nn.Module):
    """Element-wise product of its inputs, broadcasting sizes of 1 (a squeeze-excitation gate)."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = inputs[0]
        for tensor in inputs[1:]:
            out = out * tensor
        return out


class Concat(nn.Module):
    """Concatenation of its inputs along the channel (feature) dimension."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=1)


class Backbone(nn.Module):
    """A headless torchvision network. When frozen, its weights do not train and its batch-norm
    statistics stay as loaded (it stays in eval mode)."""

    def __init__(
        self,
        name: str,
        weights: str = "none",
        freeze: bool = False,
        load: bool = True,
        device: str | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.frozen = freeze
        self.net = backbones.create_backbone(name, weights, device=device, load=load)
        if freeze:
            self.net.requires_grad_(False)
            self.net.eval()

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if self.frozen:
            self.net.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SpecModel(nn.Module):
    """The network a spec describes. Each layer is the submodule named by its node id; the forward
    pass follows the graph (inputs, merges) and keeps a value only until its last use."""

    def __init__(
        self,
        modules: dict[str, nn.Module],
        steps: list[tuple[str, tuple[int, ...]]],
        slots: dict[str, int],
        output_id: str,
    ) -> None:
        super().__init__()
        for node_id, module in modules.items():
            self.add_module(node_id, module)
        self.output_id = output_id
        # (module, input slots, output slot, slots to release after this step)
        self._plan: list[tuple[str, tuple[int, ...], int, tuple[int, ...]]] = []
        last_use: dict[int, int] = {}
        for index, (_node_id, in_slots) in enumerate(steps):
            for slot in in_slots:
                last_use[slot] = index
        for index, (node_id, in_slots) in enumerate(steps):
            release = tuple(s for s in set(in_slots) if last_use[s] == index)
            self._plan.append((node_id, in_slots, slots[node_id], release))
        self._n_slots = len(slots)
        self._output_slot = slots[output_id]

    @property
    def plan(self) -> tuple[tuple[str, tuple[int, ...], int, tuple[int, ...]], ...]:
        """The forward pass's steps: (layer id, input slots, output slot, slots released after
        it); slot 0 holds the model's input."""
        return tuple(self._plan)

    @property
    def output_slot(self) -> int:
        return self._output_slot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_steps(x, 0, 0, len(self._plan), self._output_slot)

    def run_steps(
        self, x: torch.Tensor, in_slot: int, start: int, stop: int, out_slot: int
    ) -> torch.Tensor:
        """The value of ``out_slot`` after the steps ``start`` to ``stop`` of the plan, fed ``x``
        in ``in_slot``: the whole model, or its frozen part and the rest apart (feature cache)."""
        values: list[Any] = [None] * self._n_slots
        values[in_slot] = x
        for node_id, in_slots, slot, release in self._plan[start:stop]:
            module = self._modules[node_id]
            values[slot] = module(*[values[s] for s in in_slots])
            for used in release:
                if used != slot:
                    values[used] = None
        return values[out_slot]


def make_layer(
    kind: str, params: dict[str, Any], pretrained: bool = True, device: str | None = None
) -> nn.Module:
    """One layer from its catalogue kind and resolved parameters (no "auto" left); on
    ``device="meta"`` its weights take no memory (for measuring the model, not running it)."""
    if kind == "Add":
        return Add()
    if kind == "Concat":
        return Concat()
    if kind == "Mul":
        return Mul()
    if kind == "Backbone":
        # without pretrained, the architecture is still the one those weights need (googlenet's
        # transform_input): a checkpoint trained from them is loaded next
        return Backbone(
            params["name"], params["weights"], params["freeze"], load=pretrained, device=device
        )
    if device is None:
        return getattr(nn, kind)(**params)
    with torch.device(device):
        return getattr(nn, kind)(**params)


def build_model(
    spec: ModelSpec,
    *,
    pretrained: bool = True,
    analysis: Analysis | None = None,
    device: str | None = None,
) -> SpecModel:
    """The ``nn.Module`` for ``spec``. ModelError (listing every problem) when the spec is invalid.

    ``pretrained=False`` skips loading backbone weights, for when a checkpoint will be loaded next.
    ``device="meta"`` builds the architecture alone, allocating nothing (to measure it).
    Only layers that lead to the output are built; an unused branch is left out. A block use is
    one nested module (``res1.conv1``), itself a SpecModel of the block's layers.
    """
    analysis = analysis or analyze(spec)
    if not analysis.valid:
        raise ModelError(analysis.errors)
    infos = {info.id: info for info in analysis.layers}
    output = flatten(spec).nodes[-1].id
    order = [node_id for node_id in analysis.order if node_id in needed_layers(output, infos)]
    if spec.blocks:
        outputs = block_outputs(spec)
        return _scope_model(
            order, "", outputs, infos, lambda i: make_layer(i.kind, i.resolved, pretrained, device)
        )
    slots = {INPUT: 0}
    for node_id in order:
        slots[node_id] = len(slots)
    modules = {}
    steps = []
    for node_id in order:
        info = infos[node_id]
        modules[node_id] = make_layer(info.kind, info.resolved, pretrained, device)
        steps.append((node_id, tuple(slots[name] for name in info.inputs)))
    return SpecModel(modules, steps, slots, spec.nodes[-1].id)


def _scope_model(
    order: list[str], prefix: str, outputs: dict[str, str], infos: dict, make: Any
) -> SpecModel:
    """The layers ``order`` (flat ids in data order) of one scope: the model (prefix "") or a
    block use (prefix "res1."). A use's layers become one nested SpecModel whose input is the
    use's one input; inputs from outside the scope are its input."""
    groups: dict[str, list[str]] = {}
    for flat_id in order:
        groups.setdefault(flat_id[len(prefix) :].split(".")[0], []).append(flat_id)
    slots = {INPUT: 0}
    modules: dict[str, nn.Module] = {}
    steps = []

    def local(source: str) -> int:
        if not source.startswith(prefix) or source == INPUT:
            return 0
        return slots[source[len(prefix) :].split(".")[0]]

    for name, members in groups.items():
        if members == [prefix + name]:
            modules[name] = make(infos[prefix + name])
            sources = list(infos[prefix + name].inputs)
        else:
            inner = f"{prefix}{name}."
            modules[name] = _scope_model(members, inner, outputs, infos, make)
            entry = [s for m in members for s in infos[m].inputs if not s.startswith(inner)]
            sources = entry[:1]  # a block has one input
        steps.append((name, tuple(local(s) for s in sources)))
        slots[name] = len(slots)
    output = outputs[prefix[:-1]] if prefix else order[-1]
    return SpecModel(modules, steps, slots, output[len(prefix) :].split(".")[0])


def needed_layers(node_id: str, infos: dict) -> set[str]:
    """The layers ``node_id`` depends on (itself included): only these are built or exported."""
    seen: set[str] = set()
    stack = [node_id]
    while stack:
        current = stack.pop()
        if current in seen or current == INPUT:
            continue
        seen.add(current)
        stack.extend(infos[current].inputs)
    return seen
