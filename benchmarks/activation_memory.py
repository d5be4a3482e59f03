"""How long measuring a model's activation memory takes, and how close it is to what autograd
saves: it decides whether the editor may measure on every edit (it does, in its analysis job, off
the GUI thread).

For EfficientNet-B0 and ResNet-50 at 224×224 (and SimpleCNN at 32×32) prints the time of the
first measurement in this process (imports and meta kernels warm up), of a fresh measurement of the
same architecture (another class count: nothing cached) and of a cached one; then the measured
bytes per image next to what autograd really saves for a batch of 2 real CPU images (each storage
once, weights left out) and their ratio; and the per-layer output-size formula the measurement
replaced (the per-image figure of the estimate before).

    .venv/bin/python benchmarks/activation_memory.py
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from cnnstudio.activation_memory import activation_memory
from cnnstudio.analysis import analyze
from cnnstudio.build import build_model
from cnnstudio.spec import ModelSpec, Node
from cnnstudio.templates import create_model_spec

MiB = 2**20


def backbone(name: str, classes: int = 10) -> ModelSpec:
    nodes = (
        Node("backbone", "Backbone", {"name": name, "weights": "none", "freeze": False}),
        Node("head", "Linear", {"out_features": classes}),
    )
    return ModelSpec(nodes=nodes, input_shape=(3, 224, 224), num_classes=classes)


def really_saved(spec: ModelSpec, batch: int = 2) -> int:
    model = build_model(spec, pretrained=False)
    model.train()
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    sizes: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.untyped_storage().data_ptr() not in owned:
            sizes[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(torch.randn(batch, *spec.input_shape))  # noqa: F841 (the graph stays alive)
    return sum(sizes.values())


def timed(make) -> tuple[object, float]:
    start = time.perf_counter()
    value = make()
    return value, (time.perf_counter() - start) * 1000


def old_estimate(spec: ModelSpec) -> int:
    """What the memory estimate used to say per image: each layer's output, 4 bytes a value, 3
    times over (activations and their gradients), plus the input image."""
    outputs = sum(4 * math.prod(i.output_shape) for i in analyze(spec).layers if i.output_shape)
    return 3 * outputs + 4 * math.prod(spec.input_shape)


def main() -> None:
    cases = [
        ("simple-cnn 32×32", create_model_spec("simple-cnn"), create_model_spec("simple-cnn", 9)),
        ("efficientnet_b0 224", backbone("efficientnet_b0"), backbone("efficientnet_b0", 9)),
        ("resnet50 224", backbone("resnet50"), backbone("resnet50", 9)),
    ]
    print("model                 first ms  fresh ms  cached ms  measured MiB/img  saved MiB/img"
          "  ratio  old estimate MiB/img")  # fmt: skip
    for label, spec, other in cases:
        measured, first = timed(lambda s=spec: activation_memory(s))
        _, fresh = timed(lambda s=other: activation_memory(s))
        _, cached = timed(lambda s=spec: activation_memory(s))
        saved = really_saved(spec) / 2
        per_image = measured.total(2) / 2
        print(
            f"{label:20s}  {first:8.0f}  {fresh:8.0f}  {cached:9.3f}  {per_image / MiB:16.2f}"
            f"  {saved / MiB:13.2f}  {per_image / saved:5.3f}  {old_estimate(spec) / MiB:20.2f}"
        )


if __name__ == "__main__":
    main()
