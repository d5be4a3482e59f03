"""Export what was built: weights, whole-model files, readable PyTorch code, a training script.

``export(source, format, path)`` writes one format and checks it before reporting success: the
written artifact is loaded back (by onnxruntime, ``torch.export.load``, ``torch.jit.load``, or a
fresh Python interpreter for generated code) and its output compared with the model's own on a
sample batch of another size than the one it was exported with. The largest difference comes back
in the result; above the tolerance the export fails with an ExportError naming the format.

Reading weights back into a model is ``cnnstudio.weights.load_weights``.

Formats (the registry is ``formats.FORMATS``), each written by one module of this package:

- safetensors (weights_file): the state dict only (keys = layer ids), with classes, input shape
  and normalisation in its metadata.
- pt2, torchscript, onnx (whole_model): the whole model, written by torch with a dynamic batch
  dimension and loaded back by ``torch.export.load``, ``torch.jit.load`` and onnxruntime.
- python (python_file): one readable .py file (an ``nn.Module`` written out layer by layer,
  preprocessing and a command line that classifies images) with ``<name>.safetensors`` beside it.
- training-script (training_script): one runnable train.py in plain PyTorch and torchvision for
  the project, whose schedule, split and parameter groups are the trainer's own code.
- project (project_folder): a copy of the project folder (project.json and the exported run),
  which CNN Studio opens.

Generated code is assembled from real source (source_text): the model's class written by
model_code, templates that ruff checks (model_template.py, training_template.py) and the
functions of cnnstudio.recipe. Checks shared by every format are in check, and running generated
code in a fresh Python in fresh_python.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from cnnstudio import model_source
from cnnstudio.errors import ExportError, StudioError
from cnnstudio.export.check import TOLERANCE, check_model, check_writable
from cnnstudio.export.formats import FORMATS, ExportFormat, ExportResult, format_of
from cnnstudio.export.project_folder import write_project
from cnnstudio.export.python_file import python_code, write_python
from cnnstudio.export.training_script import training_script_code, write_training_script
from cnnstudio.export.weights_file import write_safetensors
from cnnstudio.export.whole_model import write_onnx, write_pt2, write_torchscript
from cnnstudio.model_source import ModelSource
from cnnstudio.runs import find_run

__all__ = [
    "FORMATS",
    "TOLERANCE",
    "ExportFormat",
    "ExportResult",
    "default_file_name",
    "export",
    "export_source",
    "export_training_script",
    "format_of",
    "python_code",
    "training_script_code",
]


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
    # absolute: the check loads the files back from another working folder
    path = Path(path).absolute()
    check_writable(path, format)
    check_model(src)
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


_WRITERS = {
    "safetensors": write_safetensors,
    "pt2": write_pt2,
    "torchscript": write_torchscript,
    "onnx": write_onnx,
    "python": write_python,
    "training-script": write_training_script,
    "project": write_project,
}
