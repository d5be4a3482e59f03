"""Test configuration: headless Qt, and an isolated torch cache for every test."""

from __future__ import annotations

import os

# Qt must be told before any QApplication exists; a pytest.ini option is too late.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

from pathlib import Path

import pytest
import torch


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
