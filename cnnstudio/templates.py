"""Ready-made models: one registry, one way to make a model from a name.

Each template builds a ``ModelSpec`` for a given class count and input shape, and may suggest
training settings (per-group learning rates for fine-tuning, for instance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnnstudio.spec import ModelSpec, Node

Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Template:
    """A named recipe for a model."""

    name: str
    description: str
    make: Callable[[int, Shape3], tuple[Node, ...]]
    input_shape: Shape3 = (3, 32, 32)
    num_classes: int = 10
    training: dict[str, Any] = field(default_factory=dict)

    def create(
        self, num_classes: int | None = None, input_shape: Shape3 | None = None
    ) -> ModelSpec:
        classes = self.num_classes if num_classes is None else num_classes
        shape = self.input_shape if input_shape is None else tuple(input_shape)
        return ModelSpec(nodes=self.make(classes, shape), input_shape=shape, num_classes=classes)


_TEMPLATES: dict[str, Template] = {}


def register_template(template: Template) -> Template:
    if template.name in _TEMPLATES:
        raise ValueError(f"template {template.name!r} is already registered")
    _TEMPLATES[template.name] = template
    return template


def list_templates() -> list[str]:
    """Names of every registered template."""
    return list(_TEMPLATES)


def get_template(name: str) -> Template:
    try:
        return _TEMPLATES[name]
    except KeyError:
        raise KeyError(
            f"unknown template {name!r}; choose one of {', '.join(_TEMPLATES)}"
        ) from None


def create_model_spec(
    name: str, num_classes: int | None = None, input_shape: Shape3 | None = None
) -> ModelSpec:
    """The spec of template ``name`` for ``num_classes`` classes and an input of ``input_shape``."""
    return get_template(name).create(num_classes, input_shape)


class _Stack:
    """Appends nodes with readable numbered ids (conv1, bn1, ...)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._counts: dict[str, int] = {}

    def add(
        self, kind: str, stem: str | None = None, inputs: tuple[str, ...] = (), **params: Any
    ) -> str:
        from cnnstudio.layers import get_layer_kind

        stem = stem or get_layer_kind(kind).new_id_stem()
        self._counts[stem] = self._counts.get(stem, 0) + 1
        node_id = f"{stem}{self._counts[stem]}"
        self.nodes.append(Node(node_id, kind, params, tuple(inputs)))
        return node_id


def _simple_cnn(num_classes: int, shape: Shape3) -> tuple[Node, ...]:
    s = _Stack()
    for channels in (32, 64):
        for _ in range(2):
            s.add("Conv2d", out_channels=channels, kernel_size=3, padding=1)
            s.add("BatchNorm2d")
            s.add("ReLU")
        s.add("MaxPool2d", kernel_size=2)
        s.add("Dropout", p=0.25)
    s.add("Flatten")
    s.add("Linear", out_features=512)
    s.add("BatchNorm1d")
    s.add("ReLU")
    s.add("Dropout", p=0.5)
    s.add("Linear", out_features=num_classes)
    return tuple(s.nodes)


def _lenet5(num_classes: int, shape: Shape3) -> tuple[Node, ...]:
    s = _Stack()
    s.add("Conv2d", out_channels=6, kernel_size=5, padding=2)
    s.add("Tanh")
    s.add("AvgPool2d", kernel_size=2)
    s.add("Conv2d", out_channels=16, kernel_size=5, padding=0)
    s.add("Tanh")
    s.add("AvgPool2d", kernel_size=2)
    s.add("Flatten")
    s.add("Linear", out_features=120)
    s.add("Tanh")
    s.add("Linear", out_features=84)
    s.add("Tanh")
    s.add("Linear", out_features=num_classes)
    return tuple(s.nodes)


