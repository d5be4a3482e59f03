"""Runs a sweep (cnnstudio.sweep.run_sweep) on a QThread, the way ``worker`` runs one Trainer: the
worker re-emits the Trainer's events as the same signals as a ``TrainingWorker`` and the sweep's
own events (a run started, a run ended) as signals of their own. Skip and stop go to the sweep's
thread-safe ``SweepControl``; the thread is always joined, never terminated."""

from __future__ import annotations

import copy
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from cnnstudio.errors import StudioError
from cnnstudio.sweep import Sweep, SweepControl, SweepEnded, SweepRunEnded, SweepRunStarted
from ui.training.worker import TrainingWorker


class SweepWorker(TrainingWorker):
    """Lives on the sweep's thread; ``run_queue`` runs the sweep's missing runs in turn."""

    sweep_run_started = Signal(object)  # SweepRunStarted
    sweep_run_ended = Signal(object)  # SweepRunEnded
    sweep_finished = Signal(object)  # SweepEnded, or a message when the sweep could not go on

    def __init__(self, project, sweep: Sweep, control: SweepControl) -> None:
        QObject.__init__(self)
        self.project, self.sweep, self.control = project, sweep, control
        self._ended: SweepEnded | str = "the sweep ended without saying how"

    @property
    def trainer(self):
        """The current run's Trainer (None between runs)."""
        return self.control.trainer

    # not an override of ``run``: PySide6 delivers a slot overridden in a subclass on the thread
    # that connected it (the GUI thread), not on the worker's own thread
    @Slot()
    def run_queue(self) -> None:
        from cnnstudio.sweep import run_sweep  # the trainer: only once a sweep runs

        try:
            run_sweep(self.project, self.sweep, self._forward, self.control)
            ended = self._ended
        except StudioError as error:
            ended = str(error)
        except Exception as error:  # reported to the window, whose queue shows the failed run
            ended = f"{type(error).__name__}: {error}"
        self.sweep_finished.emit(ended)

    def _forward(self, event) -> None:
        if isinstance(event, SweepRunStarted):
            self.sweep_run_started.emit(event)
        elif isinstance(event, SweepRunEnded):
            self.sweep_run_ended.emit(event)
        elif isinstance(event, SweepEnded):
            self._ended = event  # sent with sweep_finished once run_sweep has returned
        else:
            super()._forward(event)


class SweepRunner(QObject):
    """Owns the thread of the sweep in progress: start, skip, stop, and wait for the end."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread: QThread | None = None
        self.worker: SweepWorker | None = None
        self.control = SweepControl()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def start(
        self, project, sweep: Sweep, connect: Callable[[SweepWorker], None] | None = None
    ) -> SweepWorker:
        """Run the sweep on a copy of ``project``; ``connect`` wires the worker's signals before
        its thread starts (a sweep whose runs all fail at once may end before ``start``
        returns)."""
        if self.running:
            raise RuntimeError("a sweep is already going")
        self.control = SweepControl()
        self.thread = QThread()
        self.worker = SweepWorker(copy.deepcopy(project), sweep, self.control)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run_queue)
        # quit() from the sweep's thread itself: the GUI thread may be blocked in wait()
        self.worker.sweep_finished.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        if connect is not None:
            connect(self.worker)
        self.thread.start()
        return self.worker

    def skip(self, index: int | None = None) -> None:
        """Skip the current run (it stops; its folder stays) or the queued run ``index``."""
        self.control.skip(index)

    def stop(self) -> None:
        """Stop the sweep: the current run writes a checkpoint and stays in the queue."""
        self.control.stop()

    def stop_and_wait(self, msecs: int = 120000) -> bool:
        """Stop the sweep and join its thread."""
        if self.thread is None:
            return True
        self.stop()
        return self.thread.wait(msecs)
