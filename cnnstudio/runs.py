"""The run folder: created, written and read here, checkpoints included.

Each run folder under ``<project>/runs/`` holds ``settings.json`` (the project, the settings, and
the mean, std and classes it trained with), ``state.json`` (running, finished, stopped, failed,
imported), ``metrics.jsonl`` and TensorBoard events, checkpoints (``last.pt``, ``best.pt``),
``evaluation.json``, ``model.safetensors`` and ``notes.json`` (tags, a note, the sweep that made
it). ``cnnstudio.run_table`` reads every run as a row of the run table.

The trainer writes a run through ``new_run_dir``, ``write_settings``, ``write_state``,
``MetricsLog``, ``save_checkpoint``, ``write_evaluation`` and ``write_weights``; the run list reads
it through ``list_runs``, ``read_history`` and ``read_evaluation``; ``cnnstudio.model_source``
rebuilds its model. Everything here reads JSON or loads weights with ``weights_only=True``: nothing
from a run folder can run code.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import pickle
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnstudio import standard_sets
from cnnstudio.build import build_model
from cnnstudio.data import DataSettings, class_names, display_names
from cnnstudio.errors import TrainingError, WeightsError
from cnnstudio.files import atomic_write_bytes, atomic_write_text
from cnnstudio.metrics import Evaluation
from cnnstudio.params import format_rate
from cnnstudio.weights import load_weights, mismatches

LAST = "last.pt"
BEST = "best.pt"
WEIGHTS = "model.safetensors"
SETTINGS = "settings.json"
STATE = "state.json"
METRICS = "metrics.jsonl"
EVALUATION = "evaluation.json"
NOTES = "notes.json"


@dataclass(frozen=True)
class RunInfo:
    """One line of the run list."""

    name: str
    folder: Path
    started: str
    state: str  # running, finished, stopped, failed, interrupted (killed while running), unknown
    message: str
    epochs_done: int | None
    epochs: int | None
    best_val_accuracy: float | None
    summary: str  # the settings in a few words: "sgd lr 0.01, batch 64, 10 epochs"
    has_checkpoint: bool
    data: str = ""  # the data it trained on in a word or two: "CIFAR-10", "folder digits"
    data_where: str = ""  # and in full: the folder's path, the validation share


@dataclass
class RunHistory:
    """A run's logged curves: step records and epoch records, as written to metrics.jsonl."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_settings(folder: Path) -> dict[str, Any] | None:
    """A run's settings.json (the project it trained, mean, std, classes), or None if unreadable."""
    return _read_json(folder / SETTINGS)


def settings_summary(training: dict[str, Any]) -> str:
    """A run's settings in a few words."""
    parts = []
    if "optimizer" in training:
        parts.append(f"{training['optimizer']} lr {format_rate(training['lr'])}"
                     if isinstance(training.get("lr"), (int, float))
                     else str(training["optimizer"]))  # fmt: skip
    if "batch_size" in training:
        parts.append(f"batch {training['batch_size']}")
    if "epochs" in training:
        parts.append(f"{training['epochs']} epochs")
    return ", ".join(parts)


def data_words(data: Any) -> tuple[str, str]:
    """The data a run trained on (its project's ``data`` settings): a word or two for the run
    list, and the whole of it for a tooltip; ("", "") when the settings do not say."""
    if not isinstance(data, dict) or not isinstance(data.get("source"), str):
        return "", ""
    source = data["source"]
    share = data.get("val_fraction")
    held = f", {share:.0%} held out for validation" if isinstance(share, (int, float)) else ""
    if source == "folder":
        path = str(data.get("path") or "")
        return f"folder {Path(path).name}", f"image folder {path}{held}"
    if source == "sample":
        return "sample set", f"the built-in sample set{held}"
    std = standard_sets.STANDARD_SETS.get(source)
    title = std.title if std is not None else source
    return title, f"{title} (its official training images{held})"


def run_info(folder: Path) -> RunInfo:
    """What the run list shows for the run in ``folder`` (missing files give 'unknown')."""
    settings = _read_json(folder / SETTINGS) or {}
    state = _read_json(folder / STATE) or {}
    training = settings.get("training") if isinstance(settings.get("training"), dict) else {}
    epochs = training.get("epochs") if isinstance(training.get("epochs"), int) else None
    best = state.get("best_val_accuracy")
    done = state.get("epochs_done")
    name, message = str(state.get("state", "unknown")), str(state.get("message") or "")
    if name == "running" and not _trainer_alive(state):
        name, message = "interrupted", _interrupted_message(folder)
    return RunInfo(
        name=folder.name,
        folder=folder,
        started=str(settings.get("started", "")),
        state=name,
        message=message,
        epochs_done=done if isinstance(done, int) else None,
        epochs=epochs,
        best_val_accuracy=float(best) if isinstance(best, (int, float)) else None,
        summary=(
            f"imported from {Path(str(settings['imported_from'])).name}"
            if settings.get("imported_from")
            else settings_summary(training)
        ),
        has_checkpoint=(folder / LAST).is_file() or (folder / BEST).is_file(),
        **dict(zip(("data", "data_where"), data_words(project_data(settings)), strict=True)),
    )


