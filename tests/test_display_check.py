"""Starting the window where there is no display says so in words, with the way to work without
one, instead of Qt aborting the process with its own message about xcb-cursor0."""

from __future__ import annotations

import sys

import pytest

from ui import app

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X/Wayland: Linux")


def test_no_display_set_is_named_with_the_way_out(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    problem = app.display_problem()
    assert problem is not None
    assert "no display" in problem and "DISPLAY is not set" in problem
    assert "python -m cnnstudio train" in problem and "QT_QPA_PLATFORM=offscreen" in problem


def test_a_display_that_does_not_answer_is_named(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":987")  # no X server has this number here
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(app, "_x_display_answers", lambda display: display != ":987")
    assert "DISPLAY=:987 does not answer" in app.display_problem()


def test_offscreen_and_wayland_need_no_x_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert app.display_problem() is None
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert app.display_problem() is None


def test_main_exits_with_the_message_before_qt_starts(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert app.main([]) == 1
    assert "found no display" in capsys.readouterr().err


def test_an_unreachable_x_server_is_reported_by_libxcb():
    # a display number nothing listens on: libxcb's connection fails (or libxcb is absent, and
    # then Qt's own check is left to decide, which the answer True stands for)
    import ctypes.util

    answers = app._x_display_answers(":987")
    assert answers is (ctypes.util.find_library("xcb") is None)


def test_missing_libraries_are_named_by_their_packages(monkeypatch):
    import ctypes.util

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    absent = {"xcb-cursor", "EGL"}
    real = ctypes.util.find_library

    def find(name: str) -> str | None:
        return None if name in absent else real(name) or f"lib{name}.so"

    monkeypatch.setattr(ctypes.util, "find_library", find)
    assert sorted(app.missing_qt_libraries()) == ["libegl1", "libxcb-cursor0"]


def test_the_readme_lists_every_library_the_program_checks():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.strip().startswith("sudo apt install"))
    assert set(line.split()[3:]) == set(app.LINUX_LIBRARIES.values())
