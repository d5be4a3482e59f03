"""The window before torch has loaded (issue 20): it shows with the editor while torch imports on a
pool thread; the views that need torch come when it is done, and an action that needs them, used
early, shows that it waits and then runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from cnnstudio import new_project
from cnnstudio.data import DataSettings
from cnnstudio.train_settings import check_training
from tests.test_train import colour_folder, tiny_model
from ui.engine import LOADING_TEXT, TORCH_FREE_MODULES, import_engine
from ui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[1]

NO_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} is blocked: the editor's path must not import it")
sys.meta_path.insert(0, NoTorch())
"""
"""Prepended to a fresh process's code: any import of torch fails there."""


def _fresh(code: str) -> subprocess.CompletedProcess:
    env_code = "import os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n" + code
    return subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)  # fmt: skip


def test_the_program_shows_its_window_before_torch_is_imported() -> None:
    done = subprocess.run(
        [sys.executable, "main.py", "--time-start"], capture_output=True, text=True, timeout=300,
        cwd=ROOT, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert "torch-at-show=False" in lines, done.stdout
    assert lines.index("torch-at-show=False") < lines.index("engine-ready"), done.stdout


def test_the_editor_works_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    """The modules of the editor's path import, and a project is made, analysed, saved, read and
    shown in the window, in a process where importing torch fails. (A pretrained backbone's
    shapes are probed with torchvision: that analysis waits for torch on its pool thread.)"""
    code = NO_TORCH + (
        "import importlib\n"
        f"for name in {TORCH_FREE_MODULES!r}: importlib.import_module(name)\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from cnnstudio import analyze, load_project, new_project, list_templates, get_template\n"
        "from ui.main_window import MainWindow\n"
        f"project = new_project(path={str(tmp_path / 'p')!r})\n"
        "project.save()\n"
        "project = load_project(project.path)\n"
        "assert analyze(project.model).valid\n"
        "for name in list_templates():  # a torchvision backbone's shapes need torch: not these\n"
        "    spec = get_template(name).create(10)\n"
        "    if all(node.kind != 'Backbone' for node in spec.nodes):\n"
        "        assert analyze(spec).valid, name\n"
        "window = MainWindow(project, load_engine=lambda state: None)\n"
        "window.show()\n"
        "print(window.torch_at_show, window.windowTitle())\n"
    )
    done = _fresh(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "False" and "CNN Studio" in done.stdout


def test_reserved_layer_ids_are_known_before_torch_is_imported() -> None:
    """A layer named like any public attribute of torch's nn.Module is refused by the analysis in
    a process without torch, as it is with torch (``add_module`` would refuse or break it)."""
    from torch import nn

    names = sorted(n for n in dir(nn.Module) if n[0].isalpha())
    code = NO_TORCH + (
        "from cnnstudio import analyze, ModelSpec, Node\n"
        f"names = {names!r}\n"
        "spec = ModelSpec(tuple(Node(name, 'ReLU') for name in names), (3, 8, 8), 2)\n"
        "flagged = {i.layer for i in analyze(spec).errors if 'nn.Module uses' in i.message}\n"
        "print(sorted(set(names) - flagged))\n"
    )
    done = _fresh(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"not refused without torch: {done.stdout}"


class HeldBack:
    """An engine import that waits until the test lets it go, as a slow import of torch would."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def load(self, state) -> None:
        self.gate.wait(timeout=120)
        import_engine(state)

    def set(self) -> None:
        self.gate.set()


@pytest.fixture
def held_back():
    """A held-back engine import, let go at teardown whatever happened."""
    held = HeldBack()
    yield held
    held.set()


def _close(window: MainWindow) -> None:
    window.document.discard_changes()
    window.close()
    assert not window.document.busy()


def test_export_clicked_before_torch_loads_waits_then_opens(qtbot, app_settings, held_back) -> None:
    window = MainWindow(new_project(), app_settings, load_engine=held_back.load)
    window.show()
    try:
        assert window.train_dock.widget().text() == LOADING_TEXT
        assert window.device_label.text() == LOADING_TEXT
        assert window.data_panel is None and not window.engine_loaded()
        window.export_action.trigger()
        assert "Export waits for PyTorch" in window.statusBar().currentMessage()
        cursor = QApplication.overrideCursor()
        assert cursor is not None and cursor.shape() == Qt.CursorShape.BusyCursor
        held_back.set()
        qtbot.waitUntil(lambda: getattr(window, "export_dialog", None) is not None, timeout=120000)
        assert window.export_dialog.isVisible()
        assert window.train_dock.widget() is window.train_panel
        assert QApplication.overrideCursor() is None
        assert window.statusBar().currentMessage() == ""
        assert window.device_label.text() != LOADING_TEXT
        window.export_dialog.close()
        qtbot.waitUntil(lambda: window.data_panel.dataset is not None, timeout=120000)
    finally:
        held_back.set()
        _close(window)


def test_training_asked_for_before_torch_loads_runs_once_it_has(
    qtbot, app_settings, held_back, tmp_path: Path
) -> None:
    project = new_project()
    project.model = tiny_model()
    project.data = DataSettings(source="folder", path=str(colour_folder(tmp_path / "images")))
    project.training = check_training({"epochs": 1, "batch_size": 16, "workers": 0})
    project.save(tmp_path / "proj")
    window = MainWindow(project, app_settings, load_engine=held_back.load)
    window.show()
    try:
        train = next(a for a in window.run_menu.actions() if a.text() == "&Train")
        train.trigger()
        assert "Training waits for PyTorch" in window.statusBar().currentMessage()
        with qtbot.waitSignal(window.engine_ready, timeout=120000):
            held_back.set()
        assert window.train_panel.running  # the queued click started the run at once
        qtbot.waitUntil(lambda: window.train_panel.result is not None, timeout=120000)
        assert window.train_panel.result.state == "finished"
        menu = [a.text() for a in window.run_menu.actions() if not a.isSeparator()]
        assert menu == ["&Train", "&Pause", "&Stop", "&Resume from Checkpoint", "S&weep…"]
        assert window.run_menu.actions()[0] is window.train_panel.start_action
    finally:
        held_back.set()
        _close(window)


def test_a_failed_torch_import_leaves_the_editor_working_and_says_why(qtbot, app_settings) -> None:
    def broken(_state) -> None:
        raise ImportError("libtorch_cpu.so: cannot open shared object file")

    window = MainWindow(new_project(), app_settings, load_engine=broken)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.engine.error is not None, timeout=60000)
        assert "libtorch_cpu.so" in window.inspect_dock.widget().text()
        window.export_action.trigger()
        message = window.statusBar().currentMessage()
        assert "Export needs PyTorch" in message and "libtorch_cpu.so" in message
        assert QApplication.overrideCursor() is None
        window.apply_template("lenet5")  # the editor still edits and analyses
        qtbot.waitUntil(lambda: window.document.analysis_is_current, timeout=60000)
        assert window.document.analysis.valid
        assert window.document.undo_stack.count() == 1
    finally:
        _close(window)
