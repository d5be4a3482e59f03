"""Torchvision classification networks usable as a Backbone layer.

The names are kept here as data so that the catalogue, the analysis and the editor know them without
importing torchvision (which takes seconds). A test checks the list against
``torchvision.models.list_models``. Torch and torchvision are imported inside the functions.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from cnnstudio.errors import WeightsError

if TYPE_CHECKING:
    from torch import nn

BACKBONES: tuple[str, ...] = (
    "alexnet",
    "convnext_base",
    "convnext_large",
    "convnext_small",
    "convnext_tiny",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "efficientnet_v2_s",
    "googlenet",
    "inception_v3",
    "maxvit_t",
    "mnasnet0_5",
    "mnasnet0_75",
    "mnasnet1_0",
    "mnasnet1_3",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "regnet_x_16gf",
    "regnet_x_1_6gf",
    "regnet_x_32gf",
    "regnet_x_3_2gf",
    "regnet_x_400mf",
    "regnet_x_800mf",
    "regnet_x_8gf",
    "regnet_y_128gf",
    "regnet_y_16gf",
    "regnet_y_1_6gf",
    "regnet_y_32gf",
    "regnet_y_3_2gf",
    "regnet_y_400mf",
    "regnet_y_800mf",
    "regnet_y_8gf",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resnext50_32x4d",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "squeezenet1_0",
    "squeezenet1_1",
    "swin_b",
    "swin_s",
    "swin_t",
    "swin_v2_b",
    "swin_v2_s",
    "swin_v2_t",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vit_b_16",
    "vit_b_32",
    "vit_h_14",
    "vit_l_16",
    "vit_l_32",
    "wide_resnet101_2",
    "wide_resnet50_2",
)


WEIGHT_CHOICES = ("none", "DEFAULT")
# where torchvision classification networks keep their classifier head
HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")
_AUX_PREFIXES = ("AuxLogits.", "aux1.", "aux2.")


class ProbeError(Exception):
    """A backbone cannot take the given input; the message says why in a user's words."""


@dataclass(frozen=True)
class Probe:
    """What a headless backbone does to one sample: output shape, parameter count, FLOPs."""

    output_shape: tuple[int, ...]
    params: int
    flops: int


def default_weights(name: str) -> Any:
    """The torchvision Weights enum member that ``weights="DEFAULT"`` means for ``name``."""
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


def trained_size(name: str) -> int:
    """The image side the DEFAULT weights of ``name`` were trained at (224, or 518 for vit_h_14)."""
    crop = getattr(default_weights(name).transforms(), "crop_size", [224])
    return int(crop[0] if isinstance(crop, (list, tuple)) else crop)


def starting_weights(spec) -> Any:
    """The torchvision weights of the pretrained Backbone a model starts with, or None; its
    preprocessing is what 'auto' normalization uses."""
    if not spec.nodes:
        return None
    first = spec.nodes[0]
    if first.kind == "Backbone" and first.params.get("weights", "DEFAULT") == "DEFAULT":
        return default_weights(first.params.get("name", "resnet18"))
    return None


def weights_path(name: str) -> Path:
    """Where torch's cache keeps (or will keep) the DEFAULT weights of ``name``."""
    import torch.hub

    filename = os.path.basename(urlparse(default_weights(name).url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def weights_cached(name: str) -> bool:
    """Whether the DEFAULT weights of ``name`` are already on disk (no download needed)."""
    return weights_path(name).is_file()


def create_backbone(
    name: str, weights: str = "none", device: Any = None, load: bool = True
) -> nn.Module:
    """The torchvision network ``name`` with its final classifier layer replaced by Identity.

    With ``weights="DEFAULT"`` the network is built as those weights need it (googlenet and
    inception_v3 normalise their input the ImageNet way) and, when ``load``, the ImageNet weights
    are read from torch's cache, downloaded there first when missing, and always loaded with
    ``weights_only=True``. ``load=False`` is for weights that come from a checkpoint instead.
    On ``device="meta"`` nothing is allocated and no weights are loaded.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}")
    if weights not in WEIGHT_CHOICES:
        raise ValueError(f"weights must be one of {WEIGHT_CHOICES}, got {weights!r}")
    import torch
    from torchvision.models import get_model

    pretrained = weights == "DEFAULT"
    kwargs = _builder_kwargs(name, pretrained)
    if str(device) == "meta":  # the architecture alone: measured, never trained
        with _weights_on_meta():
            model = get_model(name, weights=None, **kwargs)
        model.to("meta")
        load = False
    else:
        with torch.device(device or "cpu"):
            model = get_model(name, weights=None, **kwargs)
    head = _remove_head(model)
    if pretrained and load:
        _load_default_weights(model, name, head)
    return model


@dataclass(frozen=True)
class Network:
    """A whole torchvision classifier (``whole_network``): the module, whether it holds the
    DEFAULT ImageNet weights, and the per-channel mean and std (0-1 scale) its input takes."""

    module: nn.Module
    pretrained: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]


def whole_network(name: str) -> Network:
    """torchvision's network ``name`` with its classifier head (for opening it as a graph), with
    the DEFAULT weights when they are in torch's cache (read with ``weights_only=True``; never
    downloaded here) and random values otherwise. Auxiliary heads (GoogLeNet, Inception v3) are
    left out: evaluation does not use them. Their input transform is left out too: the weights
    then take images normalised with mean and std 0.5, which is what the transform computed from
    ImageNet-normalised ones."""
    import torch
    from torchvision.models import get_model

    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}")
    pretrained = weights_cached(name)
    kwargs = {**_builder_kwargs(name, pretrained), "transform_input": False}
    if name not in ("googlenet", "inception_v3"):
        del kwargs["transform_input"]
    with torch.device("cpu"):
        model = get_model(name, weights=None, **kwargs)
    preprocess = default_weights(name).transforms()
    mean, std = tuple(preprocess.mean), tuple(preprocess.std)
    if pretrained:
        _load_default_weights(model, name, head="")
        if "transform_input" in kwargs:
            mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    return Network(model, pretrained, mean, std)


def probe(name: str, input_shape: tuple[int, ...], weights: str = "none") -> Probe:
    """Shape, parameters and FLOPs of the headless backbone for one input, found on the meta
    device (nothing is allocated, nothing downloaded) and cached."""
    return _probe(name, tuple(input_shape), weights == "DEFAULT")


@functools.lru_cache(maxsize=256)
def _probe(name: str, input_shape: tuple[int, ...], pretrained: bool) -> Probe:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models import get_model

    with _weights_on_meta():
        model = get_model(name, weights=None, **_builder_kwargs(name, pretrained))
    model.to("meta")  # the few buffers a builder computed on the CPU (swin_v2's coordinate tables)
    _remove_head(model)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            out = model(torch.empty((1, *input_shape), device="meta"))
    except Exception as error:  # torchvision's own checks (ViT image size, VGG too small, ...)
        size = "×".join(str(v) for v in input_shape)
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        trained = trained_size(name)
        raise ProbeError(
            f"Backbone {name} cannot take a {size} input ({detail}); try the "
            f"size it was trained on, 3×{trained}×{trained}"
        ) from None
    return Probe(tuple(out.shape[1:]), params, counter.get_total_flops())


def _weights_on_meta() -> Any:
    """Like ``torch.device("meta")``, but only for the functions layers make their weights with.

    A builder's own arithmetic stays on the CPU: regnet works out its block widths with
    ``torch.arange`` and reads them back with ``.tolist()``, which a meta tensor cannot do. What it
    leaves on the CPU is small and moved to meta after the build.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    factories = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn}

    class WeightsOnMeta(TorchFunctionMode):
        def __torch_function__(
            self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
        ) -> Any:
            kwargs = kwargs or {}
            if func in factories and kwargs.get("device") is None:
                kwargs["device"] = "meta"
            return func(*args, **kwargs)

    return WeightsOnMeta()


