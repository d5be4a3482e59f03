"""Look inside a model: what it predicts for an image, where it looks (Grad-CAM, saliency), what
its layers see (feature maps) and what its convolutions learned (filters).

Layers are named as in the editor: the node ids of the spec (``conv1``), and inside a Backbone its
torchvision children (``backbone1.layer4``; the full module path ``backbone1.net.layer4`` works
too, as does any other submodule path). Every function leaves the model as it found it: training
mode, ``requires_grad`` and the parameters' ``.grad`` are untouched, and hooks are removed even
when the forward pass fails.

``inspect_image`` computes everything the inspector view draws in one forward pass and one partial
backward pass, so the view runs a single function off the GUI thread. ``cnnstudio.pictures``
turns the arrays into pictures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnstudio.build import Backbone
from cnnstudio.errors import InspectError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from cnnstudio.spec import ModelSpec

ImageLike = Union[str, Path, "PILImage.Image", np.ndarray]

# Children of a torchvision backbone listed one level deeper (VGG, EfficientNet, MobileNet, ...):
# their "features" is one long Sequential whose stages are what a user wants to pick from.
_EXPANDED_CHILDREN = ("features",)
_MAX_NAMES_IN_MESSAGE = 30
HEAT_METHODS = ("grad-cam", "saliency")  # what the heat map of an inspection shows


class Prediction(NamedTuple):
    """One of the top-k classes: its index, its name and the model's probability for it."""

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class LayerEntry:
    """A layer a user can pick in the inspector, with its per-image output shape."""

    name: str  # node id, or "<backbone id>.<child>" inside a Backbone
    kind: str  # the module's class: Conv2d, ReLU, Backbone, Sequential, ...
    output_shape: tuple[int, ...]
    depth: int  # 0 for the model's own layers, 1 inside a Backbone
    has_filters: bool  # a 2-d convolution: ``filters`` can draw its weights
    convolutional: bool  # holds a convolution (itself or a block of them)

    @property
    def spatial(self) -> bool:
        """The output is a stack of maps larger than one pixel (C×h×w, h·w > 1)."""
        shape = self.output_shape
        return len(shape) == 3 and shape[1] * shape[2] > 1


@dataclass(frozen=True)
class Inspection:
    """Everything the inspector shows for one image, as plain arrays.

    ``maps`` holds the output of every listed layer (and of ``layer``); ``filters`` the normalised
    weights of every listed convolution; ``heat`` the Grad-CAM map of class ``target`` at
    ``cam_layer`` (zeros when the model has no spatial layer), or its saliency map
    (``heat_method``).
    """

    image: np.ndarray  # H×W×C float32 in [0, 1]: the input after resizing, before normalisation
    predictions: tuple[Prediction, ...]
    target: int
    target_name: str
    cam_layer: str | None
    heat: np.ndarray  # H×W float32 in [0, 1]
    layer: str | None  # the layer whose maps are shown first
    layers: tuple[LayerEntry, ...]
    maps: dict[str, np.ndarray]
    filters: dict[str, np.ndarray]
    heat_method: str = "grad-cam"  # what made ``heat``: one of HEAT_METHODS

    @property
    def feature_maps(self) -> np.ndarray | None:
        """The output of ``layer`` (C×h×w for a convolutional layer)."""
        return self.maps.get(self.layer) if self.layer is not None else None


# Images


