"""The one way the window runs background work (ui.background.Jobs), without any window: plain
functions of a TaskState, their progress on the GUI thread, stop, failures, newest wins."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QCoreApplication, QThread

from cnnstudio.errors import StudioError
from cnnstudio.progress import Progress, TaskState
from ui.background import Jobs


def _count(state: TaskState, steps: int) -> int:
    for step in range(1, steps + 1):
        state.report(step, steps, "counting", step * 10)
    return steps


def _until_stopped(state: TaskState, started: threading.Event) -> None:
    started.set()
    while True:
        state.check("counting sheep")
        QThread.msleep(1)


def _held(state: TaskState, gate: threading.Event, name: str, ran: list[str]) -> str:
    ran.append(name)
    gate.wait(30)
    return name


def _fails(_state: TaskState, error: Exception) -> None:
    raise error


@pytest.fixture
def jobs(qtbot):
    made = Jobs()
    yield made
    made.shutdown()
    assert not made.busy()


def test_progress_and_the_result_arrive_on_the_gui_thread(qtbot, jobs: Jobs) -> None:
    reports, threads = [], []
    gui = QCoreApplication.instance().thread()
    jobs.progressed.connect(
        lambda _n, p: (reports.append(p), threads.append(QThread.currentThread()))
    )
    jobs.finished.connect(lambda *_: threads.append(QThread.currentThread()))
    with qtbot.waitSignal(jobs.finished, timeout=10000) as done:
        number = jobs.submit(_count, 3)
    assert done.args == [number, 3]
    assert reports == [Progress(s, 3, "counting", s * 10) for s in (1, 2, 3)]
    assert threads and all(thread is gui for thread in threads)
    assert not jobs.busy()


def test_the_function_sees_a_task_state(qtbot, jobs: Jobs) -> None:
    with qtbot.waitSignal(jobs.finished, timeout=10000) as done:
        jobs.submit(lambda state: isinstance(state, TaskState) and not state.stopping)
    assert done.args[1] is True


def test_stop_ends_the_job_at_its_next_check_and_says_so(qtbot, jobs: Jobs) -> None:
    started = threading.Event()
    jobs.submit(_until_stopped, started)
    assert started.wait(10)
    assert jobs.busy()
    with qtbot.waitSignal(jobs.failed, timeout=10000) as failed:
        jobs.stop()
    assert failed.args[1] == "counting sheep cancelled"


@pytest.mark.parametrize(
    ("error", "message"),
    [(StudioError("cats.png: not an image"), "cats.png: not an image"),
     (ValueError("bad value"), "ValueError: bad value")],
)  # fmt: skip
def test_a_failure_reaches_the_view_as_one_message(qtbot, jobs: Jobs, error, message) -> None:
    finished = []
    jobs.finished.connect(lambda *args: finished.append(args))
    with qtbot.waitSignal(jobs.failed, timeout=10000) as failed:
        number = jobs.submit(_fails, error)
    assert failed.args == [number, message] and finished == []
    assert not jobs.busy()


def test_the_newest_wins_and_queued_jobs_it_replaces_never_start(qtbot) -> None:
    jobs = Jobs(newest_wins=True)
    gate, ran, answers = threading.Event(), [], []
    jobs.finished.connect(lambda number, result: answers.append((number, result)))
    jobs.failed.connect(lambda number, message: answers.append((number, message)))
    first = jobs.submit(_held, gate, "first", ran)
    qtbot.waitUntil(lambda: ran == ["first"], timeout=10000)
    jobs.submit(_held, gate, "second", ran)
    jobs.submit(_held, gate, "third", ran)
    last = jobs.submit(_held, gate, "fourth", ran)
    gate.set()
    qtbot.waitUntil(lambda: bool(answers), timeout=10000)
    qtbot.waitUntil(lambda: not jobs.busy(), timeout=10000)
    assert answers == [(last, "fourth")]
    assert ran == ["first", "fourth"], "the replaced, queued jobs started"
    assert first < last == jobs.latest
    jobs.shutdown()


def test_without_newest_wins_every_answer_arrives(qtbot, jobs: Jobs) -> None:
    answers = []
    jobs.finished.connect(lambda number, result: answers.append((number, result)))
    numbers = [jobs.submit(_count, n) for n in (1, 2, 3)]
    qtbot.waitUntil(lambda: len(answers) == 3, timeout=10000)
    assert answers == list(zip(numbers, (1, 2, 3), strict=True))


def test_after_shutdown_nothing_starts_and_nothing_is_passed_on(qtbot) -> None:
    jobs = Jobs()
    gate, ran, answers = threading.Event(), [], []
    jobs.finished.connect(lambda *args: answers.append(args))
    jobs.submit(_held, gate, "running", ran)
    jobs.submit(_held, gate, "queued", ran)
    qtbot.waitUntil(lambda: ran == ["running"], timeout=10000)
    gate.set()
    jobs.shutdown()
    assert not jobs.busy()
    assert jobs.submit(_count, 1) == 0
    QCoreApplication.processEvents()  # the running job's answer, posted before it ended
    assert answers == [] and ran == ["running"]
