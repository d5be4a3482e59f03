"""What a long engine function sees of whoever runs it: where to report progress and whether to
stop early.

Scanning a folder, decoding images, downloading a dataset and finding a learning rate each take a
``TaskState``: they call ``state.report(done, total, what)`` now and then and ``state.check()``
between steps (Cancelled when a stop was asked). Nothing here knows Qt: the window's workers make
one per job and re-emit its reports as signals, the command line makes one that prints, and tests
use a plain one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnstudio.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One report: ``done`` of ``total`` units of ``what``; ``detail`` carries what a task adds
    (the learning-rate finder: the rate and the loss of the step)."""

    done: int
    total: int
    what: str = ""
    detail: Any = None


class TaskState:
    """A progress outlet and a stop flag, safe to use from any thread.

    ``on_progress`` receives every report; ``should_stop`` is asked as well as the state's own
    flag (the trainer passes its stop control through it).
    """

    def __init__(
        self,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self._on_progress = on_progress
        self._should_stop = should_stop
        self._stop = threading.Event()

    def report(self, done: int, total: int, what: str = "", detail: Any = None) -> None:
        if self._on_progress is not None:
            self._on_progress(Progress(done, total, what, detail))

    def stop(self) -> None:
        """Ask the task to end at its next check."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or (self._should_stop is not None and self._should_stop())

    def check(self, what: str = "the task") -> None:
        """Cancelled ("<what> cancelled") when a stop was asked."""
        if self.stopping:
            raise Cancelled(f"{what} cancelled")


def quiet() -> TaskState:
    """A state nobody watches and nobody stops: for callers that just want the result."""
    return TaskState()
