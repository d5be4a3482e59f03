"""Small datasets written in their real on-disk formats, for the tests."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def rgb(seed: int, size=(24, 20)) -> np.ndarray:
    """A random H×W×3 uint8 picture (size is width, height)."""
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def image_folder(root: Path, classes=("cat", "dog"), per_class: int = 6, size=(24, 20)) -> Path:
    """One subfolder per class of PNG images, plus the troublemakers a real folder has."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rgb(c * 100 + i, size)).save(root / name / f"{i}.png")
    return root


def add_bad_files(root: Path, cls: str = "cat") -> dict[str, str]:
    """A text file named .png, a zero-byte JPEG, a truncated JPEG and a notes file."""
    folder = root / cls
    (folder / "text.png").write_text("this is not an image")
    (folder / "empty.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(rgb(999, (64, 64))).save(buffer, "JPEG")
    (folder / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "notes.txt").write_text("labels were checked by hand")
    return {
        "text.png": "not an image",
        "empty.jpg": "empty file (0 bytes)",
        "cut.jpg": "damaged image",
        "notes.txt": "not an image file (.txt)",
    }


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]  # fmt: skip


def cifar10(root: Path, per_batch: int = 20, test: int = 10) -> dict[str, np.ndarray]:
    """CIFAR-10 in torchvision's layout (cifar-10-batches-py with pickled batches)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name, count in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch",
                                                                               test)]:  # fmt: skip
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, count)]
        batch = {"batch_label": name, "labels": labels, "data": data,
                 "filenames": [f"{name}_{i}.png" for i in range(count)]}  # fmt: skip
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        written[name] = data
        written[f"{name}_labels"] = np.array(labels)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_vis": 3072}, handle, protocol=2)
    return written


def cifar10_archive(path: Path, root: Path) -> Path:
    """The downloadable cifar-10-python.tar.gz made from a generated set."""
    source = root / "made"
    cifar10(source)
    with tarfile.open(path, "w:gz") as archive:
        archive.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return path


def idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def mnist(root: Path, train: int = 30, test: int = 10, folder: str = "MNIST") -> np.ndarray:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (train, 28, 28), dtype=np.uint8)
    idx(raw / "train-images-idx3-ubyte.gz", images)
    idx(raw / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, train))
    idx(raw / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (test, 28, 28)))
    idx(raw / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, test))
    return images
