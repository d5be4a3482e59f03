"""Runs a sweep (cnnstudio.sweep.run_sweep) on a QThread, the way ``worker`` runs one Trainer: the
worker re-emits the Trainer's events as the same signals as a ``TrainingWorker`` and the sweep's
own events (a run started, a run ended) as signals of their own. Skip and stop go to the sweep's
thread-safe ``SweepControl``; the thread is always joined, never terminated.

With several devices the sweep trains several runs at once, each on a thread of its own, and
their Trainer events interleave. The worker follows one run at a time: the first that starts
when none is followed; the Trainer events of the others are dropped (the queue still shows each
run start and end), so the progress line and the curves belong to one run."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from cnnstudio.errors import StudioError
from cnnstudio.sweep import Sweep, SweepControl, SweepEnded, SweepRunEnded, SweepRunStarted
from cnnstudio.train import RunStarted
from ui.training.worker import TrainingWorker


class SweepWorker(TrainingWorker):
    """Lives on the sweep's thread; ``run_queue`` runs the sweep's missing runs in turn."""

    sweep_run_started = Signal(object)  # SweepRunStarted, of every run
    followed_run_started = Signal(object)  # SweepRunStarted of the run whose events come
    other_run_started = Signal(object)  # RunStarted of a run going at once, not followed
    sweep_run_ended = Signal(object)  # SweepRunEnded
    sweep_finished = Signal(object)  # SweepEnded, or a message when the sweep could not go on

    def __init__(
        self, project, sweep: Sweep, control: SweepControl, devices: Sequence[str] = ()
    ) -> None:
        QObject.__init__(self)
        self.project, self.sweep, self.control = project, sweep, control
        self.devices = list(devices)
        self._ended: SweepEnded | str = "the sweep ended without saying how"
        self._followed: int | None = None  # the thread whose run is followed (its ident)

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
            run_sweep(self.project, self.sweep, self._forward, self.control, devices=self.devices)
            ended = self._ended
        except StudioError as error:
            ended = str(error)
        except Exception as error:  # reported to the window, whose queue shows the failed run
            ended = f"{type(error).__name__}: {error}"
        self.sweep_finished.emit(ended)

    def _forward(self, event) -> None:
        """Called on the thread of the run that sent ``event`` (one at a time: run_sweep holds a
        lock around its sink)."""
        here = threading.get_ident()
        if isinstance(event, SweepRunStarted):
            self.sweep_run_started.emit(event)
            if self._followed in (None, here):
                self._followed = here
                self.followed_run_started.emit(event)
        elif isinstance(event, SweepRunEnded):
            if self._followed == here:
                self._followed = None
            self.sweep_run_ended.emit(event)
        elif isinstance(event, SweepEnded):
            self._ended = event  # sent with sweep_finished once run_sweep has returned
        elif self._followed == here:
            super()._forward(event)
        elif isinstance(event, RunStarted):  # its folder is made: the queue can name it
            self.other_run_started.emit(event)


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
        self,
        project,
        sweep: Sweep,
        connect: Callable[[SweepWorker], None] | None = None,
        devices: Sequence[str] = (),
    ) -> SweepWorker:
        """Run the sweep on a copy of ``project`` (on ``devices``, one run on each at once);
        ``connect`` wires the worker's signals before its thread starts (a sweep whose runs all
        fail at once may end before ``start`` returns)."""
        if self.running:
            raise RuntimeError("a sweep is already going")
        self.control = SweepControl()
        self.thread = QThread()
        self.worker = SweepWorker(copy.deepcopy(project), sweep, self.control, devices)
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
