"""The model written out as Python: an ``nn.Module`` class layer by layer (``self.conv1 =
nn.Conv2d(3, 32, kernel_size=3, padding=1)``, a ``forward`` with the shape of every step), the
imports it needs, the constants that describe its input and output, and Python literals as the
house formatter writes them. The "python" and "training-script" exports are built on it."""

from __future__ import annotations

import inspect
import json
import keyword
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from cnnstudio import backbones
from cnnstudio.analysis import Analysis, analyze
from cnnstudio.blocks import block_of, block_outputs, flatten, node_at
from cnnstudio.build import needed_layers
from cnnstudio.errors import ExportError
from cnnstudio.layers import LAYER_KINDS
from cnnstudio.model_source import ModelSource
from cnnstudio.shapes import format_shape
from cnnstudio.spec import BLOCK, INPUT, ModelSpec

_POSITIONAL = ("in_channels", "out_channels", "in_features", "out_features", "num_features")
_TAKEN = frozenset({"x", "self", "torch", "nn", "image", "net", "OrderedDict", "torchvision"})


def _attr(node_id: str) -> str:
    return f"self.{node_id}" if not keyword.iskeyword(node_id) else f'getattr(self, "{node_id}")'


def _assign(node_id: str, expr: str) -> str:
    if keyword.iskeyword(node_id):
        return f'setattr(self, "{node_id}", {expr})'
    return f"self.{node_id} = {expr}"


def _local(node_id: str) -> str:
    if keyword.iskeyword(node_id) or node_id in _TAKEN or node_id in dir(__builtins__):
        return f"{node_id}_out"
    return node_id


def _module_expr(node_id: str, kind_name: str, resolved: dict[str, Any]) -> str:
    """``nn.Conv2d(3, 32, kernel_size=3, padding=1)``: the catalogue's parameters, torch's
    defaults left out."""
    if kind_name not in LAYER_KINDS or not hasattr(nn, kind_name):
        raise ExportError(
            f"layer {node_id}: no code for a {kind_name} layer", "python", None, node_id
        )
    kind = LAYER_KINDS[kind_name]
    torch_params = inspect.signature(getattr(nn, kind_name)).parameters
    args: list[str] = []
    leading = True
    for param in kind.params:
        value = resolved.get(param.name, param.default)
        if leading and param.name in _POSITIONAL:
            args.append(repr(value))
            continue
        leading = False
        default = torch_params[param.name].default if param.name in torch_params else None
        if (
            default is not inspect.Parameter.empty
            and type(value) is type(default)
            and value == default
        ):
            continue
        if param.name == "stride" and default is None and value == resolved.get("kernel_size"):
            continue
        args.append(f"{param.name}={literal(value)}")
    return f"nn.{kind_name}({', '.join(args)})"


def _head_path(node_id: str, net: nn.Module) -> str:
    """Where the backbone's classifier was replaced by Identity, as Python: ``.fc``,
    ``.classifier[1]``, ``.heads.head``."""
    for attribute in backbones.HEAD_ATTRIBUTES:
        head = getattr(net, attribute, None)
        if not isinstance(head, nn.Module):
            continue
        found = "" if isinstance(head, nn.Identity) else None
        for sub_name, module in head.named_modules():
            if sub_name and isinstance(module, nn.Identity):
                found = sub_name
        if found is None:
            break
        parts = [attribute, *(found.split(".") if found else [])]
        return "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts)
    raise ExportError(
        f"layer {node_id}: cannot find where the backbone's classifier was removed",
        "python",
        None,
        node_id,
    )


def _backbone_lines(node_id: str, resolved: dict[str, Any], module: Any, pretrained: bool):
    name = resolved["name"]
    net = getattr(module, "net", None)
    if net is None:
        raise ExportError(f"layer {node_id}: the model holds no backbone there", "python")
    downloads = pretrained and resolved.get("weights") == "DEFAULT"
    weights = '"DEFAULT" if pretrained else None' if downloads else "None"
    kwargs = [f"weights={weights}"]
    if name in ("googlenet", "inception_v3"):
        kwargs += [
            "aux_logits=False",
            "init_weights=not pretrained" if downloads else "init_weights=True",
        ]
        kwargs.append(f"transform_input={bool(getattr(net, 'transform_input', False))}")
    if name.startswith("vit_") and getattr(net, "image_size", 224) != 224:
        kwargs.append(f"image_size={net.image_size}")
    head = _head_path(node_id, net)
    lines = [
        f"# {name} from torchvision as a feature extractor: its classifier ({head[1:]}) is removed",
        f"net = torchvision.models.{name}({', '.join(kwargs)})",
        f"net{head} = nn.Identity()",
        _assign(node_id, "nn.Sequential(OrderedDict(net=net))") + f"  # weights: {node_id}.net.*",
    ]
    if resolved.get("freeze"):
        lines.append(f"{_attr(node_id)}.requires_grad_(False)  # frozen while training")
    return lines


