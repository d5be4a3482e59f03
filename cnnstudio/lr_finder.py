"""The learning-rate range test: train a copy of the model for a short while with the learning
rate growing exponentially, watch the loss, and suggest the rate where it falls fastest: always a
rate inside the range tested, with a note when the curve says the best rate may lie outside it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from cnnstudio.analysis import analyze
from cnnstudio.batches import make_batches
from cnnstudio.build import build_model
from cnnstudio.data import load_dataset
from cnnstudio.errors import ModelError
from cnnstudio.files import atomic_write_text
from cnnstudio.fit import refuse_class_misfit
from cnnstudio.normalization import normalization
from cnnstudio.params import format_rate
from cnnstudio.progress import TaskState, quiet
from cnnstudio.train import batch_of_one, make_optimizer, pick_device
from cnnstudio.train_settings import TrainSettings


@dataclass(frozen=True)
class LRFinderResult:
    """Learning rates tried, the smoothed loss at each, and the suggested rate (one of the range
    tested); ``note`` says, in words, why the suggestion is uncertain ("" when it is not)."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float
    diverged: bool
    note: str = ""

    def to_csv(self) -> str:
        rows = ["lr,loss,raw_loss"]
        rows += [
            f"{lr:.6g},{s:.6g},{r:.6g}"
            for lr, s, r in zip(self.lrs, self.losses, self.raw_losses, strict=True)
        ]
        return "\n".join(rows) + "\n"

    def save_csv(self, path: Path | str) -> None:
        atomic_write_text(path, self.to_csv())


def suggest_lr(lrs: list[float], losses: list[float]) -> float:
    """The rate where the smoothed loss falls fastest against log(lr), looked for between a
    hundredth of the rate at the lowest loss and that rate; the classic "a tenth of the rate at the
    minimum" when the curve is too noisy to show a slope there. Never outside the rates tested:
    a tenth of a minimum at the start would be a rate nobody tried."""
    if not lrs:
        return 1e-3
    return min(max(_steepest(lrs, losses), lrs[0]), lrs[-1])


def suggestion_note(lrs: list[float], losses: list[float], diverged: bool) -> str:
    """Why a suggestion from this curve is uncertain, for the user: too few steps, or the lowest
    loss at an edge of the range tested ("" when the curve dips inside the range)."""
    lowest = min(range(len(losses)), key=losses.__getitem__) if losses else 0
    if len(lrs) > 1 and (lowest == 0 or _steepest(lrs, losses) < lrs[0]):
        return (
            f"the loss was lowest at or near the smallest rate tested ({format_rate(lrs[0])}): "
            "the best rate may be lower still; try a lower start"
        )
    if len(lrs) < 5:
        return f"only {len(lrs)} steps, too few to read the curve: run more steps"
    if lowest == len(lrs) - 1 and not diverged:
        return (
            f"the loss still fell at the largest rate tested ({format_rate(lrs[-1])}): the best "
            "rate may be higher; try a higher end"
        )
    return "stopped when the loss diverged" if diverged else ""


def _steepest(lrs: list[float], losses: list[float]) -> float:
    if len(lrs) < 5:
        return lrs[0]
    lowest = min(range(len(losses)), key=losses.__getitem__)
    at_min = lrs[lowest]
    span = max(1, len(lrs) // 20)  # slope over a few points: single steps are noise
    logs = [math.log10(lr) for lr in lrs]
    candidates = [i for i in range(span, lowest - span + 1) if at_min / 100 <= lrs[i] <= at_min]
    if not candidates:
        return at_min / 10

    def slope(i: int) -> float:
        return (losses[i + span] - losses[i - span]) / (logs[i + span] - logs[i - span])

    steepest = min(candidates, key=slope)
    return lrs[steepest] if slope(steepest) < 0 else at_min / 10


def find_lr(
    project,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    device: str | None = None,
    data_root: Path | None = None,
    state: TaskState | None = None,
    divergence: float = 4.0,
    beta: float = 0.98,
) -> LRFinderResult:
    """Run the range test on a fresh copy of the project's model (the project is not changed).

    Each step is reported to ``state`` (done, total, "learning rate", detail (lr, smoothed
    loss)); a stop asked through it ends the search with Cancelled. Stops early once the smoothed
    loss exceeds ``divergence`` times its best.
    """
    state = state or quiet()
    settings = TrainSettings.from_dict(project.training)
    analysis = analyze(project.model)
    if not analysis.valid:
        raise ModelError(analysis.errors)
    target = pick_device(device or settings.device)
    torch.manual_seed(settings.seed)
    dataset = load_dataset(project.data, project.model.input_shape, data_root=data_root)
    refuse_class_misfit(project.model, dataset.classes)
    norm = normalization(project.data, project.model, dataset)
    mean, std = norm.mean, norm.std
    model = build_model(project.model, analysis=analysis).to(target)
    model.train()
    optimizer = make_optimizer(model, replace(settings, lr=start_lr, backbone_lr="same"))
    batches = make_batches(
        dataset,
        "train",
        settings.batch_size,
        target,
        mean,
        std,
        train=True,
        augment=project.data.augment,
        seed=settings.seed,
    )
    ratio = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    sweep = _Sweep(steps, divergence, beta)
    while not sweep.done:
        for x, y in batches:
            state.check("learning-rate search")
            lr = start_lr * ratio**sweep.step
            for group in optimizer.param_groups:
                group["lr"] = lr
            sweep.record(lr, _step(model, optimizer, x, y, settings.batch_size))
            state.report(sweep.step, steps, "learning rate", (lr, sweep.smoothed[-1]))
            if sweep.done:
                break
        batches.set_epoch(sweep.step)
    lrs, losses = sweep.lrs, sweep.smoothed
    return LRFinderResult(
        lrs,
        losses,
        sweep.raw,
        suggest_lr(lrs, losses),
        sweep.diverged,
        suggestion_note(lrs, losses, sweep.diverged),
    )


def _step(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """One optimizer step; its loss."""
    try:
        loss = nn.functional.cross_entropy(model(x), y)
    except ValueError as error:
        problem = batch_of_one(error, batch_size)
        if problem is None:
            raise
        raise problem from None
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


class _Sweep:
    """The losses of the range test so far, smoothed (exponential moving average with bias
    correction); done after ``steps`` steps or once the smoothed loss exceeds ``divergence`` times
    its best (or a loss is not finite)."""

    def __init__(self, steps: int, divergence: float, beta: float) -> None:
        self.steps, self.divergence, self.beta = steps, divergence, beta
        self.lrs: list[float] = []
        self.raw: list[float] = []
        self.smoothed: list[float] = []
        self.average, self.best = 0.0, math.inf
        self.diverged = False

    @property
    def step(self) -> int:
        return len(self.lrs)

    @property
    def done(self) -> bool:
        return self.diverged or self.step >= self.steps

    def record(self, lr: float, value: float) -> None:
        beta = self.beta
        self.average = beta * self.average + (1 - beta) * (value if math.isfinite(value) else 1e9)
        corrected = self.average / (1 - beta ** (self.step + 1))
        self.lrs.append(lr)
        self.raw.append(value)
        self.smoothed.append(corrected)
        self.best = min(self.best, corrected)
        if not math.isfinite(value) or corrected > self.divergence * self.best:
            self.diverged = True
