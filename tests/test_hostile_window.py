"""What the window does with inputs that used to escape as tracebacks: a project file it cannot
read for any reason, and an analysis that raises. The user gets a message; nothing escapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from cnnstudio import new_project


@pytest.fixture
def warnings_shown(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []

    def record(_parent, title, text, *args, **kwargs):
        shown.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", record)
    return shown


def _saved_project(folder: Path) -> Path:
    project = new_project()
    project.path = folder
    project.save()
    return folder


def test_a_project_nested_too_deeply_is_refused_with_a_message(window, tmp_path, warnings_shown):
    folder = _saved_project(tmp_path / "deep")
    (folder / "project.json").write_text("[" * 100_000 + "]" * 100_000)
    assert not window.open_project(folder)
    ((title, text),) = warnings_shown
    assert title == "Cannot open the project" and "deep" in text
    assert window.document.project.path != folder  # the window still holds the previous project


def test_a_project_with_a_number_beyond_float_is_refused_with_a_message(
    window, tmp_path, warnings_shown
):
    folder = _saved_project(tmp_path / "huge")
    data = json.loads((folder / "project.json").read_text())
    text = json.dumps(data).replace('"epochs": 10', '"epochs": 1' + "0" * 400)
    assert "0" * 400 in text
    (folder / "project.json").write_text(text)
    assert not window.open_project(folder)
    ((title, message),) = warnings_shown
    assert title == "Cannot open the project" and "huge" in message


def test_an_analysis_that_raises_reaches_the_user(window, qtbot, monkeypatch) -> None:
    """And the next analysis that works clears the message."""

    def broken(_spec):
        raise RuntimeError("the analysis broke")

    with monkeypatch.context() as patched:
        patched.setattr("ui.document.analyze", broken)
        with qtbot.waitSignal(window.document.analysis_failed, timeout=30000) as failed:
            window.document.request_analysis()
    assert "RuntimeError: the analysis broke" in failed.args[0]
    assert "could not be analysed" in window.totals_label.text()
    assert window.document.analysis is None
    with qtbot.waitSignal(window.document.analysis_ready, timeout=30000):
        window.document.request_analysis()
    assert window.totals_label.text().endswith("valid")
