"""A project: the model spec, the data and the training settings, kept in a folder.

``project.json`` holds the settings (with a schema version; older versions are migrated on load);
``runs/`` holds one folder per training run. Loading never runs code from the file, and saving is
atomic, so a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnnstudio.data_settings import DataSettings, class_names, one_scan, suggested_defaults
from cnnstudio.errors import ProjectError
from cnnstudio.files import atomic_write_text
from cnnstudio.fit import fitting_shape
from cnnstudio.spec import ModelSpec
from cnnstudio.templates import get_template
from cnnstudio.train_settings import DEFAULT_TRAINING, check_training

PROJECT_FILE = "project.json"
RUNS_DIR = "runs"
FORMAT = "cnnstudio-project"
SCHEMA_VERSION = 2


# MIGRATIONS[n] turns the data of a schema-n file into schema n+1. Each step is a plain function on
# the JSON data, so files of any older version reach the current one step by step.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _named_blocks(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 adds ``model.blocks`` (named block definitions, cnnstudio.blocks): a schema-1
    model has none, and means the same without the key."""
    return data


MIGRATIONS[1] = _named_blocks


@dataclass
class Project:
    """Model, data and training settings. ``path`` is the project folder (None until saved)."""

    model: ModelSpec
    name: str = "Untitled"
    data: DataSettings = field(default_factory=DataSettings)
    training: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TRAINING))
    path: Path | None = None

    @property
    def file(self) -> Path | None:
        return self.path / PROJECT_FILE if self.path else None

    @property
    def runs_dir(self) -> Path | None:
        return self.path / RUNS_DIR if self.path else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "training": self.training,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: Path | str | None = None) -> Path:
        """Write ``project.json`` atomically into the project folder (``path`` for Save As);
        returns the file written."""
        if path is not None:
            self.path = Path(path)
        if self.path is None:
            raise ProjectError(None, "the project has no folder yet: give one to save into")
        target = self.path / PROJECT_FILE
        try:
            self.path.mkdir(parents=True, exist_ok=True)  # Save As to a new folder's name
            atomic_write_text(target, self.to_json())
        except OSError as error:
            raise ProjectError(target, f"cannot save: {error.strerror or error}") from None
        return target

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> Project:
        """Build a project from the JSON data of a project file, migrating older schemas."""
        file = path / PROJECT_FILE if path else None
        try:
            data = migrate(data)
            settings = DataSettings.from_dict(data.get("data", {}), "data")
            training = check_training(data.get("training", {}), "training")
            name = data.get("name", path.name if path else "Untitled")
            if not isinstance(name, str):
                raise ProjectError(None, f"must be text, got {name!r}", "name")
            if "model" not in data:
                raise ProjectError(None, "'model' is missing (the layers of the network)")
            model = ModelSpec.from_dict(data["model"], "model")
        except ProjectError as error:
            raise ProjectError(file, error.message, error.where) from None
        return cls(
            model=model,
            name=name,
            data=settings,
            training=training,
            path=path,
        )


def migrate(data: Any) -> dict[str, Any]:
    """Bring project data of any known schema version up to ``SCHEMA_VERSION``."""
    if not isinstance(data, dict):
        found = "null" if data is None else type(data).__name__
        raise ProjectError(None, f"a project file holds one JSON object, got {found}")
    if data.get("format", FORMAT) != FORMAT:
        raise ProjectError(None, f"this is not a CNN Studio project (format {data['format']!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProjectError(
            None, f"schema_version must be a whole number from 1, got {version!r}", "schema_version"
        )
    if version > SCHEMA_VERSION:
        raise ProjectError(
            None,
            f"written by a newer CNN Studio (schema {version}; this version "
            f"reads up to {SCHEMA_VERSION}): update CNN Studio to open it",
            "schema_version",
        )
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise ProjectError(None, f"no migration from schema {version}", "schema_version")
        data = MIGRATIONS[version](dict(data))
        version += 1
        data["schema_version"] = version
    return data


def load_project(path: Path | str) -> Project:
    """Open the project in folder ``path`` (or the project.json file itself).

    ProjectError, naming the file and the place in it, when it is missing or malformed.
    """
    path = Path(path)
    folder, file = (path.parent, path) if path.name == PROJECT_FILE else (path, path / PROJECT_FILE)
    if not file.is_file():
        raise ProjectError(folder, f"no project here: {PROJECT_FILE} not found")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ProjectError(file, f"not a text file (byte {error.start} is not UTF-8)") from None
    except OSError as error:
        raise ProjectError(file, f"cannot read: {error.strerror or error}") from None
    try:
        data = json.loads(text)
        return Project.from_dict(data, folder)
    except json.JSONDecodeError as error:
        raise ProjectError(file, error.msg, f"line {error.lineno}, column {error.colno}") from None
    except RecursionError:
        raise ProjectError(
            file, "nested too deeply (lists or objects inside each other thousands of levels deep)"
        ) from None
    except ValueError as error:
        if "digits" not in str(error):  # Python's limit on integer digits; anything else is ours
            raise
        raise ProjectError(
            file, f"holds a number of more than {sys.get_int_max_str_digits():,} digits: correct it"
        ) from None


def new_project(
    template: str = "simple-cnn",
    num_classes: int | None = None,
    input_shape: tuple[int, int, int] | None = None,
    name: str | None = None,
    path: Path | str | None = None,
    data: DataSettings | None = None,
) -> Project:
    """A project with the model of ``template`` on ``data`` (the sample set by default), unsaved.

    The class count and the input shape follow the data unless given; a template that starts with
    a pretrained backbone keeps the image size that backbone was trained at. The augmentation
    and the batch size follow the data too (``suggested_defaults``): a project gets its defaults
    when it gets its data.
    """
    data = data or DataSettings()
    recipe = get_template(template)
    with one_scan():  # an image folder is scanned once for all three
        defaults = suggested_defaults(data)
        data = replace(data, augment=defaults.augment.settings)
        classes = num_classes if num_classes is not None else len(class_names(data))
        if input_shape is None:
            input_shape = fitting_shape(recipe.create(classes), data)
    folder = Path(path) if path is not None else None
    return Project(
        model=recipe.create(classes, input_shape),
        name=name or (folder.name if folder else recipe.name),
        data=data,
        training=check_training(
            {**DEFAULT_TRAINING, "batch_size": defaults.batch_size, **recipe.training}
        ),
        path=folder,
    )
