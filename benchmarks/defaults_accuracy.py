"""The studio's default settings against a plain PyTorch loop, on real image folders.

Four data sets, three written to disk by this script as PNG folders (one subfolder per class):
sklearn's handwritten digits (8×8 gray, 10 classes, 1,797 images), scikit-image's LFW subset
(25×25 gray, 100 faces and 100 non-faces), 32×32 colour crops of four scikit-image photographs
(the class is the photograph a crop came from), and the built-in sample set.

For each: (a) the studio as a new user meets it: ``new_project`` on the data (the SimpleCNN
template, default training and augmentation settings) trained by the Trainer, as
``cnnstudio new --data-folder`` then ``cnnstudio train`` do; (b) a plain loop: the same SimpleCNN
(built from the template for the same input shape and classes), Adam at 1e-3, batch 64, no
augmentation, on the same normalised images and the same train/validation split. Both train the
same number of epochs; the table gives the validation accuracy after the last one, the mean over
``--seeds`` training seeds (weights, shuffling, augmentation; the split stays), since on a
validation split of 40 images one image is 2.5 points (the sample set, with 1,000 validation
images and 8 times the training work of the others together, trains with one seed).
Acceptance: studio at least plain - 2 points on every data set.

    .venv/bin/python benchmarks/defaults_accuracy.py [--epochs 10] [--seeds 3] [--threads 1]
        [--quick] [--only digits,faces]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnstudio import build_model, new_project
from cnnstudio.data import DataSettings, dataset_stats, load_dataset
from cnnstudio.train import EpochEnded, Trainer

BATCH = 64
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
PHOTO_SIDE = 96  # each photograph is shrunk to this short side before cropping, so a crop shows
# a part of the scene rather than a patch of texture
CROP = 32
DATASETS = ("digits", "faces", "photos", "sample")
TOLERANCE = 2.0  # points
ONE_SEED = ("sample",)  # large enough that one seed tells; the most costly to train


@dataclass(frozen=True)
class Row:
    name: str
    size: str
    classes: int
    studio: float
    plain: float

    @property
    def difference(self) -> float:
        return 100 * (self.studio - self.plain)


# The data sets, written as image folders


def _save(root: Path, images: np.ndarray, labels: list[str]) -> Path:
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / label / f"{i:05d}.png")
    return root


def write_digits(root: Path, limit: int | None = None) -> Path:
    """sklearn's 8×8 digits (values 0-16) as 8-bit grayscale PNGs."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[:limit]
    return _save(root, images, [str(t) for t in digits.target[:limit]])


def write_faces(root: Path, limit: int | None = None) -> Path:
    """scikit-image's LFW subset: 25×25 grayscale, the first 100 faces, the next 100 not."""
    from skimage.data import lfw_subset

    images = np.round(lfw_subset() * 255).astype(np.uint8)
    labels = ["face"] * 100 + ["nonface"] * 100
    keep = slice(None) if limit is None else np.r_[0:limit, 100 : 100 + limit]
    return _save(root, images[keep], list(np.array(labels)[keep]))


def write_photos(root: Path, per_class: int = 100, seed: int = 0) -> Path:
    """``per_class`` 32×32 crops at random places of each photograph (shrunk to a 96-pixel short
    side); the class is the photograph."""
    import skimage.data

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for name in PHOTOS:
        photo = Image.fromarray(getattr(skimage.data, name)())
        scale = PHOTO_SIDE / min(photo.size)
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)))
        array = np.asarray(photo.convert("RGB"))
        for _ in range(per_class):
            y = rng.integers(0, array.shape[0] - CROP + 1)
            x = rng.integers(0, array.shape[1] - CROP + 1)
            images.append(array[y : y + CROP, x : x + CROP])
            labels.append(name)
    return _save(root, np.stack(images), labels)


# The two ways to train


