"""PyTorch and the engine's torch modules, imported on a pool thread once the window shows.

``import torch`` takes seconds (3.2 s of the 4.5 s the window took to appear on the reference
machine), and the editor does not need it: the project, the catalogue and the analysis are plain
Python. So the window shows with the editor first, and ``import_engine`` runs on a pool thread
(``ui.background.Jobs``) while the user edits; the views that need torch (Data, Train, Inspect,
Predict, Export) are built when it is done. Python's import lock makes an ``import torch`` on any
other thread meanwhile wait for this one, so nothing is imported twice and nothing half-imported
is seen.

``EngineLoader`` runs that import for the window and keeps what was asked of torch's views
before it finished: such an action shows that it waits (a busy cursor and a status message) and
runs when the engine is there, instead of freezing the window with no sign.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QApplication

from cnnstudio.progress import TaskState, quiet
from ui.background import Jobs

ENGINE_MODULES = (
    "torch",
    "cnnstudio.build",
    "cnnstudio.data",
    "cnnstudio.runs",
    "cnnstudio.inspect",
    "cnnstudio.predict",
    "cnnstudio.train",
    "cnnstudio.lr_finder",
    "cnnstudio.sweep",
    "cnnstudio.export",
    "cnnstudio.activation_memory",
    "pyqtgraph",
    "ui.data_view",
    "ui.training.panel",
    "ui.inspector",
    "ui.predict_view",
    "ui.export_dialog",
    "ui.training.sweep_dialog",
)
"""What the torch views import, heaviest first, the views' own modules last: all of it here, so
that the GUI thread only builds the widgets (importing pyqtgraph and these modules there froze the
window for a second). Importing a module that defines widgets makes none: that is safe on any
thread. torchvision is not here: ``ui.main_window``'s warm-up imports it later, and nothing the
views do at once needs it."""

TORCH_FREE_MODULES = (
    "cnnstudio",
    "cnnstudio.errors",
    "cnnstudio.files",
    "cnnstudio.params",
    "cnnstudio.backbones",
    "cnnstudio.layers",
    "cnnstudio.spec",
    "cnnstudio.shapes",
    "cnnstudio.progress",
    "cnnstudio.blocks",
    "cnnstudio.analysis",
    "cnnstudio.selection",
    "cnnstudio.train_settings",
    "cnnstudio.templates",
    "cnnstudio.project",
    "ui.main_window",
)
"""The editor's path: these import without torch (tests/test_startup.py checks it in a fresh
process), so that the window shows before torch has loaded."""


def import_engine(state: TaskState) -> None:
    """Import torch and the engine modules the torch views use (a pool thread's job; seconds)."""
    for number, name in enumerate(ENGINE_MODULES):
        state.check()
        state.report(number, len(ENGINE_MODULES), f"Loading {name}…")
        importlib.import_module(name)


def torch_imported() -> bool:
    """Whether torch is imported completely in this process (not being imported on a thread:
    Python marks a module whose import is under way with ``__spec__._initializing``)."""
    module = sys.modules.get("torch")
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


LOADING_TEXT = "Loading PyTorch…"


class EngineLoader(QObject):
    """Imports the engine on a pool thread (``start``) and runs what waits for it (``when_loaded``).

    ``loaded`` is emitted on the GUI thread once the import is done, before the waiting actions
    run, so that its slots can build the views those actions use; ``failed`` carries the reason
    when torch cannot be imported. ``status`` shows a line in the window's status bar (None
    clears it)."""

    loaded = Signal()
    failed = Signal(str)

    def __init__(
        self,
        parent: QObject,
        status: Callable[[str | None], None],
        load: Callable[[TaskState], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.error: str | None = None
        self._status = status
        self._load = load or import_engine
        self._custom = load is not None
        self._done = False
        self._waiting: list[Callable[[], Any]] = []
        self._cursor = False
        self._jobs = Jobs(self)
        self._jobs.finished.connect(lambda _number, _result: self._finish())
        self._jobs.failed.connect(self._on_failed)

    def is_loaded(self) -> bool:
        return self._done

    def start(self) -> None:
        """Import the engine: at once on this thread when torch is imported already (tests, a
        second window: the rest takes a fraction of a second), else on a pool thread."""
        if self._done or self._jobs.busy() or self.error is not None:
            return
        if not self._custom and torch_imported():
            self._load(quiet())
            self._finish()
        else:
            self._jobs.submit(self._load)

    def when_loaded(self, what: str, action: Callable[[], Any], silent: bool = False) -> Any:
        """Run ``action`` now when the engine is loaded (its result), else once it is (None):
        meanwhile the cursor is busy and the status bar says that ``what`` waits for PyTorch.
        ``silent``: the window's own follow-up (not a click), queued without a sign."""
        if self._done:
            return action()
        if self.error is not None:
            self._status(f"{what} needs PyTorch, which could not be loaded: {self.error}")
            return None
        self._waiting.append(action)
        if not silent:
            if not self._cursor:
                QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
                self._cursor = True
            self._status(f"{what} waits for PyTorch to finish loading…")
        return None

    def waiting(self) -> int:
        """How many actions wait for the engine."""
        return len(self._waiting)

    def shutdown(self) -> None:
        """Join the import's thread (an import cannot be stopped half-way; it ends between two
        modules) and drop what waits."""
        self._waiting.clear()
        self._restore_cursor()
        self._jobs.shutdown()

    def _finish(self) -> None:
        self._done = True
        self.loaded.emit()
        waiting, self._waiting = self._waiting, []
        if self._cursor:
            self._restore_cursor()
            self._status(None)
        for action in waiting:
            action()

    def _on_failed(self, _number: int, message: str) -> None:
        self.error = message
        self._waiting.clear()  # each needs torch: the status bar says why nothing happens
        if self._cursor:
            self._restore_cursor()
            self._status(f"PyTorch could not be loaded: {message}")
        self.failed.emit(message)

    def _restore_cursor(self) -> None:
        if self._cursor:
            QApplication.restoreOverrideCursor()
            self._cursor = False
