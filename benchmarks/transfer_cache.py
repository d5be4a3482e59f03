"""Transfer learning with and without the feature cache: the epoch times of the resnet18-features
template (ResNet-18 frozen, weights none: the timing does not depend on them) at 224×224 on a few
hundred generated images (four classes of noisy coloured squares), on the CPU, the ratio for the
epochs after the first (target ≥ 20×), and the accuracy of both runs (same data, same seed).

With the cache the first epoch also pays for computing the features (the run's setup beyond the
uncached run's); a second run with the cache reads them back and computes nothing.

    .venv/bin/python benchmarks/transfer_cache.py [--images 320] [--epochs 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from cnnstudio import Project
from cnnstudio.augment import NO_AUGMENTATION
from cnnstudio.data import DataSettings
from cnnstudio.templates import create_model_spec
from cnnstudio.train import Trainer
from cnnstudio.train_settings import check_training

COLOURS = [(200, 60, 60), (60, 180, 80), (60, 70, 200), (210, 200, 60)]
SIZE = 224


def images(root: Path, count: int) -> Path:
    """``count`` noisy squares of four colours, PNG files in one folder per class."""
    rng = np.random.default_rng(0)
    for i in range(count):
        label = i % len(COLOURS)
        folder = root / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        noise = rng.normal(0, 60, (SIZE, SIZE, 3))
        pixels = np.clip(np.array(COLOURS[label]) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def project(root: Path, data: Path, name: str, epochs: int, cache: bool) -> Project:
    spec = create_model_spec("resnet18-features", len(COLOURS), (3, SIZE, SIZE))
    backbone = spec.nodes[0]
    nodes = (dataclasses.replace(backbone, params={**backbone.params, "weights": "none"}),
             *spec.nodes[1:])  # fmt: skip
    training = check_training({"epochs": epochs, "batch_size": 32, "lr": 1e-3, "workers": 0,
                               "device": "cpu", "seed": 0, "feature_cache": cache})  # fmt: skip
    made = Project(
        model=dataclasses.replace(spec, nodes=nodes),
        name=name,
        data=DataSettings(source="folder", path=str(data), augment=dict(NO_AUGMENTATION)),
        training=training,
        path=root / name,
    )
    made.save()
    return made


def run(made: Project) -> dict:
    started = time.perf_counter()
    result = Trainer(made).run()
    wall = time.perf_counter() - started
    assert result.state == "finished", result
    folder = Path(result.run_dir)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    settings = json.loads((folder / "settings.json").read_text())
    evaluation = json.loads((folder / "evaluation.json").read_text())
    return {
        "wall": wall,
        "epochs": [r["seconds"] for r in epochs],
        "setup": wall - sum(r["seconds"] for r in epochs),
        "val_accuracy": epochs[-1]["val_accuracy"],
        "evaluation": evaluation["accuracy"],
        "cache": settings["feature_cache"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="transfer-cache-") as tmp:
        root = Path(tmp)
        data = images(root / "images", args.images)
        full = run(project(root, data, "full", args.epochs, cache=False))
        cached_project = project(root, data, "cached", args.epochs, cache=True)
        cached = run(cached_project)
        again = run(cached_project)
    features = cached["setup"] - full["setup"]
    print(f"resnet18-features (frozen, weights none) at {SIZE}×{SIZE}, {args.images} images, "
          f"batch 32, CPU")  # fmt: skip
    print(f"{'epoch':>5}  {'full forward s':>14}  {'cached s':>9}  {'ratio':>7}")
    for i, (a, b) in enumerate(zip(full["epochs"], cached["epochs"], strict=True)):
        extra = features if i == 0 else 0.0
        note = f"  (+{features:.1f} s computing the features)" if i == 0 else ""
        print(f"{i + 1:>5}  {a:14.3f}  {b + extra:9.3f}  {a / (b + extra):6.1f}×{note}")
    later_full = sum(full["epochs"][1:]) / max(1, len(full["epochs"]) - 1)
    later_cached = sum(cached["epochs"][1:]) / max(1, len(cached["epochs"]) - 1)
    print(f"epochs after the first: full {later_full:.3f} s, cached {later_cached:.4f} s, "
          f"ratio {later_full / later_cached:.0f}× (target ≥ 20×)")  # fmt: skip
    # the cached epochs last milliseconds: another job on the machine can stretch one tenfold
    median_full = statistics.median(full["epochs"][1:] or full["epochs"])
    median_cached = statistics.median(cached["epochs"][1:] or cached["epochs"])
    print(f"medians of those epochs: full {median_full:.3f} s, cached {median_cached:.4f} s, "
          f"ratio {median_full / median_cached:.0f}×")  # fmt: skip
    reused = again["cache"]["reused"]
    print(f"whole run: full {full['wall']:.1f} s, cached {cached['wall']:.1f} s; a second cached "
          f"run (features read back, reused={reused}) {again['wall']:.1f} s")  # fmt: skip
    print(f"final val accuracy: full {full['val_accuracy']:.3f}, cached "
          f"{cached['val_accuracy']:.3f}; evaluation (whole model, images): full "
          f"{full['evaluation']:.3f}, cached {cached['evaluation']:.3f}")  # fmt: skip
    print(f"cache file: {cached['cache']['bytes'] / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