@dataclass(frozen=True)
class ModelCode:
    """The model's class as lines of Python, and what the file around it must provide."""

    class_lines: list[str]
    uses_backbone: bool
    takes_pretrained: bool  # Net(pretrained=False) skips downloading backbone weights


def model_code(src: ModelSource, pretrained: bool = False, class_name: str = "Net") -> ModelCode:
    """The class of ``src``'s model (its spec's layers that reach the output). With
    ``pretrained``, backbones with ImageNet weights download them unless told not to."""
    spec = src.spec
    assert spec is not None
    analysis = analyze(spec)
    infos = {info.id: info for info in analysis.layers}
    needed = needed_layers(flatten(spec).nodes[-1].id, infos)
    order = [n for n in analysis.order if n in needed]
    output = spec.nodes[-1].id
    classes: dict[tuple[str, ...], str] = {}
    if spec.blocks:
        order, infos = _block_scope(spec, analysis, order, "", classes)
    modules = dict(src.model.named_children())
    init: list[str] = []
    frozen: list[str] = []
    downloads = pretrained and any(
        infos[n].kind == "Backbone" and infos[n].resolved.get("weights") == "DEFAULT" for n in order
    )
    for node_id in order:
        info = infos[node_id]
        if info.kind in ("Add", "Mul", "Concat"):
            continue
        if info.kind == BLOCK:
            init.append(_assign(node_id, f"{info.resolved['class']}()"))
        elif info.kind == "Backbone":
            init += _backbone_lines(node_id, info.resolved, modules.get(node_id), pretrained)
            if info.resolved.get("freeze"):
                frozen.append(node_id)
        else:
            init.append(_assign(node_id, _module_expr(node_id, info.kind, info.resolved)))
    forward = _forward_lines(order, infos, output)
    c, h, w = spec.input_shape
    lines = [
        *(line for body in classes for line in (*body, "", "")),
        f"class {class_name}(nn.Module):",
        f'    """Input {c}×{h}×{w} images, output {spec.num_classes} class scores (logits).',
        "",
        "    Attribute names are the layer ids of the CNN Studio project, as in its weights.",
        '    """',
        "",
        "    def __init__(self, pretrained: bool = True) -> None:"
        if downloads
        else "    def __init__(self) -> None:",
        "        super().__init__()",
        *(f"        {line}" for line in init),
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        *(f"        {line}" for line in forward),
    ]
    if frozen:
        lines += [
            "",
            f"    def train(self, mode: bool = True) -> {class_name}:",
            "        super().train(mode)",
            *(f"        {_attr(n)}.eval()  # frozen: batch-norm statistics stay" for n in frozen),
            "        return self",
        ]
    return ModelCode(lines, any(infos[n].kind == "Backbone" for n in order), downloads)


def _block_scope(
    spec: ModelSpec, analysis: Analysis, order: list[str], prefix: str, classes: dict
) -> tuple[list[str], dict]:
    """The layers of one scope (the model, or the use ``prefix`` names) under their own ids, a
    block use as one layer whose ``resolved["class"]`` is the class written for it; the classes
    go into ``classes`` (their lines -> name), one per block definition (a definition whose
    'auto' sizes resolve differently in two uses gets a class per variant)."""
    groups: dict[str, list[str]] = {}
    for flat_id in order:
        groups.setdefault(flat_id[len(prefix) :].split(".")[0], []).append(flat_id)

    def local(source: str) -> str:
        if source == INPUT or not source.startswith(prefix):
            return INPUT
        return source[len(prefix) :].split(".")[0]

    infos: dict[str, Any] = {}
    for name, members in groups.items():
        if members == [prefix + name]:
            info = analysis.layer(prefix + name)
            if info.kind == "Backbone":
                raise ExportError(f"layer {info.id}: no code for a Backbone inside a block")
            infos[name] = replace(info, id=name, inputs=tuple(local(s) for s in info.inputs))
            continue
        inner_order, inner_infos = _block_scope(
            spec, analysis, members, f"{prefix}{name}.", classes
        )
        use = analysis.layer(prefix + name)
        block = block_of(node_at(spec, prefix + name)) or "Block"
        out = block_outputs(spec)[prefix + name][len(prefix) + len(name) + 1 :].split(".")[0]
        cls = _block_class(block, inner_order, inner_infos, out, classes)
        infos[name] = replace(
            use, id=name, inputs=tuple(local(s) for s in use.inputs[:1]), resolved={"class": cls}
        )
    return list(groups), infos


