"""The selected layer's inputs in the Properties panel: a list to choose each one from (the model's
input and every layer that keeps the graph acyclic), and for a merge, inputs added and removed.
Every change is one undo command; a refused one says why and changes nothing."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.errors import WiringError
from cnnstudio.layers import LAYER_KINDS
from ui.editor.commands import SetInputsCommand
from ui.icons import icon

ADD_PROMPT = "Add an input…"


class LayerInputsPanel(QWidget):
    """The inputs of layer ``node_id``: ``choosers[i]`` picks input i, ``removers[i]`` removes it
    (merges with more than one input), ``adder`` adds one (merges)."""

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.node_id: str | None = None
        self.choosers: list[QComboBox] = []
        self.removers: list[QToolButton] = []
        self.adder: QComboBox | None = None
        self._build_ui()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.setSpacing(4)
        self.heading = QLabel("Inputs", self)
        self.heading.setProperty("role", "heading")
        self.rows_host = QWidget(self)
        self.rows = QGridLayout(self.rows_host)
        self.rows.setContentsMargins(0, 0, 0, 0)
        self.rows.setColumnStretch(1, 1)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setProperty("role", "error")
        for widget in (self.heading, self.rows_host, self.message):
            layout.addWidget(widget)

    def show_node(self, node_id: str | None) -> None:
        """Show the inputs of ``node_id`` (hidden for none, or an id the model does not have)."""
        self._clear()
        spec = self.document.spec
        if node_id is None or node_id not in {n.id for n in spec.nodes}:
            self.node_id = None
            self.hide()
            return
        self.node_id = node_id
        current = spec.inputs_of(node_id)
        allowed = spec.input_candidates(node_id)
        kind = LAYER_KINDS.get(spec.node(node_id).kind)
        merge = kind is not None and kind.is_merge
        for row, name in enumerate(current):
            others = set(current) - {name}
            options = [c for c in allowed if c not in others]
            if name not in options:
                options.insert(0, name)
            chooser = self._combo(options, name)
            chooser.activated.connect(lambda _i, r=row: self._on_input_chosen(r))
            self.rows.addWidget(QLabel(f"input {row + 1}" if merge else "input"), row, 0)
            self.rows.addWidget(chooser, row, 1)
            self.choosers.append(chooser)
            if merge:
                self.rows.addWidget(self._remover(row, enabled=len(current) > 1), row, 2)
        if merge:
            self._add_adder([c for c in allowed if c not in current], len(current))
        self.show()

    # Building

    def _combo(self, options: list[str], current: str) -> QComboBox:
        combo = QComboBox(self.rows_host)
        combo.addItems(options)
        combo.setCurrentText(current)
        combo.setToolTip(
            "The layer this one takes its input from: 'input' is the model's input; only "
            "layers that do not depend on this one are offered"
        )
        return combo

    def _remover(self, row: int, enabled: bool) -> QToolButton:
        button = QToolButton(self.rows_host)
        button.setIcon(icon("delete"))
        button.setToolTip("Remove this input")
        button.setEnabled(enabled)
        button.clicked.connect(lambda _c=False, r=row: self._on_input_removed(r))
        self.removers.append(button)
        return button

    def _add_adder(self, options: list[str], row: int) -> None:
        self.adder = QComboBox(self.rows_host)
        self.adder.addItem(ADD_PROMPT)
        self.adder.addItems(options)
        self.adder.setEnabled(bool(options))
        self.adder.setToolTip("Merge one more layer's output into this one")
        self.adder.activated.connect(lambda _i: self._on_input_added())
        self.rows.addWidget(self.adder, row, 1)

    def _clear(self) -> None:
        while self.rows.count():
            widget = self.rows.takeAt(0).widget()
            if widget is not None:
                widget.hide()
                widget.deleteLater()  # a combo may be inside its own signal now
        self.choosers, self.removers, self.adder = [], [], None
        self.message.clear()

    # Edits

    def _on_input_chosen(self, row: int) -> None:
        inputs = list(self.document.spec.inputs_of(self.node_id))
        inputs[row] = self.choosers[row].currentText()
        self._apply(tuple(inputs))

    def _on_input_removed(self, row: int) -> None:
        inputs = list(self.document.spec.inputs_of(self.node_id))
        del inputs[row]
        self._apply(tuple(inputs))

    def _on_input_added(self) -> None:
        if self.adder is None or self.adder.currentText() == ADD_PROMPT:
            return
        added = self.adder.currentText()
        self._apply((*self.document.spec.inputs_of(self.node_id), added))

    def _apply(self, inputs: tuple[str, ...]) -> None:
        if inputs == self.document.spec.inputs_of(self.node_id):
            return
        try:
            command = SetInputsCommand(self.document, self.node_id, inputs)
        except WiringError as error:
            self.message.setText(str(error))
            return
        node_id = self.node_id
        self.document.push(command)
        self.show_node(node_id)
