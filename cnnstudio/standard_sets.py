"""The standard datasets: CIFAR-10, CIFAR-100, MNIST and FashionMNIST.

Download addresses and checksums are torchvision's own (its dataset classes carry them). Files go
into the user's data folder in torchvision's on-disk layout, so a set that torchvision already
downloaded is found as it is. Reading never runs code: MNIST's idx files are plain binary, and
CIFAR's pickled batches are read by an unpickler that builds nothing but numpy arrays, lists,
dicts, numbers and strings.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnstudio.errors import DataError
from cnnstudio.progress import TaskState, quiet

"""progress(bytes_done, bytes_total, what): total is 0 when the server does not say."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class StandardSet:
    """One of the standard datasets, as torchvision lays it out on disk."""

    key: str
    title: str
    shape: tuple[int, int, int]
    folder: str  # below the data root
    train_images: int

    def torchvision_class(self):
        from torchvision import datasets

        return getattr(
            datasets,
            {
                "cifar10": "CIFAR10",
                "cifar100": "CIFAR100",
                "mnist": "MNIST",
                "fashionmnist": "FashionMNIST",
            }[self.key],
        )

    @property
    def is_cifar(self) -> bool:
        return self.key.startswith("cifar")

    def downloads(self) -> list[tuple[list[str], str, str]]:
        """(candidate URLs, file name, md5) for every file to fetch."""
        cls = self.torchvision_class()
        if self.is_cifar:
            return [([cls.url], cls.filename, cls.tgz_md5)]
        return [([m + name for m in cls.mirrors], name, md5) for name, md5 in cls.resources]

    def classes(self, root: Path) -> list[str]:
        if self.is_cifar:
            cls = self.torchvision_class()
            meta = _safe_unpickle(root / self.folder / cls.meta["filename"])
            return [str(c) for c in meta[cls.meta["key"]]]
        return list(self.torchvision_class().classes)


STANDARD_SETS: dict[str, StandardSet] = {
    s.key: s
    for s in (
        StandardSet("cifar10", "CIFAR-10", (3, 32, 32), "cifar-10-batches-py", 50_000),
        StandardSet("cifar100", "CIFAR-100", (3, 32, 32), "cifar-100-python", 50_000),
        StandardSet("mnist", "MNIST", (1, 28, 28), "MNIST/raw", 60_000),
        StandardSet("fashionmnist", "FashionMNIST", (1, 28, 28), "FashionMNIST/raw", 60_000),
    )
}


def data_root() -> Path:
    """Where datasets are kept: $CNNSTUDIO_DATA_DIR, else the user's data folder."""
    env = os.environ.get("CNNSTUDIO_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return platformdirs.user_data_path("cnnstudio") / "datasets"


def is_downloaded(key: str, root: Path | None = None) -> bool:
    root = root or data_root()
    std = STANDARD_SETS[key]
    if std.is_cifar:
        return (root / std.folder).is_dir()
    return all(_idx_file(root / std.folder, name) is not None for _, name, _ in std.downloads())


def download(
    key: str,
    root: Path | None = None,
    state: TaskState | None = None,
) -> Path:
    """Fetch a standard set into ``root`` (nothing happens when it is already there).

    DataError with the address, the reason and what to do without a network; Cancelled when
    ``state`` is told to stop; each chunk is reported to it. A partial download never takes the
    final file name.
    """
    root = root or data_root()
    std = STANDARD_SETS[key]
    if is_downloaded(key, root):
        return root / std.folder
    target_dir = root if std.is_cifar else root / std.folder
    target_dir.mkdir(parents=True, exist_ok=True)
    for urls, name, md5 in std.downloads():
        path = target_dir / name
        if not (path.is_file() and _md5(path) == md5):
            _fetch(urls, path, md5, std, state or quiet())
        if std.is_cifar:
            with tarfile.open(path, "r:gz") as archive:
                archive.extractall(root, filter="data")
    return root / std.folder


def _fetch(
    urls: list[str],
    path: Path,
    md5: str,
    std: StandardSet,
    state: TaskState,
) -> None:
    errors = []
    for url in urls:
        partial = path.with_name(path.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while chunk := response.read(_CHUNK):
                    state.check(f"download of {std.title}")
                    out.write(chunk)
                    done += len(chunk)
                    state.report(done, total, path.name)
        except (urllib.error.URLError, OSError) as error:
            partial.unlink(missing_ok=True)
            errors.append(f"{url}: {getattr(error, 'reason', error)}")
            continue
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if _md5(partial) != md5:
            partial.unlink(missing_ok=True)
            errors.append(f"{url}: the file arrived damaged (checksum mismatch)")
            continue
        os.replace(partial, path)
        return
    raise DataError(
        f"cannot download {std.title} ({'; '.join(errors)}). Without a network, put {path.name} "
        f"into {path.parent} and try again",
        path.parent,
    )


def load_standard(key: str, root: Path | None = None) -> tuple[dict, list[str]]:
    """The set as arrays: {"train": (images N×C×H×W uint8, labels), "test": (...)}, classes.

    DataError naming the folder when it is missing or a file in it cannot be read.
    """
    root = root or data_root()
    std = STANDARD_SETS[key]
    if not is_downloaded(key, root):
        raise DataError(f"{std.title} is not in {root}: download it first", root / std.folder)
    if std.is_cifar:
        cls = std.torchvision_class()
        parts = {
            "train": [name for name, _ in cls.train_list],
            "test": [name for name, _ in cls.test_list],
        }
        splits = {s: _read_cifar(root / std.folder, names) for s, names in parts.items()}
    else:
        folder = root / std.folder
        splits = {
            "train": (
                _read_idx(folder, "train-images-idx3-ubyte")[:, None],
                _read_idx(folder, "train-labels-idx1-ubyte").astype(np.int64),
            ),
            "test": (
                _read_idx(folder, "t10k-images-idx3-ubyte")[:, None],
                _read_idx(folder, "t10k-labels-idx1-ubyte").astype(np.int64),
            ),
        }
    return splits, std.classes(root)


def _read_cifar(folder: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        batch = _safe_unpickle(folder / name)
        data = np.asarray(batch["data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch.get("labels", batch.get("fine_labels")), dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and plain Python data; any other class is refused."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _safe_unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            data = _ArraysOnly(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(
            f"{path.name} is missing from {path.parent}: download the set again", path
        ) from None
    except Exception as error:
        raise DataError(f"cannot read {path}: {error}", path) from None
    if not isinstance(data, dict):
        raise DataError(f"{path} does not hold a CIFAR batch", path)
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _idx_file(folder: Path, stem: str) -> Path | None:
    stem = stem.removesuffix(".gz")
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(folder: Path, stem: str) -> np.ndarray:
    """Read an idx file (MNIST's format: big-endian header of dimensions, then uint8 data)."""
    path = _idx_file(folder, stem)
    if path is None:
        raise DataError(f"{stem} is missing from {folder}: download the set again", folder)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
        zero, dtype, ndim = raw[0:2], raw[2], raw[3]
        if zero != b"\0\0" or dtype != 0x08:
            raise ValueError("not an idx file of unsigned bytes")
        dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return data.reshape(*dims).copy()
    except (OSError, ValueError, EOFError, IndexError) as error:
        raise DataError(f"cannot read {path}: {error}", path) from None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
