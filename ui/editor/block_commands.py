"""Undo commands for named blocks (cnnstudio.blocks): make a block of a selection, inline a use,
give a use its own copy, rename a block, edit a layer of a definition, insert a use. Each is one
undo step that keeps the spec before and after."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QUndoCommand

from cnnstudio import blocks
from cnnstudio.spec import BLOCK, Node
from ui.editor.commands import SpecCommand

_SET_INNER_PARAM_ID = 1002


class MakeBlockCommand(SpecCommand):
    """The selected layers become the block ``name`` with one use in their place. BlockError
    (raised before anything changes) when the selection has more than one input or output."""

    def __init__(self, document, node_ids: list[str], name: str) -> None:
        after, self.use_id = blocks.make_block(document.spec, node_ids, name)
        super().__init__(document, after, f"Make block {name}")


class InlineBlockCommand(SpecCommand):
    def __init__(self, document, use_id: str) -> None:
        super().__init__(document, blocks.inline(document.spec, use_id), f"Ungroup {use_id}")


class MakeUniqueCommand(SpecCommand):
    def __init__(self, document, use_id: str) -> None:
        after, self.name = blocks.make_unique(document.spec, use_id)
        super().__init__(document, after, f"Make {use_id} unique ({self.name})")


class RenameBlockCommand(SpecCommand):
    def __init__(self, document, old: str, new: str) -> None:
        after = blocks.rename_block(document.spec, old, new)
        super().__init__(document, after, f"Rename block {old} to {new}")


class InsertBlockCommand(SpecCommand):
    """A use of ``name`` (the project's block, or a built-in one copied into the project)."""

    def __init__(self, document, name: str, index: int) -> None:
        spec = blocks.with_block(document.spec, name)
        self.node = Node(blocks.new_use_id(spec, name), BLOCK, {"block": name})
        super().__init__(document, spec.insert(index, self.node), f"Add block {name}")


class SetInnerParamCommand(SpecCommand):
    """One parameter of one layer of a block's definition (every use changes); repeated edits of
    the same parameter merge."""

    def __init__(self, document, name: str, inner_id: str, param: str, value: Any) -> None:
        self.key = (name, inner_id, param)
        after = blocks.set_inner_params(document.spec, name, inner_id, **{param: value})
        super().__init__(document, after, f"Set {name}.{inner_id}.{param} to {value}")

    def id(self) -> int:
        return _SET_INNER_PARAM_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetInnerParamCommand) or other.key != self.key:
            return False
        self.after = other.after
        self.setText(other.text())
        return True
