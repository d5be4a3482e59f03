"""The whole-model formats, written by torch and loaded back by their own runtimes:

- pt2: ``torch.export`` program with a dynamic batch dimension, loaded by ``torch.export.load``.
- torchscript: ``torch.jit.trace`` (deprecated by torch but still shipped), ``torch.jit.load``.
- onnx: the dynamo exporter (``dynamo=True``) with a dynamic batch dimension given through
  ``dynamic_shapes``; torch chooses the opset; the class names, input shape and normalisation in
  its metadata_props. Checked with onnxruntime on CPU.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from cnnstudio.export.check import (
    CHECK_BATCH,
    EXAMPLE_BATCH,
    compare,
    failed,
    reference,
    replacing,
    sample,
)
from cnnstudio.export.weights_file import metadata
from cnnstudio.model_source import ModelSource


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1)


def write_pt2(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    """Export with ``torch.export``, save, load back and compare."""
    example = sample(src, EXAMPLE_BATCH, 0)
    try:
        program = torch.export.export(src.model, (example,), dynamic_shapes=({0: _batch_dim()},))
    except Exception as error:
        raise failed("pt2", error, path) from error
    with replacing(path, "pt2") as tmp:
        torch.export.save(program, str(tmp))
    loaded = torch.export.load(str(path)).module()
    x = sample(src, CHECK_BATCH, 1)
    with torch.no_grad():
        diff, limit = compare(reference(src, x), loaded(x), "pt2")
    return [path], diff, limit


def write_torchscript(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    """Trace, save, load back with ``torch.jit.load`` and compare."""
    example = sample(src, EXAMPLE_BATCH, 0)
    with warnings.catch_warnings():
        # torch.jit is deprecated (FutureWarning) but still shipped; trace warnings about shapes
        # taken as constants are what the check at another batch size below is for.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            traced = torch.jit.trace(src.model, example, check_trace=False)
        except Exception as error:
            raise failed("torchscript", error, path) from error
        with replacing(path, "torchscript") as tmp:
            traced.save(str(tmp))
        loaded = torch.jit.load(str(path), map_location="cpu")
    x = sample(src, CHECK_BATCH, 1)
    with torch.no_grad():
        diff, limit = compare(reference(src, x), loaded(x), "torchscript")
    return [path], diff, limit


_ONNX_INLINE_LIMIT = 1 << 30  # above this the weights go to an external .data file (2 GB cap)


def write_onnx(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    """Export with the dynamo exporter, save, run with onnxruntime at two batch sizes and
    compare."""
    import onnxruntime

    example = sample(src, EXAMPLE_BATCH, 0)
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
        raise failed("onnx", error, path) from error
    program.model.metadata_props.update(metadata(src))
    if external:
        program.save(str(path), external_data=True)
    else:
        with replacing(path, "onnx") as tmp:
            program.save(str(tmp), external_data=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst, limit = 0.0, 1.0
    for batch in (CHECK_BATCH, 1):
        x = sample(src, batch, batch)
        (out,) = session.run(["logits"], {"image": x.numpy()})
        diff, lim = compare(reference(src, x), torch.from_numpy(out), "onnx")
        worst, limit = max(worst, diff), max(limit, lim)
    return files, worst, limit
