"""The layer catalogue: every layer kind the studio offers and its parameters, described as data.

This is the one place that says what a layer's parameters are. The editor's property forms, the
analysis, the builder and the code exporter all read it; nothing about a parameter lives elsewhere.
Parameter names are torch's own argument names.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from cnnstudio.backbones import BACKBONES
from cnnstudio.params import AUTO, Param

GROUPS = (
    "Convolution",
    "Pooling",
    "Normalization",
    "Activation",
    "Regularization",
    "Linear",
    "Merge",
    "Backbones",
)


@dataclass(frozen=True)
class LayerKind:
    """A kind of layer: its name (torch's class name), palette group, help and parameters."""

    name: str
    group: str
    help: str
    params: tuple[Param, ...] = ()
    min_inputs: int = 1
    max_inputs: int = 1
    id_stem: str = ""

    @property
    def is_merge(self) -> bool:
        return self.max_inputs > 1

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no parameter {name!r}")

    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def new_id_stem(self) -> str:
        """The start of ids given to new layers of this kind: conv, bn, fc, ..."""
        return self.id_stem or self.name.lower()

    def default_params(self) -> dict[str, Any]:
        """Every parameter at its default: what a layer dropped from the palette starts with."""
        return {p.name: p.default for p in self.params}


def _pool_params() -> tuple[Param, ...]:
    return (
        Param(
            "kernel_size", "int", 2, "Height and width of the pooling window.", 1, 64, required=True
        ),
        Param(
            "stride",
            "int",
            AUTO,
            "Step between windows; 'auto' equals kernel_size.",
            1,
            64,
            words=(AUTO,),
        ),
        Param("padding", "int", 0, "Padding on each side, at most half the window.", 0, 32),
        Param("ceil_mode", "bool", False, "Round the output size up instead of down."),
    )


def _channels(name: str, help_: str) -> Param:
    return Param(name, "int", AUTO, help_, minimum=1, maximum=65536, words=(AUTO,))


def _p(name: str, help_: str, default: float = 0.5) -> Param:
    return Param(name, "float", default, help_, minimum=0.0, maximum=1.0)


_EPS = Param("eps", "float", 1e-5, "Added to the variance for numerical stability.", 1e-12, 1.0)
_MOMENTUM = Param(
    "momentum", "float", 0.1, "Weight of the newest batch in the running statistics.", 0.0, 1.0
)

_KINDS: tuple[LayerKind, ...] = (
    LayerKind(
        "Conv2d",
        "Convolution",
        "2-D convolution: slides out_channels learned filters over the feature map.",
        (
            _channels("in_channels", "Channels of the incoming feature map; 'auto' reads them."),
            Param(
                "out_channels",
                "int",
                32,
                "Number of filters (output channels).",
                1,
                65536,
                required=True,
            ),
            Param(
                "kernel_size", "int", 3, "Height and width of each filter.", 1, 64, required=True
            ),
            Param("stride", "int", 1, "Step between filter positions; 2 halves the size.", 1, 64),
            Param(
                "padding",
                "int",
                1,
                "Zeros added on each side; 'same' keeps the size.",
                0,
                64,
                words=("same", "valid"),
            ),
            Param("dilation", "int", 1, "Spacing between filter taps.", 1, 16),
            Param(
                "groups", "int", 1, "Split channels into groups; in_channels = depthwise.", 1, 65536
            ),
            Param("bias", "bool", True, "Learn an additive bias per filter."),
        ),
        id_stem="conv",
    ),
    LayerKind(
        "MaxPool2d",
        "Pooling",
        "Keeps the largest value of each window: shrinks the map, keeps strong responses.",
        _pool_params(),
        id_stem="pool",
    ),
    LayerKind(
        "AvgPool2d",
        "Pooling",
        "Averages each window: shrinks the map smoothly.",
        _pool_params(),
        id_stem="avgpool",
    ),
    LayerKind(
        "AdaptiveAvgPool2d",
        "Pooling",
        "Averages to a fixed output size whatever the input size (1 = global average pooling).",
        (Param("output_size", "int", 1, "Height and width of the output.", 1, 1024),),
        id_stem="gap",
    ),
    LayerKind(
        "BatchNorm2d",
        "Normalization",
        "Normalizes each channel of a feature map over the batch; speeds up training.",
        (
            _channels("num_features", "Channels of the incoming map; 'auto' reads them."),
            _EPS,
            _MOMENTUM,
        ),
        id_stem="bn",
    ),
    LayerKind(
        "BatchNorm1d",
        "Normalization",
        "Normalizes each feature of a flat vector over the batch.",
        (
            _channels("num_features", "Features of the incoming vector; 'auto' reads them."),
            _EPS,
            _MOMENTUM,
        ),
        id_stem="bn",
    ),
    LayerKind("ReLU", "Activation", "max(0, x): the default non-linearity."),
    LayerKind(
        "LeakyReLU",
        "Activation",
        "Like ReLU, but lets a small slope through for negative inputs.",
        (Param("negative_slope", "float", 0.01, "Slope for negative inputs.", 0.0, 1.0),),
    ),
    LayerKind(
        "GELU",
        "Activation",
        "Smooth ReLU used by transformers.",
        (
            Param(
                "approximate",
                "choice",
                "none",
                "'tanh' uses the faster approximation.",
                choices=("none", "tanh"),
            ),
        ),
    ),
    LayerKind("SiLU", "Activation", "x * sigmoid(x) (Swish), used by EfficientNet."),
    LayerKind("Sigmoid", "Activation", "Squashes values into (0, 1)."),
    LayerKind("ReLU6", "Activation", "min(max(0, x), 6): ReLU capped at 6, used by MobileNetV2."),
    LayerKind(
        "Hardswish",
        "Activation",
        "x * relu6(x + 3) / 6: a cheap Swish, used by MobileNetV3.",
    ),
    LayerKind(
        "Hardsigmoid",
        "Activation",
        "relu6(x + 3) / 6: a cheap sigmoid, the gate of MobileNetV3's squeeze-excitation.",
    ),
    LayerKind("Tanh", "Activation", "Squashes values into (-1, 1); the classic LeNet activation."),
    LayerKind(
        "Dropout",
        "Regularization",
        "Zeroes random values while training, against overfitting.",
        (_p("p", "Probability of zeroing each value."),),
        id_stem="drop",
    ),
    LayerKind(
        "Dropout2d",
        "Regularization",
        "Zeroes whole random channels of a feature map while training.",
        (_p("p", "Probability of zeroing each channel."),),
        id_stem="drop",
    ),
    LayerKind(
        "Flatten",
        "Linear",
        "Turns a feature map (channels x height x width) into a flat vector for Linear layers.",
    ),
    LayerKind(
        "Linear",
        "Linear",
        "Fully connected layer: every output is a weighted sum of every input feature.",
        (
            _channels("in_features", "Size of the incoming vector; 'auto' reads it."),
            Param(
                "out_features",
                "int",
                128,
                "Size of the output vector.",
                1,
                1_000_000,
                required=True,
            ),
            Param("bias", "bool", True, "Learn an additive bias per output."),
        ),
        id_stem="fc",
    ),
    LayerKind("Identity", "Merge", "Passes its input through unchanged: a named branch point."),
    LayerKind(
        "Add",
        "Merge",
        "Adds its inputs element by element: the residual (skip) connection.",
        min_inputs=2,
        max_inputs=16,
    ),
    LayerKind(
        "Mul",
        "Merge",
        "Multiplies its inputs element by element (a N×C×1×1 gate scales a N×C×H×W map): "
        "the squeeze-and-excitation gate.",
        min_inputs=2,
        max_inputs=16,
    ),
    LayerKind(
        "Concat",
        "Merge",
        "Stacks its inputs along the channel (or feature) dimension.",
        min_inputs=2,
        max_inputs=64,  # a DenseNet block joins up to 49 maps
    ),
    LayerKind(
        "Backbone",
        "Backbones",
        "A torchvision classification network without its classifier head, as a feature "
        "extractor; layers after it form the new head.",
        (
            Param(
                "name",
                "choice",
                "resnet18",
                "The torchvision architecture.",
                choices=BACKBONES,
                required=True,
            ),
            Param(
                "weights",
                "choice",
                "DEFAULT",
                "'DEFAULT' loads the best ImageNet weights; 'none' starts from random values.",
                choices=("none", "DEFAULT"),
            ),
            Param("freeze", "bool", True, "Keep the backbone's weights fixed while training."),
        ),
        id_stem="backbone",
    ),
)

LAYER_KINDS: dict[str, LayerKind] = {kind.name: kind for kind in _KINDS}


def list_layer_kinds() -> list[str]:
    """Names of every layer kind in the catalogue, in palette order."""
    return list(LAYER_KINDS)


def get_layer_kind(name: str) -> LayerKind:
    """The catalogue entry for ``name``; KeyError with a suggestion when there is none."""
    try:
        return LAYER_KINDS[name]
    except KeyError:
        raise KeyError(unknown_kind_message(name)) from None


def unknown_kind_message(name: object) -> str:
    text = f"unknown layer kind {name!r}"
    if isinstance(name, str):
        close = difflib.get_close_matches(name, LAYER_KINDS, n=1, cutoff=0.6)
        if not close:
            close = [k for k in LAYER_KINDS if k.lower() == name.lower()]
        if close:
            return f"{text}: did you mean {close[0]}?"
    return f"{text}; known kinds are {', '.join(LAYER_KINDS)}"
