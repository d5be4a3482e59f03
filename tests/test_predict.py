"""Predicting with a trained model: the engine (files, folders, unreadable files, top-k, CSV) and
the ``predict`` command, called in-process."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnstudio import build_model
from cnnstudio.errors import Cancelled, DataError
from cnnstudio.images import NOT_AN_IMAGE
from cnnstudio.inspect import preprocess
from cnnstudio.model_source import ModelSource
from cnnstudio.predict import csv_text, find_images, predict, write_csv
from cnnstudio.progress import TaskState
from tests.data_factory import rgb
from tests.helpers import spec_of
from tests.test_hostile_fuzz import damaged_images

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


# The command, in-process


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    """A saved project whose run is the tiny model's weights, imported (no training)."""
    from cnnstudio import Project
    from cnnstudio.runs import import_weights

    source = tiny_source()
    project = Project(model=source.spec, name="tiny", path=tmp_path / "proj")
    project.save()
    torch.save(source.model.state_dict(), tmp_path / "weights.pt")
    import_weights(project, tmp_path / "weights.pt", source.mean, source.std, list(CLASSES))
    return tmp_path / "proj"


def test_predict_command_prints_the_table_and_writes_the_csv(imported, tmp_path, capsys) -> None:
    from cnnstudio.cli import main

    files = mixed_folder(tmp_path / "images")
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(imported), str(tmp_path / "images"), "--top", "2",
                 "--csv", str(out)]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["path", "class", "confidence", "top", "2"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert set(rows) == {str(files[n]) for n in ("rgb", "gray", "rgba")}
    for row in rows.values():
        assert row[1] in CLASSES and row[2].endswith("%") and row[3] == row[1]
    assert lines[4] == f"skipped: {files['corrupt']}: {NOT_AN_IMAGE}"
    assert lines[5].startswith("3 images predicted with run ") and "1 unreadable" in lines[5]
    assert lines[6] == f"wrote {out}"
    assert len(out.read_text().splitlines()) == 4


def test_predict_command_errors_are_one_line(imported, tmp_path, capsys) -> None:
    from cnnstudio import Project
    from cnnstudio.cli import main

    Project(model=tiny_source().spec, name="fresh", path=tmp_path / "fresh").save()
    Image.fromarray(rgb(0, (8, 8))).save(tmp_path / "x.png")
    assert main(["predict", str(tmp_path / "fresh"), str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no trained run yet" in error
    assert f"python -m cnnstudio train {tmp_path / 'fresh'}" in error
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(imported), str(tmp_path / "empty"), "nowhere"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"no image files in {tmp_path / 'empty'}, nowhere" in error
    (tmp_path / "bad.png").write_text("text")
    assert main(["predict", str(imported), str(tmp_path / "bad.png")]) == 2
    captured = capsys.readouterr()
    assert "none of the 1 files could be read" in captured.err
    assert f"skipped: {tmp_path / 'bad.png'}: not an image" in captured.out


@pytest.mark.slow
def test_predicting_the_validation_images_scores_what_evaluation_scores(tmp_path: Path) -> None:
    """The same preprocessing as validation: predict over a trained run's validation files gives
    the accuracy that evaluating the run gives."""
    from cnnstudio import Project
    from cnnstudio.data import DataSettings, load_dataset
    from cnnstudio.model_source import from_run
    from cnnstudio.runs import find_run
    from cnnstudio.train import Trainer, evaluate_run
    from cnnstudio.train_settings import check_training
    from tests.test_train import colour_folder, tiny_model

    images = colour_folder(tmp_path / "images", per_class=12, size=20)
    training = check_training({"epochs": 1, "batch_size": 16, "lr": 0.01, "workers": 0})
    project = Project(model=tiny_model(), name="tiny", training=training, path=tmp_path / "proj",
                      data=DataSettings(source="folder", path=str(images)))  # fmt: skip
    project.save()
    assert type(Trainer(project).run()).__name__ == "Finished"
    source = from_run(find_run(project.runs_dir))
    dataset = load_dataset(source.data, source.input_shape)
    val = dataset.splits["val"].tolist()
    done = predict(source, [dataset.paths[i] for i in val], k=4)
    pairs = list(zip(done.results, (int(dataset.labels[i]) for i in val), strict=True))
    right = sum(r.index == label for r, label in pairs)
    loss = np.mean([-np.log(next(p.probability for p in r.top if p.index == label))
                    for r, label in pairs])  # fmt: skip
    evaluation = evaluate_run(project, device="cpu")
    assert right / len(val) == pytest.approx(evaluation.accuracy)
    assert loss == pytest.approx(evaluation.loss, rel=1e-4)


def test_thumbnails_picture_what_the_model_saw(tmp_path: Path) -> None:
    files = mixed_folder(tmp_path)
    done = predict(tiny_source(), [tmp_path], thumbnails=8)
    by_path = {r.path: r.thumbnail for r in done.results}
    assert all(t.shape == (8, 8, 3) and t.dtype == np.uint8 for t in by_path.values())
    gray = by_path[files["gray"]]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert predict(tiny_source(), [files["rgb"]]).results[0].thumbnail is None


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(images=st.lists(damaged_images(), min_size=1, max_size=4))
def test_damaged_files_are_predicted_or_listed_never_a_crash(
    images: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("damaged")
    for i, data in enumerate(images):
        (root / f"{i}.png").write_bytes(data)
    done = predict(tiny_source(), [root])
    named = sorted([str(r.path) for r in done.results] + [s.path for s in done.skipped])
    assert named == sorted(str(root / f"{i}.png") for i in range(len(images)))
    assert all(s.reason for s in done.skipped)
    assert all(0.0 <= r.confidence <= 1.0 for r in done.results)
