"""Class display names: a folder called n01440764 shown as "tench" in the project file, the run's
model source, the command line's outputs and the exports; the folder name stays the identity."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from cnnstudio import ProjectError, build_model, cli, load_project, new_project
from cnnstudio.data import DataSettings, display_names, rename_class
from cnnstudio.export import export, export_source
from cnnstudio.model_source import from_run, untrained
from cnnstudio.runs import import_weights, read_evaluation
from tests.data_factory import image_folder

FOLDERS = ("n01440764", "n02102040", "n02979186")


def named_project(tmp_path: Path, names: dict[str, str]):
    data = DataSettings(
        source="folder",
        path=str(image_folder(tmp_path / "data", FOLDERS, 3, (16, 16))),
        class_names=names,
    )
    project = new_project("simple-cnn", 3, (3, 16, 16), path=tmp_path / "p", data=data)
    project.save()
    return project


def imported_run(project) -> Path:
    """A run of the project's model from a weights file (no training), classes by folder."""
    weights = project.path / "weights.pt"
    torch.save(build_model(project.model, pretrained=False).state_dict(), weights)
    return import_weights(project, weights, (0.5,) * 3, (0.25,) * 3, list(FOLDERS))


def test_display_names_follow_the_mapping_and_keep_the_rest() -> None:
    settings = DataSettings(class_names={"n01440764": "tench"})
    assert display_names(FOLDERS, settings) == ["tench", "n02102040", "n02979186"]
    assert display_names(FOLDERS, None) == list(FOLDERS)


def test_rename_checks_names_and_back_to_the_folder_name_drops_it() -> None:
    settings = rename_class(DataSettings(), FOLDERS, "n01440764", "  tench ")
    assert settings.class_names == {"n01440764": "tench"}
    with pytest.raises(ProjectError, match=r"data\.class_names\.n02102040: 'tench' is already"):
        rename_class(settings, FOLDERS, "n02102040", "tench")
    with pytest.raises(ProjectError, match=r"data\.class_names\.n02102040: 'n02979186' is alr"):
        rename_class(settings, FOLDERS, "n02102040", "n02979186")
    with pytest.raises(ProjectError, match=r"data\.class_names\.n02102040: a class needs a name"):
        rename_class(settings, FOLDERS, "n02102040", "  ")
    assert rename_class(settings, FOLDERS, "n01440764", "n01440764").class_names == {}


def test_project_round_trip_keeps_the_names(tmp_path: Path) -> None:
    project = named_project(tmp_path, {"n01440764": "tench"})
    data = json.loads(project.file.read_text())["data"]
    assert data["class_names"] == {"n01440764": "tench"}
    assert load_project(project.path).data == project.data
    unnamed = replace(project.data, class_names={})
    assert "class_names" not in unnamed.to_dict()  # files without renames read as before


@pytest.mark.parametrize(
    ("names", "where", "fragment"),
    [
        ({"n01440764": ""}, "data.class_names.n01440764", "non-empty display name"),
        ({"n01440764": 3}, "data.class_names.n01440764", "as text, got 3"),
        ({"a": "fish", "b": "fish"}, "data.class_names.b", "'fish' is already the name of 'a'"),
        (["tench"], "data.class_names", "must be an object of folder name: display name"),
    ],
)
def test_bad_names_in_a_project_file_name_the_place(tmp_path, names, where, fragment) -> None:
    project = new_project(path=tmp_path)
    data = project.to_dict()
    data["data"]["class_names"] = names
    (tmp_path / "project.json").write_text(json.dumps(data))
    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path)
    assert caught.value.where == where and fragment in caught.value.message


def test_a_run_shows_the_projects_current_names(tmp_path: Path) -> None:
    project = named_project(tmp_path, {})
    run = imported_run(project)
    project.data = rename_class(project.data, FOLDERS, "n01440764", "tench")
    project.save()
    source = from_run(run, project=project)
    assert source.classes == ("tench", "n02102040", "n02979186")
    assert source.class_ids == FOLDERS
    assert from_run(run).classes == FOLDERS  # without the project: the names it trained with
    assert untrained(project).classes[0] == "tench"


def test_inspect_evaluate_and_data_print_the_display_name(tmp_path: Path, capsys) -> None:
    project = named_project(tmp_path, {"n01440764": "tench", "n02102040": "springer"})
    imported_run(project)
    image = tmp_path / "x.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(image)
    args = ["inspect", str(project.path), str(image), "--top", "3", "--out", str(tmp_path / "o")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "tench" in out and "springer" in out and "n01440764" not in out
    assert cli.main(["evaluate", str(project.path)]) == 0
    out = re.sub(r"\S*/\S*", "", capsys.readouterr().out)  # the mistakes' files keep their folders
    assert "tench" in out and "springer" in out and "n01440764" not in out
    assert cli.main(["data", str(project.path)]) == 0
    out = capsys.readouterr().out
    assert "tench" in out and "n01440764" not in out and "n02979186" in out


def test_stored_evaluation_is_shown_with_current_names(tmp_path: Path) -> None:
    from cnnstudio.runs import write_evaluation
    from cnnstudio.train import evaluate_run

    project = named_project(tmp_path, {})
    run = imported_run(project)
    write_evaluation(run, evaluate_run(project))  # as the run evaluated itself: folder names
    shown = read_evaluation(run, DataSettings(class_names={"n02979186": "iPod"}))
    assert shown.classes == ["n01440764", "n02102040", "iPod"]
    assert shown.per_class[2].name == "iPod"
    assert read_evaluation(run).classes == list(FOLDERS)


def test_safetensors_metadata_carries_the_display_names(tmp_path: Path) -> None:
    project = named_project(tmp_path, {"n01440764": "tench"})
    imported_run(project)
    export(export_source(project, None), "safetensors", tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as file:
        assert json.loads(file.metadata()["classes"])[0] == "tench"


@pytest.mark.slow  # each export is checked in a fresh Python
def test_generated_code_carries_the_display_names(tmp_path: Path) -> None:
    project = named_project(tmp_path, {"n01440764": "tench"})
    imported_run(project)
    source = export_source(project, None)
    export(source, "python", tmp_path / "model.py")
    assert '"tench"' in (tmp_path / "model.py").read_text()
    export(source, "training-script", tmp_path / "train.py")
    script = (tmp_path / "train.py").read_text()
    assert 'CLASSES = ["tench", "n02102040", "n02979186"]' in script
    assert 'CLASS_FOLDERS = ["n01440764", "n02102040", "n02979186"]' in script


@pytest.mark.slow
def test_onnx_metadata_carries_the_display_names(tmp_path: Path) -> None:
    import onnx

    project = named_project(tmp_path, {"n01440764": "tench"})
    imported_run(project)
    export(export_source(project, None), "onnx", tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["classes"])[0] == "tench"
