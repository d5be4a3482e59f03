"""The run behind the Train view: starts, pauses, resumes and stops runs of the document's project
on the training thread (``worker.TrainingRunner``), and keeps what the view shows of a run as plain
state: the progress bar's ``percent`` and ``status`` line, and the result. No widget of its own."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal

from cnnstudio.runs import RunInfo
from cnnstudio.train import Failed
from ui.training.worker import TrainingRunner

SAVE_FIRST = "Save the project first: its runs are kept in its folder."


class RunController(QObject):
    """One run at a time; its events come back as signals carrying the engine's dataclasses."""

    run_started = Signal(object)  # RunStarted
    step_logged = Signal(object)  # StepLogged
    epoch_ended = Signal(object)  # EpochEnded
    warned = Signal(str)
    run_finished = Signal(object)  # Finished or Failed
    progress_changed = Signal()  # ``percent`` or ``status`` changed

    def __init__(self, document, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.runner = TrainingRunner(self)
        self.result = None
        self.percent = 0
        self.status = "ready"
        self._first_step = 0
        self._total_steps = 1
        self._all_steps = 1  # of the whole run, counted from its first epoch
        self._rate = ""  # "250 img/s", from the last logged steps
        self._seconds_per_step: float | None = None
        self._where = ""  # "epoch 2 · step 14/63"

    @property
    def running(self) -> bool:
        return self.runner.running

    def refusal(self) -> str | None:
        """Why the project cannot be trained now, or None."""
        if self.document.project.path is None:
            return SAVE_FIRST
        if self.document.analysis is not None and not self.document.analysis.valid:
            return "The model has problems (red blocks): fix them first."
        training = self.document.project.training
        if int(training.get("gpus", 1)) > 1:  # torchrun's processes, one per GPU
            from cnnstudio.errors import TrainingError
            from cnnstudio.launch import check_gpus

            try:
                check_gpus(int(training["gpus"]), str(training.get("device", "auto")))
            except TrainingError as error:
                return f"Training settings: {error}."
        return None

    def resume_plan(self, chosen: list[RunInfo], runs: list[RunInfo]) -> dict | str:
        """The arguments of ``start`` that resume the selected run (else the newest one with a
        checkpoint) from its last checkpoint, or why none can be resumed."""
        run = chosen[0] if len(chosen) == 1 else next((r for r in runs if r.has_checkpoint), None)
        if run is None or not run.has_checkpoint:
            name = f"Run {run.name} has" if run is not None else "This project has"
            return f"{name} no checkpoint to resume from."
        # the run's own plan, or more epochs if the form asks for more
        epochs = max(run.epochs or 0, int(self.document.project.training.get("epochs", 0)))
        return {"resume": str(run.folder), "epochs": epochs or None}

    def start(self, resume: bool | str = False, epochs: int | None = None) -> None:
        """Train a copy of the project on the training thread."""
        self.result = None
        self._show(0, "loading the data…")
        self.runner.start(
            self.document.project, resume=resume, epochs=epochs, connect=self._connect
        )

    def _connect(self, worker) -> None:
        """The worker's signals, wired before its thread starts."""
        worker.run_started.connect(self._on_run_started)
        worker.step_logged.connect(self._on_step_logged)
        worker.epoch_ended.connect(self._on_epoch_ended)
        worker.warned.connect(self._on_warned)
        worker.data_progressed.connect(self._on_data_progressed)
        worker.steps_done.connect(self._on_steps_done)
        worker.run_finished.connect(self._on_run_finished)

    def pause(self) -> None:
        """Pause after the current step; the status says so, without an ETA that would run out."""
        self.runner.pause()
        if self.running:
            self._show(self.percent, f"paused · {self._where}" if self._where else "paused")

    def resume(self) -> None:
        self.runner.resume()
        if self.running:
            self._show(self.percent, f"{self._where} · resuming…" if self._where else "resuming…")

    def stop(self) -> None:
        """Stop after the current step; the run writes a checkpoint."""
        self.runner.stop()
        self._show(self.percent, "stopping: writing a checkpoint…")

    def stop_and_wait(self) -> bool:
        return self.runner.stop_and_wait()

    def show_progress(self, percent: int, status: str) -> None:
        """Progress of training this controller does not run (a sweep's current run), shown
        where a run's would be."""
        if not self.running:
            self._show(percent, status)

    def _show(self, percent: int, status: str) -> None:
        self.percent, self.status = percent, status
        self.progress_changed.emit()

    # Events from the worker (plain data)

    def _on_run_started(self, event) -> None:
        self._total_steps = max(1, (event.epochs - event.start_epoch) * event.steps_per_epoch)
        self._first_step = event.start_epoch * event.steps_per_epoch
        self._all_steps = self._first_step + self._total_steps
        self._rate, self._seconds_per_step, self._where = "", None, ""
        self._show(self.percent, f"first step on {event.device_name}…")
        self.run_started.emit(event)

    def _on_step_logged(self, event) -> None:
        remaining = max(1, self._all_steps - event.global_step)
        self._seconds_per_step = event.eta_seconds / remaining
        self._rate = f"{event.images_per_sec:,.0f} img/s"
        self._show_steps(event)
        self.step_logged.emit(event)

    def _on_steps_done(self, event) -> None:
        self._show_steps(event)

    def _show_steps(self, event) -> None:
        """The step count and the ETA, the speed from the last logged steps (until the first
        ones are logged: 'measuring speed')."""
        done = event.global_step - self._first_step
        self._where = f"epoch {event.epoch} · step {event.step}/{event.steps}"
        if self.runner.paused:  # the step in flight when Pause was pressed
            self._show(int(100 * done / self._total_steps), f"paused · {self._where}")
            return
        if self._seconds_per_step is None:
            tail = "measuring speed…"
        else:
            left = self._seconds_per_step * (self._all_steps - event.global_step)
            tail = f"{self._rate} · ETA {time.strftime('%H:%M:%S', time.gmtime(left))}"
        self._show(int(100 * done / self._total_steps), f"{self._where} · {tail}")

    def _on_epoch_ended(self, event) -> None:
        self.epoch_ended.emit(event)

    def _on_warned(self, message: str) -> None:
        self.warned.emit(message)

    def _on_data_progressed(self, event) -> None:
        if event.total:
            self._show(self.percent, f"{event.what}: {100 * event.done // event.total}%")

    def _on_run_finished(self, result) -> None:
        self.result = result
        self.runner.thread.wait()
        if self.runner.worker is not None:  # the statistics it computed on the project's data
            self.document.adopt_statistics(self.runner.worker.trainer.project.data)
        if isinstance(result, Failed):
            self._show(self.percent, "failed")
        else:
            best = result.best_val_accuracy
            text = f"{result.state.replace('_', ' ')}"
            if best is not None:
                text += f" · best {best:.2%} (epoch {result.best_epoch})"
            finished = result.state in ("finished", "early_stopped")
            self._show(100 if finished else self.percent, text)
        self.run_finished.emit(result)
