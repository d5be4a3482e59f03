"""The shape rules of the layer kinds: from a layer's values and input shapes, its output shape,
parameters, trainable parameters, FLOPs and resolved values ("auto" filled in), or ``Unfit`` with
the user's message when the layer does not fit its input. Pure arithmetic, except for Backbone
layers, which are probed once on torch's meta device and cached (``cnnstudio.backbones``).
"""

from __future__ import annotations

import math
from typing import Any

from cnnstudio import backbones
from cnnstudio.params import AUTO

Shape = tuple[int, ...]


def format_shape(shape: Shape | None) -> str:
    """64×8×8 for a feature map, 512 for a vector."""
    return "?" if shape is None else "×".join(str(v) for v in shape)


class Unfit(Exception):
    """Raised by a shape rule: the layer does not fit its input. Carries the user's message."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


# Shape rules: (values, input shapes, source names)
#   -> (out shape, params, trainable params, flops, resolved values)


def _need_map(kind: str, shape: Shape, source: str, instead: str) -> None:
    if len(shape) != 3:
        raise Unfit(
            f"{kind} needs a feature map (channels×height×width) but receives a flat "
            f"vector of {shape[0]} features from {source}; {instead}"
        )


def _need_vector(kind: str, shape: Shape, source: str, instead: str) -> None:
    if len(shape) != 1:
        raise Unfit(
            f"{kind} needs a flat vector but receives a feature map "
            f"{format_shape(shape)} from {source}; {instead}"
        )


def _auto(values: dict[str, Any], name: str, actual: int, kind: str, source: str, what: str) -> int:
    given = values[name]
    if given == AUTO:
        return actual
    if given != actual:
        raise Unfit(
            f"{kind} expects {given} input {what} but receives {actual} from {source}: "
            f"set {name} to {actual} or auto",
            param=name,
        )
    return given


def _window(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _too_small(kind: str, shape: Shape, out_h: int, out_w: int, kernel: int) -> Unfit:
    return Unfit(
        f"{kind} output would be {out_h}×{out_w}: its input {shape[1]}×{shape[2]} is "
        f"too small for a {kernel}×{kernel} window; remove a pooling or strided layer "
        "before it, add padding, or use a smaller kernel_size"
    )


def _conv2d(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    _need_map("Conv2d", shape, source, "move it before Flatten")
    in_channels = _auto(values, "in_channels", shape[0], "Conv2d", source, "channels")
    out_channels, k, stride = values["out_channels"], values["kernel_size"], values["stride"]
    dilation, groups, padding = values["dilation"], values["groups"], values["padding"]
    if in_channels % groups or out_channels % groups:
        raise Unfit(
            f"groups ({groups}) must divide both in_channels ({in_channels}) and "
            f"out_channels ({out_channels})",
            param="groups",
        )
    if padding == "same":
        if stride != 1:
            raise Unfit(
                "padding 'same' works only with stride 1: set padding to a number", param="padding"
            )
        out_h, out_w = shape[1], shape[2]
    else:
        pad = 0 if padding == "valid" else padding
        out_h = _window(shape[1], k, stride, pad, dilation, False)
        out_w = _window(shape[2], k, stride, pad, dilation, False)
    if out_h < 1 or out_w < 1:
        raise _too_small("Conv2d", shape, out_h, out_w, k)
    n = out_channels * (in_channels // groups) * k * k + (out_channels if values["bias"] else 0)
    flops = 2 * out_h * out_w * out_channels * (in_channels // groups) * k * k
    resolved = {**values, "in_channels": in_channels}
    return (out_channels, out_h, out_w), n, n, flops, resolved


def _pool(name: str):
    def rule(values, shapes, sources):
        (shape,), (source,) = shapes, sources
        _need_map(name, shape, source, "move it before Flatten")
        k, padding, ceil = values["kernel_size"], values["padding"], values["ceil_mode"]
        stride = k if values["stride"] == AUTO else values["stride"]
        if 2 * padding > k:
            raise Unfit(
                f"padding ({padding}) must be at most half of kernel_size ({k})", param="padding"
            )
        out_h = _window(shape[1], k, stride, padding, 1, ceil)
        out_w = _window(shape[2], k, stride, padding, 1, ceil)
        if out_h < 1 or out_w < 1:
            raise _too_small(name, shape, out_h, out_w, k)
        return (shape[0], out_h, out_w), 0, 0, 0, {**values, "stride": stride}

    return rule


def _adaptive_avg_pool(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    _need_map("AdaptiveAvgPool2d", shape, source, "move it before Flatten")
    size = values["output_size"]
    return (shape[0], size, size), 0, 0, 0, dict(values)


def _batch_norm_2d(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    _need_map("BatchNorm2d", shape, source, "use BatchNorm1d after Flatten")
    c = _auto(values, "num_features", shape[0], "BatchNorm2d", source, "channels")
    return shape, 2 * c, 2 * c, 0, {**values, "num_features": c}


def _batch_norm_1d(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    _need_vector("BatchNorm1d", shape, source, "use BatchNorm2d here, or put it after Flatten")
    c = _auto(values, "num_features", shape[0], "BatchNorm1d", source, "features")
    return shape, 2 * c, 2 * c, 0, {**values, "num_features": c}


def _same(values, shapes, sources):
    return shapes[0], 0, 0, 0, dict(values)


def _dropout_2d(values, shapes, sources):
    _need_map("Dropout2d", shapes[0], sources[0], "use Dropout for flat vectors")
    return _same(values, shapes, sources)


def _flatten(values, shapes, sources):
    return (math.prod(shapes[0]),), 0, 0, 0, {}


def _linear(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    if len(shape) != 1:
        raise Unfit(
            f"Linear receives a feature map {format_shape(shape)} from {source}; add a "
            f"Flatten before it (it will give {math.prod(shape)} features)"
        )
    in_features = _auto(values, "in_features", shape[0], "Linear", source, "features")
    out = values["out_features"]
    n = in_features * out + (out if values["bias"] else 0)
    return (out,), n, n, 2 * in_features * out, {**values, "in_features": in_features}


def _listing(shapes: tuple[Shape, ...], sources: tuple[str, ...]) -> str:
    return " and ".join(
        f"{format_shape(s)} from {src}" for s, src in zip(shapes, sources, strict=True)
    )


def _add(values, shapes, sources):
    if any(s != shapes[0] for s in shapes):
        got = _listing(shapes, sources)
        fix = ""
        if all(len(s) == 3 for s in shapes) and len({s[1:] for s in shapes}) == 1:
            fix = (
                f"; make the channels match (for example a 1×1 Conv2d with out_channels "
                f"{shapes[0][0]} on the shortcut)"
            )
        elif all(len(s) == 3 for s in shapes):
            fix = "; " + _shortcut_fix(shapes, sources)
        raise Unfit(f"Add needs inputs of one shape but receives {got}{fix}")
    return shapes[0], 0, 0, 0, {}


def _shortcut_fix(shapes: tuple[Shape, ...], sources: tuple[str, ...]) -> str:
    """How to make an Add's feature maps one size: a strided 1×1 Conv2d on the larger input
    (the usual residual shortcut), with its stride and channels when they divide evenly."""
    small = min(shapes, key=lambda s: s[1] * s[2])
    big, source = max(zip(shapes, sources, strict=True), key=lambda p: p[0][1] * p[0][2])
    stride = big[1] // small[1]
    if big[1] % small[1] or big[2] % small[2] or big[2] // small[2] != stride:
        return "make the sizes match (for example a strided 1×1 Conv2d on the shortcut)"
    return (
        f"make the sizes match: for example a 1×1 Conv2d with stride {stride} and "
        f"out_channels {small[0]} between {source} and the Add"
    )


def _mul(values, shapes, sources):
    """Element-wise product with broadcasting: sizes of 1 stretch to the other inputs'."""
    if len({len(s) for s in shapes}) == 1:
        out = tuple(max(sizes) for sizes in zip(*shapes, strict=True))
        if all(v in (1, o) for s in shapes for v, o in zip(s, out, strict=True)):
            return out, 0, 0, math.prod(out) * (len(shapes) - 1), {}
    raise Unfit(
        f"Mul needs inputs of one shape, or sizes of 1 where they differ (a channel gate "
        f"C×1×1 on a C×H×W map), but receives {_listing(shapes, sources)}"
    )


