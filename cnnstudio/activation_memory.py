"""Activation memory: what autograd keeps for the backward pass of a training step, measured.

The model is built on the meta device (nothing is allocated, nothing downloaded) and run forward
once in training mode under ``torch.autograd.graph.saved_tensors_hooks``, which sees every tensor
saved for backward. Each storage counts once (an in-place ReLU saves the storage its BatchNorm
saved already; a Linear saves a view of its input); the weights and buffers are counted
elsewhere (parameters, gradients, optimizer state) and not here. A frozen backbone saves nothing
it does not need: no gradient flows through it. Each saved storage belongs to the layer whose
forward saved it first, so the editor and ``summary`` can say which layers cost the memory.

Two batch sizes are measured, so the figure is the exact cost per image plus what a step keeps
whatever the batch (BatchNorm's batch statistics, say). Once per model: the answers are cached.
Building and running a backbone on the meta device takes a few tenths of a second (about 0.3 s
for EfficientNet-B0 at 224×224), too long for the GUI thread: the window measures in its
analysis job.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn

from cnnstudio.build import build_model
from cnnstudio.spec import ModelSpec

_BATCHES = (2, 4)  # BatchNorm cannot train on a batch of one image


@dataclass(frozen=True)
class ActivationMemory:
    """Bytes autograd keeps for backward: ``fixed_bytes`` + ``per_image_bytes`` × batch, and
    each layer's share of the per-image figure (by layer id, in the model's order).
    ``largest_bytes`` is the largest single tensor kept, per image: the backward pass holds the
    gradients of about two such at a time on top of what is kept."""

    per_image_bytes: int
    fixed_bytes: int
    largest_bytes: int
    layers: Mapping[str, int]

    def total(self, batch_size: int) -> int:
        return self.fixed_bytes + self.per_image_bytes * batch_size

    def layer(self, layer_id: str) -> int:
        """The per-image bytes saved in ``layer_id``'s forward (0 for a layer that saves none
        or is not built)."""
        return self.layers.get(layer_id, 0)


def activation_memory(spec: ModelSpec) -> ActivationMemory:
    """The activation memory of a float32 training step of ``spec``, measured once per model
    (input shape and frozen layers included) and then cached. ModelError when the spec is not
    valid."""
    return _measured(json.dumps(spec.to_dict(), sort_keys=True))  # a spec is not hashable


@functools.lru_cache(maxsize=64)
def _measured(text: str) -> ActivationMemory:
    spec = ModelSpec.from_dict(json.loads(text))
    model = build_model(spec, pretrained=False, device="meta")
    model.train()
    (low, _), (high, largest) = (_saved(model, spec.input_shape, batch) for batch in _BATCHES)
    span = _BATCHES[1] - _BATCHES[0]
    per_image = (sum(high.values()) - sum(low.values())) // span
    fixed = max(0, sum(low.values()) - per_image * _BATCHES[0])
    layers = {name: max(0, (high.get(name, 0) - low.get(name, 0)) // span) for name in high}
    return ActivationMemory(per_image, fixed, largest // _BATCHES[1], MappingProxyType(layers))


def _saved(
    model: nn.Module, input_shape: tuple[int, ...], batch: int
) -> tuple[dict[str, int], int]:
    """Bytes of the storages saved for backward by one forward pass of a batch, per layer, and
    the largest of them."""
    owned = {_storage(t) for t in [*model.parameters(), *model.buffers()]}
    seen: set[int] = set()
    by_layer: dict[str, int] = {}
    largest = 0
    current = [""]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal largest
        key = _storage(tensor)
        if key not in owned and key not in seen:
            seen.add(key)
            size = tensor.untyped_storage().nbytes()
            by_layer[current[0]] = by_layer.get(current[0], 0) + size
            largest = max(largest, size)
        return tensor

    x = torch.empty((batch, *input_shape), device="meta")
    with _layer_names(model, current), torch.autograd.graph.saved_tensors_hooks(pack, _same):
        # the graph, and so every storage counted, lives until the measurement ends: no storage
        # is freed and its address reused for another while counting
        out = model(x)
    del out
    return by_layer, largest


def _same(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _storage(tensor: torch.Tensor) -> int:
    """Which storage a tensor views (a meta tensor has no data address, but its storage is as
    shared among views and in-place results as a real one)."""
    return tensor.untyped_storage()._cdata


@contextmanager
def _layer_names(model: nn.Module, current: list[str]) -> Iterator[None]:
    """Keeps ``current[0]`` at the id of the layer whose forward is running."""

    def enter(name: str):
        return lambda _module, _args: current.__setitem__(0, name)

    handles = []
    for name, layer in model.named_children():
        handles.append(layer.register_forward_pre_hook(enter(name)))
        handles.append(layer.register_forward_hook(lambda *_: current.__setitem__(0, "")))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
