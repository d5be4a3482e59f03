"""The "project" export: a copy of the project folder (project.json and the exported run), which
CNN Studio opens elsewhere. Checked by opening the copy and comparing its run's model."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from cnnstudio import model_source
from cnnstudio.errors import ExportError, StudioError
from cnnstudio.export.check import CHECK_BATCH, compare, reference, sample
from cnnstudio.model_source import ModelSource
from cnnstudio.project import RUNS_DIR, Project, load_project


def write_project(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    """Copy the project (and the run ``src`` comes from) into the empty or new folder ``path``,
    open the copy and compare its run's model with ``src``'s."""
    if path.is_file() or (path.is_dir() and any(path.iterdir())):
        raise ExportError(f"cannot write {path}: it exists and is not an empty folder", "project")
    project = src.project
    copy_ = Project(
        model=project.model,
        name=project.name,
        data=project.data,
        training=dict(project.training),
        path=path,
    )
    try:
        copy_.save()
        if src.run_folder is not None:
            shutil.copytree(src.run_folder, path / RUNS_DIR / src.run_folder.name)
    except (OSError, StudioError) as error:
        raise ExportError(f"cannot write {path}: {error}", "project", path) from None
    opened = load_project(path)
    if src.run_folder is None:
        return [path], 0.0, 1.0
    loaded = model_source.from_run(opened.runs_dir / src.run_folder.name)
    x = sample(src, CHECK_BATCH, 1)
    with torch.no_grad():
        diff, limit = compare(reference(src, x), loaded.model(x), "project")
    return [path], diff, limit
