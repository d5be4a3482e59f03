"""Export what was built: weights, whole-model files, readable PyTorch code, a training script.

``export(source, format, path)`` writes one format and checks it before reporting success: the
written artifact is loaded back (by onnxruntime, ``torch.export.load``, ``torch.jit.load``, or a
fresh Python interpreter for generated code) and its output compared with the model's own on a
sample batch of another size than the one it was exported with. The largest difference comes back
in the result; above the tolerance the export fails with an ExportError naming the format.

Reading weights back into a model is ``cnnstudio.weights.load_weights``.

Formats:

- safetensors: the state dict only (keys = layer ids), with classes, input shape and normalisation
  in its metadata.
- pt2: ``torch.export`` program with a dynamic batch dimension, loaded by ``torch.export.load``.
- torchscript: ``torch.jit.trace`` (deprecated by torch but still shipped), ``torch.jit.load``.
- onnx: the dynamo exporter (``dynamo=True``) with a dynamic batch dimension given through
  ``dynamic_shapes``; torch chooses the opset. Checked with onnxruntime on CPU.
- python: one readable .py file (an ``nn.Module`` written out layer by layer, preprocessing and a
  command line that classifies images) with ``<name>.safetensors`` beside it.
- training-script: one runnable train.py in plain PyTorch and torchvision for the project.
- project: a copy of the project folder (project.json and the exported run), which CNN Studio opens.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import keyword
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnstudio import backbones, model_source
from cnnstudio.build import needed_layers
from cnnstudio.data import load_dataset
from cnnstudio.errors import ExportError, StudioError
from cnnstudio.files import atomic_write_text
from cnnstudio.layers import LAYER_KINDS
from cnnstudio.model_source import ModelSource
from cnnstudio.normalization import normalization
from cnnstudio.project import RUNS_DIR, Project, load_project
from cnnstudio.runs import find_run
from cnnstudio.spec import INPUT, analyze, format_shape
from cnnstudio.weights import load_weights, state_tensors

TOLERANCE = 1e-4
"""Largest accepted difference, relative to the largest output value (at least 1)."""

EXAMPLE_BATCH = 2  # the batch the model is exported with
CHECK_BATCH = 3  # the batch it is checked with: another size proves the batch is dynamic


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, the file suffix, a title and a one-line explanation."""

    name: str
    suffix: str
    title: str
    help: str
    needs_spec: bool = False


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "safetensors",
            ".safetensors",
            "Weights (safetensors)",
            "The weights only, safe to load anywhere; pair them with the model's code.",
        ),
        ExportFormat(
            "onnx",
            ".onnx",
            "ONNX",
            "The whole model for onnxruntime, TensorRT, OpenVINO, browsers and phones.",
        ),
        ExportFormat(
            "pt2",
            ".pt2",
            "PyTorch program (torch.export)",
            "The whole model as a torch.export program; load it with torch.export.load.",
        ),
        ExportFormat(
            "torchscript",
            ".pt",
            "TorchScript",
            "The whole model for torch.jit.load and LibTorch (C++); deprecated by PyTorch.",
        ),
        ExportFormat(
            "python",
            ".py",
            "PyTorch code",
            "A readable .py file with the model written out layer by layer, and its weights.",
            needs_spec=True,
        ),
        ExportFormat(
            "training-script",
            ".py",
            "Training script",
            "A runnable train.py in plain PyTorch and torchvision for this project.",
            needs_spec=True,
        ),
        ExportFormat(
            "project",
            "",
            "Project folder",
            "A copy of the project with this run, to open in CNN Studio elsewhere.",
            needs_spec=True,
        ),
    )
}


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how closely the written model matches the original."""

    path: Path
    format: str
    max_abs_diff: float
    files: tuple[Path, ...]
    seconds: float

    @property
    def size(self) -> int:
        """Bytes written, all files together."""
        return sum(_size(f) for f in self.files)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def export_source(project, run: str | None = None, *, untrained: bool = False) -> ModelSource:
    """The model of ``project`` to export: the best checkpoint of ``run`` (default the latest run
    with a checkpoint), or with ``untrained`` the freshly initialised model (random weights;
    backbones too, so nothing is downloaded)."""
    if untrained:
        return model_source.untrained(project)
    try:
        folder = find_run(project.runs_dir, run)
    except StudioError as error:
        if run is None:
            raise ExportError(
                f"no trained run in {project.runs_dir}: train first, or export the untrained "
                "model (--untrained)"
            ) from None
        raise ExportError(str(error)) from None
    return model_source.from_run(folder, project=project)


def _as_source(source: Any, input_shape: tuple[int, int, int] | None) -> ModelSource:
    if isinstance(source, ModelSource):
        return source
    if isinstance(source, nn.Module):
        if input_shape is None:
            raise ExportError("give the input shape (channels, height, width) of a bare module")
        return model_source.from_module(source, input_shape)
    raise ExportError(f"cannot export a {type(source).__name__}: expected a model or a run")


def default_file_name(name: str, format: str) -> str:
    """A file name for exporting a model called ``name`` (a project name) as ``format``."""
    stem = "".join(c if c.isalnum() else "_" for c in name.strip().lower()).strip("_") or "model"
    if format == "training-script":
        return "train.py"
    if format == "project":
        return f"{stem}-project"
    if format == "python" and not stem.isidentifier():
        stem = f"model_{stem}"
    return stem + FORMATS[format].suffix


def export(
    source: Any,
    format: str,
    path: Path | str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Write ``source`` (a ModelSource, or an ``nn.Module`` with
    ``input_shape``) to ``path`` as ``format`` (see FORMATS), load it back, and compare.

    ExportError for an unknown format, a path that cannot be written, a model the format cannot
    hold, or an exported copy whose output differs from the model's by more than ``tolerance``
    (relative to the largest output, at least 1).
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    src = _as_source(source, input_shape)
    if FORMATS[format].needs_spec and src.spec is None:
        raise ExportError(
            f"{format} export needs the model's spec (its layers): export a run or a project",
            format,
        )
    if format in ("training-script", "project") and src.project is None:
        raise ExportError(f"{format} export needs the project", format)
    path = Path(path)
    _check_writable(path, format)
    _check_model(src)
    started = time.perf_counter()
    was_training = src.model.training
    src.model.eval()
    try:
        files, diff, limit = _WRITERS[format](src, path)
    finally:
        src.model.train(was_training)
    if diff > tolerance * limit:
        raise ExportError(
            f"the exported {format} model differs from the original by up to {diff:.3g} "
            f"(tolerance {tolerance * limit:.3g}); {path} was written but should not be used",
            format,
            path,
        )
    return ExportResult(path, format, diff, tuple(files), time.perf_counter() - started)


def export_training_script(project, path: Path | str, run: str | None = None) -> ExportResult:
    """Write a runnable train.py in plain PyTorch and torchvision for ``project``: its model, data,
    normalisation, augmentation and training settings. The built-in sample set is written next
    to it as an image folder (``<stem>_data/``) since torchvision does not have it."""
    try:
        src = export_source(project, run)
    except ExportError:
        src = model_source.untrained(project)
    return export(src, "training-script", path)


# Checks shared by every format


def _check_writable(path: Path, format: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}", format, path) from None
    if path.is_dir() and format != "project":
        raise ExportError(f"cannot write {path}: it is a folder; give a file name", format, path)
    if not os.access(path.parent, os.W_OK):
        raise ExportError(f"cannot write {path}: the folder is not writable", format, path)


def _check_model(src: ModelSource) -> None:
    if src.spec is not None:
        analysis = analyze(src.spec)
        if not analysis.valid:
            first = analysis.errors[0]
            raise ExportError(
                f"the model is invalid ({len(analysis.errors)} problems; first: {first})",
                layer=first.layer,
            )
    devices = {p.device.type for p in src.model.parameters()} | {
        b.device.type for b in src.model.buffers()
    }
    if devices - {"cpu"}:
        raise ExportError("the model must be on the CPU to be exported: call model.cpu() first")


def _sample(src: ModelSource, batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *src.input_shape), generator=generator)


def _reference(src: ModelSource, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return src.model(x).detach().float()


def _compare(expected: torch.Tensor, actual: Any, format: str) -> tuple[float, float]:
    actual = torch.as_tensor(actual).float()
    if actual.shape != expected.shape:
        raise ExportError(
            f"the exported {format} model gives output of shape {tuple(actual.shape)}, the model "
            f"{tuple(expected.shape)}",
            format,
        )
    diff = float((actual - expected).abs().max()) if expected.numel() else 0.0
    if math.isnan(diff):
        diff = math.inf
    return diff, max(1.0, float(expected.abs().max()) if expected.numel() else 1.0)


@contextlib.contextmanager
def _replacing(path: Path, format: str) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed over it when the block succeeds."""
    # the suffix stays last: torch.export.save expects a name ending in .pt2
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}", format, path) from None
    finally:
        tmp.unlink(missing_ok=True)


