"""Measuring a trained model: at the end of a run (its best checkpoint on the validation split,
written to the run folder with the weights) and later, for any run (``evaluate_run``): on the
validation split, a standard set's official test split, or a labelled image folder that training
never saw. Every evaluation after a run goes through ``evaluate_source``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnstudio import model_source, runs
from cnnstudio.batches import make_batches
from cnnstudio.data import Dataset, load_dataset, load_labelled_folder
from cnnstudio.errors import TrainingError
from cnnstudio.metrics import Evaluation, evaluate
from cnnstudio.model_source import ModelSource
from cnnstudio.progress import TaskState, quiet
from cnnstudio.train.devices import autocast, pick_device

SPLIT_WORDS = {"val": "validation split", "test": "official test split"}
TEST_EVALUATION = "evaluation-test.json"
BATCH = 256


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
    result = replace(
        _with_paths(result, dataset),
        data=SPLIT_WORDS["val"],
        checkpoint=best.name if best.is_file() else "final weights",
    )
    runs.write_evaluation(run_dir, result)
    runs.write_weights(run_dir, model.state_dict())
    return result


def evaluate_run(project, run: str | None = None, **options: Any) -> Evaluation:
    """``evaluate_run_folder`` for the project's run ``run`` (default: the latest one with a
    checkpoint)."""
    folder = runs.find_run(project.runs_dir, run)
    return evaluate_run_folder(folder, project=project, **options)[0]


def evaluate_run_folder(folder: Path, *, project: Any = None, data: Path | None = None,
                        split: str | None = None, device: str | None = None,
                        data_root: Path | None = None, state: TaskState | None = None,
                        save: bool = False) -> tuple[Evaluation, Dataset]:  # fmt: skip
    """Evaluate the run in ``folder`` from its best checkpoint (or its last, when it stopped
    before it had a best), with the model and normalisation it was trained with: on the labelled
    image folder ``data``, else on the run's own data, ``split`` "val" or "test" (default: the
    official test split of a standard set, else the validation split). ``save`` writes the result
    into the run folder (``evaluation_file`` names the file) with the classes' folder names, which
    identify them. Returns the evaluation, its classes called by the names the project shows
    (``ModelSource.classes``), and the images it was measured on."""
    source = model_source.from_run(folder, project=project)
    result, dataset = evaluate_source(
        source, data=data, split=split, device=device, data_root=data_root, state=state
    )
    if save:
        runs.write_evaluation(folder, result, evaluation_file(result, data))
    return result.with_classes(list(source.classes)), dataset


def evaluation_file(result: Evaluation, data: Path | None) -> str:
    """Where in the run folder an evaluation goes: evaluation.json for the validation split (as a
    finished run writes it), evaluation-test.json for the official test split, and
    evaluation-<folder name>.json for an image folder."""
    if data is not None:
        return runs.folder_evaluation_name(data)
    return TEST_EVALUATION if result.data == SPLIT_WORDS["test"] else runs.EVALUATION


def evaluate_source(
    source: ModelSource,
    *,
    data: Path | None = None,
    split: str | None = None,
    device: str | None = None,
    data_root: Path | None = None,
    state: TaskState | None = None,
) -> tuple[Evaluation, Dataset]:
    """``source`` (a run's model) measured as ``evaluate_run`` says, and the images it was
    measured on (for showing its mistakes). Reports loading and evaluating to ``state`` and ends
    with Cancelled when it is told to stop."""
    state = state or quiet()
    if data is not None:
        dataset = load_labelled_folder(
            data, _folder_classes(source), source.input_shape, state=state
        )
        split, words = "test", f"folder {_folder_words(Path(data), dataset.root)}"
    else:
        if source.data is None:
            raise TrainingError(f"{source.label}: the data it was trained with is not recorded")
        dataset = load_dataset(source.data, source.input_shape, state=state, data_root=data_root)
        split = split or ("test" if "test" in dataset.splits else "val")
        if split not in dataset.splits:
            raise TrainingError(
                f"{source.label}: its data has no {split} split (only the standard sets have an "
                "official test split): evaluate on a labelled folder with --data instead"
            )
        words = SPLIT_WORDS[split]
    target = pick_device(device or "auto")
    settings = (runs.read_settings(source.run_folder) if source.run_folder else None) or {}
    precision = settings.get("precision", "fp32") if target.type == "cuda" else "fp32"
    batches = make_batches(dataset, split, BATCH, target, source.mean, source.std, train=False)
    result = evaluate(
        source.model.to(target),
        _reported(batches, state),
        dataset.classes,
        dataset.splits[split],
        autocast=autocast(precision, target),
    )
    checkpoint = source.checkpoint.name if source.checkpoint else ""
    return replace(_with_paths(result, dataset), data=words, checkpoint=checkpoint), dataset


def _folder_classes(source: ModelSource) -> list[str]:
    """The run's classes as the folder names it was trained on (what a labelled folder's class
    folders are matched with); the model's class names when they are not known."""
    return list(source.class_ids or source.classes)


def _folder_words(given: Path, read: Path | None) -> str:
    """The folder's name for a title: "digits", or "digits/test" when its test/ part was read."""
    if read is None or read.resolve() == given.resolve():
        return given.resolve().name
    return f"{given.resolve().name}/{read.name}"


def _with_paths(result: Evaluation, dataset: Dataset) -> Evaluation:
    """The mistakes with their image files, when the images come from files."""
    if dataset.paths is None:
        return result
    paths = dataset.paths
    return replace(result, mistakes=[replace(m, path=str(paths[m.index])) for m in result.mistakes])


def _reported(batches: Iterable, state: TaskState) -> Iterator:
    """``batches``, reporting each to ``state`` and stopping between two when told to."""
    total = len(batches)  # type: ignore[arg-type]
    for done, batch in enumerate(batches, start=1):
        state.check("evaluation")
        yield batch
        state.report(done, total, "evaluating")
