"""Building models: the templates, the classic SimpleCNN, backbones and their weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnstudio import (
    ModelError,
    WeightsError,
    analyze,
    build_model,
    create_model_spec,
)
from cnnstudio.backbones import BACKBONES, probe, weights_cached, weights_path
from tests.helpers import every_template, forward_shapes, spec_of

PRETRAINED_TEMPLATES = {
    "resnet18-features": "resnet18",
    "efficientnet_b0-finetune": "efficientnet_b0",
}


class ClassicSimpleCNN(nn.Module):
    """The SimpleCNN as it is usually written by hand, for comparison."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.MaxPool2d(2), nn.Dropout(0.25),
            ]  # fmt: skip

        self.features = nn.Sequential(*block(3, 32), *block(32, 64))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(4096, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(512, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def test_simple_cnn_is_the_classic_definition_module_for_module() -> None:
    spec = create_model_spec("simple-cnn")
    torch.manual_seed(0)
    ours = build_model(spec)
    torch.manual_seed(0)
    classic = ClassicSimpleCNN()
    ours_layers = list(ours.children())
    classic_layers = [*classic.features, *classic.classifier]
    assert [type(m) for m in ours_layers] == [type(m) for m in classic_layers]
    for mine, theirs in zip(ours_layers, classic_layers, strict=True):
        assert repr(mine) == repr(theirs)
    assert sum(p.numel() for p in ours.parameters()) == 2_169_770
    assert analyze(spec).total_params == 2_169_770
    x = torch.randn(4, 3, 32, 32)
    ours.eval()
    classic.eval()
    with torch.no_grad():
        assert ours(x[:1]).shape == (1, 10)
        torch.testing.assert_close(ours(x), classic(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", every_template())
def test_template_analysis_matches_forward_pass_node_by_node(name: str, cached_weights) -> None:
    if name in PRETRAINED_TEMPLATES:
        cached_weights(PRETRAINED_TEMPLATES[name])
    spec = create_model_spec(name)
    analysis = analyze(spec)
    assert analysis.valid, [str(e) for e in analysis.errors]
    model = build_model(spec)
    real = forward_shapes(model, spec.input_shape)
    assert set(real) == {info.id for info in analysis.layers}
    for info in analysis.layers:
        assert info.output_shape == real[info.id], info.id
    assert analysis.total_params == sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert analysis.trainable_params == trainable
    assert analysis.output_shape == (spec.num_classes,)


@pytest.mark.parametrize("name", every_template())
def test_template_adapts_to_classes_and_input(name: str) -> None:
    shape = (3, 224, 224) if name in PRETRAINED_TEMPLATES else (1, 28, 28)
    analysis = analyze(create_model_spec(name, num_classes=7, input_shape=shape))
    assert analysis.valid, [str(e) for e in analysis.errors]
    assert analysis.output_shape == (7,)


def test_submodules_are_named_by_node_id_and_are_of_its_kind() -> None:
    spec = create_model_spec("resnet-small")
    model = build_model(spec)
    for node in spec.nodes:
        module = model.get_submodule(node.id)
        assert module is getattr(model, node.id)
        assert type(module).__name__ == node.kind, node.id  # Add and Concat too: ours


def test_residual_add_really_adds() -> None:
    spec = spec_of(
        ("a", "Identity", {}),
        ("b", "Identity", {}, ["input"]),
        ("sum", "Add", {}, ["a", "b"]),
        ("flat", "Flatten", {}),
        ("fc", "Linear", {"out_features": 2}),
        input_shape=(1, 2, 2),
        num_classes=2,
    )
    model = build_model(spec)
    seen = {}
    model.sum.register_forward_hook(lambda m, i, o: seen.setdefault("sum", o))
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    model(x)
    torch.testing.assert_close(seen["sum"], 2 * x)


def test_build_refuses_an_invalid_spec_with_every_problem() -> None:
    spec = spec_of(("c", "Conv2d", {"out_channels": 0, "kernel_size": 3}),
                   ("fc", "Linear", {"out_features": 10}))  # fmt: skip
    with pytest.raises(ModelError, match="c: out_channels must be an integer") as caught:
        build_model(spec)
    assert [i.layer for i in caught.value.issues] == ["c"]


def test_backbone_list_is_torchvisions_classification_models() -> None:
    from torchvision import models

    assert list(BACKBONES) == sorted(models.list_models(module=models))
    for required in ("resnet18", "resnet50", "vgg16", "efficientnet_b0", "mobilenet_v3_small",
                     "vit_b_16"):  # fmt: skip
        assert required in BACKBONES


@pytest.mark.parametrize(
    ("name", "features"),
    [("resnet18", 512), ("resnet50", 2048), ("vgg16", 4096), ("efficientnet_b0", 1280),
     ("mobilenet_v3_small", 1024), ("vit_b_16", 768)],
)  # fmt: skip
def test_backbone_probe_gives_the_feature_size(name: str, features: int) -> None:
    result = probe(name, (3, 224, 224))
    assert result.output_shape == (features,)
    assert result.params > 1_000_000 and result.flops > 10_000_000


def test_backbone_that_cannot_take_the_input_says_so() -> None:
    spec = spec_of(("bb", "Backbone", {"name": "vit_b_16", "weights": "none"}),
                   ("fc", "Linear", {"out_features": 10}))  # fmt: skip
    errors = analyze(spec).errors
    assert len(errors) == 1 and errors[0].layer == "bb"
    assert errors[0].message.startswith("Backbone vit_b_16 cannot take a 3×32×32 input (")
    assert errors[0].message.endswith("try the size it was trained on, 3×224×224")
    gray = spec_of(("bb", "Backbone", {"name": "resnet18"}), ("fc", "Linear", {"out_features": 10}),
                   input_shape=(1, 64, 64))  # fmt: skip
    assert [e.message for e in analyze(gray).errors] == [
        "Backbone resnet18 expects 3 input channels (RGB) but receives 1 from the input: set the "
        "model input to 3 channels"
    ]


def test_pretrained_weights_come_from_torch_cache(cached_weights, no_network) -> None:
    assert not weights_cached("resnet18")
    state = cached_weights("resnet18")
    assert weights_cached("resnet18")
    model = build_model(create_model_spec("resnet18-features"))
    net = model.backbone1.net
    torch.testing.assert_close(net.conv1.weight, state["conv1.weight"])
    torch.testing.assert_close(net.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert isinstance(net.fc, nn.Identity)


def test_missing_weights_without_network_give_a_clear_message(no_network) -> None:
    with pytest.raises(WeightsError) as caught:
        build_model(create_model_spec("resnet18-features"))
    message = str(caught.value)
    assert "cannot download the resnet18 weights" in message
    assert "Temporary failure in name resolution" in message
    assert weights_path("resnet18").name in message and "or set weights to 'none'" in message


def test_unreadable_cached_weights_give_a_clear_message(no_network) -> None:
    path = weights_path("resnet18")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read the resnet18 weights"):
        build_model(create_model_spec("resnet18-features"))


def test_weights_are_never_unpickled_as_code(no_network) -> None:
    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    path = weights_path("resnet18")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conv1.weight": Payload()}, path)
    with pytest.raises(WeightsError, match="cannot read"):
        build_model(create_model_spec("resnet18-features"))


@pytest.mark.slow
def test_frozen_backbone_does_not_train_and_keeps_its_statistics(cached_weights) -> None:
    cached_weights("resnet18")
    model = build_model(create_model_spec("resnet18-features", input_shape=(3, 64, 64)))
    model.train()
    assert not model.backbone1.net.training and model.fc1.training
    assert not any(p.requires_grad for p in model.backbone1.parameters())
    before = model.backbone1.net.bn1.running_mean.clone()
    model(torch.randn(4, 3, 64, 64))
    torch.testing.assert_close(model.backbone1.net.bn1.running_mean, before)


def test_pretrained_false_skips_the_weights(no_network) -> None:
    model = build_model(create_model_spec("efficientnet_b0-finetune"), pretrained=False)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.slow
def test_a_run_from_imagenet_weights_is_rebuilt_with_their_architecture(no_network) -> None:
    """googlenet built for ImageNet weights normalises its input itself (transform_input); a
    checkpoint trained from them must be loaded into that same architecture, without the
    ImageNet file (which may be gone) and without a download."""
    head = ("fc", "Linear", {"out_features": 3})
    spec = spec_of(("bb", "Backbone", {"name": "googlenet", "weights": "DEFAULT"}), head,
                   input_shape=(3, 64, 64), num_classes=3)  # fmt: skip
    rebuilt = build_model(spec, pretrained=False)
    assert rebuilt.bb.net.transform_input is True
    plain = spec_of(("bb", "Backbone", {"name": "googlenet", "weights": "none"}), head,
                    input_shape=(3, 64, 64), num_classes=3)  # fmt: skip
    fresh = build_model(plain, pretrained=False)
    assert fresh.bb.net.transform_input is False
