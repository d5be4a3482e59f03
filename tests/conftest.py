"""Test configuration: headless Qt, and an isolated torch cache for every test."""

from __future__ import annotations

import os

# Qt must be told before any QApplication exists; a pytest.ini option is too late.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

from pathlib import Path

import pytest
import torch
from hypothesis import settings

# The property tests draw the same examples on every run, so that CI is never a lottery; to look
# for new failures, run them with HYPOTHESIS_PROFILE=explore (fresh random examples each time).
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def torch_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test sees an empty torch cache of its own: nothing from the user's, nothing shared."""
    home = tmp_path_factory.mktemp("torch_home")
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every download fails at once, as it does on a machine without a network."""
    import urllib.error

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torch.hub.download_url_to_file", refuse)
    monkeypatch.setattr("urllib.request.urlopen", refuse)


@pytest.fixture
def cached_weights(torch_home: Path):
    """Write ImageNet-shaped weights for a backbone into torch's cache, as a finished download
    would leave them; returns the state dict written (seeded random values)."""
    from cnnstudio import backbones

    def write(name: str) -> dict[str, torch.Tensor]:
        from torchvision.models import get_model

        torch.manual_seed(1234)
        weights = backbones.default_weights(name)
        model = get_model(name, weights=None, num_classes=len(weights.meta["categories"]))
        state = model.state_dict()
        path = backbones.weights_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        return state

    return write


@pytest.fixture(autouse=True)
def no_unexpected_dialogs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A modal dialog would hang a headless test: one that a test did not ask for fails it."""
    from PySide6.QtWidgets import QMessageBox

    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected dialog: {args[1:3]}")

    for name in ("question", "warning", "information", "critical"):
        monkeypatch.setattr(QMessageBox, name, refuse)


@pytest.fixture
def app_settings(tmp_path: Path):
    """Application preferences in a file of this test's own."""
    from PySide6.QtCore import QSettings

    from ui.app_settings import AppSettings

    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def window(qtbot, app_settings, tmp_path: Path):
    """A fresh main window on the default project, settled (analysis and data ready). On teardown
    it closes, and the test fails if any of its threads is still running."""
    from cnnstudio import new_project
    from ui.main_window import MainWindow

    win = MainWindow(new_project(), app_settings)
    win.show()  # not qtbot.addWidget: qtbot would close it before this fixture's teardown
    qtbot.waitUntil(lambda: win.document.analysis is not None, timeout=60000)
    qtbot.waitUntil(lambda: win.data_panel.dataset is not None, timeout=120000)
    yield win
    win.document.discard_changes()
    win.close()
    assert not win.document.busy() and not win.data_panel.busy(), (
        "a worker thread outlived the window"
    )