def project_data(settings: dict[str, Any]) -> Any:
    """The data settings a run's settings.json recorded (a dict, as written), or None."""
    project = settings.get("project")
    return project.get("data") if isinstance(project, dict) else None


def trainer_process() -> dict[str, Any]:
    """What a running run's state.json says of the process training it (its pid and host), so
    that the run list can tell a run killed without a word from one still training."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _trainer_alive(state: dict[str, Any]) -> bool:
    """Whether the process a 'running' state.json names still runs: True unless it is known to
    have ended (a state without a pid, as older runs wrote, or from another host, counts as
    alive)."""
    pid = state.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return True
    if state.get("host") != socket.gethostname():
        return True
    if pid == os.getpid():
        return True
    return _process_exists(pid)


def _process_exists(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        try:
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        finally:
            kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, run by someone else
        return True
    return True


def _interrupted_message(folder: Path) -> str:
    if (folder / LAST).is_file():
        return (
            "the training process ended without saving its state (killed or crashed): "
            "resume the run to go on from its last checkpoint"
        )
    return (
        "the training process ended without saving its state (killed or crashed) before its "
        "first checkpoint: train again"
    )


def list_runs(runs_dir: Path | None) -> list[RunInfo]:
    """Every run folder in ``runs_dir``, newest first."""
    if runs_dir is None or not runs_dir.is_dir():
        return []
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and (p / SETTINGS).is_file()]
    return [run_info(p) for p in sorted(folders, key=lambda p: p.name, reverse=True)]


def still_running(state: dict[str, Any]) -> bool:
    """Whether the process a record names (``pid`` and ``host``, as ``trainer_process`` writes
    them) still runs; a record of another host, or without a pid, counts as running."""
    return _trainer_alive(state)


# Tags and a note per run, and the sweep a run belongs to: notes.json, beside the run's own files


@dataclass(frozen=True)
class RunNotes:
    """What the user wrote about a run (tags, a note) and the sweep that made it ("" if none)."""

    tags: tuple[str, ...] = ()
    note: str = ""
    sweep: str = ""


def read_notes(folder: Path) -> RunNotes:
    """A run's notes.json (empty notes when it has none or it does not parse)."""
    data = _read_json(folder / NOTES) or {}
    tags = data.get("tags")
    return RunNotes(
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
        note=data["note"] if isinstance(data.get("note"), str) else "",
        sweep=data["sweep"] if isinstance(data.get("sweep"), str) else "",
    )


def set_notes(
    folder: Path,
    *,
    tags: list[str] | tuple[str, ...] | None = None,
    note: str | None = None,
    sweep: str | None = None,
) -> RunNotes:
    """Change a run's tags, note or sweep (None keeps what it has); tags are stripped, empty ones
    and repeats dropped. Written atomically; returns the notes now stored."""
    if not folder.is_dir():
        raise TrainingError(f"no run folder {folder}")
    old = read_notes(folder)
    if tags is not None:
        tags = tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))
    notes = RunNotes(
        tags=old.tags if tags is None else tags,
        note=old.note if note is None else note,
        sweep=old.sweep if sweep is None else sweep,
    )
    data = {"tags": list(notes.tags), "note": notes.note, "sweep": notes.sweep}
    atomic_write_text(folder / NOTES, json.dumps(data, indent=2) + "\n")
    return notes


