"""Run an engine function off the GUI thread and get its answer back as a signal: the one way the
window runs background work (training has its own thread, ui.training.worker).

The work is a plain module-level function ``fn(state, *args)``. Its ``state`` is the job, a
``cnnstudio.progress.TaskState``: ``state.report(done, total, what, detail)`` sends progress and
``state.check()`` (or ``state.stopping``) ends it early, exactly as the engine's long functions
expect, so the function can hand its state straight to them and is tested without Qt.
``Jobs.submit(fn, *args)`` queues it on the view's pool thread and returns the job's number; the
reports, the result and the failure message come back as signals on the GUI thread carrying it.

A view that replaces its request (the analysis after each edit, a data scan, an inspection) makes
its Jobs with ``newest_wins``: a new job asks the older ones to stop, those still queued end
before they start (a burst of requests costs one run of the function, not one each), and
whatever an older job still sends is not passed on. ``shutdown()`` stops every job, joins the
threads and passes nothing on afterwards.

Every pool thread in the studio comes from ``worker_pool``, whose threads end as soon as they are
idle; see its docstring for why that keeps training at full speed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from cnnstudio.errors import StudioError
from cnnstudio.progress import Progress, TaskState


def worker_pool(parent: QObject | None = None, threads: int = 1) -> QThreadPool:
    """A thread pool whose threads end as soon as they run out of work.

    Each thread that runs a parallel torch operation gets its own OpenMP team, and the team lives as
    long as the thread. Once the process holds more OpenMP threads than the machine has cores,
    libgomp stops spin-waiting between parallel regions and puts its threads to sleep after every
    one: the training thread's small operations then each pay a wake-up. On the 2-core reference
    machine one idle team left by a 30-second-old pool thread made a parallel ``mul_`` 7× slower
    (7.5 → 56 µs) and training in the window 10–15% slower than the same run from the command
    line. Threads that end when idle take their teams with them; starting a thread costs far less
    than any job a pool runs.
    """
    pool = QThreadPool(parent)
    pool.setMaxThreadCount(threads)
    pool.setExpiryTimeout(0)
    return pool


class Job(TaskState):
    """What the function sees of its job: a TaskState whose reports reach the GUI thread as the
    ``progressed`` signal of the Jobs that runs it, and whose stop flag that Jobs sets."""

    def __init__(self, number: int, jobs: Jobs) -> None:
        super().__init__(on_progress=lambda progress: jobs._job_progressed.emit(number, progress))
        self.number = number


class _Runnable(QRunnable):
    def __init__(self, job: Job, fn: Callable, args: tuple, jobs: Jobs) -> None:
        super().__init__()
        self.job, self.fn, self.args, self.jobs = job, fn, args, jobs

    def run(self) -> None:
        job, jobs = self.job, self.jobs
        if job.stopping:  # replaced, or shut down, before it started
            jobs._job_dropped.emit(job.number)
            return
        try:
            result = self.fn(job, *self.args)
        except StudioError as error:
            jobs._job_failed.emit(job.number, str(error))
        except Exception as error:  # reported in the view that asked; never lost
            jobs._job_failed.emit(job.number, f"{type(error).__name__}: {error}")
        else:
            jobs._job_finished.emit(job.number, result)


class Jobs(QObject):
    """The background jobs of one view, on its own pool (one thread unless told otherwise).

    ``progressed`` carries a job's number and a ``Progress``, ``finished`` its number and the
    function's result, ``failed`` its number and a message for the user.
    """

    progressed = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, str)

    # emitted on the pool thread; queued to the slots below, on the thread this object lives in
    _job_progressed = Signal(int, object)
    _job_finished = Signal(int, object)
    _job_failed = Signal(int, str)
    _job_dropped = Signal(int)

    def __init__(
        self, parent: QObject | None = None, threads: int = 1, newest_wins: bool = False
    ) -> None:
        super().__init__(parent)
        self.newest_wins = newest_wins
        self.latest = 0
        self.closed = False
        self._pool = worker_pool(self, threads)
        self._unanswered: dict[int, Job] = {}
        self._job_progressed.connect(self._on_job_progressed)
        self._job_finished.connect(self._on_job_finished)
        self._job_failed.connect(self._on_job_failed)
        self._job_dropped.connect(self._on_job_dropped)

    def submit(self, fn: Callable, *args: Any) -> int:
        """Queue ``fn(job, *args)``; returns the job's number (also kept as ``latest``). After
        ``shutdown`` nothing more starts (returns 0)."""
        if self.closed:
            return 0
        if self.newest_wins:
            self.stop()
        self.latest += 1
        job = Job(self.latest, self)
        self._unanswered[job.number] = job
        self._pool.start(_Runnable(job, fn, args, self))
        return job.number

    def stop(self) -> None:
        """Ask every job not yet answered to end early: queued ones do not start, a running one
        ends at its next ``check``."""
        for job in self._unanswered.values():
            job.stop()

    def busy(self) -> bool:
        """Whether a job is queued, running, or has an answer still on its way."""
        return bool(self._unanswered)

    def wait(self, msecs: int = 60000) -> bool:
        """Join the pool's threads (answers arrive when the event loop next runs)."""
        return self._pool.waitForDone(msecs)

    def shutdown(self, msecs: int = 60000) -> None:
        """Stop every job and join the threads (``msecs`` at most; -1 waits as long as it takes);
        nothing is passed on from now on. Still ``busy`` afterwards if a thread outlived it."""
        self.closed = True
        self.stop()
        if self._pool.waitForDone(msecs):
            self._unanswered.clear()

    # On the GUI thread

    def _wanted(self, number: int) -> bool:
        return not self.closed and (not self.newest_wins or number == self.latest)

    @Slot(int, object)
    def _on_job_progressed(self, number: int, progress: Progress) -> None:
        if self._wanted(number):
            self.progressed.emit(number, progress)

    @Slot(int, object)
    def _on_job_finished(self, number: int, result: Any) -> None:
        self._unanswered.pop(number, None)
        if self._wanted(number):
            self.finished.emit(number, result)

    @Slot(int, str)
    def _on_job_failed(self, number: int, message: str) -> None:
        self._unanswered.pop(number, None)
        if self._wanted(number):
            self.failed.emit(number, message)

    @Slot(int)
    def _on_job_dropped(self, number: int) -> None:
        self._unanswered.pop(number, None)
