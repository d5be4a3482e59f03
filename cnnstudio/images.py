"""Image files and folders: finding the classes and images of a folder (ImageFolder layout,
optionally with train/ and val/ or test/ inside), opening every file so that unreadable ones are
listed with the reason instead of failing a run, and decoding an image at the model's input size
and channels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnstudio.errors import DataError
from cnnstudio.progress import TaskState, quiet

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
NOT_AN_IMAGE = "not an image (the content is not a known image format)"
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation", "test")}


def too_large() -> tuple[type[BaseException], ...]:
    """PIL's errors for an image over its pixel limit: DecompressionBombError (not an OSError)
    over twice Image.MAX_IMAGE_PIXELS, and the warning over it, an exception where warnings are
    errors. A function so that PIL is imported only when an image is opened."""
    from PIL import Image

    return (Image.DecompressionBombError, Image.DecompressionBombWarning)


def too_large_reason(error: BaseException) -> str:
    """Why an image over PIL's pixel limit is left out, and what to do."""
    return (
        f"image too large to decode safely ({error}): make it smaller or remove it from the folder"
    )


@dataclass(frozen=True)
class Skipped:
    """A file left out of the dataset, and why."""

    path: str
    reason: str


# Image folders


@dataclass(frozen=True)
class FolderScan:
    """An image folder's layout: classes, (path, label) per split, files skipped, sizes seen."""

    root: Path
    classes: list[str]
    files: dict[str, list[tuple[Path, int]]]
    predefined_split: bool
    skipped: list[Skipped]
    sizes: list[tuple[int, int]]
    grayscale: bool


def scan_folder(
    root: Path | str,
    *,
    verify: bool = False,
    state: TaskState | None = None,
    training: bool = True,
) -> FolderScan:
    """Find classes and images in ``root``. Every file is opened (header only, or fully decoded
    with ``verify``); the unreadable ones are listed in ``skipped``, never raised.

    DataError for a folder that is missing, empty, holds one class, or a class without images.
    Not ``training`` (a folder to evaluate on, see ``held_out_folder``): ``root`` is read as one
    folder per class, and one class, or a class without readable images, is fine.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist", root)
    layout = _split_layout(root) if training else None
    predefined = layout is not None
    layout = layout or {"train": root}
    class_dirs = {split: _subfolders(folder) for split, folder in layout.items()}
    classes = sorted(d.name for d in class_dirs["train"])
    _check_classes(root, layout["train"], classes, training)
    for split, dirs in class_dirs.items():
        unknown = sorted({d.name for d in dirs} - set(classes))
        if unknown:
            raise DataError(
                f"{layout[split]} has classes that train/ lacks: "
                f"{', '.join(unknown)}; every class needs training images",
                layout[split],
            )
    candidates, skipped = _candidates(class_dirs, classes)
    results = _map_files(
        _open_image if not verify else _verify_image,
        [c[1] for c in candidates],
        state or quiet(),
    )
    files: dict[str, list[tuple[Path, int]]] = {split: [] for split in layout}
    sizes, modes = [], set()
    for (split, path, label), (info, reason) in zip(candidates, results, strict=True):
        if reason:
            skipped.append(Skipped(str(path), reason))
            continue
        files[split].append((path, label))
        sizes.append(info[0])
        modes.add(info[1])
    for label, name in enumerate(classes if training else []):
        if not any(lab == label for _, lab in files["train"]):
            raise DataError(
                f"class folder {layout['train'] / name} holds no readable images "
                f"({', '.join(IMAGE_EXTENSIONS)}): add images or remove the folder",
                layout["train"] / name,
            )
    grayscale = bool(modes) and modes <= {"1", "L", "I", "I;16", "F", "LA"}
    return FolderScan(root, classes, files, predefined, skipped, sizes, grayscale)


def _candidates(
    class_dirs: dict[str, list[Path]], classes: list[str]
) -> tuple[list[tuple[str, Path, int]], list[Skipped]]:
    """(split, path, label) of every file with an image suffix in the class folders, and the
    other files, skipped with the reason."""
    candidates: list[tuple[str, Path, int]] = []
    skipped: list[Skipped] = []
    for split, dirs in class_dirs.items():
        for folder in sorted(dirs):
            label = classes.index(folder.name)
            for path in sorted(folder.rglob("*")):
                if not path.is_file() or _hidden(path, folder):
                    continue
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    candidates.append((split, path, label))
                else:
                    kind = path.suffix or "no extension"
                    skipped.append(Skipped(str(path), f"not an image file ({kind})"))
    return candidates, skipped


def _split_layout(root: Path) -> dict[str, Path] | None:
    names = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    train = next((names[n] for n in SPLIT_FOLDERS["train"] if n in names), None)
    val = next((names[n] for n in SPLIT_FOLDERS["val"] if n in names), None)
    if train is None:
        return None
    return {"train": train, "val": val} if val is not None else {"train": train}


def held_out_folder(root: Path | str) -> Path:
    """The part of ``root`` to evaluate a model on: its val/ or test/ folder when ``root`` has the
    train/ + val/ (or test/) layout, or holds nothing but such a folder; else ``root`` itself,
    one subfolder per class."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist", root)
    layout = _split_layout(root)
    if layout is not None:
        return layout.get("val", layout["train"])
    folders = _subfolders(root)
    if len(folders) == 1 and folders[0].name.lower() in SPLIT_FOLDERS["val"]:
        return folders[0]
    return root