def _builder_kwargs(name: str, pretrained: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=not pretrained)
        if pretrained:
            kwargs["transform_input"] = True  # what torchvision sets with its weights
    if pretrained:
        meta = default_weights(name).meta
        kwargs["num_classes"] = len(meta["categories"])
        if name.startswith("vit_"):
            kwargs["image_size"] = meta["min_size"][0]
    return kwargs


def _remove_head(model: nn.Module) -> str:
    """Replace the last Linear (or 1×1 Conv2d) of the classifier head with Identity; return its
    qualified name."""
    from torch import nn

    for attribute in HEAD_ATTRIBUTES:
        head = getattr(model, attribute, None)
        if isinstance(head, nn.Module):
            break
    else:
        raise ValueError(f"{type(model).__name__} has no classifier head to remove")
    last = "" if isinstance(head, (nn.Linear, nn.Conv2d)) else None
    for sub_name, module in head.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last = sub_name
    if last is None:
        raise ValueError(f"{type(model).__name__}.{attribute} holds no Linear layer")
    qualified = f"{attribute}.{last}" if last else attribute
    parent_name, _, child = qualified.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return qualified


def _load_default_weights(model: nn.Module, name: str, head: str) -> None:
    weights = default_weights(name)
    path = weights_path(name)
    if not path.is_file():
        try:
            state = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
        except OSError as error:  # URLError is an OSError
            reason = getattr(error, "reason", error)
            raise WeightsError(
                f"cannot download the {name} weights ({weights}) from {weights.url}: {reason}. "
                f"Without a network, copy {path.name} into {path.parent}, or set weights to "
                "'none'"
            ) from None
        except RuntimeError as error:
            raise WeightsError(
                f"the downloaded {name} weights are damaged ({error}); try again"
            ) from None
    else:
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise WeightsError(
                f"cannot read the {name} weights in {path}: {error}. Delete the "
                "file to download it again"
            ) from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds no state dict of weights")
    skipped = (f"{head}.", *_AUX_PREFIXES) if head else _AUX_PREFIXES
    state = {k: v for k, v in state.items() if not k.startswith(skipped)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        some = ", ".join((missing or unexpected)[:3])
        raise WeightsError(
            f"the weights in {path} do not fit {name} ({some} ...). Delete the "
            "file to download it again"
        )


@dataclass(frozen=True)
class BackboneInfo:
    """One row of the table of architectures, from the weights API's own metadata."""

    name: str
    weights: str
    params: int
    top1: float | None
    top5: float | None
    input_size: int
    gflops: float | None
    file_mb: float | None
    cached: bool


def backbone_catalog() -> list[BackboneInfo]:
    """Every backbone with the parameter count, ImageNet accuracy, input size, cost and download
    size of its DEFAULT weights, and whether those weights are already on disk."""
    rows = []
    for name in BACKBONES:
        weights = default_weights(name)
        meta = weights.meta
        metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
        rows.append(
            BackboneInfo(
                name=name,
                weights=str(weights).split(".")[-1],
                params=int(meta["num_params"]),
                top1=metrics.get("acc@1"),
                top5=metrics.get("acc@5"),
                input_size=trained_size(name),
                gflops=meta.get("_ops"),
                file_mb=meta.get("_file_size"),
                cached=weights_cached(name),
            )
        )
    return rows
