"""The model fitted to its data: what the data asks of the model (its class count, and the input
shape a model for it naturally takes), where the model differs (``misfits``), and the model
adapted to the data (``fitted``).

Only the class count must match for training: the data pipeline converts images to the model's
channels and resizes them to its input size (``cnnstudio.data``), so a different image size or
channel count trains, just not at the data's own resolution. A model that starts with a pretrained
backbone keeps the input its network was trained at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnstudio.analysis import analyze
from cnnstudio.data_settings import DataSettings, class_names, default_input_shape, one_scan
from cnnstudio.errors import ModelError
from cnnstudio.shapes import format_shape
from cnnstudio.spec import ModelSpec, Node

Shape3 = tuple[int, int, int]
_LISTED = 3  # class names shown in a message before "…"


@dataclass(frozen=True)
class DataNeeds:
    """What the data asks of a model: its classes (folder names, in label order) and its images'
    own shape (C, H, W; the most common size of a folder's images)."""

    classes: tuple[str, ...]
    input_shape: Shape3


@dataclass(frozen=True)
class Misfit:
    """One way the model differs from its data: ``what`` ("classes", "channels" or "image
    size"), the model's value and the data's, a sentence saying so and, for a misfit that stops
    training (``blocks_training``: the class count), how to fix it. Images are converted and
    resized to the model's input, so the others train."""

    what: str
    model: Any
    data: Any
    message: str
    fix: str = ""

    @property
    def blocks_training(self) -> bool:
        return self.what == "classes"


def starts_pretrained(spec: ModelSpec) -> bool:
    """Whether the model starts with a (pretrained) backbone, whose input it must keep."""
    return bool(spec.nodes) and spec.nodes[0].kind == "Backbone"


def fitting_shape(spec: ModelSpec, data: DataSettings | Shape3) -> Shape3:
    """The input shape ``spec`` should take for ``data`` (settings, or its images' shape): the
    data's own, unless the model starts with a backbone, which keeps the input it was trained at
    (the data's images are resized to it)."""
    if starts_pretrained(spec):
        return tuple(spec.input_shape)
    return tuple(default_input_shape(data) if isinstance(data, DataSettings) else data)


def data_needs(data: DataSettings, data_root: Path | None = None) -> DataNeeds:
    """What ``data`` asks of a model: its classes and its images' shape."""
    with one_scan():  # a folder's classes and image shape from one scan
        return DataNeeds(tuple(class_names(data, data_root)), tuple(default_input_shape(data)))


def class_misfit(spec: ModelSpec, classes: list[str] | tuple[str, ...]) -> Misfit | None:
    """The class-count misfit of ``spec`` for data with ``classes``, or None when they match.
    Fewer outputs than classes cannot train (a label has no output); more outputs than classes
    would train outputs no image belongs to, and the run's class names would be lost."""
    model, data = spec.num_classes, len(classes)
    if model == data:
        return None
    listed = ", ".join(classes[:_LISTED]) + (", …" if data > _LISTED else "")
    layer = output_layer(spec)
    change = (
        f"{layer.id}'s out_features and the model's classes to {data}"
        if layer is not None
        else f"the model's classes to {data}"
    )
    why = "" if model < data else f": {model - data} outputs would never be trained"
    return Misfit(
        "classes",
        model,
        data,
        f"the model outputs {model} classes but the data has {data} ({listed}){why}",
        "adapt the model to the data (`cnnstudio adapt` on the command line, Adapt model in the "
        f"studio's Data view) or set {change}",
    )


def refuse_class_misfit(spec: ModelSpec, classes: list[str] | tuple[str, ...]) -> None:
    """ModelError (one line: the misfit and its fix) when ``spec``'s class count is not that of
    data with ``classes``: what training and the learning-rate finder check before they start."""
    misfit = class_misfit(spec, classes)
    if misfit is not None:
        raise ModelError([f"{misfit.message}; {misfit.fix}"])


def misfits(spec: ModelSpec, needs: DataNeeds) -> list[Misfit]:
    """Every way ``spec`` differs from the data: classes, channels, image size."""
    found = []
    classes = class_misfit(spec, needs.classes)
    if classes is not None:
        found.append(classes)
    (c, h, w), (dc, dh, dw) = spec.input_shape, fitting_shape(spec, needs.input_shape)
    if c != dc:
        found.append(
            Misfit(
                "channels",
                c,
                dc,
                f"the model takes {_channels(c)} images but the data's are {_channels(dc)}: "
                "they are converted",
            )
        )
    if (h, w) != (dh, dw):
        found.append(
            Misfit(
                "image size",
                (h, w),
                (dh, dw),
                f"the model takes {h}×{w} images but the data's are {dh}×{dw}: they are resized",
            )
        )
    return found


def _channels(count: int) -> str:
    return {1: "grayscale (1-channel)", 3: "colour (3-channel)"}.get(count, f"{count}-channel")


def output_layer(spec: ModelSpec) -> Node | None:
    """The Linear layer that gives the class scores: the last layer when it is a Linear, else the
    last Linear with as many outputs as the model has classes (a Softmax or Dropout may follow)."""
    if not spec.nodes:
        return None
    if spec.nodes[-1].kind == "Linear":
        return spec.nodes[-1]
    return next(
        (
            n
            for n in reversed(spec.nodes)
            if n.kind == "Linear" and n.params.get("out_features") == spec.num_classes
        ),
        None,
    )


def fitted(spec: ModelSpec, needs: DataNeeds) -> ModelSpec:
    """``spec`` adapted to the data: as many classes as the data (on the model and its output
    layer) and the data's input shape. The input keeps the model's size when the model would not
    work at the data's (pooling a small image away), since images are resized anyway."""
    spec_out = _with_classes(spec, len(needs.classes))
    shape = fitting_shape(spec, needs.input_shape)
    shaped = spec_out.with_shape(shape, spec_out.num_classes)
    if shaped.input_shape == spec.input_shape or analyze(shaped).valid:
        return shaped
    _c, h, w = spec.input_shape
    kept = spec_out.with_shape((shape[0], h, w), spec_out.num_classes)
    return kept if analyze(kept).valid else spec_out


def _with_classes(spec: ModelSpec, count: int) -> ModelSpec:
    layer = output_layer(spec)
    if layer is not None:
        spec = spec.set_params(layer.id, out_features=count)
    return spec.with_shape(spec.input_shape, count)


def adaptation(before: ModelSpec, after: ModelSpec) -> str:
    """What adapting changes, in words ("classes 4 → 10 (fc3), input 3×32×32 → 1×8×8"), or ""."""
    parts = []
    if before.num_classes != after.num_classes:
        layer = output_layer(before)
        where = f" ({layer.id})" if layer is not None else ""
        parts.append(f"classes {before.num_classes} → {after.num_classes}{where}")
    if tuple(before.input_shape) != tuple(after.input_shape):
        parts.append(
            f"input {format_shape(before.input_shape)} → {format_shape(after.input_shape)}"
        )
    return ", ".join(parts)
