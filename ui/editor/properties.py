"""The property panel: a form generated from the catalogue's description of the selected layer's
parameters (or the model's input and classes when nothing is selected). Values outside what the
catalogue allows are refused with the reason; accepted ones become undo commands."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QKeyCombination, QObject, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.layers import LAYER_KINDS
from cnnstudio.params import AUTO, Param, format_bytes, format_rate
from ui.editor.block_properties import is_block_part, show_block_part
from ui.editor.commands import SetModelShapeCommand, SetParamCommand
from ui.editor.inputs_panel import LayerInputsPanel


class _UndoKeysToTheDocument(QObject):
    """Ctrl+Z and Ctrl+Shift+Z (Ctrl+Y) in a box that edits the project undo the project's last
    edit, as in the best tools, instead of the box's own typing: the box commits what it shows,
    then the key reaches the window's Undo / Redo shortcut."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.ShortcutOverride or not _is_undo_key(event):
            return False
        if isinstance(watched, QAbstractSpinBox):
            watched.interpretText()
        elif isinstance(watched, QLineEdit) and watched.isModified():
            watched.editingFinished.emit()
        event.ignore()  # not the box's: the shortcut map takes it
        return True


def _is_undo_key(event: QKeyEvent) -> bool:
    keys = (QKeySequence.StandardKey.Undo, QKeySequence.StandardKey.Redo)
    return any(event.matches(key) for key in keys) or event.keyCombination() in (
        QKeyCombination(Qt.KeyboardModifier.ControlModifier, Qt.Key.Key_Y),
        QKeyCombination(
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_Z
        ),
    )


_UNDO_KEYS = _UndoKeysToTheDocument()


def route_undo_keys(editor: QWidget) -> QWidget:
    """Let the window's Undo / Redo keys through ``editor`` (and the text box inside it)."""
    editor.installEventFilter(_UNDO_KEYS)
    inner = editor.lineEdit() if isinstance(editor, QComboBox) and editor.isEditable() else None
    if inner is not None:
        inner.installEventFilter(_UNDO_KEYS)
    return editor


def make_editor(param: Param, value: Any, on_change) -> QWidget:
    """A widget for one parameter. ``on_change(value)`` returns None when the value was taken, or
    the reason it was refused. Ctrl+Z in it undoes the project's last edit (``route_undo_keys``)."""
    return route_undo_keys(_make_editor(param, value, on_change))


def _make_editor(param: Param, value: Any, on_change) -> QWidget:
    if param.type == "bool":
        box = QCheckBox()
        box.setChecked(bool(value))
        box.toggled.connect(on_change)
        return box
    if param.type == "choice" or (param.words and param.words != (AUTO,)) or param.type == "text":
        combo = QComboBox()
        combo.setEditable(param.type != "choice")
        options = list(param.choices) + [w for w in param.words if w not in param.choices]
        combo.addItems(options)
        combo.setCurrentText(format_rate(value) if isinstance(value, float) else str(value))

        def commit(text: str) -> None:
            parsed = _parse(param, text)
            on_change(parsed)

        if combo.isEditable():
            combo.lineEdit().editingFinished.connect(lambda: commit(combo.currentText()))
            combo.activated.connect(lambda _i: commit(combo.currentText()))
        else:
            combo.currentTextChanged.connect(commit)
        return combo
    if param.type == "int":
        spin = QSpinBox()
        low = int(param.minimum) - (1 if param.allows_auto else 0)
        spin.setRange(low, int(param.maximum))
        if param.allows_auto:
            spin.setSpecialValueText(AUTO)
        spin.setValue(low if value == AUTO else int(value))
        spin.valueChanged.connect(
            lambda v: on_change(AUTO if param.allows_auto and v == low else v)
        )
        return spin
    tiny = isinstance(param.default, float) and 0 < abs(param.default) < 0.01
    spin = RateSpinBox() if tiny else QDoubleSpinBox()
    if not tiny:
        spin.setDecimals(3)
        spin.setSingleStep(0.05 if (param.maximum or 1) <= 1 else 1.0)
    spin.setRange(float(param.minimum), float(param.maximum))
    spin.setValue(float(value))
    spin.valueChanged.connect(on_change)
    return spin


