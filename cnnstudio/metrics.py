"""Evaluation of a trained model: accuracy, confusion matrix, per-class precision, recall and F1,
and the validation images the model gets most confidently wrong (for the inspector)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Mistake:
    """A validation image classified wrongly: its dataset index, the true and the predicted class,
    the model's confidence in its wrong answer and the loss; ``path`` the image file when the
    evaluation was on a folder ("" otherwise)."""

    index: int
    true: int
    predicted: int
    confidence: float
    loss: float
    path: str = ""


@dataclass(frozen=True)
class Evaluation:
    """What a model scored. ``data`` says on which images in words ("validation split", "official
    test split", "folder NAME"; "" in files written before it was recorded), ``checkpoint`` from
    which weights ("best.pt", "last.pt"; "" when unknown)."""

    classes: list[str]
    accuracy: float
    loss: float
    confusion: np.ndarray  # rows: true class, columns: predicted class
    per_class: list[ClassMetrics]
    mistakes: list[Mistake]
    data: str = ""
    checkpoint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "confusion_matrix": self.confusion.tolist(),
            "per_class": [
                {
                    "class": m.name,
                    "precision": m.precision,
                    "recall": m.recall,
                    "f1": m.f1,
                    "support": m.support,
                }
                for m in self.per_class
            ],
            "mistakes": [vars(m) for m in self.mistakes],
            "data": self.data,
            "checkpoint": self.checkpoint,
        }

    def with_classes(self, classes: list[str]) -> Evaluation:
        """The same evaluation with its classes called ``classes`` (in label order): the names a
        project shows now for the classes the run was evaluated on."""
        if len(classes) != len(self.classes):
            return self
        return replace(
            self,
            classes=list(classes),
            per_class=[replace(m, name=c) for m, c in zip(self.per_class, classes, strict=True)],
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(
            classes=list(data["classes"]),
            accuracy=float(data["accuracy"]),
            loss=float(data["loss"]),
            confusion=np.asarray(data["confusion_matrix"], dtype=np.int64),
            per_class=[
                ClassMetrics(m["class"], m["precision"], m["recall"], m["f1"], m["support"])
                for m in data["per_class"]
            ],
            mistakes=[Mistake(**m) for m in data["mistakes"]],
            data=str(data.get("data", "")),
            checkpoint=str(data.get("checkpoint", "")),
        )


def per_class_metrics(confusion: np.ndarray, classes: list[str]) -> list[ClassMetrics]:
    """Precision, recall and F1 of every class from a confusion matrix (0 where undefined)."""
    true_positive = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    actual = confusion.sum(axis=1).astype(np.float64)
    precision = np.divide(
        true_positive, predicted, out=np.zeros_like(predicted), where=predicted > 0
    )
    recall = np.divide(true_positive, actual, out=np.zeros_like(actual), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return [
        ClassMetrics(name, float(p), float(r), float(f), int(s))
        for name, p, r, f, s in zip(classes, precision, recall, f1, actual, strict=True)
    ]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    classes: list[str],
    indices: torch.Tensor | None = None,
    *,
    autocast: Any = None,
    channels_last: bool = False,
    mistakes: int = 500,
) -> Evaluation:
    """Run ``model`` over ``batches`` (in a fixed order) and measure it. ``indices`` are the dataset
    indices of the samples in that order, for naming the mistakes."""
    model.eval()
    n = len(classes)
    losses, predictions, confidences, targets = [], [], [], []
    for x, y in batches:
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast if autocast is not None else nullcontext():
            logits = model(x)
        logits = logits.float()
        losses.append(F.cross_entropy(logits, y, reduction="none"))
        probabilities = logits.softmax(dim=1)
        confidence, predicted = probabilities.max(dim=1)
        predictions.append(predicted)
        confidences.append(confidence)
        targets.append(y)
    if not targets:
        empty = np.zeros((n, n), dtype=np.int64)
        return Evaluation(classes, 0.0, 0.0, empty, per_class_metrics(empty, classes), [])
    loss, predicted, confidence, true = (
        torch.cat(v) for v in (losses, predictions, confidences, targets)
    )
    confusion = torch.bincount(true * n + predicted, minlength=n * n).reshape(n, n).cpu().numpy()
    wrong = torch.nonzero(predicted != true).flatten()
    worst = wrong[confidence[wrong].argsort(descending=True)][:mistakes].cpu()
    positions = indices.cpu() if indices is not None else torch.arange(len(true))
    true_c, pred_c = true.cpu(), predicted.cpu()
    conf_c, loss_c = confidence.cpu(), loss.cpu()
    found = [
        Mistake(
            int(positions[i]), int(true_c[i]), int(pred_c[i]), float(conf_c[i]), float(loss_c[i])
        )
        for i in worst.tolist()
    ]
    accuracy = float(np.trace(confusion) / max(1, confusion.sum()))
    return Evaluation(
        classes,
        accuracy,
        float(loss_c.mean()),
        confusion,
        per_class_metrics(confusion, classes),
        found,
    )