def _resnet_small(num_classes: int, shape: Shape3) -> tuple[Node, ...]:
    """A ResNet-style network for small images: a stem and three stages of one basic block each
    (16, 32, 64 channels), the later two halving the size with a 1×1 projection shortcut."""
    s = _Stack()
    s.add("Conv2d", out_channels=16, kernel_size=3, padding=1, bias=False)
    s.add("BatchNorm2d")
    entry = s.add("ReLU")
    for channels, stride in ((16, 1), (32, 2), (64, 2)):
        s.add(
            "Conv2d",
            inputs=(entry,),
            out_channels=channels,
            kernel_size=3,
            stride=stride,
            padding=1,
            bias=False,
        )
        s.add("BatchNorm2d")
        s.add("ReLU")
        s.add("Conv2d", out_channels=channels, kernel_size=3, padding=1, bias=False)
        main = s.add("BatchNorm2d")
        shortcut = entry
        if stride != 1:
            s.add(
                "Conv2d",
                "proj",
                inputs=(entry,),
                out_channels=channels,
                kernel_size=1,
                stride=stride,
                padding=0,
                bias=False,
            )
            shortcut = s.add("BatchNorm2d", "projbn")
        s.add("Add", inputs=(main, shortcut))
        entry = s.add("ReLU")
    s.add("AdaptiveAvgPool2d", output_size=1)
    s.add("Flatten")
    s.add("Linear", out_features=num_classes)
    return tuple(s.nodes)


def _conv_bn_relu(s: _Stack, source: str, out_channels: int, kernel_size: int) -> str:
    s.add(
        "Conv2d",
        inputs=(source,),
        out_channels=out_channels,
        kernel_size=kernel_size,
        padding=kernel_size // 2,
        bias=False,
    )
    s.add("BatchNorm2d")
    return s.add("ReLU")


def _inception_module(s: _Stack, entry: str, widths: tuple[int, ...]) -> str:
    """GoogLeNet's module: four branches side by side (1×1; 1×1 → 3×3; 1×1 → 5×5; 3×3 max pool
    → 1×1), each keeping the size, stacked along the channels by Concat."""
    c1, r3, c3, r5, c5, cp = widths
    one = _conv_bn_relu(s, entry, c1, 1)
    three = _conv_bn_relu(s, _conv_bn_relu(s, entry, r3, 1), c3, 3)
    five = _conv_bn_relu(s, _conv_bn_relu(s, entry, r5, 1), c5, 5)
    pool = s.add("MaxPool2d", inputs=(entry,), kernel_size=3, stride=1, padding=1)
    pooled = _conv_bn_relu(s, pool, cp, 1)
    return s.add("Concat", inputs=(one, three, five, pooled))


def _inception_small(num_classes: int, shape: Shape3) -> tuple[Node, ...]:
    """An Inception-style network for small images: a 3×3 stem and three Inception modules
    (64, 128 and 256 channels out), the later two after a 2×2 max pool, then global average
    pooling and one Linear layer."""
    s = _Stack()
    s.add("Conv2d", out_channels=32, kernel_size=3, padding=1, bias=False)
    s.add("BatchNorm2d")
    entry = s.add("ReLU")
    stages = ((16, 24, 32, 4, 8, 8), (32, 32, 64, 8, 16, 16), (64, 64, 128, 16, 32, 32))
    for index, widths in enumerate(stages):
        if index:
            entry = s.add("MaxPool2d", inputs=(entry,), kernel_size=2)
        entry = _inception_module(s, entry, widths)
    s.add("AdaptiveAvgPool2d", inputs=(entry,), output_size=1)
    s.add("Flatten")
    s.add("Linear", out_features=num_classes)
    return tuple(s.nodes)


def _fire_module(s: _Stack, entry: str, squeeze: int, expand: int) -> str:
    """SqueezeNet's fire module: a 1×1 squeeze, then 1×1 and 3×3 expands side by side stacked by
    Concat; one batch norm and ReLU after the Concat act per channel, as one per branch would."""
    squeezed = _conv_bn_relu(s, entry, squeeze, 1)
    one = s.add("Conv2d", inputs=(squeezed,), out_channels=expand, kernel_size=1, padding=0)
    three = s.add("Conv2d", inputs=(squeezed,), out_channels=expand, kernel_size=3, padding=1)
    s.add("Concat", inputs=(one, three))
    s.add("BatchNorm2d")
    return s.add("ReLU")


