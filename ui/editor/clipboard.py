"""Layers on the system clipboard: Copy writes the selection (``cnnstudio.selection``) as JSON under
a mime type of our own and as plain text (a text editor shows the same JSON); Paste reads the
mime type, or text that holds such JSON. Nothing but JSON is read: never pickle."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QMimeData, QObject, Qt
from PySide6.QtGui import QAction, QClipboard, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QMessageBox, QWidget

from cnnstudio import ModelSpec
from cnnstudio.errors import StudioError
from cnnstudio.selection import copy_layers, layers_text, parse_layers_text
from ui.editor.commands import PasteLayersCommand, RemoveLayersCommand

MIME_TYPE = "application/x-cnnstudio-layers+json"


def _clipboard(clipboard: QClipboard | None) -> QClipboard:
    return clipboard or QGuiApplication.clipboard()


def copy_to_clipboard(
    spec: ModelSpec, node_ids: list[str], clipboard: QClipboard | None = None
) -> None:
    """Put the layers ``node_ids`` of ``spec`` on the clipboard (all windows of the app share it,
    and other programs see the text)."""
    text = layers_text(copy_layers(spec, node_ids))
    mime = QMimeData()
    mime.setData(MIME_TYPE, text.encode("utf-8"))
    mime.setText(text)
    _clipboard(clipboard).setMimeData(mime)


def layers_on_clipboard(clipboard: QClipboard | None = None) -> Any:
    """The JSON data of the layers on the clipboard (checked when pasted), None when the
    clipboard is empty; StudioError when it holds text that is not JSON."""
    mime = _clipboard(clipboard).mimeData()
    if mime is None:
        return None
    if mime.hasFormat(MIME_TYPE):
        raw = bytes(mime.data(MIME_TYPE).data())
        try:
            return parse_layers_text(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise StudioError("the clipboard's layers are not UTF-8 text") from None
    text = mime.text() if mime.hasText() else ""
    return parse_layers_text(text) if text.strip() else None


class ClipboardActions(QObject):
    """Edit > Copy, Cut and Paste for the model editor. The shortcuts work while the canvas has
    the focus, so that Ctrl+C in a Properties field still copies its text."""

    def __init__(self, document, canvas: QWidget, parent: QWidget) -> None:
        super().__init__(parent)
        self.document, self.canvas, self.window = document, canvas, parent
        self.copy_action = self._action("&Copy", QKeySequence.StandardKey.Copy, self.copy)
        self.cut_action = self._action("Cu&t", QKeySequence.StandardKey.Cut, self.cut)
        self.paste_action = self._action("&Paste", QKeySequence.StandardKey.Paste, self.paste)

    def _action(self, text: str, key: QKeySequence.StandardKey, slot) -> QAction:
        action = QAction(text, self.window)
        action.setShortcut(QKeySequence(key))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.canvas.addAction(action)
        return action

    def actions(self) -> list[QAction]:
        return [self.cut_action, self.copy_action, self.paste_action]

    def copy(self) -> list[str]:
        """Copy the selected layers; returns their ids (none selected: nothing changes)."""
        ids = self.canvas.selected_ids()
        if ids:
            copy_to_clipboard(self.document.spec, ids)
        return ids

    def cut(self) -> None:
        ids = self.copy()
        if ids:
            command = RemoveLayersCommand(self.document, ids)
            command.setText(f"Cut {', '.join(ids)}")
            self.document.push(command)

    def paste(self) -> list[str]:
        """Paste after the selected layer (the last one in the model's order), or at the end;
        the pasted layers end up selected. A clipboard without layers is said in a message."""
        spec = self.document.spec
        selected = set(self.canvas.selected_ids())
        after = [n.id for n in spec.nodes if n.id in selected][-1:] or [None]
        try:
            data = layers_on_clipboard()
            if data is None:
                raise StudioError("the clipboard is empty: copy layers first")
            command = PasteLayersCommand(self.document, data, after[0])
        except StudioError as error:
            QMessageBox.warning(self.window, "Cannot paste", str(error))
            return []
        self.document.push(command)
        self.canvas.select(command.new_ids)
        return command.new_ids
