"""Training on several GPUs of this machine: ``cnnstudio train DIR --gpus N`` (and the window's
GPUs setting) start ``torchrun --standalone --nproc_per_node=N -m cnnstudio train DIR``, the same
path a user types by hand, and stand between it and whoever asked:

- ``run_torchrun`` (the command line) turns a Ctrl+C or SIGTERM into a stop file the ranks watch
  (``STOP_FILE_ENV``): they agree to stop at the same step, write one checkpoint and end as a
  finished process would, so torchrun ends quietly (a signal to torchrun makes it print its own
  traceback and a failure report for every rank). A second Ctrl+C is passed on to torchrun, which
  passes it to the ranks: they quit at once. If torchrun has not ended within the grace period
  after the first, it is killed (torchrun itself kills ranks that outlive its
  ``--shutdown_timeout``, which is set to the same grace period).
- ``LaunchedRun`` (the window) does the same for a project copy, in the Trainer's shape: ``run``
  with an event sink, ``stop``, a ``control``; the ranks' events come back as JSON lines on rank
  0's stdout (``train --events json``) and are sent on as the Trainer's own dataclasses.

With ``device`` "cpu" the N processes train on the CPU (gloo): how the tests run this path on a
machine without GPUs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnstudio.errors import TrainingError

GRACE_SECONDS = 120  # from a stop to killing torchrun: time enough for a big checkpoint
STOP_FILE_ENV = "CNNSTUDIO_STOP_FILE"  # the ranks stop, with a checkpoint, once this file exists


def torchrun_command(nproc: int, train_args: Sequence[str], grace: int = GRACE_SECONDS) -> list:
    """The torchrun command line that trains with ``nproc`` processes on this machine."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", f"--shutdown_timeout={grace}",
        "-m", "cnnstudio", "train", *train_args,
    ]  # fmt: skip


def check_gpus(nproc: int, device: str) -> None:
    """TrainingError when this machine has fewer CUDA devices than ``nproc`` processes need
    (on the CPU any number of processes may train, for tests)."""
    if nproc <= 1:
        return
    if getattr(sys, "frozen", False):  # PyInstaller's program: no `python -m` to start ranks with
        raise TrainingError(
            f"gpus {nproc}: the standalone program trains in one process; run the studio from "
            "Python (python main.py, or python -m cnnstudio train DIR --gpus N) for several GPUs"
        )
    if device == "cpu":
        return
    from cnnstudio.train.devices import cuda_count

    count = cuda_count()
    if count < nproc:
        have = f"{count} CUDA device{'s' if count != 1 else ''}" if count else "no CUDA device"
        fewer = f"gpus {count} or fewer" if count > 1 else "gpus 1"
        raise TrainingError(
            f"gpus {nproc}: this machine has {have}; choose {fewer} (or device cpu to train "
            "the processes on the CPU)"
        )


def under_torchrun() -> bool:
    """Whether this process is a rank torchrun started (its world is set up already)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def _worker_env(stop_file: Path) -> dict[str, str]:
    """The ranks' environment: one CPU thread each unless the user set it (N ranks of all the
    cores each would fight over them), this package importable from wherever they start, and the
    stop file they watch."""
    env = dict(os.environ)
    env[STOP_FILE_ENV] = str(stop_file)
    env.setdefault("OMP_NUM_THREADS", "1")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class _Torchrun:
    """A torchrun process in its own session: stopped through the ranks' stop file, then by a
    signal passed on, and past the grace period killed."""

    def __init__(self, command: list[str], grace: float, **popen: Any) -> None:
        self.grace = grace
        self._folder = Path(tempfile.mkdtemp(prefix="cnnstudio-stop-"))
        self.stop_file = self._folder / "stop"
        self.process = subprocess.Popen(
            command, env=_worker_env(self.stop_file), start_new_session=True, **popen
        )
        self.stopped_by: int | None = None
        self._killer: threading.Timer | None = None

    def stop(self, number: int = signal.SIGTERM) -> None:
        """The first stop: the ranks' stop file, and the grace period starts; a second one: the
        signal ``number`` to torchrun."""
        if self.process.poll() is not None:
            return
        if self.stopped_by is None:
            self.stopped_by = number
            self.stop_file.touch()
            self._killer = threading.Timer(self.grace + 15, self.kill)
            self._killer.daemon = True
            self._killer.start()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, number)

    def kill(self) -> None:
        """torchrun and whatever is left in its session, at once."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def wait(self) -> int:
        code = self.process.wait()
        if self._killer is not None:
            self._killer.cancel()
        shutil.rmtree(self._folder, ignore_errors=True)
        return code


def run_torchrun(nproc: int, train_args: Sequence[str], grace: int = GRACE_SECONDS) -> int:
    """Train with ``nproc`` processes (the command line's ``train --gpus N``); its output goes
    to this terminal. Returns torchrun's exit code, or 128 + the signal that stopped it."""
    launched = _Torchrun(torchrun_command(nproc, train_args, grace), grace)

    def on_signal(number: int, _frame) -> None:
        if launched.stopped_by is None:
            print("\nstopping: every process writes its part of one checkpoint (press Ctrl+C "
                  "again to quit at once)", file=sys.stderr, flush=True)  # fmt: skip
        launched.stop(number)

    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        code = launched.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 128 + launched.stopped_by if launched.stopped_by is not None else code


# The window's side


