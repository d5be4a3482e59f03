"""Run an engine function off the GUI thread and get its result back as a signal.

``Jobs.submit(fn, *args)`` runs ``fn(job, *args)`` on a pool thread; ``job.report(value)`` sends
progress and ``job.stopping`` tells the function to end early. Results, failures and progress come
back as signals carrying the job's number, so a view can ignore answers to requests it has since
replaced (the newest request wins). ``shutdown()`` asks every job to stop and joins the threads.

Every pool thread in the studio comes from ``worker_pool``, whose threads end as soon as they are
idle; see its docstring for why that keeps training at full speed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from cnnstudio.errors import StudioError


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


class _Signals(QObject):
    progressed = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, str)


class Job:
    """What the function sees of its job: a progress outlet and a stop flag."""

    def __init__(self, number: int, signals: _Signals, stop: threading.Event) -> None:
        self.number = number
        self._signals = signals
        self._stop = stop

    def report(self, value: Any) -> None:
        self._signals.progressed.emit(self.number, value)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


class _Runnable(QRunnable):
    def __init__(self, job: Job, fn: Callable, args: tuple, signals: _Signals) -> None:
        super().__init__()
        self.job, self.fn, self.args, self.signals = job, fn, args, signals

    def run(self) -> None:
        try:
            result = self.fn(self.job, *self.args)
        except StudioError as error:
            self.signals.failed.emit(self.job.number, str(error))
        except Exception as error:  # reported in the view that asked; never lost
            self.signals.failed.emit(self.job.number, f"{type(error).__name__}: {error}")
        else:
            self.signals.finished.emit(self.job.number, result)


class Jobs(QObject):
    """A one-thread queue of background jobs owned by one view."""

    progressed = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, parent: QObject | None = None, threads: int = 1) -> None:
        super().__init__(parent)
        self._pool = worker_pool(self, threads)
        self._signals = _Signals()
        self._signals.progressed.connect(self.progressed)
        self._signals.finished.connect(self.finished)
        self._signals.failed.connect(self.failed)
        self._stop = threading.Event()
        self.latest = 0
        self.closed = False

    def submit(self, fn: Callable, *args: Any) -> int:
        """Queue ``fn(job, *args)``; returns the job's number (also kept as ``latest``). After
        ``shutdown`` nothing more starts (returns 0)."""
        if self.closed:
            return 0
        self.latest += 1
        self._stop = threading.Event()
        self._pool.start(_Runnable(Job(self.latest, self._signals, self._stop), fn, args,
                                   self._signals))  # fmt: skip
        return self.latest

    def stop(self) -> None:
        """Ask the running job to end early (the function checks ``job.stopping``)."""
        self._stop.set()

    def busy(self) -> bool:
        return self._pool.activeThreadCount() > 0

    def wait(self, msecs: int = 60000) -> bool:
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        self.closed = True
        self.stop()
        self._pool.waitForDone(60000)
