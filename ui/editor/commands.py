"""Undo commands for model edits. Each keeps the spec before and after, so undo and redo restore
exactly the previous model; a value dragged through many steps merges into one command."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QUndoCommand

from cnnstudio import ModelSpec, Node
from cnnstudio.layers import get_layer_kind
from cnnstudio.selection import paste_layers

_SET_PARAM_ID = 1001


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
