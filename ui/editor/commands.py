"""Undo commands for every edit of the project: the model (each keeps the spec before and after,
so undo and redo restore exactly the previous model), the training settings and the data settings.
A value dragged through many steps merges into one command."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtGui import QUndoCommand

from cnnstudio import ModelSpec, Node
from cnnstudio.layers import get_layer_kind
from cnnstudio.selection import paste_layers

_SET_PARAM_ID = 1001
_SET_TRAINING_ID = 1002
_SET_AUGMENT_ID = 1003
_ABSENT = object()  # a training setting the project did not have before the edit


class SpecCommand(QUndoCommand):
    """Replace the model spec; undo puts the old one back."""

    def __init__(self, document, after: ModelSpec, text: str) -> None:
        super().__init__(text)
        self.document = document
        self.before = document.spec
        self.after = after

    def redo(self) -> None:
        self.document.apply_spec(self.after)

    def undo(self) -> None:
        self.document.apply_spec(self.before)


class InsertLayerCommand(SpecCommand):
    def __init__(self, document, kind: str, index: int) -> None:
        spec = document.spec
        self.node = Node(spec.new_id(kind), kind, get_layer_kind(kind).default_params())
        super().__init__(document, spec.insert(index, self.node), f"Add {kind}")


class RemoveLayersCommand(SpecCommand):
    def __init__(self, document, node_ids: list[str]) -> None:
        spec = document.spec
        for node_id in node_ids:
            spec = spec.remove(node_id)
        names = ", ".join(node_ids)
        super().__init__(document, spec, f"Delete {names}")


class MoveLayerCommand(SpecCommand):
    def __init__(self, document, node_id: str, index: int) -> None:
        super().__init__(document, document.spec.move(node_id, index), f"Move {node_id}")


class DuplicateLayersCommand(SpecCommand):
    def __init__(self, document, node_ids: list[str]) -> None:
        spec, self.new_ids = document.spec.duplicate(node_ids)
        super().__init__(document, spec, f"Duplicate {', '.join(node_ids)}")


class ConnectInputCommand(SpecCommand):
    def __init__(self, document, source: str, target: str) -> None:
        super().__init__(
            document, document.spec.connect(source, target), f"Connect {source} to {target}"
        )


class SetParamCommand(SpecCommand):
    """One parameter of one layer; repeated edits of the same parameter merge (spin-box drags)."""

    def __init__(self, document, node_id: str, name: str, value: Any) -> None:
        self.node_id, self.name = node_id, name
        after = document.spec.set_params(node_id, **{name: value})
        super().__init__(document, after, f"Set {node_id}.{name} to {value}")

    def id(self) -> int:
        return _SET_PARAM_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetParamCommand):
            return False
        if (other.node_id, other.name) != (self.node_id, self.name):
            return False
        self.after = other.after
        self.setText(other.text())
        return True


class SetModelShapeCommand(SpecCommand):
    def __init__(self, document, input_shape: tuple[int, int, int], num_classes: int) -> None:
        after = document.spec.with_shape(input_shape, num_classes)
        super().__init__(document, after, "Change model input / classes")


class ReplaceModelCommand(SpecCommand):
    """A whole new model (a template)."""

    def __init__(self, document, spec: ModelSpec, text: str) -> None:
        super().__init__(document, spec, text)


class SetBackboneCommand(SpecCommand):
    """Use the torchvision network ``name`` as the model's backbone: the first Backbone layer
    changes its network, or a new one goes at the top (pretrained, frozen), with a 3-channel input
    at the size the network was trained on."""

    def __init__(self, document, name: str, input_size: int = 224) -> None:
        spec = document.spec
        first = spec.nodes[0] if spec.nodes else None
        if first is not None and first.kind == "Backbone":
            after = spec.set_params(first.id, name=name)
        else:
            node = Node(
                spec.new_id("Backbone"),
                "Backbone",
                {**get_layer_kind("Backbone").default_params(), "name": name},
            )
            after = spec.insert(0, node)
        after = after.with_shape((3, input_size, input_size), spec.num_classes)
        super().__init__(document, after, f"Backbone {name}")


class AdaptModelCommand(SpecCommand):
    """The model made to follow its data (``cnnstudio.fit.fitted``): output classes and input
    shape in one edit, which undo takes back together."""

    def __init__(self, document, after: ModelSpec, change: str) -> None:
        super().__init__(document, after, f"Adapt model to the data ({change})")


class RenameClassCommand(QUndoCommand):
    """A class's display name (``cnnstudio.data.rename_class`` checked it). Undo and redo change
    only the class names, so data settings changed in between stay as they are."""

    def __init__(self, document, data, folder: str) -> None:
        shown = data.class_names.get(folder, folder)
        super().__init__(f"Rename class {folder} to {shown}")
        self.document = document
        self.before = dict(document.project.data.class_names)
        self.after = dict(data.class_names)

    def redo(self) -> None:
        self.document.apply_class_names(self.after)

    def undo(self) -> None:
        self.document.apply_class_names(self.before)


class WireCommand(SpecCommand):
    """An edge from ``source`` to ``target`` (``ModelSpec.wire``); WiringError, before anything
    is pushed, when it cannot be made."""

    def __init__(self, document, source: str, target: str) -> None:
        after = document.spec.wire(source, target)
        super().__init__(document, after, f"Wire {source} to {target}")


class UnwireCommand(SpecCommand):
    """Without the edge ``source`` → ``target`` (``ModelSpec.unwire``)."""

    def __init__(self, document, source: str, target: str) -> None:
        after = document.spec.unwire(source, target)
        super().__init__(document, after, f"Remove the wire {source} → {target}")


class MoveWireCommand(SpecCommand):
    """The edge ``source`` → ``target`` ending at ``new_target`` (``ModelSpec.move_wire``)."""

    def __init__(self, document, source: str, target: str, new_target: str) -> None:
        after = document.spec.move_wire(source, target, new_target)
        super().__init__(document, after, f"Move the wire {source} → {target} to {new_target}")


class SetInputsCommand(SpecCommand):
    """A layer's inputs, all at once (the Properties panel's list)."""

    def __init__(self, document, node_id: str, inputs: tuple[str, ...]) -> None:
        after = document.spec.set_inputs(node_id, inputs)
        super().__init__(document, after, f"Set the inputs of {node_id}")


class SetTrainingCommand(QUndoCommand):
    """One training setting; repeated edits of the same setting merge (spin-box drags)."""

    def __init__(self, document, name: str, value: Any) -> None:
        super().__init__(f"Set {name.replace('_', ' ')} to {value}")
        self.document, self.name = document, name
        self.before = document.project.training.get(name, _ABSENT)
        self.after = value

    def redo(self) -> None:
        self.document.apply_training({self.name: self.after})

    def undo(self) -> None:
        self.document.apply_training({self.name: self.before}, absent=_ABSENT)

    def id(self) -> int:
        return _SET_TRAINING_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetTrainingCommand) or other.name != self.name:
            return False
        self.after = other.after
        self.setText(other.text())
        return True


class SetDataCommand(QUndoCommand):
    """The data settings (other data, or its augmentation), with the training settings that
    follow them (the batch size that suits other data) in the same edit. Edits of one
    augmentation setting in a row merge (spin-box drags)."""

    def __init__(self, document, data, text: str, training: dict | None = None) -> None:
        super().__init__(text)
        self.document = document
        self.before, self.after = document.project.data, data
        current = document.project.training
        self.training_after = dict(training or {})
        self.training_before = {k: current.get(k, _ABSENT) for k in self.training_after}
        self.augment_name = _only_augment_change(self.before, data)

    def redo(self) -> None:
        self.document.apply_data(self.after, self.training_after)

    def undo(self) -> None:
        self.document.apply_data(self.before, self.training_before, absent=_ABSENT)

    def id(self) -> int:
        return _SET_AUGMENT_ID if self.augment_name and not self.training_after else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetDataCommand) or other.id() != self.id():
            return False
        if other.augment_name != self.augment_name:
            return False
        self.after = other.after
        self.setText(other.text())
        return True


def _only_augment_change(before, after) -> str | None:
    """The one augmentation setting that ``after`` changes, when it changes nothing else."""
    if replace(before, augment={}) != replace(after, augment={}):
        return None
    names = {k for k in {**before.augment, **after.augment}
             if before.augment.get(k) != after.augment.get(k)}  # fmt: skip
    return names.pop() if len(names) == 1 else None


class PasteLayersCommand(SpecCommand):
    """Copied layers (``cnnstudio.selection.paste_layers``) inserted after the layer ``after``
    (at the end when None); StudioError before anything changes when the data is not layers."""

    def __init__(self, document, data, after: str | None) -> None:
        spec, self.new_ids = paste_layers(document.spec, data, after)
        super().__init__(document, spec, f"Paste {', '.join(self.new_ids)}")


class OpenGraphCommand(SpecCommand):
    """A network opened for editing (``cnnstudio.fx_import.OpenedNetwork``) replaces the model;
    its weights become a run of the project at the next save. Undo brings the previous model
    back and takes the pending weights with it."""

    def __init__(self, document, opened) -> None:
        super().__init__(document, opened.imported.spec, f"Open {opened.source} as a graph")
        self.opened = opened
        self.previous = document.starting_weights

    def redo(self) -> None:
        super().redo()
        self.document.set_starting_weights(self.opened)

    def undo(self) -> None:
        super().undo()
        self.document.set_starting_weights(self.previous)