def _size_fix(shapes: tuple[Shape, ...], sources: tuple[str, ...]) -> str:
    """How to give a merge's feature maps one size: pad the smaller branches, or shrink the
    larger ones, each named."""
    big = max(s[1:] for s in shapes)
    small = min(s[1:] for s in shapes)
    smaller = [src for s, src in zip(shapes, sources, strict=True) if s[1:] != big]
    larger = [src for s, src in zip(shapes, sources, strict=True) if s[1:] == big]
    keeps = "it keeps" if len(smaller) == 1 else "they keep"
    return (
        f"pad {', '.join(smaller)} so {keeps} {big[0]}×{big[1]} (a k×k Conv2d keeps the size "
        f"with padding k // 2), or pool or stride {', '.join(larger)} to {small[0]}×{small[1]}"
    )


def _concat(values, shapes, sources):
    got = _listing(shapes, sources)
    if len({len(s) for s in shapes}) != 1:
        raise Unfit(
            f"Concat cannot join feature maps with flat vectors: it receives {got}; "
            "add Flatten to the feature maps first"
        )
    if len(shapes[0]) == 3 and len({s[1:] for s in shapes}) != 1:
        raise Unfit(
            f"Concat needs feature maps of one height and width but receives {got}; "
            + _size_fix(shapes, sources)
        )
    return (sum(s[0] for s in shapes), *shapes[0][1:]), 0, 0, 0, {}


def _backbone(values, shapes, sources):
    (shape,), (source,) = shapes, sources
    name = values["name"]
    _need_map("Backbone", shape, source, "a backbone takes images: put it first")
    if shape[0] != 3:
        raise Unfit(
            f"Backbone {name} expects 3 input channels (RGB) but receives {shape[0]} "
            f"from {source}: set the model input to 3 channels"
        )
    try:
        probe = backbones.probe(name, shape, values["weights"])
    except backbones.ProbeError as error:
        raise Unfit(str(error)) from None
    trainable = 0 if values["freeze"] else probe.params
    return probe.output_shape, probe.params, trainable, probe.flops, dict(values)


RULES = {
    "Conv2d": _conv2d,
    "MaxPool2d": _pool("MaxPool2d"),
    "AvgPool2d": _pool("AvgPool2d"),
    "AdaptiveAvgPool2d": _adaptive_avg_pool,
    "BatchNorm2d": _batch_norm_2d,
    "BatchNorm1d": _batch_norm_1d,
    "ReLU": _same,
    "LeakyReLU": _same,
    "GELU": _same,
    "SiLU": _same,
    "Sigmoid": _same,
    "ReLU6": _same,
    "Hardswish": _same,
    "Hardsigmoid": _same,
    "Tanh": _same,
    "Dropout": _same,
    "Dropout2d": _dropout_2d,
    "Flatten": _flatten,
    "Linear": _linear,
    "Identity": _same,
    "Add": _add,
    "Mul": _mul,
    "Concat": _concat,
    "Backbone": _backbone,
}