def load_pixels(image: ImageLike, input_shape: Sequence[int]) -> np.ndarray:
    """``image`` (a file path, a PIL image or an H×W[×C] array) as the H×W×C uint8 array the
    model sees: converted to its channels and resized to its input size as training does."""
    from PIL import Image, UnidentifiedImageError

    from cnnstudio.images import decode_image, image_to_array

    channels, height, width = (int(v) for v in input_shape)
    size = (height, width)
    if isinstance(image, (str, Path)):
        path = Path(image)
        try:
            array = decode_image(path, channels, size)
        except FileNotFoundError:
            raise InspectError(f"{path}: no such file", path) from None
        except IsADirectoryError:
            raise InspectError(f"{path}: a folder, not an image file", path) from None
        except UnidentifiedImageError:
            raise InspectError(
                f"{path}: not an image (the content is not a known image format)", path
            ) from None
        except (OSError, SyntaxError, ValueError) as error:
            raise InspectError(f"{path}: cannot read the image ({error})", path) from None
    elif isinstance(image, np.ndarray):
        array = image_to_array(_array_image(image), channels, size)
    elif isinstance(image, Image.Image):
        array = image_to_array(image, channels, size)
    else:
        raise InspectError(
            f"cannot inspect a {type(image).__name__}: give an image file, a PIL image or an "
            "H×W×C array"
        )
    return np.ascontiguousarray(array.transpose(1, 2, 0))


