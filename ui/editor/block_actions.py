"""The editor's block actions (Edit menu and the canvas' context menu): Make Block (Ctrl+G),
Ungroup, Make Unique, Rename Block, and inserting a block from the palette. Each is one undo
command; a selection that cannot be a block is refused with the reason in a message box."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QInputDialog, QMessageBox

from cnnstudio.blocks import block_of, new_block_name
from cnnstudio.errors import BlockError
from cnnstudio.spec import BLOCK
from ui.editor.block_commands import (
    InlineBlockCommand,
    InsertBlockCommand,
    MakeBlockCommand,
    MakeUniqueCommand,
    RenameBlockCommand,
)


class BlockActions(QObject):
    """Block actions of ``window`` (a MainWindow: document, canvas, palette_panel)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.document, self.canvas = window.document, window.canvas
        self.make_action = self._action("Make &Block…", self.make_block, "Ctrl+G")
        self.ungroup_action = self._action("Ungroup Block", self.ungroup, "Ctrl+Shift+G")
        self.unique_action = self._action("Make Block Unique", self.make_unique)
        self.rename_action = self._action("Rename Block…", self.rename)
        self.actions = [
            self.make_action,
            self.ungroup_action,
            self.unique_action,
            self.rename_action,
        ]
        for action in self.actions:
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.canvas.addAction(action)
        self.canvas.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        window.palette_panel.block_activated.connect(self.insert)
        self.document.spec_changed.connect(lambda _s: self._on_spec_changed())
        self._on_spec_changed()

    def _action(self, text: str, slot, shortcut: str | None = None) -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _on_spec_changed(self) -> None:
        self.window.palette_panel.set_project_blocks(list(self.document.spec.blocks))

    def _selected_use(self) -> str | None:
        ids = [i for i in self.canvas.selected_ids() if "." not in i]
        spec = self.document.spec
        uses = [i for i in ids if spec.node(i).kind == BLOCK]
        return uses[0] if len(uses) == 1 else None

    def _push(self, make) -> object | None:
        try:
            command = make()
        except BlockError as error:
            QMessageBox.warning(self.window, "Blocks", str(error))
            return None
        self.document.push(command)
        return command

    def make_block(self, name: str | None = None) -> None:
        """The selected layers made a block; ``name`` asked for when not given."""
        ids = [i for i in self.canvas.selected_ids() if "." not in i]
        if not ids:
            QMessageBox.information(self.window, "Make Block", "Select the layers of the block.")
            return
        if name is None:
            name, ok = QInputDialog.getText(
                self.window,
                "Make Block",
                "Block name:",
                text=new_block_name(self.document.spec, "block"),
            )
            if not ok:
                return
        command = self._push(lambda: MakeBlockCommand(self.document, ids, name))
        if command is not None:
            self.canvas.select([command.use_id])

    def ungroup(self) -> None:
        use_id = self._selected_use()
        if use_id is not None:
            self._push(lambda: InlineBlockCommand(self.document, use_id))

    def make_unique(self) -> None:
        use_id = self._selected_use()
        if use_id is not None:
            self._push(lambda: MakeUniqueCommand(self.document, use_id))
            self.canvas.select([use_id])

    def rename(self, new: str | None = None) -> None:
        use_id = self._selected_use()
        if use_id is None:
            return
        old = block_of(self.document.spec.node(use_id))
        if new is None:
            new, ok = QInputDialog.getText(self.window, "Rename Block", "Block name:", text=old)
            if not ok:
                return
        self._push(lambda: RenameBlockCommand(self.document, old, new))

    def insert(self, name: str) -> None:
        """A use of the block ``name`` after the selection (at the end without one)."""
        spec = self.document.spec
        selected = [i for i in self.canvas.selected_ids() if "." not in i]
        index = spec.index(selected[-1]) + 1 if selected else len(spec.nodes)
        command = self._push(lambda: InsertBlockCommand(self.document, name, index))
        if command is not None:
            self.canvas.select([command.node.id])
