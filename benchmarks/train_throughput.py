"""The Trainer against a plain, hand-written PyTorch loop: same model (SimpleCNN), same data
tensors (the built-in sample set, 4,000 training images 32×32), batch 128, same device, AdamW
(1e-3, weight decay 5e-4), channels_last in both, augmentation off in both.

Prints the training images/s of each (the last epoch, validation and checkpoints excluded) and
their ratio. Target: Trainer / plain loop at least 0.97.

What differs, on purpose:

- the Trainer does what it must and the loop does not: it counts correct answers, keeps the
  losses on the device and reads them every ``log_every`` steps (its default, 20) to check them
  for NaN and log them (metrics.jsonl, TensorBoard, a StepLogged event), steps a learning-rate
  schedule (constant here), checks for stop / pause / snapshot requests between steps, and
  normalises each batch from uint8 images (the loop normalised all of them before its clock);
- the Trainer's AdamW is torch's fused one (``cnnstudio.recipe.make_optimizer``), the loop's is
  torch's default, as a hand-written loop has it. ``--plain-fused`` gives the loop the fused one
  too: the ratio then measures the Trainer's overhead alone.

The sides alternate, round after round, so that drift hits both alike; each round gives a ratio,
and the median of those is the figure to quote on a shared machine (best-of-rounds is printed too).

    .venv/bin/python benchmarks/train_throughput.py [--device cuda] [--epochs 3] [--rounds 2]
        [--plain-fused]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

from cnnstudio import build_model, new_project
from cnnstudio.augment import NO_AUGMENTATION
from cnnstudio.data import dataset_stats, load_dataset
from cnnstudio.project import Project
from cnnstudio.train import EpochEnded, Trainer, autocast

BATCH = 128


def plain_loop(
    device: torch.device,
    epochs: int,
    project: Project | None = None,
    batch_size: int = BATCH,
    precision: str = "fp32",
    fused: bool = False,
) -> float:
    """What a user writes by hand: tensors on the device, a shuffled index per epoch; autocast
    to ``precision`` (bf16, fp16) around the forward pass as the Trainer does. Images/s of the
    last epoch. ``project`` (default: a new one, SimpleCNN on the sample set) gives the model
    and the data; ``fused``: torch's fused AdamW (as the Trainer's) instead of its default."""
    project = project or new_project()
    dataset = load_dataset(project.data, project.model.input_shape)
    mean, std = dataset_stats(dataset)
    train = dataset.splits["train"]
    images = dataset.images[train].to(device).float().div(255)
    images = (images - torch.tensor(mean, device=device)[:, None, None]) / torch.tensor(
        std, device=device
    )[:, None, None]
    images = images.contiguous(memory_format=torch.channels_last)
    labels = dataset.labels[train].to(device)
    torch.manual_seed(0)
    model = build_model(project.model).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, weight_decay=5e-4, **({"fused": True} if fused else {})
    )
    criterion = nn.CrossEntropyLoss()
    rate = 0.0
    for _epoch in range(epochs):
        model.train()
        order = torch.randperm(len(labels), device=device)
        _sync(device)
        start = time.perf_counter()
        for i in range(0, len(order), batch_size):
            batch = order[i : i + batch_size]
            with autocast(precision, device):
                loss = criterion(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        _sync(device)
        rate = len(order) / (time.perf_counter() - start)
    return rate


def trainer(
    device: torch.device,
    epochs: int,
    project: Project | None = None,
    batch_size: int = BATCH,
    precision: str = "fp32",
) -> float:
    """The Trainer on the same model and data as ``plain_loop``: images/s of the last epoch."""
    with tempfile.TemporaryDirectory() as folder:
        base = project or new_project()
        project = replace(base, path=Path(folder), training=dict(base.training))
        project.data = replace(project.data, augment=dict(NO_AUGMENTATION))
        project.training.update(
            epochs=epochs,
            batch_size=batch_size,
            schedule="constant",
            device=str(device),
            precision=precision,
        )  # log_every: the default
        project.save()
        rates = []

        def on_event(event) -> None:
            if isinstance(event, EpochEnded):
                rates.append(event.train_images / event.train_seconds)

        result = Trainer(project).run(on_event)
        if not rates:
            raise SystemExit(f"the run failed: {result}")
        return rates[-1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--plain-fused", action="store_true", help="the plain loop uses the fused AdamW too"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    plain_rates, trainer_rates = [], []
    for _ in range(args.rounds):  # alternate, so that drift hits both alike
        plain_rates.append(plain_loop(device, args.epochs, fused=args.plain_fused))
        trainer_rates.append(trainer(device, args.epochs))
    plain, ours = max(plain_rates), max(trainer_rates)
    ratios = [t / p for t, p in zip(trainer_rates, plain_rates, strict=True)]
    optimizer = "fused AdamW in both" if args.plain_fused else "plain loop: torch's default AdamW"
    print(
        f"device {device}, SimpleCNN, batch {BATCH}, 4,000 images 3×32×32, {args.rounds} rounds "
        f"alternating, {optimizer}"
    )
    print(
        f"plain PyTorch loop: {plain:>9,.0f} img/s best  (rounds: "
        f"{', '.join(f'{r:,.0f}' for r in plain_rates)})"
    )
    print(
        f"Trainer:            {ours:>9,.0f} img/s best  (rounds: "
        f"{', '.join(f'{r:,.0f}' for r in trainer_rates)})"
    )
    print(
        f"ratio Trainer / plain: median of the rounds {statistics.median(ratios):.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)}), best of each side "
        f"{ours / plain:.3f} (target: at least 0.97)"
    )


if __name__ == "__main__":
    main()