def _array_image(array: np.ndarray) -> PILImage.Image:
    from PIL import Image

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InspectError(
            f"an image array must be H×W, H×W×1, H×W×3 or H×W×4; got shape {array.shape}"
        )
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise InspectError(
                f"an image array must be uint8 or float in [0, 1], not {array.dtype}"
            )
        array = (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def _normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """H×W×C uint8 -> 1×C×H×W float, with the multiply-add the training batches use."""
    return normalise_batch(torch.from_numpy(pixels).permute(2, 0, 1)[None], mean, std)


def normalise_batch(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """N×C×H×W uint8 -> float on the same device, with the multiply-add the training batches
    use: (x / 255 - mean) / std."""
    channels = images.shape[1]
    if len(mean) not in (1, channels) or len(std) not in (1, channels):
        raise InspectError(
            f"the normalisation has {len(mean)} mean and {len(std)} std values for a "
            f"{channels}-channel input"
        )
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images.device)[None, :, None, None]
    std_t = torch.tensor(std, dtype=torch.float32, device=images.device)[None, :, None, None]
    scale01, shift = 1 / std_t, -mean_t / std_t
    return torch.addcmul(shift, images.float(), scale01 / 255).contiguous()


def preprocess(
    image: ImageLike, input_shape: Sequence[int], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """The model input (1×C×H×W float) for ``image``: resized and normalised as in training."""
    return _normalise(load_pixels(image, input_shape), mean, std)


# Layers


def _layer_modules(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """(name, module, depth) of the layers a user picks from, in model order."""
    listed = []
    for name, module in model.named_children():
        listed.append((name, module, 0))
        if isinstance(module, Backbone):
            for child, sub in module.net.named_children():
                if child in _EXPANDED_CHILDREN and isinstance(sub, nn.Sequential):
                    for index, stage in sub.named_children():
                        listed.append((f"{name}.{child}.{index}", stage, 1))
                else:
                    listed.append((f"{name}.{child}", sub, 1))
    return listed


def _module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; inside a Backbone the ``net.`` step may be left out."""
    candidates = [name]
    head, _, rest = name.partition(".")
    if rest and isinstance(getattr(model, head, None), Backbone):
        candidates.append(f"{head}.net.{rest}")
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return model.get_submodule(candidate)
        except AttributeError:
            continue
    names = [n for n, _, _ in _layer_modules(model)]
    shown = ", ".join(names[:_MAX_NAMES_IN_MESSAGE])
    hidden = len(names) - _MAX_NAMES_IN_MESSAGE
    more = f" and {hidden} more" if hidden > 0 else ""
    raise InspectError(f"no layer {name!r} in the model; layers: {shown}{more}", layer=name)


def model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration (dropout off, batch norm on its running statistics), then every
    module's own mode back (a frozen backbone stays in eval inside a training model)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


@contextlib.contextmanager
def _capture(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """The outputs of the layers ``names`` during the forward passes run inside the block."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in dict.fromkeys(names):
            handles.append(_module(model, name).register_forward_hook(_hook(captured, name)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _hook(captured: dict[str, torch.Tensor], name: str):
    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            return None
        captured[name] = output
        # The layers downstream get a copy: an in-place op after this layer (ReLU(inplace=True))
        # would otherwise change the captured values and cut their autograd history.
        return output.clone()

    return hook


def _forward(
    model: nn.Module,
    x: torch.Tensor,
    names: Sequence[str],
    *,
    grad: bool,
    required: Sequence[str] = (),
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(input, logits, outputs of ``names``) for ``x`` in eval mode. With ``grad`` the graph is
    recorded from the input, so gradients reach every layer even when all parameters are frozen.
    A layer of ``required`` that does not run is an error."""
    x = x.detach().to(model_device(model))
    if grad:
        x.requires_grad_(True)
    with _eval_mode(model), torch.set_grad_enabled(grad), _capture(model, names) as captured:
        logits = model(x)
    missing = [name for name in required if name not in captured]
    if missing:
        raise InspectError(
            f"layer {missing[0]} does not take part in computing the output", layer=missing[0]
        )
    return x, logits, captured


def _entries(
    listed: Sequence[tuple[str, nn.Module, int]], captured: dict[str, torch.Tensor]
) -> tuple[LayerEntry, ...]:
    entries = []
    for name, module, depth in listed:
        if name not in captured:
            continue  # a branch the output does not use
        entries.append(
            LayerEntry(
                name=name,
                kind=type(module).__name__,
                output_shape=tuple(captured[name].shape[1:]),
                depth=depth,
                has_filters=isinstance(module, nn.Conv2d),
                convolutional=not isinstance(module, Backbone)
                and any(isinstance(m, nn.Conv2d) for m in module.modules()),
            )
        )
    return tuple(entries)


def inspectable_layers(
    model: nn.Module | ModelSpec, input_shape: Sequence[int] | None = None
) -> tuple[LayerEntry, ...]:
    """The layers a user can inspect, in model order, with their per-image output shapes.

    ``model`` is a built model (then ``input_shape`` is needed: one zero image is run through it)
    or a spec (built without pretrained weights when it holds a Backbone).
    """
    from cnnstudio.spec import ModelSpec

    if isinstance(model, ModelSpec):
        from cnnstudio.build import build_model

        input_shape = input_shape or model.input_shape
        model = build_model(model, pretrained=False)
    if input_shape is None:
        raise InspectError("the input shape (C, H, W) is needed to find a model's layer shapes")
    listed = _layer_modules(model)
    x = torch.zeros((1, *input_shape))
    _, _, captured = _forward(model, x, [name for name, _, _ in listed], grad=False)
    return _entries(listed, captured)


def default_cam_layer(layers: Sequence[LayerEntry]) -> str | None:
    """Where Grad-CAM looks by default: the last convolutional layer with a spatial output, carried
    on through the layers after it that keep its shape (its batch norm, ReLU, residual Add), as
    Grad-CAM's authors take the last convolutional block's output."""
    last = None
    for index, entry in enumerate(layers):
        if entry.convolutional and entry.spatial:
            last = index
    if last is None:
        spatial = [entry for entry in layers if entry.spatial]
        return spatial[-1].name if spatial else None
    anchor = layers[last]
    end = last
    while (
        end + 1 < len(layers)
        and layers[end + 1].output_shape == anchor.output_shape
        and layers[end + 1].depth == anchor.depth
    ):
        end += 1
    return layers[end].name


# What the layers hold


def filters(model: nn.Module, layer: str, channel: int | None = None) -> np.ndarray:
    """The weights of the convolution ``layer`` as pictures, each filter scaled to [0, 1] on its
    own (min-max, as the classic filter plots do; a constant filter is mid-grey 0.5).

    A convolution over 3 channels gives out×kH×kW×3 (RGB); any other gives out×kH×kW: the mean over
    the input channels, or the kernels of input channel ``channel`` when one is given.
    """
    module = _module(model, layer)
    if not isinstance(module, nn.Conv2d):
        raise InspectError(
            f"layer {layer} is a {type(module).__name__}, not a convolution: it has no filters",
            layer=layer,
        )
    weight = module.weight.detach().float().cpu()  # out × in/groups × kH × kW
    if channel is not None:
        if not 0 <= channel < weight.shape[1]:
            raise InspectError(
                f"layer {layer} has {weight.shape[1]} input channels; no channel {channel}",
                layer=layer,
            )
        pictures = weight[:, channel]
    elif weight.shape[1] == 3:
        pictures = weight.permute(0, 2, 3, 1)
    else:
        pictures = weight.mean(1)
    flat = pictures.reshape(len(pictures), -1)
    low = flat.min(1, keepdim=True).values
    span = flat.max(1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(1e-30), torch.full_like(flat, 0.5))
    return scaled.reshape(pictures.shape).numpy().astype(np.float32)


def feature_maps(
    model: nn.Module, x: torch.Tensor, layers: str | Sequence[str]
) -> dict[str, np.ndarray]:
    """The outputs of ``layers`` for the first image of ``x``, by forward hooks: C×h×w for a
    convolutional layer, the shape the analysis predicts for any other."""
    names = [layers] if isinstance(layers, str) else list(layers)
    _, _, captured = _forward(model, x, names, grad=False, required=names)
    return {name: _array(captured[name][0]) for name in names}


activations = feature_maps


def top_k(
    model: nn.Module, x: torch.Tensor, k: int = 5, classes: Sequence[str] = ()
) -> list[Prediction]:
    """The ``k`` most probable classes for the first image of ``x``, most probable first."""
    _, logits, _ = _forward(model, x, [], grad=False)
    return _top(logits, k, classes)


def _top(logits: torch.Tensor, k: int, classes: Sequence[str]) -> list[Prediction]:
    return list(top_predictions(logits[:1].flatten(1), k, classes)[0])


def top_predictions(
    logits: torch.Tensor, k: int, classes: Sequence[str]
) -> list[tuple[Prediction, ...]]:
    """The ``k`` most probable classes of every row of N×classes ``logits``, most probable first
    (softmax on the logits' device; one copy to the CPU for the whole batch)."""
    probabilities = torch.softmax(logits.detach().float(), 1)
    values, indices = probabilities.topk(max(1, min(k, probabilities.shape[1])), 1)
    return [
        tuple(
            Prediction(int(i), _class_name(classes, int(i)), float(v))
            for v, i in zip(row_values, row_indices, strict=True)
        )
        for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def _class_name(classes: Sequence[str], index: int) -> str:
    return str(classes[index]) if index < len(classes) else f"class {index}"


def _target_index(target: int | str | None, logits: torch.Tensor, classes: Sequence[str]) -> int:
    count = logits.shape[-1]
    if target is None:
        return int(logits[0].argmax())
    if isinstance(target, str):
        if target in classes:
            return list(classes).index(target)
        if target.isdigit():
            target = int(target)
        else:
            raise InspectError(f"no class {target!r}; classes: {', '.join(map(str, classes))}")
    if not 0 <= target < count:
        raise InspectError(f"class index {target} is out of range: the model has {count} classes")
    return int(target)


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    target: int | str | None = None,
    classes: Sequence[str] = (),
) -> np.ndarray:
    """Grad-CAM (Selvaraju et al.) of class ``target`` (default: the top class) at ``layer``.

    The layer's maps weighted by their mean gradient, summed, ReLU'd, upsampled bilinearly to the
    input's H×W and divided by their maximum: H×W float32 in [0, 1], all zeros when nothing in the
    layer speaks for the class.
    """
    _, logits, captured = _forward(model, x, [layer], grad=True, required=[layer])
    index = _target_index(target, logits, classes)
    return _cam(logits, captured[layer], index, tuple(x.shape[-2:]), layer)


def _cam(
    logits: torch.Tensor,
    activation: torch.Tensor,
    index: int,
    size: tuple[int, int],
    layer: str,
) -> np.ndarray:
    if activation.dim() != 4:
        raise InspectError(
            f"layer {layer} gives a {'×'.join(map(str, activation.shape[1:]))} output; Grad-CAM "
            "needs a layer with spatial maps (C×H×W)",
            layer=layer,
        )
    (grads,) = torch.autograd.grad(logits[0, index], activation, allow_unused=True)
    if grads is None:
        return np.zeros(size, dtype=np.float32)
    weights = grads[0].mean((1, 2))
    cam = torch.relu((weights[:, None, None] * activation[0].detach()).sum(0))
    cam = F.interpolate(cam[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return _unit(cam)


def saliency(
    model: nn.Module, x: torch.Tensor, target: int | str | None = None, classes: Sequence[str] = ()
) -> np.ndarray:
    """Vanilla gradient saliency: |d score / d pixel|, the maximum over the channels, divided by
    its maximum: H×W float32 in [0, 1]."""
    inputs, logits, _ = _forward(model, x, [], grad=True)
    return _saliency(logits, inputs, _target_index(target, logits, classes))


def _saliency(logits: torch.Tensor, inputs: torch.Tensor, index: int) -> np.ndarray:
    (grad,) = torch.autograd.grad(logits[0, index], inputs)
    return _unit(grad[0].abs().amax(0))


def _unit(values: torch.Tensor) -> np.ndarray:
    values = values.detach().float()
    top = values.max()
    scaled = values / top if bool(top > 0) else torch.zeros_like(values)
    return _array(scaled)


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


# Everything at once


def inspect_image(
    model: nn.Module,
    image: ImageLike,
    input_shape: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[str] = (),
    layer: str | None = None,
    *,
    layers: Sequence[str] = (),
    cam_layer: str | None = None,
    target: int | str | None = None,
    k: int = 5,
    heat_method: str = "grad-cam",
) -> Inspection:
    """What the inspector shows for ``image``, from one forward and one partial backward pass.

    ``layer`` is the layer whose maps come first (default: the first convolution); ``layers`` adds
    submodules beyond the listed ones (any module path); ``cam_layer`` is where Grad-CAM looks
    (default: ``default_cam_layer``); ``target`` the class it explains (default: the top one).
    ``heat_method`` makes the heat map: "grad-cam" (at ``cam_layer``), or "saliency" (the
    gradient of the class score with respect to each input pixel).
    """
    if heat_method not in HEAT_METHODS:
        raise InspectError(f"heat map {heat_method!r}: choose one of {', '.join(HEAT_METHODS)}")
    pixels = load_pixels(image, input_shape)
    x = _normalise(pixels, mean, std)
    listed = _layer_modules(model)
    extra = [name for name in (layer, cam_layer, *layers) if name]
    inputs, logits, captured = _forward(
        model, x, [name for name, _, _ in listed] + extra, grad=True, required=extra
    )
    entries = _entries(listed, captured)
    if layer is None:
        first = next((e for e in entries if e.has_filters), None) or next(
            (e for e in entries if e.spatial), None
        )
        layer = first.name if first else (entries[0].name if entries else None)
    cam_name = cam_layer or default_cam_layer(entries)
    index = _target_index(target, logits, classes)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    if heat_method == "saliency":
        heat = _saliency(logits, inputs, index)
    elif cam_name is None:
        heat = np.zeros(size, dtype=np.float32)
    else:
        heat = _cam(logits, captured[cam_name], index, size, cam_name)
    names = dict.fromkeys([*(e.name for e in entries), *extra])
    maps = {name: _array(captured[name][0]) for name in names}
    convolutions = [e.name for e in entries if e.has_filters]
    convolutions += [n for n in extra if isinstance(_module(model, n), nn.Conv2d)]
    return Inspection(
        image=(pixels.astype(np.float32) / 255.0),
        predictions=tuple(_top(logits, k, classes)),
        target=index,
        target_name=_class_name(classes, index),
        cam_layer=cam_name,
        heat=heat,
        layer=layer,
        layers=entries,
        maps=maps,
        filters={name: filters(model, name) for name in dict.fromkeys(convolutions)},
        heat_method=heat_method,
    )
