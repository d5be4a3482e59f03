"""What every export format shares: checking the target path and the model before writing,
writing whole files (through a temporary file, or not at all), and comparing what was written
with the model on a sample batch of another size than the one it was exported with."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cnnstudio.analysis import analyze
from cnnstudio.errors import ExportError
from cnnstudio.export.formats import FORMATS
from cnnstudio.files import atomic_write_text
from cnnstudio.model_source import ModelSource

TOLERANCE = 1e-4
"""Largest accepted difference, relative to the largest output value (at least 1)."""

EXAMPLE_BATCH = 2  # the batch the model is exported with
CHECK_BATCH = 3  # the batch it is checked with: another size proves the batch is dynamic


def check_writable(path: Path, format: str) -> None:
    """ExportError unless ``path`` can be written as ``format`` (its folder is made)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}", format, path) from None
    if path.is_dir() and format != "project":
        raise ExportError(f"cannot write {path}: it is a folder; give a file name", format, path)
    if not os.access(path.parent, os.W_OK):
        raise ExportError(f"cannot write {path}: the folder is not writable", format, path)


def check_model(src: ModelSource) -> None:
    """ExportError for an invalid spec (naming its first problem's layer) or a model off the
    CPU."""
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


def sample(src: ModelSource, batch: int, seed: int) -> torch.Tensor:
    """A random input batch for ``src``, the same for the same ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *src.input_shape), generator=generator)


def reference(src: ModelSource, x: torch.Tensor) -> torch.Tensor:
    """The model's own output for ``x``, which the written copy must give."""
    with torch.no_grad():
        return src.model(x).detach().float()


def compare(expected: torch.Tensor, actual: Any, format: str) -> tuple[float, float]:
    """The largest difference between the outputs, and the scale the tolerance is relative to
    (the largest expected value, at least 1). ExportError when the shapes differ."""
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
def replacing(path: Path, format: str) -> Iterator[Path]:
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


def check_parses(text: str, path: Path, format: str, what: str) -> None:
    """ExportError unless the generated Python ``text`` (``what``: "code", "script") parses: a bug
    in the generator, not in the user's model."""
    try:
        compile(text, str(path), "exec")
    except SyntaxError as error:
        raise ExportError(f"the generated {what} does not parse: {error}", format, path) from None


def write_text(path: Path, text: str, format: str) -> None:
    """Write ``text`` to ``path`` whole, or not at all."""
    try:
        atomic_write_text(path, text)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}", format, path) from None


def failed(format: str, error: Exception, path: Path) -> ExportError:
    """The error for a model that torch cannot write as ``format``."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return ExportError(
        f"{FORMATS[format].title} cannot hold this model: {type(error).__name__}: {detail}",
        format,
        path,
    )