class RateSpinBox(QDoubleSpinBox):
    """A spin box for values that span decades (learning rates, weight decay): shows them as
    people write them (3e-4, not 0.000300; 1e-8, not 0.000000), takes typed exponents, and steps
    by a tenth of the value's decade."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(14)  # no rounding of a 1e-9 away; the text is format_rate's
        self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)

    def textFromValue(self, value: float) -> str:
        return format_rate(value)

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        try:
            value = float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        inside = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if inside else QValidator.State.Intermediate), text, pos


def _parse(param: Param, text: str) -> Any:
    text = text.strip()
    if text in param.words or param.type in ("choice", "text"):
        return text
    try:
        return int(text) if param.type == "int" else float(text)
    except ValueError:
        return text


class PropertyPanel(QWidget):
    """Edits the selected layer's parameters, or the model's shape when none is selected."""

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.node_id: str | None = None
        self.editors: dict[str, QWidget] = {}
        self._build_ui()
        self._connect()
        self.show_node(None)

    def _build_ui(self) -> None:
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(12, 12, 12, 12)
        self.layout_.setSpacing(8)
        self.title = QLabel(self)
        self.title.setProperty("role", "heading")
        self.help = QLabel(self)
        self.help.setWordWrap(True)
        self.help.setProperty("role", "muted")
        self.form_host = QWidget(self)
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 4, 0, 4)
        self.form.setVerticalSpacing(6)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setProperty("role", "error")
        self.problems = QLabel(self)
        self.problems.setWordWrap(True)
        self.problems.setProperty("role", "error")
        self.memory = QLabel(self)
        self.memory.setWordWrap(True)
        self.memory.setProperty("role", "muted")
        self.inputs = LayerInputsPanel(self.document, self)
        widgets = (self.title, self.help, self.form_host, self.inputs)
        widgets += (self.memory, self.message, self.problems)
        for widget in widgets:
            self.layout_.addWidget(widget)
        self.layout_.addStretch(1)

    def _connect(self) -> None:
        self.document.analysis_ready.connect(lambda _a: self._show_problems())
        self.document.activations_ready.connect(lambda _m: self._show_memory())
        self.document.spec_changed.connect(lambda _s: self._on_spec_changed())

    def _clear_form(self) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        self.message.clear()

    def show_node(self, node_id: str | None) -> None:
        self._clear_form()
        self.inputs.show_node(node_id)
        spec = self.document.spec
        if is_block_part(spec, node_id):
            show_block_part(self, node_id, make_editor)
            return
        if node_id is None or node_id not in [n.id for n in spec.nodes]:
            self.node_id = None
            self._show_model()
            return
        self.node_id = node_id
        node = spec.node(node_id)
        kind = LAYER_KINDS.get(node.kind)
        self.title.setText(f"{node.kind}  ·  {node.id}")
        self.help.setText(kind.help if kind else "Unknown layer kind")
        if kind is None:
            return
        for param in kind.params:
            value = node.params.get(param.name, param.default)
            editor = make_editor(param, value, lambda v, p=param: self._on_value_changed(p, v))
            editor.setToolTip(f"{param.help}\nAllowed: {param.describe()}")
            self.editors[param.name] = editor
            self.form.addRow(param.name, editor)
        self._show_problems()

    def _show_model(self) -> None:
        spec = self.document.spec
        self.title.setText("Model")
        self.help.setText("Select a layer to edit it. The model's input and classes:")
        names = ("channels", "height", "width")
        limits = (4096, 8192, 8192)
        for name, value, top in zip(names, spec.input_shape, limits, strict=True):
            spin = QSpinBox()
            spin.setRange(1, top)
            spin.setValue(value)
            spin.valueChanged.connect(lambda _v: self._on_shape_changed())
            self.editors[name] = route_undo_keys(spin)
            self.form.addRow(f"input {name}", spin)
        classes = QSpinBox()
        classes.setRange(2, 100_000)
        classes.setValue(spec.num_classes)
        classes.valueChanged.connect(lambda _v: self._on_shape_changed())
        self.editors["num_classes"] = route_undo_keys(classes)
        self.form.addRow("classes", classes)
        self._show_problems()

    def _on_value_changed(self, param: Param, value: Any) -> None:
        reason = param.check(value)
        if reason:
            self.message.setText(f"{param.name} {reason}: not applied")
            return
        self.message.clear()
        current = self.document.spec.node(self.node_id).params.get(param.name, param.default)
        if value == current and param.name in self.document.spec.node(self.node_id).params:
            return
        self._applying = True
        try:
            self.document.push(SetParamCommand(self.document, self.node_id, param.name, value))
        finally:
            self._applying = False

    def _on_shape_changed(self) -> None:
        shape = tuple(self.editors[n].value() for n in ("channels", "height", "width"))
        classes = self.editors["num_classes"].value()
        spec = self.document.spec
        if (shape, classes) == (tuple(spec.input_shape), spec.num_classes):
            return
        self._applying = True
        try:
            self.document.push(SetModelShapeCommand(self.document, shape, classes))
        finally:
            self._applying = False

    def _on_spec_changed(self) -> None:
        if getattr(self, "_applying", False):
            return  # our own edit: keep the editor that has the focus
        self.show_node(self.node_id)

    def _show_problems(self) -> None:
        self._show_memory()
        analysis = self.document.analysis
        if analysis is None:
            self.problems.clear()
            return
        if self.node_id is None:
            texts = [str(e) for e in analysis.errors if e.layer is None]
        else:
            texts = [e.message for e in analysis.errors if e.layer == self.node_id]
        self.problems.setText("\n".join(texts))

    def _show_memory(self) -> None:
        """What autograd keeps of the selected layer (or of the whole model) per image for the
        backward pass, as measured on the current model."""
        saved = self.document.activations
        if saved is None:
            self.memory.clear()
            return
        if self.node_id is None:
            kept, whose = saved.per_image_bytes, "the model keeps"
        else:
            kept, whose = saved.layer(self.node_id), "this layer keeps"
        self.memory.setText(
            f"Activation memory: {whose} {format_bytes(kept)} per image for the "
            "backward pass while training"
        )
