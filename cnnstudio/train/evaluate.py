"""Measuring a trained model on its validation split: at the end of a run (its best checkpoint,
written to the run folder with the weights) and later, for any run (``evaluate_run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnstudio import model_source, runs
from cnnstudio.batches import make_batches
from cnnstudio.data import Dataset, load_dataset
from cnnstudio.metrics import Evaluation, evaluate
from cnnstudio.train.devices import autocast, pick_device


def evaluate_best(
    run_dir: Path,
    model: nn.Module,
    dataset: Dataset,
    batches: Any,
    *,
    precision: str,
    device: torch.device,
    channels_last: bool,
) -> Evaluation:
    """Evaluate the run's best checkpoint (loaded into ``model``; the model as it is when there is
    none) on ``batches`` of the validation split, and write the evaluation and the weights into
    the run folder."""
    best = run_dir / runs.BEST
    if best.is_file():
        model.load_state_dict(runs.load_checkpoint(best)["model"])
    result = evaluate(
        model,
        batches,
        dataset.classes,
        dataset.splits["val"],
        autocast=autocast(precision, device),
        channels_last=channels_last,
    )
    runs.write_evaluation(run_dir, result)
    runs.write_weights(run_dir, model.state_dict())
    return result


def evaluate_run(project, run: str | None = None, *, device: str | None = None,
                 data_root: Path | None = None) -> Evaluation:  # fmt: skip
    """Evaluate a run's best checkpoint (or its last) on the validation split, using the model,
    data and normalization the run was trained with."""
    source = model_source.from_run(runs.find_run(project.runs_dir, run), project=project)
    settings = runs.read_settings(source.run_folder) or {}
    target = pick_device(device or "auto")
    model = source.model.to(target)
    dataset = load_dataset(source.data, source.input_shape, data_root=data_root)
    batches = make_batches(dataset, "val", 256, target, source.mean, source.std, train=False)
    precision = settings.get("precision", "fp32") if target.type == "cuda" else "fp32"
    return evaluate(
        model,
        batches,
        list(source.classes),  # the names the project shows (the labels follow the folders)
        dataset.splits["val"],
        autocast=autocast(precision, target),
    )