def _subfolders(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))]


def _hidden(path: Path, below: Path) -> bool:
    return any(part.startswith((".", "__")) for part in path.relative_to(below).parts)


def _check_classes(root: Path, folder: Path, classes: list[str], training: bool) -> None:
    if not classes:
        loose = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        hint = (
            (
                f" ({len(loose)} images lie directly in it: move each into a folder named after "
                "its class)"
            )
            if loose
            else ""
        )
        raise DataError(
            f"no class folders in {folder}: expected one subfolder per class holding "
            f"its images{hint}",
            folder,
        )
    if len(classes) == 1 and training:
        raise DataError(
            f"{folder} holds only one class ({classes[0]!r}): a classifier needs at "
            "least two class folders",
            folder,
        )


def _open_image(path: Path) -> tuple[Any, str | None]:
    """((width, height), mode) from the header, or the reason the file is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        with Image.open(path) as image:
            return (image.size, image.mode), None
    except UnidentifiedImageError:
        return None, NOT_AN_IMAGE
    except too_large() as error:
        return None, too_large_reason(error)
    except OSError as error:
        return None, f"cannot read: {error}"
    except (SyntaxError, ValueError) as error:  # PIL's word for a damaged header
        return None, f"damaged image: {error}"


def _verify_image(path: Path) -> tuple[Any, str | None]:
    """Like ``_open_image`` but decodes the whole image, which catches truncated files."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        with Image.open(path) as image:
            image.load()
            return (image.size, image.mode), None
    except UnidentifiedImageError:
        return None, NOT_AN_IMAGE
    except too_large() as error:
        return None, too_large_reason(error)
    except (OSError, SyntaxError, ValueError) as error:
        return None, f"damaged image: {error}"


def _map_files(
    func: Callable[[Path], Any],
    paths: list[Path],
    state: TaskState,
    what: str = "images",
) -> list[Any]:
    """``func`` over ``paths`` on a few threads (PIL releases the GIL while decoding)."""
    results: list[Any] = []
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(pool.map(func, paths, chunksize=64)):
            results.append(result)
            if state.stopping:
                pool.shutdown(cancel_futures=True)
                state.check(f"reading {what}")
            if i % 256 == 0 or i + 1 == len(paths):
                state.report(i + 1, len(paths), what)
    return results


def decode_image(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """An image file as C×H×W uint8 at ``size`` (height, width): grayscale, palette and
    transparent images are converted to ``channels`` (transparency over white)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.seek(0)
            return image_to_array(image, channels, size)
    except too_large() as error:
        raise DataError(f"{path}: {too_large_reason(error)}", path) from None


def decode_images(
    paths: list[Path], channels: int, size: tuple[int, int], state: TaskState
) -> list[np.ndarray | str]:
    """Every image of ``paths`` decoded as by ``decode_image``, on a few threads; a file that
    cannot be decoded gives the reason instead ("damaged image: …")."""

    def decode(path: Path) -> np.ndarray | str:
        return decode_or_reason(path, channels, size)

    return _map_files(decode, paths, state, "decoding images")


def decode_or_reason(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray | str:
    """``decode_image``, or the reason the file cannot be decoded ("damaged image: …")."""
    from PIL import UnidentifiedImageError

    try:
        return decode_image(path, channels, size)
    except DataError as error:
        return error.message.removeprefix(f"{path}: ")
    except FileNotFoundError:
        return "no such file"
    except UnidentifiedImageError:
        empty = path.is_file() and path.stat().st_size == 0
        return "empty file (0 bytes)" if empty else NOT_AN_IMAGE
    except (OSError, SyntaxError, ValueError) as error:
        return f"damaged image: {error}"


def image_files(folder: Path) -> list[Path]:
    """Every file with an image suffix in ``folder`` and its subfolders, sorted; hidden files and
    folders (".", "__") are left out."""
    return sorted(
        path
        for path in Path(folder).rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS
        and path.is_file()
        and not _hidden(path, Path(folder))
    )


def image_to_array(image, channels: int, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    height, width = size
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    if channels == 1:
        return array[None].copy()
    array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(np.repeat(array[:1], channels, 0) if channels != 3 else array)


def thumbnail(array: np.ndarray, size: int) -> np.ndarray:
    """A C×H×W uint8 image as an H×W×3 uint8 picture at most ``size`` pixels on its longer side
    (grayscale repeated; an image with another channel count shows its first channel)."""
    from PIL import Image

    pixels = array[:3] if array.shape[0] == 3 else np.repeat(array[:1], 3, 0)
    picture = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)))
    if max(picture.size) > size:
        picture.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(picture).copy()
