"""Images per second of the two data paths on the same 32×32 images, side by side.

- fast path: uint8 tensor in memory (on the training device), batched augmentation as tensor ops
  (cnnstudio.batches.TensorBatches);
- classic path: torchvision transforms on PIL images in DataLoader workers (flip, crop 32 pad 4,
  colour jitter 0.2/0.2, ToTensor, Normalize).

Target on the 2-core development machine: fast path at least 5x the classic one.

    .venv/bin/python benchmarks/data_throughput.py [--device cuda] [--images 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from cnnstudio.augment import NO_AUGMENTATION
from cnnstudio.batches import TensorBatches

AUGMENT = {**NO_AUGMENTATION, "hflip": True, "crop_padding": 4, "brightness": 0.2,
           "contrast": 0.2}  # fmt: skip
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


class PILImages(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        from PIL import Image

        self.images = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def classic(images: torch.Tensor, labels: torch.Tensor, batch: int, workers: int,
            device: torch.device) -> float:  # fmt: skip
    from torchvision import transforms as T

    transform = T.Compose([
        T.RandomHorizontalFlip(), T.RandomCrop(32, padding=4), T.ColorJitter(0.2, 0.2),
        T.ToTensor(), T.Normalize(MEAN, STD),
    ])  # fmt: skip
    loader = torch.utils.data.DataLoader(
        PILImages(images, labels, transform), batch_size=batch, shuffle=True,
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
    )  # fmt: skip
    for _ in zip(range(3), loader, strict=False):  # warm the workers up
        pass
    start = time.perf_counter()
    seen = 0
    for x, _ in loader:
        x = x.to(device, non_blocking=True)
        seen += len(x)
    _sync(device)
    return seen / (time.perf_counter() - start)


def fast(images: torch.Tensor, labels: torch.Tensor, batch: int, device: torch.device) -> float:
    on_device = images.to(device)
    batches = TensorBatches(on_device, labels, torch.arange(len(labels)), batch, MEAN, STD,
                            augment=AUGMENT, shuffle=True)  # fmt: skip
    for _ in zip(range(3), batches, strict=False):
        pass
    _sync(device)
    start = time.perf_counter()
    seen = 0
    for x, _ in batches:
        seen += len(x)
    _sync(device)
    return seen / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8,
                           generator=generator)  # fmt: skip
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    classic_rate = classic(images, labels, args.batch_size, args.workers, device)
    fast_rate = fast(images, labels, args.batch_size, device)
    print(f"device {device}, {args.images} images 3×32×32, batch {args.batch_size}")
    print(f"classic (PIL + torchvision, {args.workers} workers): {classic_rate:>10,.0f} img/s")
    print(f"fast (uint8 tensor, batched augmentation):  {fast_rate:>10,.0f} img/s")
    print(f"ratio fast / classic: {fast_rate / classic_rate:.1f}x (target: at least 5x)")


if __name__ == "__main__":
    main()
