"""Runs ``cnnstudio.inspect.inspect_image`` on a pool thread and sends back the plain result.

A request carries its number; the view keeps only the answer to its newest one. Requests still
queued when a newer one comes are dropped unstarted, so a burst of drops costs one inspection.
The model source is resolved (a checkpoint loaded) on the pool thread too, once per source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Signal

from cnnstudio.errors import InspectError, StudioError
from cnnstudio.inspect import inspect_image
from cnnstudio.model_source import ModelSource
from ui.background import worker_pool


def resolve_source(source: Any) -> ModelSource:
    """The ModelSource the window handed over, or the one a function handed over returns (called
    here, on the pool thread: loading a checkpoint takes time)."""
    value = source() if callable(source) else source
    if value is None:
        raise InspectError("no model to inspect yet: train one, or open a project with a run")
    return value


@dataclass(frozen=True)
class Request:
    number: int
    image: Any  # a path or an H×W×C array
    layer: str | None = None
    target: int | None = None


class _Signals(QObject):
    finished = Signal(int, object, object)  # request number, ModelSource, Inspection
    failed = Signal(int, str)


class _InspectJob(QRunnable):
    def __init__(
        self, request: Request, source: Any, resolved: ModelSource | None, signals: _Signals
    ) -> None:
        super().__init__()
        self.request, self.source, self.resolved, self.signals = request, source, resolved, signals

    def run(self) -> None:
        request = self.request
        try:
            resolved = self.resolved or resolve_source(self.source)
            result = inspect_image(
                resolved.model,
                request.image,
                resolved.input_shape,
                resolved.mean,
                resolved.std,
                resolved.classes,
                request.layer,
                target=request.target,
            )
        except StudioError as error:
            self.signals.failed.emit(request.number, str(error))
        except Exception as error:  # shown in the view that asked; never lost
            self.signals.failed.emit(request.number, f"{type(error).__name__}: {error}")
        else:
            self.signals.finished.emit(request.number, resolved, result)


class InspectRunner(QObject):
    """One pool thread for inspections; ``finished`` and ``failed`` carry the request number."""

    finished = Signal(int, object, object)
    failed = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = worker_pool(self)
        self._signals = _Signals()
        self._signals.finished.connect(self.finished)
        self._signals.failed.connect(self.failed)

    def submit(self, request: Request, source: Any, resolved: ModelSource | None) -> None:
        self._pool.clear()  # queued, unstarted requests are stale now
        self._pool.start(_InspectJob(request, source, resolved, self._signals))

    def busy(self) -> bool:
        return self._pool.activeThreadCount() > 0

    def wait(self, msecs: int = 60000) -> bool:
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Drop queued requests and join the running one (an inspection takes well under a
        second and cannot be interrupted midway)."""
        self._pool.clear()
        self._pool.waitForDone(-1)


SourceFactory = Callable[[], Any]