def _squeezenet_small(num_classes: int, shape: Shape3) -> tuple[Node, ...]:
    """A SqueezeNet-style network for small images: a 3×3 stem and six fire modules in pairs
    (128, 256 and 384 channels out), each pair after a 2×2 max pool, then dropout, global
    average pooling and one Linear layer."""
    s = _Stack()
    s.add("Conv2d", out_channels=64, kernel_size=3, padding=1, bias=False)
    s.add("BatchNorm2d")
    entry = s.add("ReLU")
    for squeeze, expand in ((16, 64), (32, 128), (48, 192)):
        entry = s.add("MaxPool2d", inputs=(entry,), kernel_size=2)
        for _ in range(2):
            entry = _fire_module(s, entry, squeeze, expand)
    s.add("Dropout", inputs=(entry,), p=0.3)
    s.add("AdaptiveAvgPool2d", output_size=1)
    s.add("Flatten")
    s.add("Linear", out_features=num_classes)
    return tuple(s.nodes)


def _resnet18_features(num_classes: int, shape: Shape3) -> tuple[Node, ...]:
    s = _Stack()
    s.add("Backbone", name="resnet18", weights="DEFAULT", freeze=True)
    s.add("Linear", out_features=256)
    s.add("ReLU")
    s.add("Dropout", p=0.5)
    s.add("Linear", out_features=num_classes)
    return tuple(s.nodes)


def _efficientnet_b0_finetune(num_classes: int, shape: Shape3) -> tuple[Node, ...]:
    s = _Stack()
    s.add("Backbone", name="efficientnet_b0", weights="DEFAULT", freeze=False)
    s.add("Dropout", p=0.2)
    s.add("Linear", out_features=num_classes)
    return tuple(s.nodes)


register_template(
    Template(
        "simple-cnn",
        "The classic SimpleCNN for 32×32 colour images: two conv blocks (32, 64 channels) with "
        "batch norm, pooling and dropout, then a 512-unit head. 2.17 M parameters.",
        _simple_cnn,
    )
)
register_template(
    Template(
        "lenet5",
        "LeCun's LeNet-5 (tanh, average pooling) for 28×28 digits.",
        _lenet5,
        input_shape=(1, 28, 28),
    )
)
register_template(
    Template(
        "resnet-small",
        "A small residual network (16-32-64 channels, Add skip connections) for 32×32 images.",
        _resnet_small,
    )
)
register_template(
    Template(
        "inception-small",
        "An Inception-style network (GoogLeNet's modules: 1×1, 1×1→3×3, 1×1→5×5 and pool→1×1 "
        "branches joined by Concat; 64-128-256 channels) for 32×32 images.",
        _inception_small,
    )
)
register_template(
    Template(
        "squeezenet-small",
        "A SqueezeNet-style network (fire modules: a 1×1 squeeze, then 1×1 and 3×3 expands "
        "joined by Concat; 128-256-384 channels) for 32×32 images.",
        _squeezenet_small,
    )
)
register_template(
    Template(
        "resnet18-features",
        "Transfer learning: a frozen ImageNet ResNet-18 as feature extractor and a new "
        "trainable head.",
        _resnet18_features,
        input_shape=(3, 224, 224),
    )
)
register_template(
    Template(
        "efficientnet_b0-finetune",
        "Fine-tuning: ImageNet EfficientNet-B0, all layers trainable, the backbone at a 100× lower "
        "learning rate than the new head.",
        _efficientnet_b0_finetune,
        input_shape=(3, 224, 224),
        training={"lr": 1e-3, "backbone_lr": 1e-5},
    )
)
