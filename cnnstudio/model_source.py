"""A model ready to use: the one type that inspecting, evaluating, exporting and predicting take.

A ``ModelSource`` is made from a run (``from_run``: its best or last checkpoint), from weights
handed out by a training run between two steps (``from_state``; ``Trainer.model_source`` does
it), from a project's freshly initialised model (``untrained``) or from a bare module
(``from_module``). All but the last go through ``ready_model``, the one place that builds a spec's
module, loads its weights and puts it in eval mode on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cnnstudio.build import build_model
from cnnstudio.data import DataSettings, class_names, display_names
from cnnstudio.errors import DataError, StudioError, TrainingError
from cnnstudio.normalization import normalization
from cnnstudio.runs import checkpoint_path, load_checkpoint, read_settings
from cnnstudio.spec import ModelSpec


@dataclass(frozen=True)
class ModelSource:
    """A model on the CPU in eval mode with what its users need: the input it takes, its
    normalisation, its class names, and where it came from.

    ``label`` says where in words ("run 20261125-1200 (best)"); ``spec`` is None for a bare module;
    ``run_folder`` and ``checkpoint`` are the run and file its weights come from (None: fresh or
    live weights); ``data`` the data settings it was trained with; ``project`` and ``name`` the
    project it belongs to (the training script and project-folder exports need it).

    ``classes`` are the names shown for the classes (display names, where the project renamed a
    class); ``class_ids`` the classes' folder names, which identify them (labels follow them).
    A run trained before a class was renamed shows the project's current name when the project
    is given, else the names the run was trained with.
    """

    model: nn.Module
    input_shape: tuple[int, int, int]
    spec: ModelSpec | None = None
    classes: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    label: str = "model"
    name: str = "model"
    run_folder: Path | None = None
    checkpoint: Path | None = None
    data: DataSettings | None = None
    project: Any = None  # Project
    class_ids: tuple[str, ...] = ()


def _named(classes: list[str] | tuple[str, ...], data: DataSettings | None) -> dict[str, Any]:
    """The ``classes`` and ``class_ids`` fields for classes with folder names ``classes``, shown
    as ``data`` names them."""
    return {"classes": tuple(display_names(classes, data)), "class_ids": tuple(classes)}


def ready_model(spec: ModelSpec, state: dict[str, Any] | None, **fields: Any) -> ModelSource:
    """Build ``spec`` (never downloading weights), load ``state`` into it (None: keep the fresh
    initialisation) and put it in eval mode. TrainingError when the weights do not fit."""
    model = build_model(spec, pretrained=False)
    if state is not None:
        try:
            model.load_state_dict(state)
        except (KeyError, RuntimeError) as error:
            where = fields.get("checkpoint") or fields.get("label", "the weights")
            raise TrainingError(
                f"{where}: the weights do not fit the run's model: {error}"
            ) from None
    model.eval()
    return ModelSource(model=model, input_shape=tuple(spec.input_shape), spec=spec, **fields)


def from_run(folder: Path, which: str = "best", project: Any = None) -> ModelSource:
    """The model of the run in ``folder`` with its weights: ``which`` "best" (the best checkpoint,
    or the last if there is none) or "last"; the preprocessing and classes it trained with."""
    settings = read_settings(folder)
    if settings is None or not isinstance(settings.get("project"), dict):
        raise TrainingError(f"cannot read {folder / 'settings.json'}: not a run folder")
    try:
        spec = ModelSpec.from_dict(settings["project"]["model"])
        data = DataSettings.from_dict(settings["project"].get("data", {}))
        mean = tuple(float(v) for v in settings["mean"])
        std = tuple(float(v) for v in settings["std"])
        classes = tuple(str(c) for c in settings["classes"])
    except (KeyError, TypeError, ValueError) as error:
        raise TrainingError(
            f"{folder / 'settings.json'}: incomplete run settings ({error})"
        ) from None
    checkpoint = checkpoint_path(folder, which)
    if checkpoint is None:
        raise TrainingError(f"run {folder.name} has no checkpoint yet")
    state = load_checkpoint(checkpoint)
    if not isinstance(state.get("model"), dict):
        raise TrainingError(f"{checkpoint}: the weights do not fit the run's model: no weights")
    return ready_model(
        spec,
        state["model"],
        **_named(classes, project.data if project is not None else data),
        mean=mean,
        std=std,
        label=f"run {folder.name} ({checkpoint.stem})",
        name=project.name if project is not None else "model",
        run_folder=folder,
        checkpoint=checkpoint,
        data=data,
        project=project,
    )


def from_state(
    spec: ModelSpec,
    state: dict[str, Any],
    *,
    classes: tuple[str, ...] | list[str],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    label: str,
    run_folder: Path | None = None,
    data: DataSettings | None = None,
) -> ModelSource:
    """``spec`` with the weights ``state`` (a live run's copy), fed as ``mean`` and ``std``;
    ``classes`` (folder names) are shown as ``data`` names them."""
    return ready_model(
        spec,
        state,
        **_named(classes, data),
        mean=tuple(mean),
        std=tuple(std),
        label=label,
        run_folder=run_folder,
        data=data,
    )


def untrained(project: Any) -> ModelSource:
    """The project's model freshly initialised (backbones too: nothing is downloaded), with the
    normalisation it would train with when that is known without reading the images (else none),
    and the data's class names (numbers when they cannot be read or do not match)."""
    spec = project.model
    try:
        classes = class_names(project.data)
    except StudioError:
        classes = []
    if len(classes) != spec.num_classes:
        classes = [str(i) for i in range(spec.num_classes)]
    try:
        norm = normalization(project.data, spec)
        mean, std = norm.mean, norm.std
    except DataError:  # 'backbone' without a pretrained one: training says so; export does not
        mean, std = (0.0,) * spec.input_shape[0], (1.0,) * spec.input_shape[0]
    return ready_model(
        spec,
        None,
        **_named(classes, project.data),
        mean=mean,
        std=std,
        label=f"{project.name} (untrained)",
        name=project.name,
        data=project.data,
        project=project,
    )


def from_module(model: nn.Module, input_shape: tuple[int, int, int]) -> ModelSource:
    """A bare module taking images of ``input_shape``, with no spec, classes or normalisation."""
    return ModelSource(model=model, input_shape=tuple(input_shape), label=type(model).__name__)
