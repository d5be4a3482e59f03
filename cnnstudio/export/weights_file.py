"""The safetensors export: the state dict only (keys = layer ids), with classes, input shape and
normalisation in its metadata. Reading it back is ``cnnstudio.weights.load_weights``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from cnnstudio.export.check import CHECK_BATCH, compare, reference, replacing, sample
from cnnstudio.model_source import ModelSource
from cnnstudio.weights import load_weights, state_tensors


def metadata(src: ModelSource) -> dict[str, str]:
    """What a model file carries about its model as text: input shape, class names (those the
    project shows), normalisation. The safetensors and ONNX exports write it."""
    meta = {"input_shape": json.dumps(list(src.input_shape))}
    if src.classes:
        meta["classes"] = json.dumps(list(src.classes))
    if src.mean:
        meta.update(mean=json.dumps(list(src.mean)), std=json.dumps(list(src.std)))
    return meta


def save_safetensors(src: ModelSource, path: Path, format: str = "safetensors") -> None:
    """Write the weights of ``src`` to ``path`` (whole, or not at all); ``format`` is the export
    the file belongs to, for the error message."""
    from safetensors.torch import save_file

    with replacing(path, format) as tmp:
        save_file(state_tensors(src.model), str(tmp), metadata={"format": "pt", **metadata(src)})


def write_safetensors(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    """Write the weights, load them into a copy of the model, and compare."""
    save_safetensors(src, path)
    copy_ = copy.deepcopy(src.model)
    load_weights(copy_, path)
    x = sample(src, CHECK_BATCH, 1)
    with torch.no_grad():
        diff, limit = compare(reference(src, x), copy_.eval()(x), "safetensors")
    return [path], diff, limit
