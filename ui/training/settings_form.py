"""The training settings of the Train view: one editor per setting, generated from the settings'
description; the devices of this machine by name; the engine's memory estimate for a step at the
chosen batch and the largest batch that fits."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QWidget,
)

from cnnstudio.params import format_bytes, format_rate
from cnnstudio.train import available_devices, estimate_memory, free_memory, pick_device
from cnnstudio.train.devices import cuda_count
from cnnstudio.train_settings import TRAIN_PARAMS
from ui.editor.properties import make_editor

FORM_PARAMS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "backbone_lr",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "grad_clip",
    "precision",
    "early_stopping",
    "device",
    "gpus",
    "channels_last",
    "compile",
    "seed",
)
MEMORY_PARAMS = ("batch_size", "optimizer", "precision", "device")  # what the estimate reads


def gpu_count() -> int:
    """This machine's CUDA devices (the gpus setting shows where there are several)."""
    return cuda_count()


class TrainSettingsForm(QWidget):
    """Edits the document's training settings; ``rejected`` says why a value was not applied."""

    rejected = Signal(str)

    def __init__(self, document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.editors: dict[str, QWidget] = {}
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 4, 8, 4)
        self.refresh()
        self.document.activations_ready.connect(lambda _m: self.update_memory_hint())
        self.document.training_changed.connect(self._on_training_changed)

    def refresh(self) -> None:
        """Show the project's training settings (after another project was opened)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        self.memory_hint = QLabel(self)
        self.memory_hint.setProperty("role", "muted")
        # one line across the form (a wrapped label in a form row was cut in half)
        self.memory_hint.setWordWrap(False)
        params = {p.name: p for p in TRAIN_PARAMS}
        for name in FORM_PARAMS:
            param = params[name]
            value = self.document.project.training.get(name, param.default)
            if name == "device":
                editor = self._device_editor(param, value)
            else:
                editor = make_editor(
                    param, value, lambda v, p=param: self._on_setting_changed(p, v)
                )
            editor.setToolTip(f"{param.help}\nAllowed: {param.describe()}")
            self.editors[name] = editor
            self.form.addRow(name.replace("_", " "), editor)
            if name == "gpus":  # only where there are several, or the project asks for them
                self.form.setRowVisible(editor, gpu_count() > 1 or int(value) > 1)
            if name == "batch_size":
                self.form.addRow(self.memory_hint)
        self.update_memory_hint()

    def _device_editor(self, param, value) -> QComboBox:
        """The devices of this machine by name (GPUs with their memory), not typed names."""
        combo = QComboBox(self)
        for setting, description in available_devices():
            combo.addItem(description, setting)
        index = combo.findData(str(value))
        if index < 0:  # a project made on another machine
            combo.addItem(f"{value} (not on this machine)", str(value))
            index = combo.count() - 1
        combo.setCurrentIndex(index)
        combo.currentIndexChanged.connect(
            lambda i: self._on_setting_changed(param, combo.itemData(i))
        )
        return combo

    def set_editable(self, editable: bool) -> None:
        """Lock the editors while a run trains (it trains a copy of the settings)."""
        for editor in self.editors.values():
            editor.setEnabled(editable)

    def show_value(self, name: str, value) -> None:
        """Show a value set elsewhere (undo, the learning-rate finder) without setting it again;
        an editor that shows it already is left alone (the user may be typing in it)."""
        editor = self.editors.get(name)
        if editor is None:
            return
        editor.blockSignals(True)
        try:
            _show(editor, value)
        finally:
            editor.blockSignals(False)

    def _on_training_changed(self, name: str) -> None:
        param = next((p for p in TRAIN_PARAMS if p.name == name), None)
        if param is not None:
            self.show_value(name, self.document.project.training.get(name, param.default))
        if name in MEMORY_PARAMS:
            self.update_memory_hint()

    def _on_setting_changed(self, param, value) -> None:
        reason = param.check(value)
        if reason:
            self.rejected.emit(f"{param.name} {reason}: not applied")
            return
        self.document.set_training(param.name, value)  # training_changed updates the hint

    def update_memory_hint(self) -> None:
        """The engine's memory estimate for the chosen batch, and the largest batch that fits the
        chosen device when its free memory is known."""
        analysis, saved = self.document.analysis, self.document.activations
        if analysis is None or not analysis.valid or not self.document.analysis_is_current:
            self.memory_hint.setText("")
            return
        if saved is None:  # being measured (a job of the document's): never on this thread
            error = self.document.activations_error
            self.memory_hint.setText(f"no memory estimate: {error}" if error else "")
            return
        settings = self.document.project.training
        batch = settings.get("batch_size", 64)
        precision = settings.get("precision", "fp32")
        precision = "fp32" if precision in ("auto", "fp32") else precision
        estimate = estimate_memory(self.document.spec, settings, precision, saved)
        text = f"≈ {format_bytes(estimate.total(batch))} a step at batch {batch}"
        tip = "What a training step at this batch size needs: weights, gradients, optimizer state"
        tip += " and the activations kept for the backward pass (the engine's estimate)"
        try:
            device = pick_device(str(settings.get("device", "auto")))
        except Exception:  # a device named in the settings that this machine lacks
            device = None
        free = free_memory(device) if device is not None else None
        if free is not None:
            text += f" · up to {estimate.largest_batch(free):,} fit now"
            tip += f"; the largest batch that fits the memory free on {device} now"
        elif device is not None:
            tip += "; on the CPU it comes out of the main memory"
        self.memory_hint.setText(text)
        self.memory_hint.setToolTip(tip)


def _show(editor: QWidget, value) -> None:
    if isinstance(editor, QCheckBox):
        editor.setChecked(bool(value))
    elif isinstance(editor, QAbstractSpinBox):
        special = editor.specialValueText()
        number = editor.minimum() if special and value == special else value
        if editor.value() != number:
            editor.setValue(number)
    elif isinstance(editor, QComboBox):
        index = editor.findData(str(value))  # the device list: settings as item data
        if index >= 0:
            editor.setCurrentIndex(index)
        else:
            text = format_rate(value) if isinstance(value, float) else str(value)
            if editor.currentText() != text:
                editor.setCurrentText(text)