def event_to_json(event: Any) -> str:
    """One event as a JSON line: its class name and its fields (a Finished run's evaluation
    stays in the run folder, where the window reads it)."""
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    fields.pop("evaluation", None)
    return json.dumps({"event": type(event).__name__, **fields})


def event_from_json(line: str) -> Any | None:
    """The event dataclass of a line ``event_to_json`` wrote; None for any other line."""
    from cnnstudio.train import events as kinds

    try:
        data = json.loads(line)
        kind = getattr(kinds, data.pop("event"))
        if not dataclasses.is_dataclass(kind):
            return None
        return kind(**data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class _Control:
    """What the window asks of a run's control: a launched run does not pause."""

    paused = False

    def __init__(self) -> None:
        self.stopping = False


class LaunchedRun:
    """A run of a project copy on ``nproc`` processes through torchrun, in the Trainer's shape
    (``run``, ``stop``, ``pause``/``resume`` that do nothing, ``control``, ``project``)."""

    can_pause = False  # the Trainer pauses between steps; torchrun's ranks do not

    def __init__(self, project, nproc: int, *, resume: bool | str = False,
                 epochs: int | None = None, grace: int = GRACE_SECONDS) -> None:  # fmt: skip
        if project.path is None:
            raise TrainingError("save the project first: its runs are kept in its folder")
        check_gpus(nproc, str(project.training.get("device", "auto")))
        self.project, self.nproc, self.grace = project, nproc, grace
        self.resume_from, self.epochs = resume, epochs
        self.control = _Control()
        self.run_dir: Path | None = None
        self._launched: _Torchrun | None = None
        self._lock = threading.Lock()

    def pause(self) -> None:
        """Runs on several processes do not pause (the window's Pause is off for them)."""

    def resume(self) -> None:
        """Nothing to resume: see ``pause``."""

    def snapshot(self, timeout: float = 30.0) -> None:
        return None  # the weights live in other processes

    def model_source(self, timeout: float = 30.0):
        """The run's last checkpoint (the weights live in other processes): None before the
        first epoch has ended."""
        from cnnstudio import model_source, runs

        if self.run_dir is None or not (self.run_dir / runs.LAST).is_file():
            return None
        return model_source.from_run(self.run_dir, which="last", project=self.project)

    def stop(self) -> None:
        with self._lock:
            self.control.stopping = True
            launched = self._launched
        if launched is not None:
            launched.stop(signal.SIGTERM)

    def run(self, events=None):
        """Train until torchrun ends; the ranks' events go to ``events``. Finished or Failed."""
        from cnnstudio.train import Failed, Finished, RunStarted

        sink = events or (lambda _event: None)
        folder = Path(tempfile.mkdtemp(prefix="cnnstudio-launch-"))
        try:
            # the window's copy of the project, edits not yet saved included
            (folder / "project.json").write_text(self.project.to_json(), encoding="utf-8")
            args = [str(self.project.path), "--project-file", str(folder / "project.json"),
                    "--events", "json"]  # fmt: skip
            if self.epochs is not None:
                args += ["--epochs", str(self.epochs)]
            if self.resume_from:
                args.append("--resume")
                if self.resume_from is not True:
                    args.append(str(self.resume_from))
            command = torchrun_command(self.nproc, args, self.grace)
            with self._lock:
                if self.control.stopping:
                    return Failed("cancelled", "stopped before the processes started")
                self._launched = _Torchrun(command, self.grace, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)  # fmt: skip
            launched = self._launched
            errors: list[str] = []
            reader = threading.Thread(target=lambda: errors.extend(launched.process.stderr),
                                      daemon=True)  # fmt: skip
            reader.start()
            result = None
            for line in launched.process.stdout:
                event = event_from_json(line)
                if event is None:
                    continue
                if isinstance(event, (Finished, Failed)):
                    result = event
                    continue
                if isinstance(event, RunStarted):
                    self.run_dir = Path(event.run_dir)
                sink(event)
            code = launched.wait()
            reader.join(timeout=5)
        finally:
            if self._launched is not None:
                for pipe in (self._launched.process.stdout, self._launched.process.stderr):
                    pipe.close()
            shutil.rmtree(folder, ignore_errors=True)
        if result is None:
            why = f"torchrun with {self.nproc} processes ended: {_why(errors, code)}"
            result = Failed("error", why, str(self.run_dir) if self.run_dir else None)
        sink(result)
        return result


def _why(errors: list[str], code: int) -> str:
    """What a failed launch printed that says why: the studio's own one-line error when there
    is one (torchrun's report around it is long), else the last lines of its output."""
    lines = [line.strip() for line in errors if line.strip()]
    ours = [line for line in lines if line.startswith("cnnstudio ") and ": error: " in line]
    if ours:
        return ours[-1].split(": error: ", 1)[1]
    return " / ".join(lines[-3:]) or f"exit code {code}"


def watch_stop_file(stop: Callable[[], None]) -> Callable[[], bool]:
    """Under a launcher (``STOP_FILE_ENV`` set): call ``stop`` once its stop file appears,
    checked twice a second on a daemon thread. Returns whether the launcher has asked for a stop
    (the file exists: a rank stopped by its peers before its own watcher looked counts too)."""
    path = os.environ.get(STOP_FILE_ENV)
    if not path:
        return lambda: False
    stop_file = Path(path)

    def watch() -> None:
        while not stop_file.exists():
            time.sleep(0.5)
        stop()

    threading.Thread(target=watch, name="stop file", daemon=True).start()
    return stop_file.exists
