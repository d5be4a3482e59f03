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


def _digits(root) -> str:
    """sklearn's 8×8 digits, 4 of each class, as grayscale PNGs in class folders."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i in range(40):
        folder = root / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 255 / 16).round().astype("uint8")).save(
            folder / f"{i}.png"
        )
    return str(root)


def test_choosing_a_folder_takes_its_defaults_and_says_why(qtbot, tmp_path) -> None:
    document = ProjectDocument(new_project())
    panel = DataPanel(document)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: panel.summary is not None, timeout=120000)
    assert document.project.data.augment["hflip"]  # the sample set: the lesson's recipe
    panel.choose_folder(_digits(tmp_path / "digits"))
    qtbot.waitUntil(lambda: document.project.data.source == "folder", timeout=60000)
    assert panel.summary.classes == [str(i) for i in range(10)]
    augment = document.project.data.augment
    assert (augment["hflip"], augment["crop_padding"], augment["saturation"]) == (False, 1, 0)
    assert document.project.training["batch_size"] == 16
    assert panel.defaults_label.text().startswith(
        "Defaults for 8×8 grayscale images: no flips, crop padding 1, no colour jitter"
    )
    assert "1/8 of 8 px" in panel.augment_editors["crop_padding"].toolTip()
    qtbot.waitUntil(lambda: not panel.busy(), timeout=30000)
    panel.resize(420, 1100)
    panel.grab().save(str(tmp_path / "data-view.png"))
    panel.shutdown()
    document.shutdown()


def test_hand_edits_survive_a_reload_and_destructive_ones_warn(qtbot, tmp_path) -> None:
    from cnnstudio.data import DataSettings

    data = DataSettings(source="folder", path=_digits(tmp_path / "digits"))
    document = ProjectDocument(new_project(data=data))
    panel = DataPanel(document)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: panel.summary is not None, timeout=60000)
    assert panel.warnings.text() == ""
    panel.augment_editors["crop_padding"].setValue(4)
    assert "crop padding 4 on 8×8 images shifts them by up to half their size" in (
        panel.warnings.text()
    )
    assert "This project differs in: crop padding." in panel.defaults_label.text()
    panel.summary = None
    panel.reload()
    qtbot.waitUntil(lambda: panel.summary is not None, timeout=60000)
    assert document.project.data.augment["crop_padding"] == 4
    assert "crop padding 4 on 8×8" in panel.warnings.text()
    qtbot.waitUntil(lambda: not panel.busy(), timeout=30000)
    panel.shutdown()
    document.shutdown()


def test_the_chart_caption_is_written_in_the_muted_text_colour(qtbot) -> None:
    from ui.theme import colours

    document = ProjectDocument(new_project())
    panel = DataPanel(document)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: panel.summary is not None, timeout=120000)
    axis = panel.chart.getAxis("bottom")  # it was drawn in the border colour, barely visible
    assert f"color: {colours().muted}" in axis.labelString()
    assert axis.textPen().color().name() == colours().muted
    panel.shutdown()
    document.shutdown()
