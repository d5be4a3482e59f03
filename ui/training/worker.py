"""Runs cnnstudio's Trainer on a QThread and re-emits its events as signals carrying the same plain
dataclasses. It never touches a widget; pause, resume and stop go to the Trainer's thread-safe
controls, and the thread is always joined (never terminated)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from cnnstudio.train import (
    CheckpointSaved,
    DataProgress,
    EpochEnded,
    Failed,
    Finished,
    RunStarted,
    StepLogged,
    StepsDone,
    Trainer,
    Warned,
)


class TrainingWorker(QObject):
    """Lives on the training thread; ``run`` trains one project copy."""

    run_started = Signal(object)
    step_logged = Signal(object)
    epoch_ended = Signal(object)
    checkpoint_saved = Signal(object)
    data_progressed = Signal(object)
    steps_done = Signal(object)
    warned = Signal(str)
    run_finished = Signal(object)  # Finished or Failed

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.trainer = trainer

    @Slot()
    def run(self) -> None:
        try:
            result = self.trainer.run(self._forward)
        except Exception as error:  # reported to the window; the Trainer already sent Failed
            result = Failed("error", f"{type(error).__name__}: {error}")
        self.run_finished.emit(result)

    def _forward(self, event) -> None:
        if isinstance(event, StepLogged):
            self.step_logged.emit(event)
        elif isinstance(event, StepsDone):
            self.steps_done.emit(event)
        elif isinstance(event, EpochEnded):
            self.epoch_ended.emit(event)
        elif isinstance(event, CheckpointSaved):
            self.checkpoint_saved.emit(event)
        elif isinstance(event, RunStarted):
            self.run_started.emit(event)
        elif isinstance(event, DataProgress):
            self.data_progressed.emit(event)
        elif isinstance(event, Warned):
            self.warned.emit(event.message)
        elif isinstance(event, (Finished, Failed)):
            pass  # run_finished carries the result once run() returns


def make_trainer(project, *, resume: bool | str = False, epochs: int | None = None):
    """What trains the copy: the Trainer on this process's thread, or with the gpus setting
    above 1, torchrun's processes (``LaunchedRun``, which has the Trainer's shape but does not
    pause)."""
    gpus = int(project.training.get("gpus", 1))
    if gpus > 1:
        from cnnstudio.launch import LaunchedRun

        return LaunchedRun(project, gpus, resume=resume, epochs=epochs)
    return Trainer(project, resume=resume, epochs=epochs, save_project=False)


class TrainingRunner(QObject):
    """Owns the thread of the current run: start, pause, resume, stop, and wait for the end."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread: QThread | None = None
        self.worker: TrainingWorker | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def start(
        self,
        project,
        *,
        resume: bool | str = False,
        epochs: int | None = None,
        connect: Callable[[TrainingWorker], None] | None = None,
    ) -> TrainingWorker:
        """Train a copy of ``project`` (later edits in the window do not reach the run).
        ``connect`` wires the worker's signals before its thread starts: a run refused at once
        (a model that does not fit its data) ends before ``start`` returns, and a signal
        connected after that would never arrive."""
        if self.running:
            raise RuntimeError("a run is already going")
        trainer = make_trainer(copy.deepcopy(project), resume=resume, epochs=epochs)
        self.thread = QThread()
        self.worker = TrainingWorker(trainer)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        # quit() from the training thread itself: the GUI thread may be blocked in wait()
        self.worker.run_finished.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        if connect is not None:
            connect(self.worker)
        self.thread.start()
        return self.worker

    def pause(self) -> None:
        if self.worker is not None:
            self.worker.trainer.pause()

    @property
    def can_pause(self) -> bool:
        """Whether the run in progress pauses (runs on several processes do not)."""
        return self.worker is not None and getattr(self.worker.trainer, "can_pause", True)

    @property
    def paused(self) -> bool:
        return self.worker is not None and self.worker.trainer.control.paused

    def resume(self) -> None:
        if self.worker is not None:
            self.worker.trainer.resume()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.trainer.stop()

    def stop_and_wait(self, msecs: int = 120000) -> bool:
        """Stop the run (a checkpoint is written) and join its thread."""
        if self.thread is None:
            return True
        self.stop()
        done = self.thread.wait(msecs)
        return done
