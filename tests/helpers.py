"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from cnnstudio import ModelSpec, Node, create_model_spec, list_templates


def spec_of(*layers: tuple, input_shape=(3, 32, 32), num_classes: int = 10) -> ModelSpec:
    """A spec from (id, kind, params[, inputs]) tuples."""
    nodes = []
    for layer in layers:
        node_id, kind, params, *rest = layer
        nodes.append(Node(node_id, kind, dict(params), tuple(rest[0]) if rest else ()))
    return ModelSpec(tuple(nodes), tuple(input_shape), num_classes)


def every_template() -> list:
    """Every registered template, for ``parametrize``; those built on a torchvision backbone take
    seconds each on a CPU and are marked slow."""
    return [
        pytest.param(name, marks=pytest.mark.slow)
        if any(node.kind == "Backbone" for node in create_model_spec(name).nodes)
        else name
        for name in list_templates()
    ]


def forward_shapes(model: nn.Module, input_shape, batch: int = 2) -> dict[str, tuple[int, ...]]:
    """Per-sample output shape of every direct submodule, from a real forward pass (eval mode)."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in model.named_children():

        def hook(_module, _inputs, output, name=name):
            shapes[name] = tuple(output.shape[1:])

        handles.append(module.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        model(torch.randn(batch, *input_shape))
    for handle in handles:
        handle.remove()
    return shapes


def flops_of(module: nn.Module, *inputs: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops()


def messages(analysis: Any, layer: str | None = None) -> list[str]:
    return [i.message for i in analysis.errors if layer is None or i.layer == layer]
