"""Hostile input (issue 15): whatever a user types or opens ends in one clear message naming the
place, an engine error or an analysis issue on the layer, never a Python exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnstudio import analyze
from cnnstudio.errors import ProjectError
from cnnstudio.project import load_project, new_project
from tests.helpers import spec_of

HUGE = 10**400  # a JSON integer no float can hold


def write_project(tmp_path: Path, change) -> Path:
    folder = tmp_path / "p"
    new_project("simple-cnn", path=folder).save()
    data = json.loads((folder / "project.json").read_text())
    change(data)
    (folder / "project.json").write_text(json.dumps(data))
    return folder


def test_training_number_too_large_for_a_float_names_the_field_and_its_range(
    tmp_path: Path,
) -> None:
    folder = write_project(tmp_path, lambda data: data["training"].update(epochs=HUGE))
    with pytest.raises(ProjectError) as caught:
        load_project(folder)
    assert caught.value.where == "training.epochs"
    assert caught.value.message == (
        "must be an integer from 1 to 100000, got an integer of 401 digits"
    )


@pytest.mark.parametrize("value", [HUGE, -HUGE])
def test_layer_number_too_large_for_a_float_is_an_issue_on_the_layer(value: int) -> None:
    spec = spec_of(
        ("drop", "Dropout", {"p": value}),
        ("flat", "Flatten", {}),
        ("head", "Linear", {"out_features": 10}),
    )
    analysis = analyze(spec)
    (issue,) = analysis.errors
    assert (issue.layer, issue.param) == ("drop", "p")
    assert issue.message.startswith("p must be a number from 0 to 1, got a")
    assert issue.message.endswith("integer of 401 digits")
