"""Activation memory: the figure measured on the meta device against what autograd really saves
for backward on the CPU, for every template and five backbones; per layer; frozen layers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from cnnstudio.activation_memory import activation_memory
from cnnstudio.analysis import analyze
from cnnstudio.build import build_model
from cnnstudio.spec import ModelSpec, Node
from cnnstudio.templates import create_model_spec, list_templates
from cnnstudio.train import estimate_memory
from cnnstudio.train_settings import TrainSettings
from tests.test_spec_properties import specs

BACKBONES = ("resnet18", "efficientnet_b0", "mobilenet_v3_small", "densenet121", "convnext_tiny")
BATCH = 3  # neither of the batch sizes the estimate measures: its extrapolation is tested too


def backbone_model(name: str, size: int = 64, freeze: bool = False) -> ModelSpec:
    nodes = (
        Node("backbone", "Backbone", {"name": name, "weights": "none", "freeze": freeze}),
        Node("head", "Linear", {"out_features": 5}),
    )
    return ModelSpec(nodes=nodes, input_shape=(3, size, size), num_classes=5)


def really_saved(spec: ModelSpec, batch: int) -> int:
    """Bytes of the storages autograd saves in one training forward pass of real images on the
    CPU, each storage once (by its data address), weights and buffers left out."""
    torch.manual_seed(0)
    model = build_model(spec, pretrained=False)
    model.train()
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    sizes: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        address = tensor.untyped_storage().data_ptr()
        if address not in owned:
            sizes[address] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(torch.randn(batch, *spec.input_shape))  # noqa: F841 (keeps the graph alive)
    return sum(sizes.values())


def template_model(name: str) -> ModelSpec:
    """The template at its own input size, at most 64×64 (the backbones' 224 takes seconds)."""
    spec = create_model_spec(name)
    if max(spec.input_shape[1:]) <= 64:
        return spec
    return create_model_spec(name, input_shape=(spec.input_shape[0], 64, 64))


CASES = [pytest.param(template_model(n), id=n) for n in list_templates()] + [
    pytest.param(backbone_model(n), id=n) for n in BACKBONES
]


@pytest.mark.slow
@pytest.mark.parametrize("spec", CASES)
def test_the_estimate_is_within_a_quarter_of_what_autograd_saves(spec: ModelSpec) -> None:
    real = really_saved(spec, BATCH)
    estimate = activation_memory(spec).total(BATCH)
    print(f"estimate {estimate:,} bytes, saved {real:,} bytes, ratio {estimate / real:.3f}")
    assert abs(estimate - real) <= 0.25 * real


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_any_valid_model_is_measured_as_autograd_saves(spec: ModelSpec) -> None:
    if not analyze(spec).valid:
        return
    assert activation_memory(spec).total(BATCH) == really_saved(spec, BATCH)


def test_efficientnet_keeps_tens_of_megabytes_per_image_at_224() -> None:
    # the per-layer formula this replaces said 0.6 MiB; autograd keeps about 84 MiB
    per_image = activation_memory(create_model_spec("efficientnet_b0-finetune")).per_image_bytes
    assert 60 * 2**20 < per_image < 120 * 2**20


def test_a_frozen_backbone_keeps_nothing_for_backward() -> None:
    trained = activation_memory(backbone_model("resnet18"))
    frozen = activation_memory(backbone_model("resnet18", freeze=True))
    assert trained.layer("backbone") > 1_000_000
    assert frozen.layer("backbone") == 0
    assert frozen.layer("head") == trained.layer("head") > 0


def test_each_layer_has_its_share_and_the_shares_add_up() -> None:
    spec = create_model_spec("simple-cnn")
    measured = activation_memory(spec)
    assert sum(measured.layers.values()) == measured.per_image_bytes
    first_conv = spec.nodes[0].id
    assert measured.layer(first_conv) >= 4 * 3 * 32 * 32  # it keeps its input image
    assert set(measured.layers) <= {n.id for n in spec.nodes}
    assert measured.layer("no_such_layer") == 0


def test_the_measurement_is_per_model_and_input_size() -> None:
    small = activation_memory(backbone_model("resnet18", size=32))
    large = activation_memory(backbone_model("resnet18", size=64))
    assert 3.5 < large.per_image_bytes / small.per_image_bytes < 4.5  # 4x the pixels


def test_a_meta_build_allocates_no_weights() -> None:
    model = build_model(backbone_model("resnet18"), device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_the_training_estimate_counts_weights_optimizer_and_activations() -> None:
    spec = create_model_spec("efficientnet_b0-finetune")
    estimate = estimate_memory(spec, TrainSettings.from_dict({"optimizer": "adamw"}))
    params = sum(p.numel() for p in build_model(spec, device="meta").parameters())
    assert estimate.fixed_bytes >= 4 * 4 * params  # weights, gradients, AdamW's two moments
    assert estimate.per_image_bytes >= activation_memory(spec).per_image_bytes
    half = estimate_memory(spec, TrainSettings.from_dict({}), "bf16")
    assert half.per_image_bytes < estimate.per_image_bytes
