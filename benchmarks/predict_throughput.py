"""Images per second of ``cnnstudio.predict`` against a plain torch loop over the same files.

The plain loop is what a user would write: PIL opens each PNG, converts it to RGB (resizing when the
model's input differs), a tensor is made and normalised, and batches go through the model under
``torch.inference_mode``; one thread decodes, then computes. ``predict`` does more per image (it
lists unreadable files, composites transparency, keeps the top k) and decodes on a few threads one
batch ahead of the model. Target: a ratio (predict / plain) of at least 0.9. Each side runs
``--repeats`` times, alternating, and the best of each is printed (the machine may be busy).

    .venv/bin/python benchmarks/predict_throughput.py [--images N] [--repeats N] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image

from cnnstudio import build_model, create_model_spec
from cnnstudio.model_source import ModelSource
from cnnstudio.predict import predict

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
BATCH = 64


def write_images(folder: Path, count: int, size: int) -> list[Path]:
    rng = np.random.default_rng(size)
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = folder / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def plain_loop(model: torch.nn.Module, paths: list[Path], size: int, device: str) -> list[int]:
    mean = torch.tensor(MEAN, device=device)[:, None, None]
    std = torch.tensor(STD, device=device)[:, None, None]
    predicted: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(paths), BATCH):
            batch = []
            for path in paths[start : start + BATCH]:
                with Image.open(path) as image:
                    image = image.convert("RGB")
                    if image.size != (size, size):
                        image = image.resize((size, size), Image.Resampling.BILINEAR)
                    batch.append(torch.from_numpy(np.array(image)).permute(2, 0, 1))
            x = (torch.stack(batch).to(device).float() / 255 - mean) / std
            predicted += model(x).argmax(1).tolist()
    return predicted


def measure(spec_size: int, paths: list[Path], repeats: int, device: str) -> tuple[float, float]:
    torch.manual_seed(0)
    spec = create_model_spec("simple-cnn", input_shape=(3, spec_size, spec_size))
    model = build_model(spec, pretrained=False).to(device).eval()
    source = ModelSource(model=model, input_shape=(3, spec_size, spec_size), mean=MEAN, std=STD,
                         classes=tuple(str(i) for i in range(10)))  # fmt: skip

    def run_predict() -> list[int]:
        return [r.index for r in predict(source, paths, k=5, batch_size=BATCH).results]

    def run_plain() -> list[int]:
        return plain_loop(model, paths, spec_size, device)

    assert run_predict() == run_plain(), "different answers"
    best = {"predict": float("inf"), "plain": float("inf")}
    for _ in range(repeats):
        for name, fn in (("predict", run_predict), ("plain", run_plain)):
            start = time.perf_counter()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return len(paths) / best["predict"], len(paths) / best["plain"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
          f"{args.images} PNG files per case, batch {BATCH}")  # fmt: skip
    print(f"{'case':<34}{'predict img/s':>15}{'plain img/s':>13}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as folder:
        cases = [
            ("32×32 files, SimpleCNN 32×32", 32, 32),
            ("64×64 files, SimpleCNN 64×64", 64, 64),
            ("64×64 files, SimpleCNN 32×32 (resize)", 64, 32),
        ]
        written: dict[int, list[Path]] = {}
        for name, file_size, model_size in cases:
            if file_size not in written:
                written[file_size] = write_images(Path(folder) / str(file_size), args.images,
                                                  file_size)  # fmt: skip
            ours, plain = measure(model_size, written[file_size], args.repeats, args.device)
            print(f"{name:<34}{ours:>15,.0f}{plain:>13,.0f}{ours / plain:>8.2f}")


if __name__ == "__main__":
    main()
