"""The program of the training script CNN Studio exports (train.py), as real Python.

Not imported by CNN Studio: cnnstudio/export/training_script.py reads this file as text and
writes everything below the marker line into train.py, after the project's constants, its model
(``Net``) and the training recipe: the source of cnnstudio.recipe's functions, the very ones the
studio's trainer runs. Above the marker stand stand-ins for those, so that ruff checks this file
as the module it will be.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

from cnnstudio.recipe import make_optimizer, make_scheduler, param_groups, stratified_split

# Stand-ins for what training_script.py writes
CLASSES = ["a", "b"]
CLASS_FOLDERS = ["a", "b"]  # the classes' folders, in label order
INPUT_SHAPE = (3, 32, 32)  # channels, height, width
MEAN = (0.5, 0.5, 0.5)  # per channel, on a 0-1 scale
STD = (0.25, 0.25, 0.25)
SOURCE = "folder"
DATA = "data"
VAL_FRACTION = 0.2  # when the data has no val/ split
SPLIT_SEED = 0
AUGMENT = {
    "hflip": True,
    "crop_padding": 4,
    "brightness": 0.2,
    "contrast": 0.2,
    "saturation": 0.2,
    "rotation": 0.0,
    "resized_crop": False,
    "resized_crop_scale": 0.5,
}
EPOCHS = 10
BATCH_SIZE = 64
OPTIMIZER = "adamw"
LR = 0.001
BACKBONES = ()  # layers trained at BACKBONE_LR
BACKBONE_LR = 0.001
WEIGHT_DECAY = 0.0005
MOMENTUM = 0.9
NESTEROV = False
SCHEDULE = "cosine"
WARMUP_EPOCHS = 0.0
STEP_SIZE = 10
GAMMA = 0.1
LABEL_SMOOTHING = 0.0
GRAD_CLIP = 0.0
SEED = 0


class Net(nn.Module):
    """Stand-in for the project's model."""


# ---- exported below this line ----


def to_channels(image):
    """Images as the model's channels (grayscale or RGB)."""
    return image.convert("L" if INPUT_SHAPE[0] == 1 else "RGB")


def transform(train: bool) -> T.Compose:
    size = INPUT_SHAPE[1:]
    steps = [T.Lambda(to_channels)]
    if train and AUGMENT["resized_crop"]:
        steps.append(T.RandomResizedCrop(size, scale=(AUGMENT["resized_crop_scale"], 1.0)))
    else:
        steps.append(T.Resize(size))
    if train:
        if AUGMENT["hflip"]:
            steps.append(T.RandomHorizontalFlip())
        if AUGMENT["crop_padding"]:
            steps.append(T.RandomCrop(size, padding=AUGMENT["crop_padding"]))
        if AUGMENT["rotation"]:
            steps.append(T.RandomRotation(AUGMENT["rotation"]))
        jitter = [AUGMENT[k] for k in ("brightness", "contrast", "saturation")]
        if any(jitter):
            steps.append(T.ColorJitter(*jitter))
    steps += [T.ToTensor(), T.Normalize(MEAN, STD)]
    return T.Compose(steps)


class ClassFolder(torchvision.datasets.ImageFolder):
    """An image folder whose labels follow CLASS_FOLDERS (ImageFolder itself sorts the folder
    names)."""

    def find_classes(self, directory):
        found = sorted(p.name for p in Path(directory).iterdir() if p.is_dir())
        if sorted(CLASS_FOLDERS) != found:
            return super().find_classes(directory)
        return list(CLASS_FOLDERS), {name: i for i, name in enumerate(CLASS_FOLDERS)}


def datasets(root: str):
    """The training and validation sets."""
    if SOURCE != "folder":
        cls = {
            "cifar10": torchvision.datasets.CIFAR10,
            "cifar100": torchvision.datasets.CIFAR100,
            "mnist": torchvision.datasets.MNIST,
            "fashionmnist": torchvision.datasets.FashionMNIST,
        }[SOURCE]
        # validation is held out of the training images; the official test split stays unseen
        train_view = cls(root, train=True, download=True, transform=transform(True))
        val_view = cls(root, train=True, download=True, transform=transform(False))
    else:
        folder = Path(root)
        val_dirs = [
            folder / n for n in ("val", "valid", "validation", "test") if (folder / n).is_dir()
        ]
        if (folder / "train").is_dir() and val_dirs:
            return (
                ClassFolder(folder / "train", transform(True)),
                ClassFolder(val_dirs[0], transform(False)),
            )
        train_view = ClassFolder(folder, transform(True))
        val_view = ClassFolder(folder, transform(False))
    train_indices, val_indices = stratified_split(train_view.targets, VAL_FRACTION, SPLIT_SEED)
    return Subset(train_view, train_indices.tolist()), Subset(val_view, val_indices.tolist())


def optimizer_and_scheduler(model: nn.Module, epochs: int, steps_per_epoch: int):
    """The optimizer over the model's trainable parameters and its learning-rate schedule,
    stepped once per batch."""
    groups = param_groups(
        model, set(BACKBONES), lr=LR, backbone_lr=BACKBONE_LR, weight_decay=WEIGHT_DECAY
    )
    optimizer = make_optimizer(
        groups, optimizer=OPTIMIZER, lr=LR, momentum=MOMENTUM, nesterov=NESTEROV
    )
    scheduler = make_scheduler(
        optimizer,
        schedule=SCHEDULE,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=WARMUP_EPOCHS,
        step_size=STEP_SIZE,
        gamma=GAMMA,
    )
    return optimizer, scheduler


def train_epoch(model, loader, optimizer, scheduler, loss_fn, device) -> tuple[float, float]:
    """One pass over the training set: the mean loss and the accuracy."""
    model.train()
    seen = correct = 0
    loss_sum = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if GRAD_CLIP:
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return loss_sum / max(1, seen), correct / max(1, seen)


def evaluate(model, loader, device) -> float:
    """The accuracy on the validation set."""
    model.eval()
    seen = correct = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            correct += (model(x).argmax(1) == y).sum().item()
            seen += len(y)
    return correct / max(1, seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--data", default=DATA, help="image folder, or where datasets are kept")
    parser.add_argument("--out", type=Path, default=Path("model.pt"), help="best weights")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    args = parser.parse_args()

    torch.manual_seed(SEED)
    device = torch.device(args.device)
    train_set, val_set = datasets(args.data)
    train_loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=len(train_set) > args.batch_size,  # a batch of one breaks BatchNorm
    )
    val_loader = DataLoader(val_set, batch_size=args.batch_size, num_workers=args.workers)
    model = Net().to(device)
    optimizer, scheduler = optimizer_and_scheduler(model, args.epochs, len(train_loader))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    best = -1.0
    for epoch in range(1, args.epochs + 1):
        loss, accuracy = train_epoch(model, train_loader, optimizer, scheduler, loss_fn, device)
        val_accuracy = evaluate(model, val_loader, device)
        print(
            f"epoch {epoch}/{args.epochs}: loss {loss:.4f} "
            f"acc {accuracy:.4f} | val acc {val_accuracy:.4f}"
        )
        if val_accuracy > best:
            best = val_accuracy
            torch.save(model.state_dict(), args.out)
    print(f"best validation accuracy {best:.4f}; weights in {args.out}")


if __name__ == "__main__":
    main()
