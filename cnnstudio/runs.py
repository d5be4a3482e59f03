"""The runs of a project, as the trainer left them on disk.

Each run folder under ``<project>/runs/`` holds ``settings.json`` (the project, the settings, and
the mean, std and classes it trained with), ``state.json`` (running, finished, stopped, failed),
``metrics.jsonl``, checkpoints (``last.pt``, ``best.pt``), ``evaluation.json`` and
``model.safetensors``.

``list_runs`` reads what the run list shows; ``load_run`` rebuilds a run's model with its weights
and preprocessing, for evaluating, inspecting and exporting. Everything here reads JSON or loads
weights with ``weights_only=True``: nothing from a run folder can run code.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnstudio.errors import TrainingError

LAST = "last.pt"
BEST = "best.pt"
WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class RunInfo:
    """One line of the run list."""

    name: str
    folder: Path
    started: str
    state: str  # running, finished, stopped, failed, unknown
    message: str
    epochs_done: int | None
    epochs: int | None
    best_val_accuracy: float | None
    summary: str  # the settings in a few words: "sgd lr 0.01, batch 64, 10 epochs"
    has_checkpoint: bool


@dataclass
class RunHistory:
    """A run's logged curves: step records and epoch records, as written to metrics.jsonl."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LoadedRun:
    """A run's model on the CPU in eval mode, with everything needed to feed it an image."""

    folder: Path
    checkpoint: Path
    model: Any  # nn.Module (torch is imported lazily)
    spec: Any  # ModelSpec
    data: Any  # DataSettings
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.spec.input_shape


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_settings(folder: Path) -> dict[str, Any] | None:
    """A run's settings.json (the project it trained, mean, std, classes), or None if unreadable."""
    return _read_json(folder / "settings.json")


def settings_summary(training: dict[str, Any]) -> str:
    """A run's settings in a few words."""
    parts = []
    if "optimizer" in training:
        parts.append(f"{training['optimizer']} lr {training.get('lr', '?'):g}"
                     if isinstance(training.get("lr"), (int, float))
                     else str(training["optimizer"]))  # fmt: skip
    if "batch_size" in training:
        parts.append(f"batch {training['batch_size']}")
    if "epochs" in training:
        parts.append(f"{training['epochs']} epochs")
    return ", ".join(parts)


def run_info(folder: Path) -> RunInfo:
    """What the run list shows for the run in ``folder`` (missing files give 'unknown')."""
    settings = _read_json(folder / "settings.json") or {}
    state = _read_json(folder / "state.json") or {}
    training = settings.get("training") if isinstance(settings.get("training"), dict) else {}
    epochs = training.get("epochs") if isinstance(training.get("epochs"), int) else None
    best = state.get("best_val_accuracy")
    done = state.get("epochs_done")
    return RunInfo(
        name=folder.name,
        folder=folder,
        started=str(settings.get("started", "")),
        state=str(state.get("state", "unknown")),
        message=str(state.get("message") or ""),
        epochs_done=done if isinstance(done, int) else None,
        epochs=epochs,
        best_val_accuracy=float(best) if isinstance(best, (int, float)) else None,
        summary=(
            f"imported from {Path(str(settings['imported_from'])).name}"
            if settings.get("imported_from")
            else settings_summary(training)
        ),
        has_checkpoint=(folder / LAST).is_file() or (folder / BEST).is_file(),
    )


def list_runs(runs_dir: Path | None) -> list[RunInfo]:
    """Every run folder in ``runs_dir``, newest first."""
    if runs_dir is None or not runs_dir.is_dir():
        return []
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and (p / "settings.json").is_file()]
    return [run_info(p) for p in sorted(folders, key=lambda p: p.name, reverse=True)]


def read_history(folder: Path) -> RunHistory:
    """The curves logged by a run; lines that do not parse (a run killed mid-write) are skipped."""
    history = RunHistory()
    try:
        lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return history
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if record.get("type") == "step":
            history.steps.append(record)
        elif record.get("type") == "epoch":
            history.epochs.append(record)
    return history


def read_evaluation(folder: Path):
    """The run's final evaluation (``metrics.Evaluation``), or None if it has none."""
    from cnnstudio.metrics import Evaluation

    data = _read_json(folder / "evaluation.json")
    if data is None:
        return None
    try:
        return Evaluation.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