def _block_class(block: str, order: list[str], infos: dict, output: str, classes: dict) -> str:
    """The name of the class for one block use, its lines added to ``classes`` unless the
    same class is there already."""
    stem = "".join(part[:1].upper() + part[1:] for part in block.split("_")) or "Block"
    init = []
    for node_id in order:
        info = infos[node_id]
        if info.kind == BLOCK:
            init.append(_assign(node_id, f"{info.resolved['class']}()"))
        elif info.kind not in ("Add", "Mul", "Concat"):
            init.append(_assign(node_id, _module_expr(node_id, info.kind, info.resolved)))
    body = (
        f'    """The block {block!r} of the CNN Studio project."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *(f"        {line}" for line in init),
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        *(f"        {line}" for line in _forward_lines(order, infos, output)),
    )
    for lines, name in classes.items():
        if lines[1:] == body and name.rstrip("0123456789") == stem:
            return name
    taken = set(classes.values())
    name, i = stem, 1
    while name in taken:
        i += 1
        name = f"{stem}{i}"
    classes[(f"class {name}(nn.Module):", *body)] = name
    return name


def _forward_lines(order: list[str], infos: dict, output: str) -> list[str]:
    """One line per layer. The running value is ``x``; a value used again later (a skip
    connection's source) gets the layer's id as its name."""
    uses: dict[str, int] = {INPUT: 0, **{n: 0 for n in order}}
    for node_id in order:
        for source in infos[node_id].inputs:
            uses[source] += 1
    uses[output] += 1
    position = {n: i for i, n in enumerate(order)}
    position[INPUT] = -1

    def stays_in_x(value: str) -> bool:
        if uses[value] != 1:
            return False
        if value == output:
            return position[value] == len(order) - 1
        following = order[position[value] + 1] if position[value] + 1 < len(order) else None
        return following is not None and value in infos[following].inputs

    names = {INPUT: "x" if stays_in_x(INPUT) else "image"}
    lines = [] if names[INPUT] == "x" else ["image = x  # used again below"]
    for node_id in order:
        info = infos[node_id]
        args = [names[s] for s in info.inputs]
        target = "x" if stays_in_x(node_id) else _local(node_id)
        names[node_id] = target
        if info.kind == "Add":
            expr = " + ".join(args)
        elif info.kind == "Mul":
            expr = " * ".join(args)
        elif info.kind == "Concat":
            expr = f"torch.cat([{', '.join(args)}], dim=1)"
        else:
            expr = f"{_attr(node_id)}({args[0]})"
        comment = (
            f"  # {node_id}: {format_shape(info.output_shape)}"
            if info.kind
            in (
                "Add",
                "Mul",
                "Concat",
            )
            else f"  # {format_shape(info.output_shape)}"
        )
        lines.append(f"{target} = {expr}{comment}")
    lines.append(f"return {names[output]}")
    return lines


def constants(src: ModelSource) -> list[str]:
    """CLASSES, INPUT_SHAPE, MEAN and STD of ``src`` (no normalisation: mean 0, std 1)."""
    classes = list(src.classes) or [str(i) for i in range(src.spec.num_classes)]
    channels = src.input_shape[0]
    mean = list(src.mean) or [0.0] * channels
    std = list(src.std) or [1.0] * channels
    return [
        f"CLASSES = {literal(classes, wrap=True)}",
        f"INPUT_SHAPE = {tuple(src.input_shape)!r}  # channels, height, width",
        f"MEAN = {tuple(mean)!r}  # per channel, on a 0-1 scale",
        f"STD = {tuple(std)!r}",
    ]


def literal(value: Any, wrap: bool = False) -> str:
    """``value`` as Python source, strings in double quotes (as the house formatter writes them);
    with ``wrap`` a long list is written one item per line."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        items = [literal(v) for v in value]
        one_line = ", ".join(items)
        if isinstance(value, tuple):
            return f"({one_line},)" if len(items) == 1 else f"({one_line})"
        if wrap and len(one_line) > 80:
            return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
        return f"[{one_line}]"
    if isinstance(value, dict):
        items = [f"{literal(k)}: {literal(v)}" for k, v in value.items()]
        if wrap and len(", ".join(items)) > 80:
            return "{\n" + "".join(f"    {item},\n" for item in items) + "}"
        return "{" + ", ".join(items) + "}"
    return repr(value)


def imports(code: ModelCode, extra: tuple[str, ...] = ()) -> list[str]:
    """The import block of a file holding ``code``, with ``import <m>`` for each of ``extra``."""
    lines = ["from __future__ import annotations", "", "import argparse"]
    lines += [f"import {m}" for m in extra]
    if code.uses_backbone:
        lines.append("from collections import OrderedDict")
    lines += ["from pathlib import Path", "", "import torch"]
    if code.uses_backbone:
        lines.append("import torchvision")
    lines.append("from torch import nn")
    return lines