def read_history(folder: Path, epochs_only: bool = False) -> RunHistory:
    """The curves logged by a run; lines that do not parse (a run killed mid-write) are skipped.
    ``epochs_only`` reads the epoch records alone: the run table needs no steps, and parsing a
    long run's every step is most of the time it takes (MetricsLog writes ``"type": "epoch"``)."""
    history = RunHistory()
    try:
        lines = (folder / METRICS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return history
    if epochs_only:
        lines = [line for line in lines if '"type": "epoch"' in line]
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


def read_evaluation(
    folder: Path, shown_as: DataSettings | None = None, name: str = EVALUATION
) -> Evaluation | None:
    """The run's final evaluation (or the one in the file ``name``), or None if it has none; with
    ``shown_as`` (the project's data settings) its classes carry the names the project shows now
    (the folder names identify them, so a run evaluated before a class was renamed shows the new
    name)."""
    data = _read_json(folder / name)
    if data is None:
        return None
    try:
        evaluation = Evaluation.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None
    return evaluation.with_classes(display_names(evaluation.classes, shown_as))


# The run table: every run a row, the settings that differ between runs its columns

DATA_SETTINGS = ("val_fraction", "split_seed", "normalize")  # the data's, besides where it is


def flat_settings(training: Any, data: Any) -> dict[str, Any]:
    """Every setting of a run under its own name: the training settings, the data's split and
    normalisation and its augmentation (their names do not collide). Where the images come from
    is the data column's (``data_words``), not a setting here."""
    flat = dict(training) if isinstance(training, dict) else {}
    if isinstance(data, dict):
        flat.update({k: data[k] for k in DATA_SETTINGS if k in data})
        if isinstance(data.get("augment"), dict):
            flat.update(data["augment"])
    return flat


def run_metrics(epochs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Best and final validation accuracy and loss of a run's epoch records (None: no epoch)."""

    def values(key: str) -> list[float]:
        found = [e.get(key) for e in epochs]
        return [float(v) for v in found if isinstance(v, (int, float)) and math.isfinite(v)]

    accuracy, loss = values("val_accuracy"), values("val_loss")
    return {
        "best_val_accuracy": max(accuracy, default=None),
        "final_val_accuracy": accuracy[-1] if accuracy else None,
        "best_val_loss": min(loss, default=None),
        "final_val_loss": loss[-1] if loss else None,
    }


def delete_run(folder: Path) -> None:
    """Remove a run folder (only a folder that looks like a run: it has settings.json)."""
    if not (folder / SETTINGS).is_file():
        raise TrainingError(f"{folder} is not a run folder; nothing was deleted")
    shutil.rmtree(folder)


def delete_unstarted_run(folder: Path) -> None:
    """Remove a run folder whose run never got past loading its data (no settings.json, no
    checkpoint: at most its notes and a state saying it was stopped); other folders are kept."""
    if not folder.is_dir() or any((folder / name).exists() for name in (SETTINGS, LAST, BEST)):
        return
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
    found = latest_run(runs_dir, (LAST, BEST))
    if found is None:
        raise TrainingError(f"no trained run in {runs_dir}: train first")
    return found


def latest_run(runs_dir: Path | None, with_files: tuple[str, ...] = (LAST,)) -> Path | None:
    """The newest run folder holding one of ``with_files`` (default: a last checkpoint to resume
    from), or None."""
    if runs_dir is None or not runs_dir.is_dir():
        return None
    found = sorted(p for p in runs_dir.iterdir() if any((p / f).is_file() for f in with_files))
    return found[-1] if found else None


# Writing a run


def new_run_dir(runs: Path, suffix: str = "") -> Path:
    """A new, empty run folder in ``runs`` named by the time (``20261201-0930``, then ``-1``, ``-2``
    when that name is taken), with ``suffix`` appended."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if runs.exists() and not runs.is_dir():
        raise TrainingError(
            f"{runs} is a file, not a folder: the project keeps its runs in a folder of that "
            "name; rename or move the file"
        )
    try:
        runs.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            candidate = runs / ((stamp if n == 0 else f"{stamp}-{n}") + suffix)
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except OSError as error:
        raise TrainingError(
            f"cannot create a run folder in {runs} ({error.strerror or error}): make the project "
            "folder writable, or save the project in a folder you can write to"
        ) from None
    raise TrainingError(f"cannot create a run folder in {runs}")


def write_settings(folder: Path, settings: dict[str, Any]) -> None:
    """settings.json: the project as it was trained, the training settings, mean, std, classes."""
    settings = {**settings, "torch": torch.__version__, "started": _now()}
    atomic_write_text(folder / SETTINGS, json.dumps(settings, indent=2) + "\n")


def write_state(folder: Path, **state: Any) -> None:
    """state.json: where the run stands (``state`` running, finished, stopped, failed, imported)."""
    state["updated"] = _now()
    atomic_write_text(folder / STATE, json.dumps(state, indent=2) + "\n")


def write_evaluation(folder: Path, evaluation: Evaluation, name: str = EVALUATION) -> Path:
    """evaluation.json (or the file ``name``: see ``folder_evaluation_name``); returns its path."""
    target = folder / name
    atomic_write_text(target, json.dumps(evaluation.to_dict(), indent=2) + "\n")
    return target


def folder_evaluation_name(data_folder: Path | str) -> str:
    """The file in a run folder for its evaluation on the image folder ``data_folder``:
    evaluation-<folder name>.json, beside (never over) the run's own evaluation.json."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data_folder).resolve().name).strip("._")
    return f"evaluation-{name or 'folder'}.json"


def write_weights(folder: Path, state: dict[str, torch.Tensor]) -> None:
    """model.safetensors: the final weights, readable without CNN Studio."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(tensors, str(folder / WEIGHTS))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically: a killed run never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise TrainingError(
                f"no space left on the device while writing {path}: free space; the previous "
                "checkpoint is kept"
            ) from None
        raise TrainingError(
            f"cannot write the checkpoint {path} ({error.strerror or error}); the previous "
            "checkpoint is kept"
        ) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint, read with ``weights_only=True`` (no code from the file ever runs)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f"no checkpoint at {path}") from None
    except PermissionError as error:
        raise TrainingError(f"cannot read the checkpoint {path} ({error.strerror})") from None
    except pickle.UnpicklingError as error:
        if "weights only load failed" not in str(error).lower():
            raise _damaged(path) from None
        # torch's message advises weights_only=False, which would run code from the file
        raise TrainingError(
            f"the checkpoint {path} holds objects other than tensors and numbers (not written "
            "by CNN Studio, or changed since): it is not loaded, so that no code in it runs; "
            "delete the run or start a new one"
        ) from None
    except Exception:
        # torch reports a truncated or foreign file as OSError, RuntimeError, EOFError, KeyError...
        raise _damaged(path) from None


def _damaged(path: Path) -> TrainingError:
    return TrainingError(
        f"the checkpoint {path} is damaged (truncated or not a checkpoint): delete the run or "
        "start a new one"
    )


def checkpoint_path(folder: Path, which: str = "best") -> Path | None:
    """The run's best checkpoint (else its last) for ``which`` "best", the last (else the best)
    for "last"; None when it has neither."""
    order = [BEST, LAST] if which == "best" else [LAST, BEST]
    return next((folder / n for n in order if (folder / n).is_file()), None)


class MetricsLog:
    """metrics.jsonl and TensorBoard events of one run; ``folder`` None gives a silent log (the
    other ranks of a distributed run). ``keep_until_step`` drops records after that step (a resumed
    run logs them again)."""

    def __init__(self, folder: Path | None, keep_until_step: int | None = None) -> None:
        self.folder = folder
        self.writer = None
        self.warning: str | None = None
        if folder is None:
            return
        path = folder / METRICS
        if keep_until_step is not None and path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line and json.loads(line).get("global_step", 0) <= keep_until_step
            ]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder))
        except ImportError:
            self.warning = "TensorBoard is not installed: the run has no TensorBoard events"

    def write(self, record: dict[str, Any]) -> None:
        if self.folder is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            step = record["global_step"]
            prefix = "train_step" if record["type"] == "step" else "epoch"
            for key, value in record.items():
                if key not in ("type", "epoch", "step", "global_step", "time") and isinstance(
                    value, (int, float)
                ):
                    self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def write_hparams(
        self, settings: dict[str, Any], metrics: dict[str, float | None], step: int
    ) -> None:
        """The run's settings (``flat_settings``) and final metrics (``run_metrics``) as
        TensorBoard's HParams dashboard reads them: the plugin's experiment and session summaries
        in the run's own events file, and each metric as a scalar ``hparams/<name>``."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        values = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
                  for k, v in settings.items()}  # fmt: skip
        found = {f"hparams/{k}": float(v) for k, v in metrics.items() if v is not None}
        for summary in hparams(values, found):
            self.writer.file_writer.add_summary(summary, step)
        for tag, value in found.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.folder is None:
            return
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


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
    if project.runs_dir is None:
        raise TrainingError("save the project first: its runs are kept in its folder")
    path = Path(path)
    model = build_model(project.model, pretrained=False)
    load_weights(model, path)  # raises before anything is written
    return _imported_run(project, model, mean, std, classes, str(path))


def import_state(
    project,
    state: dict[str, torch.Tensor],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    origin: str,
) -> Path:
    """A run of the project's model from weights in memory, as ``import_weights`` makes one from
    a file: the starting weights of a model opened for editing (``new --from-model``, the
    window's "open as an editable graph"). ``origin`` says where they came from; the classes are
    the data's when there are as many as the model's outputs, else numbers."""
    if project.runs_dir is None:
        raise TrainingError("save the project first: its runs are kept in its folder")
    model = build_model(project.model, pretrained=False)
    problems = mismatches(model.state_dict(), state)
    if problems:
        raise WeightsError(f"the weights from {origin} do not fit the model: {problems[0]}")
    model.load_state_dict(state, strict=True)
    names = class_names(project.data)
    count = project.model.num_classes
    names = names if len(names) == count else [str(i) for i in range(count)]
    return _imported_run(project, model, mean, std, names, origin)


def _imported_run(project, model, mean, std, classes: list[str], origin: str) -> Path:
    folder = new_run_dir(project.runs_dir, suffix="-imported")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(folder / BEST, {"model": state, "imported_from": origin})
    write_settings(
        folder,
        {
            "project": project.to_dict(),
            "training": {},
            "mean": list(mean),
            "std": list(std),
            "classes": list(classes),
            "imported_from": origin,
        },
    )
    write_state(folder, state="imported", message=f"weights from {origin}")
    return folder
