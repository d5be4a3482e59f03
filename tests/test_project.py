"""Project files: round trip, atomic save, migrations, and clear errors for malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnstudio import ProjectError, load_project, new_project
from cnnstudio import project as project_module


def saved(tmp_path: Path, data: dict | str) -> Path:
    text = data if isinstance(data, str) else json.dumps(data)
    (tmp_path / "project.json").write_text(text, encoding="utf-8")
    return tmp_path


def valid_data() -> dict:
    return new_project("lenet5").to_dict()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    project = new_project("resnet-small", num_classes=4, input_shape=(3, 48, 48), path=tmp_path)
    project.training["epochs"] = 3
    project.save()
    loaded = load_project(tmp_path)
    assert loaded.model == project.model
    assert loaded.training == project.training and loaded.data == project.data
    assert loaded.name == tmp_path.name and loaded.path == tmp_path
    assert loaded.runs_dir == tmp_path / "runs"
    assert load_project(tmp_path / "project.json").model == project.model


def test_file_records_format_and_schema(tmp_path: Path) -> None:
    new_project(path=tmp_path).save()
    data = json.loads((tmp_path / "project.json").read_text())
    assert data["format"] == "cnnstudio-project"
    assert data["schema_version"] == project_module.SCHEMA_VERSION


def test_template_training_hints_reach_the_project() -> None:
    project = new_project("efficientnet_b0-finetune")
    assert project.training["backbone_lr"] == 1e-5 and project.training["lr"] == 1e-3


def test_save_is_atomic_and_a_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    project = new_project(path=tmp_path)
    project.save()
    before = (tmp_path / "project.json").read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", broken_replace)
    project.name = "changed"
    with pytest.raises(ProjectError, match="cannot save: No space left on device"):
        project.save()
    assert (tmp_path / "project.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["project.json"]  # no temporary file left


def test_save_without_folder_says_so() -> None:
    with pytest.raises(ProjectError, match="no folder yet"):
        new_project().save()


def test_missing_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"no project here: project.json not found"):
        load_project(tmp_path / "nowhere")


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    saved(tmp_path, '{\n  "schema_version": 1,\n  "model": {\n}}}')
    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path)
    assert caught.value.path == tmp_path / "project.json"
    assert caught.value.where == "line 4, column 3"
    assert str(caught.value) == f"{tmp_path / 'project.json'}, line 4, column 3: Extra data"


def test_binary_file(tmp_path: Path) -> None:
    (tmp_path / "project.json").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ProjectError, match="not a text file"):
        load_project(tmp_path)


@pytest.mark.parametrize(
    ("mutate", "where", "message"),
    [
        (lambda d: d["model"]["nodes"][3].__setitem__("params", [1]), "model.nodes[3].params",
         "must be an object of name: value, got list"),
        (lambda d: d["model"]["nodes"][0].pop("kind"), "model.nodes[0]", "'kind' is missing"),
        (lambda d: d["model"]["nodes"][1].__setitem__("id", 7), "model.nodes[1].id",
         "must be text, got int"),
        (lambda d: d["model"]["nodes"][2].__setitem__("param", {}), "model.nodes[2]",
         "unknown key 'param' (did you mean 'params'?)"),
        (lambda d: d["model"].__setitem__("nodes", {}), "model.nodes",
         "must be a list of layers, got dict"),
        (lambda d: d["model"].__setitem__("input_shape", [3, 32]), "model.input_shape",
         "must be three integers [channels, height, width], got [3, 32]"),
        (lambda d: d["model"]["nodes"][0].__setitem__("inputs", "conv1"), "model.nodes[0].inputs",
         "must be a list of layer ids, got 'conv1'"),
        (lambda d: d.__setitem__("training", 5), "training", "must be an object, got int"),
        (lambda d: d["training"].__setitem__("optimiser", "sgd"), "training",
         "unknown setting 'optimiser' (did you mean 'optimizer'?)"),
        (lambda d: d["training"].__setitem__("device", "gpu0"), "training.device",
         "must be text such as 'auto', 'cpu', 'cuda', 'cuda:1', 'mps', got 'gpu0' (text)"),
        (lambda d: d["data"]["augment"].__setitem__("rotation", "lots"), "data.augment.rotation",
         "must be a number from 0 to 180, got 'lots' (text)"),
        (lambda d: d.pop("model"), None, "'model' is missing (the layers of the network)"),
        (lambda d: d.__setitem__("schema_version", "one"), "schema_version",
         "schema_version must be a whole number from 1, got 'one'"),
    ],
)  # fmt: skip
def test_malformed_project_names_the_place(tmp_path: Path, mutate, where, message) -> None:
    data = valid_data()
    mutate(data)
    saved(tmp_path, data)
    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path)
    assert caught.value.where == where
    assert caught.value.message == message
    assert caught.value.path == tmp_path / "project.json"


def test_a_bad_layer_still_loads_so_it_can_be_fixed(tmp_path: Path) -> None:
    data = valid_data()
    data["model"]["nodes"][0]["params"]["out_channels"] = -3
    saved(tmp_path, data)
    project = load_project(tmp_path)
    assert project.model.nodes[0].params["out_channels"] == -3


def test_future_version_is_refused_and_the_file_is_untouched(tmp_path: Path) -> None:
    data = {**valid_data(), "schema_version": project_module.SCHEMA_VERSION + 1}
    saved(tmp_path, data)
    before = (tmp_path / "project.json").read_bytes()
    with pytest.raises(ProjectError, match="written by a newer CNN Studio"):
        load_project(tmp_path)
    assert (tmp_path / "project.json").read_bytes() == before


def test_not_a_project(tmp_path: Path) -> None:
    saved(tmp_path, {"format": "something-else", "schema_version": 1})
    with pytest.raises(ProjectError, match="not a CNN Studio project"):
        load_project(tmp_path)
    saved(tmp_path, "[1, 2]")
    with pytest.raises(ProjectError, match="one JSON object, got list"):
        load_project(tmp_path)


def test_older_schema_is_migrated_step_by_step(tmp_path: Path, monkeypatch) -> None:
    """A schema bump adds a migration; files of every older version then load through the chain."""
    current = project_module.SCHEMA_VERSION
    monkeypatch.setattr(project_module, "SCHEMA_VERSION", current + 2)

    def rename_layers(data: dict) -> dict:  # pretend schema `current` called nodes "layers"
        model = dict(data["model"])
        model["nodes"] = model.pop("layers")
        data["model"] = model
        return data

    def rename_learning_rate(data: dict) -> dict:  # pretend the next one said "learning_rate"
        training = dict(data["training"])
        training["lr"] = training.pop("learning_rate")
        data["training"] = training
        return data

    monkeypatch.setitem(project_module.MIGRATIONS, current, rename_layers)
    monkeypatch.setitem(project_module.MIGRATIONS, current + 1, rename_learning_rate)
    data = {**valid_data(), "schema_version": current}
    data["model"]["layers"] = data["model"].pop("nodes")
    data["training"]["learning_rate"] = data["training"].pop("lr") * 50
    saved(tmp_path, data)
    project = load_project(tmp_path)
    assert len(project.model.nodes) == 12 and project.training["lr"] == 0.05
    assert project.to_dict()["schema_version"] == current + 2


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip


@st.composite
def damaged_projects(draw):
    """A valid project file with one value somewhere replaced by arbitrary JSON."""
    data = valid_data()
    containers = []

    def walk(node):
        if isinstance(node, dict):
            containers.extend((node, key) for key in node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            containers.extend((node, i) for i in range(len(node)))
            for value in node:
                walk(value)

    walk(data)
    container, key = draw(st.sampled_from(containers))
    container[key] = draw(JSON)
    return data


@pytest.mark.slow
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(damaged_projects())
def test_any_damaged_file_loads_or_gives_a_project_error(tmp_path: Path, data: dict) -> None:
    from cnnstudio import analyze

    saved(tmp_path, data)
    try:
        project = load_project(tmp_path)
    except ProjectError as error:
        assert error.path == tmp_path / "project.json" and error.message
        return
    analyze(project.model)  # never raises: problems come back as issues
    project.save()  # what loads saves, and reads back the same
    again = load_project(tmp_path)
    assert again.model == project.model and again.data == project.data
    assert again.training == project.training


@pytest.mark.parametrize("where", ["top", "model"])
def test_json_nested_too_deeply_is_a_project_error(tmp_path: Path, where: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    text = (
        deep
        if where == "top"
        else json.dumps(valid_data()).replace('"nodes"', f'"x": {deep}, "nodes"', 1)
    )
    saved(tmp_path, text)
    with pytest.raises(ProjectError, match="nested too deeply") as caught:
        load_project(tmp_path)
    assert caught.value.path == tmp_path / "project.json"


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("name", ["mean", "std"])
def test_stored_statistics_must_be_finite(tmp_path: Path, name: str, bad: str) -> None:
    data = valid_data()
    data["data"].update(mean=[0.5], std=[0.25], stats_key="k")
    text = json.dumps(data).replace(
        f'"{name}": [{0.5 if name == "mean" else 0.25}]', f'"{name}": [{bad}]'
    )
    assert bad in text
    saved(tmp_path, text)
    with pytest.raises(ProjectError, match="must be finite numbers") as caught:
        load_project(tmp_path)
    assert caught.value.where == f"data.{name}"
    assert "delete data.mean and data.std" in str(caught.value)
