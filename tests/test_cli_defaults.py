"""What the command line takes for granted: export's format from the file's extension, inspect's
folder beside the image, and the epoch lines saying which epoch is the best so far."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnstudio import Project
from cnnstudio.cli import main
from cnnstudio.errors import ExportError
from cnnstudio.export import format_of
from tests.test_train import colour_folder, tiny_model


@pytest.mark.parametrize(
    "name, format",
    [("model.onnx", "onnx"), ("w.safetensors", "safetensors"), ("m.pt2", "pt2"),
     ("m.PT", "torchscript"), ("dir/x.onnx", "onnx")],
)  # fmt: skip
def test_the_extension_names_the_format(name: str, format: str) -> None:
    assert format_of(name) == format


def test_an_unknown_or_ambiguous_extension_is_a_clear_error() -> None:
    with pytest.raises(ExportError, match=r"x\.bin: no export format has the extension '\.bin'"
                       r".*\.safetensors \(safetensors\), \.onnx \(onnx\)"):  # fmt: skip
        format_of("x.bin")
    with pytest.raises(ExportError, match=r"a \.py file can be python or training-script"):
        format_of("model.py")
    with pytest.raises(ExportError, match="a project folder needs --format project"):
        format_of("folder")


def test_export_without_format_takes_it_from_out(tmp_path: Path, capsys) -> None:
    project = Project(model=tiny_model(), name="fresh", path=tmp_path / "fresh")
    project.save()
    out = tmp_path / "fresh.safetensors"
    assert main(["export", str(project.path), "--out", str(out), "--untrained"]) == 0
    assert f"wrote {out} (" in capsys.readouterr().out and out.is_file()
    bad = tmp_path / "fresh.bin"
    assert main(["export", str(project.path), "--out", str(bad), "--untrained"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and ".onnx (onnx)" in error and not bad.exists()


@pytest.mark.slow
def test_train_marks_the_best_epoch_and_inspect_writes_beside_the_image(
    tmp_path: Path, capsys
) -> None:
    from cnnstudio.data import DataSettings
    from cnnstudio.train_settings import check_training

    images = colour_folder(tmp_path / "images")
    training = check_training({"epochs": 2, "batch_size": 16, "lr": 0.01, "workers": 0})
    project = Project(model=tiny_model(), name="tiny", training=training, path=tmp_path / "p",
                      data=DataSettings(source="folder", path=str(images)))  # fmt: skip
    project.save()
    assert main(["train", str(project.path)]) == 0
    epochs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert epochs[0].endswith(" (best so far)") and "*" not in "".join(epochs)
    image = images / "c2" / "0.png"
    assert main(["inspect", str(project.path), str(image)]) == 0
    folder = images / "c2" / "0-inspect"
    assert f"pictures in {folder} (run" in capsys.readouterr().out
    assert (folder / "gradcam.png").is_file()
