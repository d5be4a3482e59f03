"""How long does a new project on an image folder take, counted in scans of that folder? One
``scan_folder`` (every file's header read) beside ``new_project`` on the same folder, which asks it
for its defaults, classes and image shape (three scans before ``data_settings.one_scan``; one
now). The folder: ``--images`` random 32×32 PNGs in four classes, written once to a temporary
folder.

    .venv/bin/python benchmarks/new_project_scan.py [--images 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from cnnstudio import new_project
from cnnstudio.data import DataSettings
from cnnstudio.images import scan_folder


def write_folder(root: Path, images: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"c{i % 4}"
        folder.mkdir(exist_ok=True)
        pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_folder(Path(folder), args.images)
        data = DataSettings(source="folder", path=folder)
        for _ in range(args.rounds):
            start = time.perf_counter()
            scan_folder(folder)
            scan = time.perf_counter() - start
            start = time.perf_counter()
            new_project(data=data)
            made = time.perf_counter() - start
            print(f"{args.images:,} PNG 32×32: one scan {scan:.2f} s, new_project {made:.2f} s "
                  f"({made / scan:.1f} scans)")  # fmt: skip


if __name__ == "__main__":
    main()