def delete_run(folder: Path) -> None:
    """Remove a run folder (only a folder that looks like a run: it has settings.json)."""
    if not (folder / "settings.json").is_file():
        raise TrainingError(f"{folder} is not a run folder; nothing was deleted")
    shutil.rmtree(folder)


def find_run(runs_dir: Path | None, run: str | None = None) -> Path:
    """The folder of run ``run`` (a name in ``runs_dir`` or a path); default the latest one with a
    checkpoint."""
    if run is not None:
        folder = runs_dir / run if runs_dir is not None else Path(run)
        if not folder.is_dir() and Path(run).is_dir():
            folder = Path(run)
        if not folder.is_dir():
            raise TrainingError(f"no run {run!r} in {runs_dir}")
        return folder
    if runs_dir is not None and runs_dir.is_dir():
        found = sorted(
            p for p in runs_dir.iterdir() if (p / LAST).is_file() or (p / BEST).is_file()
        )
        if found:
            return found[-1]
    raise TrainingError(f"no trained run in {runs_dir}: train first")


def load_run(folder: Path, which: str = "best") -> LoadedRun:
    """Rebuild the model of the run in ``folder`` with its weights, on the CPU, in eval mode.

    ``which`` is "best" (the best checkpoint, or the last if there is none) or "last".
    """
    from cnnstudio.build import build_model
    from cnnstudio.data import DataSettings
    from cnnstudio.spec import ModelSpec
    from cnnstudio.train import load_checkpoint

    settings = _read_json(folder / "settings.json")
    if settings is None or not isinstance(settings.get("project"), dict):
        raise TrainingError(f"cannot read {folder / 'settings.json'}: not a run folder")
    try:
        spec = ModelSpec.from_dict(settings["project"]["model"])
        data = DataSettings.from_dict(settings["project"].get("data", {}))
        mean = tuple(float(v) for v in settings["mean"])
        std = tuple(float(v) for v in settings["std"])
        classes = [str(c) for c in settings["classes"]]
    except (KeyError, TypeError, ValueError) as error:
        raise TrainingError(
            f"{folder / 'settings.json'}: incomplete run settings ({error})"
        ) from None
    order = [BEST, LAST] if which == "best" else [LAST, BEST]
    checkpoint = next((folder / n for n in order if (folder / n).is_file()), None)
    if checkpoint is None:
        raise TrainingError(f"run {folder.name} has no checkpoint yet")
    model = build_model(spec, pretrained=False)
    state = load_checkpoint(checkpoint)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as error:
        raise TrainingError(
            f"{checkpoint}: the weights do not fit the run's model: {error}"
        ) from None
    model.eval()
    return LoadedRun(folder, checkpoint, model, spec, data, classes, mean, std)


def import_weights(
    project,
    path: Path | str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    classes: list[str],
) -> Path:
    """Make a run of the project's model from a weights file (.safetensors, or a state dict saved
    with ``torch.save``; nothing but tensors is read). The run appears in the run list as
    "imported" and can be inspected, evaluated and exported like a trained one (it cannot be
    resumed: it has no optimizer state). WeightsError listing the mismatched keys and shapes when
    the file does not fit the model; nothing is written then."""
    import time

    import torch

    from cnnstudio.build import build_model
    from cnnstudio.export import load_weights
    from cnnstudio.files import atomic_write_text
    from cnnstudio.train import new_run_dir, save_checkpoint

    if project.runs_dir is None:
        raise TrainingError("save the project first: its runs are kept in its folder")
    path = Path(path)
    model = build_model(project.model, pretrained=False)
    load_weights(model, path)  # raises before anything is written
    folder = new_run_dir(project.runs_dir)
    folder = folder.rename(folder.with_name(folder.name + "-imported"))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(folder / BEST, {"model": state, "imported_from": str(path)})
    settings = {
        "project": project.to_dict(),
        "training": {},
        "mean": list(mean),
        "std": list(std),
        "classes": list(classes),
        "imported_from": str(path),
        "torch": torch.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_text(folder / "settings.json", json.dumps(settings, indent=2) + "\n")
    atomic_write_text(
        folder / "state.json",
        json.dumps({"state": "imported", "message": f"weights from {path}"}, indent=2) + "\n",
    )
    return folder
