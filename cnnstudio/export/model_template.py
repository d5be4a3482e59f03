"""The preprocessing, loading and command line of the exported model file ("python" format), as
real Python.

Not imported by CNN Studio: cnnstudio/export/python_file.py reads this file as text and writes
everything below the marker line into the exported file, after the model's class (``Net``) and
its constants. Above the marker stand stand-ins for those, so that ruff checks this file as the
module it will be.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

# Stand-ins for what python_file.py writes
CLASSES = ["a", "b"]
INPUT_SHAPE = (3, 32, 32)  # channels, height, width
MEAN = (0.5, 0.5, 0.5)  # per channel, on a 0-1 scale
STD = (0.25, 0.25, 0.25)
WEIGHTS = Path(__file__).with_name("model.safetensors")


class Net(nn.Module):
    """Stand-in for the model's class."""


# ---- exported below this line ----


def preprocess(image) -> torch.Tensor:
    """A PIL image as the normalised tensor (C×H×W) the network takes: transparency over white,
    converted to the model's channels, resized bilinearly to its input size."""
    from PIL import Image

    channels, height, width = INPUT_SHAPE
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    x = pixels.view(height, width, -1).permute(2, 0, 1).float() / 255
    if x.shape[0] != channels:
        x = x[:1].expand(channels, -1, -1)
    return (x - torch.tensor(MEAN).view(-1, 1, 1)) / torch.tensor(STD).view(-1, 1, 1)


def load(weights_path: str | Path = WEIGHTS) -> Net:
    """The network with the weights in ``weights_path`` (.safetensors, or a state dict saved with
    torch.save), in eval mode."""
    path = Path(weights_path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = Net()
    model.load_state_dict(state)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description="Classify images with the exported network.")
    parser.add_argument("images", nargs="+", type=Path, help="image files")
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="weights file")
    parser.add_argument("--top", type=int, default=3, help="classes shown per image")
    args = parser.parse_args()

    from PIL import Image

    model = load(args.weights)
    for path in args.images:
        with Image.open(path) as image:
            x = preprocess(image).unsqueeze(0)
        with torch.no_grad():
            probabilities = model(x).softmax(dim=1)[0]
        top = probabilities.topk(min(args.top, len(CLASSES)))
        guesses = ", ".join(
            f"{CLASSES[i]} {p:.1%}"
            for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        )
        print(f"{path}: {guesses}")


if __name__ == "__main__":
    main()
