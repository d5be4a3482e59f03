"""Predicting with a trained model: the engine (files, folders, unreadable files, top-k, CSV) and
the ``predict`` command, called in-process."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnstudio import build_model
from cnnstudio.errors import Cancelled, DataError
from cnnstudio.inspect import preprocess
from cnnstudio.model_source import ModelSource
from cnnstudio.predict import csv_text, find_images, predict, write_csv
from cnnstudio.progress import TaskState
from tests.data_factory import rgb
from tests.helpers import spec_of

CLASSES = ("red", "green", "blue")


def tiny_source() -> ModelSource:
    torch.manual_seed(0)
    spec = spec_of(
        ("conv1", "Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}),
        ("relu1", "ReLU", {}),
        ("pool", "AdaptiveAvgPool2d", {"output_size": 2}),
        ("flat", "Flatten", {}),
        ("fc", "Linear", {"out_features": 3}),
        input_shape=(3, 16, 16),
        num_classes=3,
    )
    return ModelSource(model=build_model(spec).eval(), input_shape=(3, 16, 16), spec=spec,
                       classes=CLASSES, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3),
                       label="tiny (test)")  # fmt: skip


def mixed_folder(root: Path) -> dict[str, Path]:
    """RGB, grayscale and RGBA images in nested folders, a corrupt file, a hidden file and notes."""
    (root / "a" / "b").mkdir(parents=True)
    files = {
        "rgb": root / "rgb.png",
        "gray": root / "a" / "gray.jpg",
        "rgba": root / "a" / "b" / "alpha.png",
        "corrupt": root / "a" / "broken.png",
    }
    Image.fromarray(rgb(1, (30, 20))).save(files["rgb"])
    Image.fromarray(rgb(2, (16, 16))[:, :, 0]).save(files["gray"])
    alpha = np.dstack([rgb(3, (12, 18)), np.full((18, 12), 128, np.uint8)])
    Image.fromarray(alpha, "RGBA").save(files["rgba"])
    files["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n this is no image")
    (root / ".hidden.png").write_bytes(b"hidden")
    (root / "notes.txt").write_text("not an image")
    return files


def test_folders_are_walked_and_unreadable_files_listed(tmp_path: Path) -> None:
    files = mixed_folder(tmp_path / "images")
    done = predict(tiny_source(), [tmp_path / "images", tmp_path / "missing.png"], k=2)
    assert sorted(r.path for r in done.results) == sorted(
        [files["rgb"], files["gray"], files["rgba"]]
    )
    reasons = {Path(s.path).name: s.reason for s in done.skipped}
    assert set(reasons) == {"broken.png", "missing.png"}
    assert reasons["broken.png"].startswith("not an image")
    assert reasons["missing.png"] == "no such file or folder"
    assert done.classes == CLASSES and done.label == "tiny (test)"


def test_probabilities_and_top_k_match_the_model_on_one_image(tmp_path: Path) -> None:
    files = mixed_folder(tmp_path)
    source = tiny_source()
    done = predict(source, [tmp_path], k=3, batch_size=2)
    for result in done.results:
        assert len(result.top) == 3
        assert sum(p.probability for p in result.top) == pytest.approx(1.0, abs=1e-5)
        probabilities = [p.probability for p in result.top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert {p.name for p in result.top} == set(CLASSES)
        # the same preprocessing as the Inspect view (and validation): same numbers
        with torch.inference_mode():
            x = preprocess(result.path, source.input_shape, source.mean, source.std)
            expected = torch.softmax(source.model(x), 1)[0]
        assert result.confidence == pytest.approx(float(expected.max()), abs=1e-5)
        assert result.index == int(expected.argmax()) and result.predicted == CLASSES[result.index]
    assert files["gray"] in {r.path for r in done.results}
    assert len(predict(source, [files["rgb"]], k=10).results[0].top) == 3  # k over the classes


def test_progress_reaches_the_total_and_a_stop_cancels(tmp_path: Path) -> None:
    for i in range(10):
        Image.fromarray(rgb(i, (16, 16))).save(tmp_path / f"{i}.png")
    reports = []
    predict(tiny_source(), [tmp_path], batch_size=4, state=TaskState(reports.append))
    assert (reports[0].done, reports[-1].done, reports[-1].total) == (0, 10, 10)
    assert all(r.what == "predicting" for r in reports)
    state = TaskState(lambda report: state.stop() if report.done >= 4 else None)
    with pytest.raises(Cancelled, match="predicting cancelled"):
        predict(tiny_source(), [tmp_path], batch_size=4, state=state)


def test_no_images_names_the_paths(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("text")
    with pytest.raises(DataError, match=f"no image files in {tmp_path}"):
        predict(tiny_source(), [tmp_path])


def test_a_file_named_twice_is_predicted_once(tmp_path: Path) -> None:
    Image.fromarray(rgb(0, (8, 8))).save(tmp_path / "x.png")
    files, skipped = find_images([tmp_path / "x.png", tmp_path])
    assert files == [tmp_path / "x.png"] and skipped == []


def test_csv_holds_every_column_and_is_written_atomically(tmp_path: Path) -> None:
    mixed_folder(tmp_path / "images")
    done = predict(tiny_source(), [tmp_path / "images"], k=2)
    target = tmp_path / "out" / "predictions.csv"
    write_csv(done, target)
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert rows[0] == ["path", "predicted", "confidence", "top1_class", "top1_prob",
                       "top2_class", "top2_prob"]  # fmt: skip
    assert len(rows) == 1 + len(done.results)
    for row, result in zip(rows[1:], done.results, strict=True):
        assert row[0] == str(result.path) and row[1] == row[3] == result.predicted
        assert float(row[2]) == pytest.approx(result.confidence, abs=1e-6)
        assert float(row[2]) >= float(row[6])
    assert [p.name for p in target.parent.iterdir()] == ["predictions.csv"]  # no temporary left
    subset = csv_text(done, done.results[:1]).splitlines()
    assert len(subset) == 2 and subset[1].startswith(str(done.results[0].path))
