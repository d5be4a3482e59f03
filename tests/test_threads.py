"""Threads that would slow training in the window: an OpenMP team outlives the thread's work and
lives as long as the thread, so only the run's own thread may keep one (ui.background.worker_pool).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QThreadPool

from ui.background import Jobs

ROOT = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")


def _parallel_work(_job) -> int:
    x = torch.ones(1_000_000)
    x.mul_(2)  # large enough for torch to start its OpenMP team on this thread
    return threading.get_native_id()


@linux_only
def test_a_pool_thread_ends_once_its_job_is_done(qtbot) -> None:
    jobs = Jobs()
    with qtbot.waitSignal(jobs.finished, timeout=30000) as done:
        jobs.submit(_parallel_work)
    thread_id = done.args[1]
    qtbot.waitUntil(lambda: not Path(f"/proc/self/task/{thread_id}").exists(), timeout=5000)
    jobs.shutdown()


def test_every_pool_in_the_window_ends_its_threads_when_idle(qtbot, window) -> None:
    """Analyse, read the data, preview, inspect and open the backbone chooser, then look at every
    thread pool in the window's object tree: one made otherwise than by worker_pool keeps idle
    threads, and their OpenMP teams, for 30 s."""
    from ui.editor.backbone_dialog import BackboneDialog

    dialog = BackboneDialog(window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: window.data_panel.samples is not None, timeout=60000)
    with qtbot.waitSignal(window.inspector.failed, timeout=60000):  # no model yet: still a job
        window.data_panel.sample_labels[0].double_clicked.emit()
    qtbot.waitUntil(lambda: bool(dialog.rows) and window.warmed_up(), timeout=60000)
    pools = window.findChildren(QThreadPool)
    assert len(pools) >= 5
    assert [pool.expiryTimeout() for pool in pools] == [0] * len(pools)


@linux_only
@pytest.mark.slow
def test_a_session_in_the_window_leaves_no_torch_thread_behind_the_gui_thread() -> None:
    """Train, look at the results and inspect a sample: the GUI thread starts no thread of its
    own (an OpenMP team there would slow every later run)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-m", "tests.gui_session"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["inspected"] == "Inspection"
    assert report["started"] == []
