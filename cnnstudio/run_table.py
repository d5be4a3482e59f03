"""The run table: every run of a project as a row (when, state, data, the settings that differ
between runs, best and final validation accuracy and loss, duration, images/s, tags and note),
the best run marked. The window's Runs table, Compare and ``cnnstudio runs`` read it; the run
folders themselves are read through cnnstudio.runs, their owner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnstudio.params import format_rate
from cnnstudio.runs import (
    METRICS,
    NOTES,
    SETTINGS,
    RunInfo,
    RunNotes,
    flat_settings,
    list_runs,
    project_data,
    read_history,
    read_notes,
    read_settings,
    run_metrics,
)


@dataclass(frozen=True)
class RunRow:
    """One run in the run table: its line of the run list and everything the table shows."""

    info: RunInfo
    settings: dict[str, Any]  # flat_settings of the run
    images: int | None  # training and validation images
    classes: int | None
    metrics: dict[str, float | None]  # run_metrics
    seconds: float | None  # time spent in its epochs (loading and evaluation aside)
    images_per_sec: float | None  # training images per second of training
    notes: RunNotes

    def to_dict(self) -> dict[str, Any]:
        info = self.info
        return {
            "name": info.name,
            "folder": str(info.folder),
            "started": info.started,
            "state": info.state,
            "message": info.message,
            "data": info.data,
            "data_where": info.data_where,
            "images": self.images,
            "classes": self.classes,
            "epochs_done": info.epochs_done,
            "epochs": info.epochs,
            "settings": dict(self.settings),
            **self.metrics,
            "seconds": self.seconds,
            "images_per_sec": self.images_per_sec,
            "sweep": self.notes.sweep,
            "tags": list(self.notes.tags),
            "note": self.notes.note,
        }


@dataclass(frozen=True)
class RunTable:
    """Every run of a project (newest first), the settings that differ between them (the table's
    setting columns) and the run with the best validation accuracy."""

    rows: tuple[RunRow, ...]
    columns: tuple[str, ...]
    best: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "best": self.best,
            "runs": [row.to_dict() for row in self.rows],
        }


def run_table(runs_dir: Path | None) -> RunTable:
    """The run table of the runs in ``runs_dir``: what the window's run table and ``cnnstudio
    runs`` show."""
    rows = tuple(run_row(info) for info in list_runs(runs_dir))
    columns = differing_settings(rows)
    scored = [r for r in rows if r.metrics["best_val_accuracy"] is not None]
    best = max(scored, key=lambda r: r.metrics["best_val_accuracy"], default=None)
    return RunTable(rows, columns, best.info.name if best is not None else None)


def differing_settings(rows: tuple[RunRow, ...] | list[RunRow]) -> tuple[str, ...]:
    """The settings whose value is not the same in every one of ``rows`` (a setting some runs
    lack counts when the others disagree), in the order the runs name them."""
    names = dict.fromkeys(name for row in rows for name in row.settings)
    return tuple(
        name
        for name in names
        if len({json.dumps(r.settings[name]) for r in rows if name in r.settings}) > 1
    )


def format_setting(value: Any) -> str:
    """A setting's value as the run table writes it: rates as people write them (3e-4, 0.01),
    true/false, text as it is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_rate(value)
    return "" if value is None else str(value)


_ROWS: dict[Path, tuple[tuple, RunInfo, RunRow]] = {}  # folder -> (its files' stamp, info, row)
ROW_FILES = (SETTINGS, METRICS, NOTES)  # what a row reads besides the run's info


def _stamp(folder: Path) -> tuple:
    """When and how big each file a row reads is (None for one that is not there)."""
    found = []
    for name in ROW_FILES:
        try:
            status = (folder / name).stat()
        except OSError:
            found.append(None)
            continue
        found.append((status.st_mtime_ns, status.st_size))
    return tuple(found)


def forget_rows() -> None:
    """Drop the rows kept from earlier reads (the next table reads every run again)."""
    _ROWS.clear()


def run_row(info: RunInfo) -> RunRow:
    """The run table's row of one run (``info`` from ``run_info``). A row whose run has not
    changed since it was last read (the same info, its files the same size and time) is the one
    read then: the table is read again after every run and sweep run that ends, and a project's
    metrics logs grow to megabytes."""
    stamp = _stamp(info.folder)
    kept = _ROWS.get(info.folder)
    if kept is not None and kept[0] == stamp and kept[1] == info:
        return kept[2]
    row = _read_row(info)
    _ROWS[info.folder] = (stamp, info, row)
    return row


def _read_row(info: RunInfo) -> RunRow:
    settings = read_settings(info.folder) or {}
    epochs = read_history(info.folder, epochs_only=True).epochs
    images = settings.get("images")
    counts = [v for v in images.values() if isinstance(v, int)] if isinstance(images, dict) else []
    classes = settings.get("classes")
    metrics = run_metrics(epochs)
    if metrics["best_val_accuracy"] is None:
        metrics["best_val_accuracy"] = info.best_val_accuracy
    return RunRow(
        info=info,
        settings=flat_settings(settings.get("training"), project_data(settings)),
        images=sum(counts) if counts else None,
        classes=len(classes) if isinstance(classes, list) else None,
        metrics=metrics,
        seconds=_total(epochs, "seconds"),
        images_per_sec=_rate(epochs),
        notes=read_notes(info.folder),
    )


def _total(epochs: list[dict[str, Any]], key: str) -> float | None:
    """The sum of ``key`` over the epochs, None when an epoch does not have it (older runs)."""
    found = [e.get(key) for e in epochs]
    if not found or not all(isinstance(v, (int, float)) for v in found):
        return None
    return float(sum(found))


def _rate(epochs: list[dict[str, Any]]) -> float | None:
    images, seconds = _total(epochs, "train_images"), _total(epochs, "train_seconds")
    return images / seconds if images is not None and seconds else None
