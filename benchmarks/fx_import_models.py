"""The torchvision models ``new --from-model`` opens for editing: for each, the layers of the
imported graph, its parameters next to the original's, and the max abs difference of the outputs
of the studio's model (weights loaded strictly) and the original, eval mode, 2 random 64×64 images
(random weights: nothing is downloaded). The original's parameters leave out auxiliary classifiers,
which evaluation does not run. A refused model prints its one-line message.

    PYTHONPATH=. .venv/bin/python benchmarks/fx_import_models.py [NAME ...]
"""

from __future__ import annotations

import sys

import torch

from cnnstudio.build import build_model
from cnnstudio.errors import StudioError
from cnnstudio.fx_import import import_module, load_model

MODELS = [
    "alexnet",
    "vgg11",
    "vgg16_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "squeezenet1_0",
    "squeezenet1_1",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "mnasnet0_5",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "regnet_x_400mf",
    "regnet_y_400mf",
    "googlenet",
    "inception_v3",
    "shufflenet_v2_x0_5",
    "convnext_tiny",
]


# Auxiliary classifiers (GoogLeNet, Inception v3): not run in evaluation, so not imported.
AUX = ("aux1.", "aux2.", "AuxLogits.")


def row(name: str) -> str:
    original = load_model(f"torchvision:{name}").eval()
    try:
        imported = import_module(original, (3, 64, 64), f"torchvision:{name}")
    except StudioError as error:
        return f"| {name} | refused: {error} | | | |"
    model = build_model(imported.spec).eval()
    model.load_state_dict(imported.state_dict, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = (model(x) - original(x)).abs().max().item()
    ours = sum(p.numel() for p in model.parameters())
    theirs = sum(p.numel() for n, p in original.named_parameters() if not n.startswith(AUX))
    return f"| {name} | {len(imported.spec.nodes)} | {ours:,} | {theirs:,} | {diff:.1e} |"


def main() -> None:
    torch.manual_seed(0)
    print("| torchvision model | layers | parameters | original's | max difference |")
    print("|---|---:|---:|---:|---:|")
    for name in sys.argv[1:] or MODELS:
        print(row(name), flush=True)


if __name__ == "__main__":
    main()
