"""Using a trained model: the classes it predicts for image files and folders, and a CSV of them.

``predict`` takes a ``ModelSource`` (its model, input size, normalisation and class names) and a
list of files and folders; folders are walked recursively for image files. Every image is decoded
and normalised exactly as the run's validation images were (``images.decode_image``: channels
converted, transparency over white, resized with PIL's bilinear filter; then ``(x / 255 - mean) /
std``). Decoding runs on a few threads, one batch ahead of the forward pass, so the model does not
wait for the disk. Files that cannot be read are listed with the reason, never raised.
"""

from __future__ import annotations

import csv
import io
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cnnstudio.errors import DataError
from cnnstudio.files import atomic_write_text
from cnnstudio.images import (
    IMAGE_EXTENSIONS,
    Skipped,
    decode_or_reason,
    image_files,
    thumbnail,
)
from cnnstudio.inspect import Prediction, model_device, normalise_batch, top_predictions
from cnnstudio.model_source import ModelSource
from cnnstudio.progress import TaskState, quiet

BATCH_SIZE = 64


@dataclass(frozen=True)
class ImagePrediction:
    """What the model says of one image: its ``top`` classes, most probable first, and a small
    H×W×3 uint8 picture of what the model saw when one was asked for."""

    path: Path
    top: tuple[Prediction, ...]
    thumbnail: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def predicted(self) -> str:
        return self.top[0].name

    @property
    def index(self) -> int:
        return self.top[0].index

    @property
    def confidence(self) -> float:
        return self.top[0].probability


@dataclass(frozen=True)
class Predictions:
    """The predictions of every readable image in the order found, the files left out and why,
    the model's class names and where the model came from (``label``)."""

    results: tuple[ImagePrediction, ...]
    skipped: tuple[Skipped, ...]
    classes: tuple[str, ...]
    label: str
    k: int


def find_images(paths: Sequence[Path | str]) -> tuple[list[Path], list[Skipped]]:
    """The image files of ``paths``: a file as given (whatever its suffix: decoding tells), a folder
    walked recursively for image suffixes. A missing path is skipped with the reason."""
    found: list[Path] = []
    skipped: list[Skipped] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += image_files(path)
        elif path.is_file():
            found.append(path)
        else:
            skipped.append(Skipped(str(path), "no such file or folder"))
    return list(dict.fromkeys(found)), skipped


def predict(
    source: ModelSource,
    paths: Sequence[Path | str],
    *,
    k: int = 5,
    batch_size: int = BATCH_SIZE,
    thumbnails: int = 0,
    state: TaskState | None = None,
) -> Predictions:
    """Predict the class of every image in ``paths`` (files, and folders walked recursively) with
    ``source``'s model, on the device its parameters are on, ``batch_size`` images at a time;
    with ``thumbnails`` each result carries a picture of the model's input that many pixels wide.

    Reports ("predicting", images done of images found) through ``state`` and stops at its
    request (Cancelled). DataError when ``paths`` hold no image file at all.
    """
    state = state or quiet()
    files, skipped = find_images(paths)
    if not files:
        named = ", ".join(str(p) for p in paths) or "nothing given"
        raise DataError(f"no image files in {named} ({', '.join(IMAGE_EXTENSIONS)})")
    results: list[ImagePrediction] = []
    state.report(0, len(files), "predicting")
    with torch.inference_mode():
        for chunk, decoded in _decoded_batches(source, files, batch_size, thumbnails):
            state.check("predicting")
            pairs = list(zip(chunk, decoded, strict=True))
            readable = [(p, *d) for p, d in pairs if not isinstance(d[0], str)]
            skipped += [Skipped(str(p), d[0]) for p, d in pairs if isinstance(d[0], str)]
            if readable:
                tops = _predict_batch(source, [a for _, a, _ in readable], k)
                results += [ImagePrediction(p, top, thumb)
                            for (p, _, thumb), top in zip(readable, tops, strict=True)]  # fmt: skip
            state.report(len(results) + len(skipped), len(files), "predicting")
    return Predictions(tuple(results), tuple(skipped), tuple(source.classes), source.label, k)


def _predict_batch(
    source: ModelSource, arrays: list[np.ndarray], k: int
) -> list[tuple[Prediction, ...]]:
    """The top ``k`` of a batch of C×H×W uint8 arrays, normalised and computed on the device the
    model's parameters are on."""
    images = torch.from_numpy(np.stack(arrays)).to(model_device(source.model), non_blocking=True)
    logits = source.model(normalise_batch(images, source.mean, source.std))
    return top_predictions(logits.flatten(1), k, source.classes)


def _decode(
    path: Path, channels: int, size: tuple[int, int], thumbnails: int
) -> tuple[np.ndarray | str, np.ndarray | None]:
    array = decode_or_reason(path, channels, size)
    if isinstance(array, str) or not thumbnails:
        return array, None
    return array, thumbnail(array, thumbnails)


def _decoded_batches(
    source: ModelSource, files: list[Path], batch_size: int, thumbnails: int
) -> Iterator[tuple[list[Path], list[tuple[np.ndarray | str, np.ndarray | None]]]]:
    """(files, (decoded array or reason, thumbnail) of each) per batch; the next batch decodes on
    the pool threads while the caller computes this one."""
    channels, height, width = source.input_shape
    chunks = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[list[Path], list[Future]]] = deque()

        def submit(chunk: list[Path]) -> None:
            futures = [
                pool.submit(_decode, p, channels, (height, width), thumbnails) for p in chunk
            ]
            pending.append((chunk, futures))

        ahead = iter(chunks)
        for chunk in (next(ahead, None), next(ahead, None)):
            if chunk is not None:
                submit(chunk)
        try:
            while pending:
                chunk, futures = pending.popleft()
                decoded = [f.result() for f in futures]
                following = next(ahead, None)
                if following is not None:
                    submit(following)
                yield chunk, decoded
        finally:
            for _, futures in pending:
                for future in futures:
                    future.cancel()


def csv_text(predictions: Predictions, rows: Sequence[ImagePrediction] | None = None) -> str:
    """The predictions as CSV: path, predicted class, confidence, then class and probability of
    each of the top k (top1_class, top1_prob, ...). ``rows``: a subset (a filtered table)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    k = predictions.k
    header = ["path", "predicted", "confidence"]
    header += [f"top{i}_{what}" for i in range(1, k + 1) for what in ("class", "prob")]
    writer.writerow(header)
    for result in predictions.results if rows is None else rows:
        cells = [str(result.path), result.predicted, f"{result.confidence:.6f}"]
        for prediction in result.top:
            cells += [prediction.name, f"{prediction.probability:.6f}"]
        cells += [""] * (len(header) - len(cells))
        writer.writerow(cells)
    return out.getvalue()


def write_csv(
    predictions: Predictions, path: Path | str, rows: Sequence[ImagePrediction] | None = None
) -> None:
    """Write ``csv_text`` to ``path`` atomically (a crash leaves the old file or none)."""
    atomic_write_text(path, csv_text(predictions, rows))