def _failed(format: str, error: Exception, path: Path) -> ExportError:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return ExportError(
        f"{FORMATS[format].title} cannot hold this model: {type(error).__name__}: {detail}",
        format,
        path,
    )


# Weights


def _metadata(src: ModelSource) -> dict[str, str]:
    meta = {"format": "pt", "input_shape": json.dumps(list(src.input_shape))}
    if src.classes:
        meta["classes"] = json.dumps(list(src.classes))
    if src.mean:
        meta.update(mean=json.dumps(list(src.mean)), std=json.dumps(list(src.std)))
    return meta


def _save_safetensors(src: ModelSource, path: Path, format: str = "safetensors") -> None:
    from safetensors.torch import save_file

    with _replacing(path, format) as tmp:
        save_file(state_tensors(src.model), str(tmp), metadata=_metadata(src))


def _write_safetensors(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    _save_safetensors(src, path)
    copy_ = copy.deepcopy(src.model)
    load_weights(copy_, path)
    x = _sample(src, CHECK_BATCH, 1)
    with torch.no_grad():
        diff, limit = _compare(_reference(src, x), copy_.eval()(x), "safetensors")
    return [path], diff, limit


# Whole-model formats


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1)


def _write_pt2(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    example = _sample(src, EXAMPLE_BATCH, 0)
    try:
        program = torch.export.export(src.model, (example,), dynamic_shapes=({0: _batch_dim()},))
    except Exception as error:
        raise _failed("pt2", error, path) from error
    with _replacing(path, "pt2") as tmp:
        torch.export.save(program, str(tmp))
    loaded = torch.export.load(str(path)).module()
    x = _sample(src, CHECK_BATCH, 1)
    with torch.no_grad():
        diff, limit = _compare(_reference(src, x), loaded(x), "pt2")
    return [path], diff, limit


def _write_torchscript(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    example = _sample(src, EXAMPLE_BATCH, 0)
    with warnings.catch_warnings():
        # torch.jit is deprecated (FutureWarning) but still shipped; trace warnings about shapes
        # taken as constants are what the check at another batch size below is for.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            traced = torch.jit.trace(src.model, example, check_trace=False)
        except Exception as error:
            raise _failed("torchscript", error, path) from error
        with _replacing(path, "torchscript") as tmp:
            traced.save(str(tmp))
        loaded = torch.jit.load(str(path), map_location="cpu")
    x = _sample(src, CHECK_BATCH, 1)
    with torch.no_grad():
        diff, limit = _compare(_reference(src, x), loaded(x), "torchscript")
    return [path], diff, limit


_ONNX_INLINE_LIMIT = 1 << 30  # above this the weights go to an external .data file (2 GB cap)


def _write_onnx(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    import onnxruntime

    example = _sample(src, EXAMPLE_BATCH, 0)
    size = sum(t.numel() * t.element_size() for t in src.model.state_dict().values())
    external = size > _ONNX_INLINE_LIMIT
    files = [path] + ([path.with_name(path.name + ".data")] if external else [])
    try:
        program = torch.onnx.export(
            src.model,
            (example,),
            dynamo=True,
            dynamic_shapes=({0: _batch_dim()},),
            input_names=["image"],
            output_names=["logits"],
            verbose=False,
        )
    except Exception as error:
        raise _failed("onnx", error, path) from error
    if external:
        program.save(str(path), external_data=True)
    else:
        with _replacing(path, "onnx") as tmp:
            program.save(str(tmp), external_data=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst, limit = 0.0, 1.0
    for batch in (CHECK_BATCH, 1):
        x = _sample(src, batch, batch)
        (out,) = session.run(["logits"], {"image": x.numpy()})
        diff, lim = _compare(_reference(src, x), torch.from_numpy(out), "onnx")
        worst, limit = max(worst, diff), max(limit, lim)
    return files, worst, limit


# Generated PyTorch code


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
        args.append(f"{param.name}={_literal(value)}")
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
class _ModelCode:
    class_lines: list[str]
    uses_backbone: bool
    takes_pretrained: bool  # Net(pretrained=False) skips downloading backbone weights


def _model_code(src: ModelSource, pretrained: bool = False, class_name: str = "Net") -> _ModelCode:
    spec = src.spec
    assert spec is not None
    analysis = analyze(spec)
    infos = {info.id: info for info in analysis.layers}
    needed = needed_layers(spec.nodes[-1].id, infos)
    order = [n for n in analysis.order if n in needed]
    output = spec.nodes[-1].id
    modules = dict(src.model.named_children())
    init: list[str] = []
    frozen: list[str] = []
    downloads = pretrained and any(
        infos[n].kind == "Backbone" and infos[n].resolved.get("weights") == "DEFAULT" for n in order
    )
    for node_id in order:
        info = infos[node_id]
        if info.kind in ("Add", "Concat"):
            continue
        if info.kind == "Backbone":
            init += _backbone_lines(node_id, info.resolved, modules.get(node_id), pretrained)
            if info.resolved.get("freeze"):
                frozen.append(node_id)
        else:
            init.append(_assign(node_id, _module_expr(node_id, info.kind, info.resolved)))
    forward = _forward_lines(order, infos, output)
    c, h, w = spec.input_shape
    lines = [
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
    return _ModelCode(lines, any(infos[n].kind == "Backbone" for n in order), downloads)


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
        elif info.kind == "Concat":
            expr = f"torch.cat([{', '.join(args)}], dim=1)"
        else:
            expr = f"{_attr(node_id)}({args[0]})"
        comment = (
            f"  # {node_id}: {format_shape(info.output_shape)}"
            if info.kind
            in (
                "Add",
                "Concat",
            )
            else f"  # {format_shape(info.output_shape)}"
        )
        lines.append(f"{target} = {expr}{comment}")
    lines.append(f"return {names[output]}")
    return lines


def _constants(src: ModelSource) -> list[str]:
    classes = list(src.classes) or [str(i) for i in range(src.spec.num_classes)]
    channels = src.input_shape[0]
    mean = list(src.mean) or [0.0] * channels
    std = list(src.std) or [1.0] * channels
    return [
        f"CLASSES = {_literal(classes, wrap=True)}",
        f"INPUT_SHAPE = {tuple(src.input_shape)!r}  # channels, height, width",
        f"MEAN = {tuple(mean)!r}  # per channel, on a 0-1 scale",
        f"STD = {tuple(std)!r}",
    ]


def _literal(value: Any, wrap: bool = False) -> str:
    """``value`` as Python source, strings in double quotes (as the house formatter writes them);
    with ``wrap`` a long list is written one item per line."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        items = [_literal(v) for v in value]
        one_line = ", ".join(items)
        if isinstance(value, tuple):
            return f"({one_line},)" if len(items) == 1 else f"({one_line})"
        if wrap and len(one_line) > 80:
            return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
        return f"[{one_line}]"
    if isinstance(value, dict):
        items = [f"{_literal(k)}: {_literal(v)}" for k, v in value.items()]
        if wrap and len(", ".join(items)) > 80:
            return "{\n" + "".join(f"    {item},\n" for item in items) + "}"
        return "{" + ", ".join(items) + "}"
    return repr(value)


def _imports(code: _ModelCode, extra: tuple[str, ...] = ()) -> list[str]:
    lines = ["from __future__ import annotations", "", "import argparse"]
    lines += [f"import {m}" for m in extra]
    if code.uses_backbone:
        lines.append("from collections import OrderedDict")
    lines += ["from pathlib import Path", "", "import torch"]
    if code.uses_backbone:
        lines.append("import torchvision")
    lines.append("from torch import nn")
    return lines


_PREPROCESS = '''
def preprocess(image) -> torch.Tensor:
    """A PIL image as the normalised tensor (C×H×W) the network takes: transparency over white,
    converted to the model's channels, resized bilinearly to its input size."""
    from PIL import Image

    channels, height, width = INPUT_SHAPE
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    x = pixels.view(height, width, -1).permute(2, 0, 1).float() / 255
    if x.shape[0] != channels:
        x = x[:1].expand(channels, -1, -1)
    return (x - torch.tensor(MEAN).view(-1, 1, 1)) / torch.tensor(STD).view(-1, 1, 1)
'''

_LOAD_AND_MAIN = '''
def load(weights_path: str | Path = WEIGHTS) -> {cls}:
    """The network with the weights in ``weights_path`` (.safetensors, or a state dict saved with
    torch.save), in eval mode."""
    path = Path(weights_path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = {cls}()
    model.load_state_dict(state)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description="Classify images with the exported network.")
    parser.add_argument("images", nargs="+", type=Path, help="image files")
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="weights file")
    parser.add_argument("--top", type=int, default=3, help="classes shown per image")
    args = parser.parse_args()

    from PIL import Image

    model = load(args.weights)
    for path in args.images:
        with Image.open(path) as image:
            x = preprocess(image).unsqueeze(0)
        with torch.no_grad():
            probabilities = model(x).softmax(dim=1)[0]
        top = probabilities.topk(min(args.top, len(CLASSES)))
        guesses = ", ".join(
            f"{{CLASSES[i]}} {{p:.1%}}" for p, i in zip(top.values.tolist(), top.indices.tolist())
        )
        print(f"{{path}}: {{guesses}}")


if __name__ == "__main__":
    main()
'''


def python_code(src: ModelSource, weights_name: str = "model.safetensors") -> str:
    """The text of the generated .py file for ``src`` (see the module docstring)."""
    code = _model_code(src)
    stem = Path(weights_name).stem
    header = [
        f'"""{src.name}: a convolutional network exported from CNN Studio, in plain PyTorch.',
        "",
        f"Classify images (the weights are read from {weights_name} beside this file):",
        "",
        f"    python {stem}.py image1.png image2.jpg",
        "",
        "or from Python:",
        "",
        f"    from {stem} import load, preprocess",
        "    model = load()",
        "    logits = model(preprocess(PIL.Image.open('cat.png')).unsqueeze(0))",
        '"""',
        "",
    ]
    body = [
        *_imports(code),
        "",
        *_constants(src),
        f"WEIGHTS = Path(__file__).with_name({_literal(weights_name)})",
        "",
        "",
        *code.class_lines,
        "",
        _PREPROCESS,
        _LOAD_AND_MAIN.format(cls="Net"),
    ]
    return "\n".join(header + body).rstrip() + "\n"


_RUNNER = """
import sys
argv = globals().get("ARGV") or sys.argv  # ARGV: run inside the standalone program
if "ARGV" not in globals():
    sys.modules["cnnstudio"] = None  # the generated code must not need CNN Studio
import runpy
import torch
namespace = runpy.run_path(argv[1], run_name="exported_model")
model = namespace["load"](argv[2])
with torch.no_grad():
    torch.save(model(torch.load(argv[3], weights_only=True)), argv[4])
"""


def _run_isolated(args: list[str], cwd: Path, what: str, format: str, timeout: float = 600):
    """Run Python (isolated mode: no user site, no PYTHONPATH, cwd ``cwd``) with ``args``
    (``["-c", code, *arguments]``). The standalone program has no separate Python: there the code
    runs in this process (the file is still run from disk, with its own imports)."""
    if getattr(sys, "frozen", False):
        return _run_here(args, what, format)
    try:
        done = subprocess.run(
            [sys.executable, "-I", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ExportError(f"{what} did not finish in {timeout:.0f} s", format) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        raise ExportError(f"{what} failed: {last}", format)
    return done


def _run_here(args: list[str], what: str, format: str) -> None:
    flag, code, *arguments = args
    assert flag == "-c"
    try:
        exec(compile(code, "<export check>", "exec"), {"ARGV": ["-c", *arguments]})
    except Exception as error:  # whatever the generated code raises is the export's failure
        raise ExportError(f"{what} failed: {type(error).__name__}: {error}", format) from None


def _write_python(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    if path.suffix != ".py" or not path.stem.isidentifier():
        raise ExportError(
            f"cannot write {path}: the file name must be a Python module name ending in .py "
            "(letters, digits and _)",
            "python",
            path,
        )
    weights = path.with_suffix(".safetensors")
    text = python_code(src, weights.name)
    try:
        compile(text, str(path), "exec")
    except SyntaxError as error:  # a bug in the generator, not in the user's model
        raise ExportError(f"the generated code does not parse: {error}", "python", path) from None
    _save_safetensors(src, weights, "python")
    try:
        atomic_write_text(path, text)
    except OSError as error:
        raise ExportError(
            f"cannot write {path}: {error.strerror or error}", "python", path
        ) from None
    x = _sample(src, CHECK_BATCH, 1)
    with tempfile.TemporaryDirectory(prefix="cnnstudio-export-") as tmp:
        folder = Path(tmp)
        torch.save(x, folder / "input.pt")
        _run_isolated(
            [
                "-c",
                _RUNNER,
                str(path),
                str(weights),
                str(folder / "input.pt"),
                str(folder / "output.pt"),
            ],
            folder,
            f"running {path.name} in a fresh Python",
            "python",
        )
        out = torch.load(folder / "output.pt", weights_only=True)
    diff, limit = _compare(_reference(src, x), out, "python")
    return [path, weights], diff, limit


# Training script

_SCHEDULES = {
    "constant": ["return 1.0"],
    "cosine": [
        "t = min(1.0, (step - warmup) / max(1, total_steps - warmup))",
        "return 0.5 * (1 + math.cos(math.pi * t))",
    ],
    "step": ["return GAMMA ** ((step // steps_per_epoch) // STEP_SIZE)"],
}
_ONECYCLE = [
    "warm = warmup or max(1, int(0.3 * total_steps))",
    "if step < warm:",
    "    return 1 / 25 + (1 - 1 / 25) * step / warm",
    "t = min(1.0, (step - warm) / max(1, total_steps - warm))",
    "floor = 1 / 25 / 1e4",
    "return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))",
]


def _schedule_lines(schedule: str) -> list[str]:
    if schedule == "onecycle":
        return _ONECYCLE
    return [
        "if warmup and step < warmup:",
        "    return (step + 1) / warmup",
        *_SCHEDULES[schedule],
    ]


def _data_lines(project, script: Path) -> tuple[list[str], str]:
    """The DATA constants and a description; writes the sample set beside the script."""
    data = project.data
    if data.source == "folder":
        return [
            'SOURCE = "folder"',
            f"DATA = {_literal(str(Path(data.path).resolve()))}",
        ], "image folder"
    if data.source == "sample":
        folder = script.with_name(f"{script.stem}_data")
        _write_sample_folder(folder)
        return [
            'SOURCE = "folder"',
            "# CNN Studio's built-in sample set, written out as an image folder",
            f"DATA = str(Path(__file__).with_name({_literal(folder.name)}))",
        ], "the built-in sample set, as an image folder"
    return [
        f"SOURCE = {_literal(data.source)}",
        'DATA = str(Path.home() / "data")  # downloaded here by torchvision when missing',
    ], f"torchvision's {data.source}"


def _write_sample_folder(folder: Path) -> None:
    from PIL import Image

    from cnnstudio.sample_set import SAMPLE_CLASSES, generate_sample_set

    images, labels = generate_sample_set()
    counts: dict[int, int] = {}
    for image, label in zip(images, labels, strict=True):
        label = int(label)
        counts[label] = counts.get(label, 0) + 1
        target = folder / SAMPLE_CLASSES[label] / f"{counts[label]:04d}.png"
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(target)


def _training_mean_std(src: ModelSource) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The run's normalisation, or the one the project would train with (reading its images only
    when it needs their statistics)."""
    if src.run_folder is not None and src.mean:
        return src.mean, src.std
    project = src.project
    norm = normalization(project.data, project.model)
    if not norm.known:
        dataset = load_dataset(project.data, tuple(project.model.input_shape))
        norm = normalization(project.data, project.model, dataset)
    return norm.mean, norm.std


_TRAIN_BODY = '''

def to_channels(image):
    """Images as the model's channels (grayscale or RGB)."""
    return image.convert("L" if INPUT_SHAPE[0] == 1 else "RGB")


def transform(train: bool) -> T.Compose:
    size = INPUT_SHAPE[1:]
    steps = [T.Lambda(to_channels)]
    if train and AUGMENT["resized_crop"]:
        steps.append(T.RandomResizedCrop(size, scale=(AUGMENT["resized_crop_scale"], 1.0)))
    else:
        steps.append(T.Resize(size))
    if train:
        if AUGMENT["hflip"]:
            steps.append(T.RandomHorizontalFlip())
        if AUGMENT["crop_padding"]:
            steps.append(T.RandomCrop(size, padding=AUGMENT["crop_padding"]))
        if AUGMENT["rotation"]:
            steps.append(T.RandomRotation(AUGMENT["rotation"]))
        jitter = [AUGMENT[k] for k in ("brightness", "contrast", "saturation")]
        if any(jitter):
            steps.append(T.ColorJitter(*jitter))
    steps += [T.ToTensor(), T.Normalize(MEAN, STD)]
    return T.Compose(steps)


def stratified_split(labels: list[int]) -> tuple[list[int], list[int]]:
    """VAL_FRACTION of every class held out, chosen with SPLIT_SEED (as CNN Studio splits)."""
    labels = torch.as_tensor(labels)
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    train, val = [], []
    for label in labels.unique(sorted=True).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = round(len(members) * VAL_FRACTION)
        n_val = min(max(n_val, 1), len(members) - 1) if len(members) >= 2 else 0
        val.append(members[:n_val])
        train.append(members[n_val:])
    return torch.cat(train).sort().values.tolist(), torch.cat(val).sort().values.tolist()


class ClassFolder(torchvision.datasets.ImageFolder):
    """An image folder whose labels follow CLASSES (ImageFolder itself sorts the folder names)."""

    def find_classes(self, directory):
        found = sorted(p.name for p in Path(directory).iterdir() if p.is_dir())
        if sorted(CLASSES) != found:
            return super().find_classes(directory)
        return list(CLASSES), {name: i for i, name in enumerate(CLASSES)}


def datasets(root: str):
    """The training and validation sets."""
    if SOURCE != "folder":
        cls = {
            "cifar10": torchvision.datasets.CIFAR10,
            "cifar100": torchvision.datasets.CIFAR100,
            "mnist": torchvision.datasets.MNIST,
            "fashionmnist": torchvision.datasets.FashionMNIST,
        }[SOURCE]
        return (
            cls(root, train=True, download=True, transform=transform(True)),
            cls(root, train=False, download=True, transform=transform(False)),
        )
    folder = Path(root)
    val_dirs = [folder / n for n in ("val", "valid", "validation", "test") if (folder / n).is_dir()]
    if (folder / "train").is_dir() and val_dirs:
        return (
            ClassFolder(folder / "train", transform(True)),
            ClassFolder(val_dirs[0], transform(False)),
        )
    train_view = ClassFolder(folder, transform(True))
    val_view = ClassFolder(folder, transform(False))
    train_indices, val_indices = stratified_split(train_view.targets)
    return Subset(train_view, train_indices), Subset(val_view, val_indices)


def parameter_groups(model: nn.Module) -> list[dict]:
    """Weights decay; biases and norm parameters do not. Backbones may have their own rate."""
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if name.split(".")[0] in BACKBONES else "head"
        decay = param.ndim > 1
        lr = BACKBONE_LR if part == "backbone" else LR
        group = groups.setdefault(
            (part, decay), {"params": [], "lr": lr, "weight_decay": WEIGHT_DECAY if decay else 0.0}
        )
        group["params"].append(param)
    return list(groups.values())


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    groups = parameter_groups(model)
    if OPTIMIZER == "sgd":
        return torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM, nesterov=NESTEROV and MOMENTUM > 0)
    return {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[OPTIMIZER](groups, lr=LR)


def lr_factor(step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of the learning rate before optimizer step ``step`` ({schedule} schedule)."""
{schedule_body}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--data", default=DATA, help="image folder, or where datasets are kept")
    parser.add_argument("--out", type=Path, default=Path("model.pt"), help="best weights")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    args = parser.parse_args()

    torch.manual_seed(SEED)
    device = torch.device(args.device)
    train_set, val_set = datasets(args.data)
    train_loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=len(train_set) > args.batch_size,  # a batch of one breaks BatchNorm
    )
    val_loader = DataLoader(val_set, batch_size=args.batch_size, num_workers=args.workers)
    model = Net().to(device)
    optimizer = make_optimizer(model)
    steps_per_epoch = len(train_loader)
    total = args.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, steps_per_epoch)
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    best = -1.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if GRAD_CLIP:
                nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        model.eval()
        val_seen = val_correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                x, y = x.to(device), y.to(device)
                val_correct += (model(x).argmax(1) == y).sum().item()
                val_seen += len(y)
        val_accuracy = val_correct / max(1, val_seen)
        print(
            f"epoch {epoch}/{args.epochs}: loss {loss_sum / max(1, seen):.4f} "
            f"acc {correct / max(1, seen):.4f} | val acc {val_accuracy:.4f}"
        )
        if val_accuracy > best:
            best = val_accuracy
            torch.save(model.state_dict(), args.out)
    print(f"best validation accuracy {best:.4f}; weights in {args.out}")


if __name__ == "__main__":
    main()
'''


def training_script_code(src: ModelSource, script: Path) -> str:
    """The text of the standalone training script for ``src.project``."""
    from cnnstudio.train_settings import check_training

    project = src.project
    settings = check_training(project.training)
    code = _model_code(src, pretrained=True)
    data_lines, data_text = _data_lines(project, script)
    mean, std = _training_mean_std(src)
    backbone_ids = [n.id for n in project.model.nodes if n.kind == "Backbone"]
    backbone_lr = settings["lr"] if settings["backbone_lr"] == "same" else settings["backbone_lr"]
    schedule = settings["schedule"]
    header = [
        f'"""Train {src.name} with plain PyTorch and torchvision (exported from CNN Studio).',
        "",
        "    python train.py [--epochs N] [--batch-size N] [--data PATH] [--out model.pt]",
        "",
        f"The model, the data ({data_text}), the normalisation, the augmentation and the",
        f"training settings ({settings['optimizer']}, lr {settings['lr']:g}, {schedule} schedule)"
        " are the project's.",
        "Left out: mixed precision, channels-last, torch.compile, early stopping, checkpoints",
        "to resume from, and several GPUs; CNN Studio's own trainer does those.",
        '"""',
        "",
    ]
    src_with_stats = ModelSource(**{**src.__dict__, "mean": mean, "std": std})
    constants = [
        *_constants(src_with_stats),
        *data_lines,
        f"VAL_FRACTION = {project.data.val_fraction!r}  # when the data has no val/ split",
        f"SPLIT_SEED = {project.data.split_seed!r}",
        f"AUGMENT = {_literal(dict(project.data.augment), wrap=True)}",
        "",
        f"EPOCHS = {settings['epochs']}",
        f"BATCH_SIZE = {settings['batch_size']}",
        f"OPTIMIZER = {_literal(settings['optimizer'])}",
        f"LR = {settings['lr']!r}",
        f"BACKBONES = {_literal(tuple(backbone_ids))}  # layers trained at BACKBONE_LR",
        f"BACKBONE_LR = {backbone_lr!r}",
        f"WEIGHT_DECAY = {settings['weight_decay']!r}",
        f"MOMENTUM = {settings['momentum']!r}",
        f"NESTEROV = {settings['nesterov']!r}",
        f"WARMUP_EPOCHS = {settings['warmup_epochs']!r}",
        f"STEP_SIZE = {settings['step_size']!r}",
        f"GAMMA = {settings['gamma']!r}",
        f"LABEL_SMOOTHING = {settings['label_smoothing']!r}",
        f"GRAD_CLIP = {settings['grad_clip']!r}",
        f"SEED = {settings['seed']!r}",
    ]
    schedule_body = "\n".join(
        f"    {line}"
        for line in ["warmup = int(WARMUP_EPOCHS * steps_per_epoch)", *_schedule_lines(schedule)]
    )
    imports = _imports(code, ("math",))
    imports[imports.index("from torch import nn") :] = [
        "from torch import nn",
        "from torch.utils.data import DataLoader, Subset",
        "from torchvision import transforms as T",
    ]
    if "import torchvision" not in imports:
        imports.insert(imports.index("from torch import nn"), "import torchvision")
    body = _TRAIN_BODY.replace("{schedule_body}", schedule_body).replace("{schedule}", schedule)
    return (
        "\n".join([*header, *imports, "", *constants, "", "", *code.class_lines, body]).rstrip()
        + "\n"
    )


def _write_training_script(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    text = training_script_code(src, path)
    try:
        compile(text, str(path), "exec")
    except SyntaxError as error:
        raise ExportError(
            f"the generated script does not parse: {error}", "training-script", path
        ) from None
    try:
        atomic_write_text(path, text)
    except OSError as error:
        raise ExportError(
            f"cannot write {path}: {error.strerror or error}", "training-script", path
        ) from None
    files = [path]
    data = path.with_name(f"{path.stem}_data")
    if src.project.data.source == "sample":
        files.append(data)
    # The script's model must be the project's: load the model's weights into it and compare.
    x = _sample(src, CHECK_BATCH, 1)
    with tempfile.TemporaryDirectory(prefix="cnnstudio-export-") as tmp:
        folder = Path(tmp)
        torch.save(x, folder / "input.pt")
        weights = folder / "weights.pt"
        torch.save(state_tensors(src.model), weights)
        checker = _RUNNER.replace('namespace["load"](argv[2])', _SCRIPT_LOAD)
        pretrained = ["pretrained"] if _model_code(src, pretrained=True).takes_pretrained else []
        _run_isolated(
            [
                "-c",
                checker,
                str(path),
                str(weights),
                str(folder / "input.pt"),
                str(folder / "output.pt"),
                *pretrained,
            ],
            folder,
            f"loading the model of {path.name} in a fresh Python",
            "training-script",
        )
        out = torch.load(folder / "output.pt", weights_only=True)
    diff, limit = _compare(_reference(src, x), out, "training-script")
    return files, diff, limit


_SCRIPT_LOAD = (
    'namespace["Net"](**({"pretrained": False} if "pretrained" in argv[5:] else {})).eval(); '
    "model.load_state_dict(torch.load(argv[2], weights_only=True))"
)


# Project folder


def _write_project(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    if path.is_file() or (path.is_dir() and any(path.iterdir())):
        raise ExportError(f"cannot write {path}: it exists and is not an empty folder", "project")
    project = src.project
    copy_ = Project(
        model=project.model,
        name=project.name,
        data=project.data,
        training=dict(project.training),
        path=path,
    )
    try:
        copy_.save()
        if src.run_folder is not None:
            shutil.copytree(src.run_folder, path / RUNS_DIR / src.run_folder.name)
    except (OSError, StudioError) as error:
        raise ExportError(f"cannot write {path}: {error}", "project", path) from None
    opened = load_project(path)
    if src.run_folder is None:
        return [path], 0.0, 1.0
    loaded = model_source.from_run(opened.runs_dir / src.run_folder.name)
    x = _sample(src, CHECK_BATCH, 1)
    with torch.no_grad():
        diff, limit = _compare(_reference(src, x), loaded.model(x), "project")
    return [path], diff, limit


_WRITERS = {
    "safetensors": _write_safetensors,
    "pt2": _write_pt2,
    "torchscript": _write_torchscript,
    "onnx": _write_onnx,
    "python": _write_python,
    "training-script": _write_training_script,
    "project": _write_project,
}
