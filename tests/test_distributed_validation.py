"""Under torchrun, validation counts each image once: the ranks' validation shares are not padded
with repeats (training's are, so that DDP's ranks step together)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnstudio import Project
from cnnstudio.batches import epoch_order, make_batches
from cnnstudio.data import DataSettings, load_dataset
from cnnstudio.train_settings import check_training
from tests.test_train import colour_folder, tiny_model

WORLD = 2


def odd_validation_folder(root: Path) -> tuple[DataSettings, int]:
    """An image folder whose validation split holds an odd number of images, and that number
    (the split is stratified: one class is made smaller until the count is odd)."""
    folder = colour_folder(root / "images", per_class=12)
    data = DataSettings(source="folder", path=str(folder))
    for removed in range(8):
        count = len(load_dataset(data, (3, 16, 16)).splits["val"])
        if count % WORLD:
            return data, count
        (folder / "c0" / f"{removed}.png").unlink()
    raise AssertionError("no folder size gave an odd validation split")


@pytest.mark.parametrize("count", [0, 1, 7, 8])
def test_the_validation_shares_hold_each_position_once(count: int) -> None:
    shares = [
        epoch_order(count, shuffle=False, seed=0, epoch=0, rank=r, world=WORLD, pad=False)
        for r in range(WORLD)
    ]
    assert sorted(torch.cat(shares).tolist()) == list(range(count))
    padded = [
        epoch_order(count, shuffle=True, seed=0, epoch=0, rank=r, world=WORLD) for r in range(WORLD)
    ]
    assert len({len(share) for share in padded}) == 1  # training: every rank steps as often


@pytest.mark.parametrize("in_memory", [True, False], ids=["tensors", "loader"])
def test_the_ranks_validation_batches_cover_the_split_once(tmp_path: Path, in_memory) -> None:
    data, count = odd_validation_folder(tmp_path)
    dataset = load_dataset(data, (3, 16, 16), memory_limit=2**30 if in_memory else 0)
    assert (dataset.images is not None) == in_memory
    seen = 0
    for rank in range(WORLD):
        batches = make_batches(
            dataset, "val", 4, "cpu", (0.5,) * 3, (0.25,) * 3, train=False, rank=rank,
            world=WORLD, workers=0,
        )  # fmt: skip
        sizes = [len(y) for _x, y in batches]
        assert len(sizes) == len(batches)
        seen += sum(sizes)
    assert seen == count


@pytest.mark.slow
def test_torchrun_validation_counts_each_image_once(tmp_path: Path) -> None:
    data, count = odd_validation_folder(tmp_path)
    training = check_training({"epochs": 1, "batch_size": 8, "lr": 0.01, "workers": 0})
    project = Project(model=tiny_model(), name="odd", data=data, training=training,
                      path=tmp_path / "proj")  # fmt: skip
    project.save()
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [str(torchrun), "--standalone", f"--nproc_per_node={WORLD}", "-m", "cnnstudio", "train",
         str(project.path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = project.runs_dir.iterdir()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    (epoch,) = [r for r in records if r["type"] == "epoch"]
    assert epoch["val_images"] == count
    confusion = json.loads((run / "evaluation.json").read_text())["confusion_matrix"]
    assert sum(map(sum, confusion)) == count