def studio_accuracy(project, epochs: int) -> float:
    """The Trainer on the project as it is (its default settings), for ``epochs`` epochs:
    validation accuracy after the last."""
    project.save()
    ends: list[EpochEnded] = []
    result = Trainer(project, epochs=epochs, device="cpu").run(
        lambda event: ends.append(event) if isinstance(event, EpochEnded) else None
    )
    if len(ends) != epochs:
        raise SystemExit(f"the studio's run failed: {result}")
    return ends[-1].val_accuracy


def plain_accuracy(project, epochs: int, seed: int = 0) -> float:
    """What a user writes by hand: the project's model and split, normalised tensors, Adam, no
    augmentation, a shuffled order per epoch; validation accuracy after the last epoch."""
    dataset = load_dataset(project.data, project.model.input_shape)
    mean, std = dataset_stats(dataset)
    mean_t, std_t = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]

    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        indices = dataset.splits[split]
        return (dataset.images[indices].float() / 255 - mean_t) / std_t, dataset.labels[indices]

    (x_train, y_train), (x_val, y_val) = tensors("train"), tensors("val")
    torch.manual_seed(seed)
    model = build_model(project.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y_train))
        for i in range(0, len(order), BATCH):
            batch = order[i : i + BATCH]
            if len(batch) < 2:  # BatchNorm1d needs two images
                continue
            loss = criterion(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(x).argmax(1) for x in x_val.split(512)])
    return (predicted == y_val).float().mean().item()


# The table


def compare(name: str, workdir: Path, epochs: int, quick: bool = False, seeds: int = 1) -> Row:
    """Write data set ``name`` under ``workdir`` (a small part of it when ``quick``), train both
    ways with each of ``seeds`` seeds, and return the table row (the mean accuracies)."""
    if name == "sample":
        data = DataSettings()
    else:
        writer = {"digits": write_digits, "faces": write_faces, "photos": write_photos}[name]
        if name == "photos":
            folder = writer(workdir / name, per_class=10 if quick else 100)
        else:  # quick: a few images of every class
            folder = writer(workdir / name, {"digits": 60, "faces": 10}[name] if quick else None)
        data = DataSettings(source="folder", path=str(folder))
    project = new_project("simple-cnn", data=data, path=workdir / f"{name}-project")
    channels, height, width = project.model.input_shape
    size = f"{height}×{width} {'gray' if channels == 1 else 'RGB'}"
    studio, plain = [], []
    for seed in range(1 if name in ONE_SEED else seeds):
        project.training["seed"] = seed
        studio.append(studio_accuracy(project, epochs))
        plain.append(plain_accuracy(project, epochs, seed))
    return Row(name, size, project.model.num_classes, float(np.mean(studio)), float(np.mean(plain)))


def format_table(rows: list[Row]) -> str:
    header = f"{'data set':<8}  {'images':<10}  {'classes':>7}  {'studio':>7}  {'plain':>7}  diff"
    lines = [header]
    for r in rows:
        lines.append(
            f"{r.name:<8}  {r.size:<10}  {r.classes:>7}  {100 * r.studio:>6.1f}%  "
            f"{100 * r.plain:>6.1f}%  {r.difference:+.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds to average over")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny data, 1 epoch")
    parser.add_argument("--only", default=",".join(DATASETS), help="comma-separated data sets")
    args = parser.parse_args()
    epochs, seeds = (1, 1) if args.quick else (args.epochs, args.seeds)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only.split(","):
            rows.append(compare(name, Path(folder), epochs, args.quick, seeds))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    print(
        f"\n{epochs} epochs, mean of {seeds} seeds (sample: 1), CPU, "
        f"{torch.get_num_threads()} threads; "
        "studio: default settings; plain: Adam 1e-3, batch 64, no augmentation"
    )
    print(format_table(rows))
    failed = [r.name for r in rows if r.difference < -TOLERANCE]
    if args.quick:
        return 0
    print(
        "acceptance (studio >= plain - 2 points):",
        "FAILED on " + ", ".join(failed) if failed else "passed",
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
