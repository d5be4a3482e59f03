"""What the Properties panel shows for a block use (its block, how many times it is used, rename,
make unique, ungroup) and for a layer inside an open block (its parameters, whose edits change the
block's definition, so every use)."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QWidget

from cnnstudio.blocks import block_of, definition_of, node_at, scope_of, use_count
from cnnstudio.errors import BlockError
from cnnstudio.layers import LAYER_KINDS
from cnnstudio.spec import BLOCK
from ui.editor.block_commands import (
    InlineBlockCommand,
    MakeUniqueCommand,
    RenameBlockCommand,
    SetInnerParamCommand,
)


def is_block_part(spec, node_id: str | None) -> bool:
    """Whether ``node_id`` is a block use or a layer inside one (``res1.conv1``)."""
    if node_id is None:
        return False
    node = node_at(spec, node_id)
    return node is not None and ("." in node_id or node.kind == BLOCK)


def show_block_part(panel, node_id: str, make_editor) -> None:
    """Fill ``panel`` (a PropertyPanel, its form cleared) for the use or inner layer
    ``node_id``; ``make_editor`` is the panel's editor factory (properties.make_editor)."""
    spec = panel.document.spec
    node = node_at(spec, node_id)
    panel.node_id = node_id
    if node.kind == BLOCK:
        _show_use(panel, node_id, block_of(node) or "")
        return
    name, inner_id = definition_of(spec, node_id)
    kind = LAYER_KINDS.get(node.kind)
    panel.title.setText(f"{node.kind}  ·  {node_id}")
    panel.help.setText(
        f"Edits the block '{name}' — used {use_count(spec, name)} times: every use changes."
    )
    use_id = scope_of(node_id)[0]
    if "." not in use_id:
        panel.form.addRow(
            _button(
                panel,
                "Make unique",
                "Give this use its own copy of the block",
                lambda: _push(panel, MakeUniqueCommand, use_id),
            )
        )
    if kind is None:
        return
    for param in kind.params:
        value = node.params.get(param.name, param.default)
        editor = make_editor(
            param, value, lambda v, p=param: _on_inner_changed(panel, name, inner_id, p, v)
        )
        editor.setToolTip(f"{param.help}\nAllowed: {param.describe()}")
        panel.editors[param.name] = editor
        panel.form.addRow(param.name, editor)
    panel._show_problems()


def _show_use(panel, use_id: str, name: str) -> None:
    spec = panel.document.spec
    count = use_count(spec, name)
    panel.title.setText(f"Block {name}  ·  {use_id}")
    panel.help.setText(
        f"A use of the block '{name}' — used {count} time{'s' if count != 1 else ''}. Open it "
        "(+ on the box) to edit its layers: the edits change every use."
    )
    rename = QLineEdit(name)
    rename.editingFinished.connect(
        lambda: rename.text() != name and _push(panel, RenameBlockCommand, name, rename.text())
    )
    panel.editors["block"] = rename
    panel.form.addRow("block name", rename)
    if "." not in use_id:
        row = QWidget()
        buttons = QHBoxLayout(row)
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(
            _button(
                panel,
                "Make unique",
                "Give this use its own copy of the block",
                lambda: _push(panel, MakeUniqueCommand, use_id),
            )
        )
        buttons.addWidget(
            _button(
                panel,
                "Ungroup",
                "Replace this use by the block's layers",
                lambda: _push(panel, InlineBlockCommand, use_id),
            )
        )
        panel.form.addRow(row)
    panel._show_problems()


def _button(panel, text: str, tip: str, slot) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    panel.editors[text] = button
    return button


def _push(panel, command_type, *args) -> None:
    try:
        command = command_type(panel.document, *args)
    except BlockError as error:
        panel.message.setText(str(error))
        return
    panel.document.push(command)


def _on_inner_changed(panel, name: str, inner_id: str, param, value) -> None:
    reason = param.check(value)
    if reason:
        panel.message.setText(f"{param.name} {reason}: not applied")
        return
    panel.message.clear()
    current = next(n for n in panel.document.spec.blocks[name].nodes if n.id == inner_id)
    if param.name in current.params and current.params[param.name] == value:
        return
    panel._applying = True
    try:
        panel.document.push(SetInnerParamCommand(panel.document, name, inner_id, param.name, value))
    finally:
        panel._applying = False
