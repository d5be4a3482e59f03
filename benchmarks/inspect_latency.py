"""How long the inspector takes from a dropped image file to every array it draws (top-k,
Grad-CAM, the maps of every listed layer, the filters): ``inspect_image`` on the CPU.

Targets: 200 ms for the SimpleCNN at 32×32, 1 s for a ResNet-18 backbone at 224×224 (random
weights: the time does not depend on them). Prints the median and the worst of several runs, and
the median over the target, with torch on one thread and on its default number of threads: on a
busy 2-core machine the default can be many times slower for a small model (the threads wait for
each other), so both are shown.

    .venv/bin/python benchmarks/inspect_latency.py [--repeats N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image

from cnnstudio import ModelSpec, Node, build_model, create_model_spec
from cnnstudio.inspect import inspect_image

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def backbone_spec(name: str = "resnet18", *, freeze: bool = True) -> ModelSpec:
    """Backbone ``name`` (random weights) and a 10-class Linear head at 3×224×224."""
    nodes = (
        Node("backbone1", "Backbone", {"name": name, "weights": "none", "freeze": freeze}),
        Node("fc1", "Linear", {"out_features": 10}),
    )
    return ModelSpec(nodes, (3, 224, 224), 10)


def resnet18_spec() -> ModelSpec:
    return backbone_spec("resnet18")


def write_photo(path: Path) -> Path:
    """A 640×480 JPEG of noise: a photo the inspector resizes on the way in."""
    pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def measure(spec: ModelSpec, image: Path, repeats: int, device: str) -> tuple[float, float]:
    model = build_model(spec, pretrained=False).to(device).eval()
    classes = [f"class {i}" for i in range(spec.num_classes)]

    def once() -> None:
        inspect_image(model, image, spec.input_shape, IMAGENET_MEAN, IMAGENET_STD, classes)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    once()  # first call: lazy imports, allocator warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, nargs="*", help="torch thread counts (default: 1 and torch's own)"
    )
    args = parser.parse_args()
    threads = args.threads or sorted({1, torch.get_num_threads()})
    cases = [
        ("SimpleCNN 3×32×32", create_model_spec("simple-cnn"), 200.0),
        ("ResNet-18 3×224×224", resnet18_spec(), 1000.0),
    ]
    print(f"torch {torch.__version__}, device {args.device}")
    with tempfile.TemporaryDirectory() as folder:
        image = write_photo(Path(folder) / "photo.jpg")
        for count in threads:
            torch.set_num_threads(count)
            for name, spec, target in cases:
                median, worst = measure(spec, image, args.repeats, args.device)
                verdict = "meets" if median <= target else "misses"
                print(
                    f"{name:<20} {count} thread{'s' if count > 1 else ' '}: median "
                    f"{median:7.1f} ms, worst {worst:7.1f} ms; target {target:.0f} ms: "
                    f"median/target {median / target:.2f} ({verdict})"
                )


if __name__ == "__main__":
    main()
