"""A short session in the studio, in a fresh process, that reports every thread the GUI thread
started outside Qt: ``python -m tests.gui_session`` prints them as JSON (run by test_threads).

The GUI thread lives as long as the studio, so an OpenMP team it starts (any parallel torch
operation on it) lives as long too, and every later run in the window trains slower (see
``ui.background.worker_pool``). Linux names a new thread after the thread that starts it; Qt renames
its own threads ("QThread", "Thread (pooled)"). So the GUI thread gets a name of its own before the
session, and a thread that still carries that name afterwards was started by it and not by Qt.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import tempfile
from pathlib import Path

NAME = b"studio-gui"


def threads_named(name: str) -> set[str]:
    found = set()
    for task in os.listdir("/proc/self/task"):
        try:
            if Path(f"/proc/self/task/{task}/comm").read_text().strip() == name:
                found.add(task)
        except OSError:  # the thread ended meanwhile
            continue
    return found


def wait_for(condition, seconds: float = 120.0) -> None:
    from ui.self_test import wait_until

    if not wait_until(condition, seconds):
        raise SystemExit(f"gave up waiting after {seconds:.0f} s")


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    ctypes.CDLL(None).prctl(15, NAME, 0, 0, 0)  # PR_SET_NAME, this thread only
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication([])  # noqa: F841 (held for the whole session)
    import torch  # noqa: F401  (its own threads, and numpy's, are there before the session)

    from cnnstudio import new_project
    from ui.app_settings import AppSettings
    from ui.main_window import MainWindow

    before = threads_named(NAME.decode())
    with tempfile.TemporaryDirectory() as folder:
        settings = AppSettings(QSettings(f"{folder}/s.ini", QSettings.Format.IniFormat))
        window = MainWindow(new_project(), settings)
        window.show()
        wait_for(lambda: window.data_panel.dataset is not None and window.warmed_up())
        # a short run in the window
        window.document.project.training.update(epochs=1, log_every=5)
        window.document.save(Path(folder) / "project")
        panel = window.train_panel
        panel.refresh_form()
        assert panel.start(), panel.message.text()
        wait_for(lambda: not panel.running, 300)
        # its results: the confusion matrix and the gallery of its worst mistakes
        panel.runs_view.select_runs([panel.runs_view.runs[0].name])
        results = panel.results_view
        wait_for(lambda: results.evaluation is not None)
        worst = results.evaluation.mistakes[0]
        results.show_cell(worst.true, worst.predicted)
        wait_for(lambda: not results.busy() and results.gallery.count() > 0)
        # a training sample inspected with that run
        inspected = []
        window.inspector.inspected.connect(inspected.append)
        window.inspector.failed.connect(inspected.append)
        wait_for(lambda: window.data_panel.samples is not None)
        window.data_panel.sample_labels[0].double_clicked.emit()
        wait_for(lambda: inspected)
        window.document.discard_changes()
        window.close()
    print(json.dumps({"inspected": type(inspected[0]).__name__,
                      "started": sorted(threads_named(NAME.decode()) - before)}))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
