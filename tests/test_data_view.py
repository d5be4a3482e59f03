"""The Data view's reading of the data, on its own (no window): progress on the bar, Cancel, and
the newest read winning over one it replaced."""

from __future__ import annotations

import threading

import pytest

from cnnstudio import new_project
from cnnstudio.data import load_dataset
from ui.data_view import DataPanel
from ui.document import ProjectDocument


@pytest.fixture
def gate(monkeypatch) -> threading.Event:
    """Reading the data reports 3 of 10, then waits for the gate (checking for a stop) before it
    reads the built-in sample set for real."""
    opened = threading.Event()

    def load(settings, input_shape, state):
        state.report(3, 10, "reading the images")
        while not opened.wait(0.005):
            state.check("reading the images")
        return load_dataset(settings, input_shape, state=state)

    monkeypatch.setattr("ui.data_view.load_dataset", load)
    return opened


@pytest.fixture
def panel(qtbot, gate):
    document = ProjectDocument(new_project())
    made = DataPanel(document)
    qtbot.addWidget(made)
    yield made
    gate.set()
    made.shutdown()
    document.shutdown()
    assert not made.busy()


def test_progress_reaches_the_bar_and_cancel_stops_the_read(qtbot, panel: DataPanel) -> None:
    bar = panel.progress
    qtbot.waitUntil(lambda: (bar.value(), bar.maximum()) == (3, 10), timeout=10000)
    assert bar.format() == "reading the images: %p%" and not panel.cancel_button.isHidden()
    with qtbot.waitSignal(panel.load_failed, timeout=10000) as failed:
        panel.cancel_button.click()
    assert failed.args[0] == "reading the images cancelled"
    assert panel.warnings.text() == "reading the images cancelled"
    assert bar.isHidden() and panel.cancel_button.isHidden() and panel.dataset is None


def test_a_new_read_replaces_the_one_going(qtbot, panel: DataPanel, gate) -> None:
    qtbot.waitUntil(lambda: panel.progress.value() == 3, timeout=10000)
    answers = []
    panel.summary_ready.connect(answers.append)
    panel.load_failed.connect(answers.append)
    panel.reload()  # the first read is stopped: its "cancelled" never shows
    gate.set()
    qtbot.waitUntil(lambda: panel.dataset is not None, timeout=120000)
    qtbot.waitUntil(lambda: not panel.busy(), timeout=30000)
    assert answers == [panel.summary] and panel.warnings.text() == ""
    assert "10 classes" in panel.status.text()
