"""The model follows its data: misfits between a model and its data found as data, the model
adapted (classes, input shape), and training refused with one clear line on a class misfit."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnstudio import cli, load_project, new_project
from cnnstudio.analysis import analyze
from cnnstudio.cli_args import EXIT_INVALID
from cnnstudio.data import DataSettings
from cnnstudio.fit import DataNeeds, adaptation, data_needs, fitted, misfits, output_layer
from cnnstudio.templates import list_templates
from tests.data_factory import image_folder

TEN = tuple(f"c{i}" for i in range(10))


def folder_data(root: Path, classes=TEN, size=(8, 8)) -> DataSettings:
    return DataSettings(source="folder", path=str(image_folder(root, classes, 2, size)))


def saved_project(tmp_path: Path, classes: int, data: DataSettings, template="simple-cnn"):
    project = new_project(template, classes, (3, 16, 16), path=tmp_path / "p", data=data)
    project.save()
    return project


def test_misfits_name_classes_channels_and_size() -> None:
    spec = new_project("simple-cnn", 4, (3, 32, 32)).model
    found = {m.what: m for m in misfits(spec, DataNeeds(TEN, (1, 8, 8)))}
    assert set(found) == {"classes", "channels", "image size"}
    assert (found["classes"].model, found["classes"].data) == (4, 10)
    assert "outputs 4 classes but the data has 10 (c0, c1, c2, …)" in found["classes"].message
    assert [m.what for m in misfits(spec, DataNeeds(TEN, (1, 8, 8))) if m.blocks_training] == [
        "classes"
    ]
    assert misfits(spec, DataNeeds(TEN[:4], (3, 32, 32))) == []


@pytest.mark.parametrize("template", list_templates())
def test_fitted_model_matches_the_data_and_stays_valid(template: str) -> None:
    spec = new_project(template, 4).model
    needs = DataNeeds(TEN, (1, 16, 16))
    after = fitted(spec, needs)
    assert after.num_classes == 10 and output_layer(after).params["out_features"] == 10
    assert analyze(after).valid
    left = {m.what for m in misfits(after, needs)}
    if spec.nodes[0].kind == "Backbone":  # a pretrained network keeps its own input
        assert after.input_shape == spec.input_shape
    else:
        assert "classes" not in left and "channels" not in left


def test_fitted_keeps_a_size_the_model_cannot_take() -> None:
    spec = new_project("lenet5", 4, (1, 28, 28)).model  # two 5×5 convolutions and two poolings
    after = fitted(spec, DataNeeds(TEN, (3, 4, 4)))
    assert after.input_shape == (3, 28, 28) and after.num_classes == 10
    assert adaptation(spec, after) == "classes 4 → 10 (fc3), input 1×28×28 → 3×28×28"


def test_data_needs_reads_classes_and_shape_of_a_folder(tmp_path: Path) -> None:
    data = folder_data(tmp_path / "data", ("a", "b", "c"), (12, 10))
    needs = data_needs(data)
    assert needs == DataNeeds(("a", "b", "c"), (3, 10, 12))


@pytest.mark.parametrize("model_classes", [4, 12])
def test_train_refuses_a_class_misfit_with_one_line(tmp_path: Path, capsys, model_classes) -> None:
    project = saved_project(tmp_path, model_classes, folder_data(tmp_path / "data"))
    code = cli.main(["train", str(project.path), "--epochs", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == EXIT_INVALID and err.count("\n") == 1, err
    assert f"the model outputs {model_classes} classes but the data has 10" in err
    assert "cnnstudio adapt" in err and "Traceback" not in err
    assert not (project.path / "runs").exists() or not any((project.path / "runs").iterdir())


def test_adapt_command_makes_the_model_follow_the_data(tmp_path: Path, capsys) -> None:
    project = saved_project(tmp_path, 4, folder_data(tmp_path / "data"))
    assert cli.main(["adapt", str(project.path)]) == 0
    assert "classes 4 → 10 (fc2), input 3×16×16 → 3×8×8" in capsys.readouterr().out
    model = load_project(project.path).model
    assert model.num_classes == 10 and model.input_shape == (3, 8, 8)
    assert misfits(model, data_needs(project.data)) == []
    assert cli.main(["adapt", str(project.path)]) == 0
    assert "already fits" in capsys.readouterr().out


def test_lr_find_refuses_a_class_misfit_with_one_line(tmp_path: Path, capsys) -> None:
    project = saved_project(tmp_path, 4, folder_data(tmp_path / "data"))
    code = cli.main(["lr-find", str(project.path), "--steps", "2", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err
    assert "the model outputs 4 classes but the data has 10" in err
