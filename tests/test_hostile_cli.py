"""The command line's last line of defence: an error the engine did not turn into its own (a
file error, or a bug) still ends in one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from cnnstudio import cli, cli_project


def _run_with(monkeypatch, capsys, error: BaseException) -> tuple[int, str]:
    def handler(_args):
        raise error

    monkeypatch.setattr(cli_project, "_cmd_summary", handler)
    code = cli.main(["summary", "anywhere"])
    return code, capsys.readouterr().err


def test_a_file_error_is_one_line_naming_the_file(monkeypatch, capsys) -> None:
    error = OSError(errno.ENOSPC, "No space left on device", "/data/runs/x/state.json")
    code, err = _run_with(monkeypatch, capsys, error)
    assert code == 2
    assert err == "cnnstudio summary: error: /data/runs/x/state.json: No space left on device\n"


def test_a_bug_is_one_line_and_its_traceback_goes_to_a_file(monkeypatch, capsys) -> None:
    code, err = _run_with(monkeypatch, capsys, RuntimeError("something we did not expect"))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("cnnstudio summary: internal error: RuntimeError: something we did not")
    report = Path(err.rsplit("please report it with ", 1)[1].rstrip(")\n"))
    assert "Traceback" in report.read_text() and "something we did not expect" in report.read_text()
    report.unlink()


def test_an_interrupt_is_not_a_bug(monkeypatch, capsys) -> None:
    code, err = _run_with(monkeypatch, capsys, KeyboardInterrupt())
    assert (code, err) == (130, "cnnstudio summary: interrupted\n")


def test_an_exit_still_exits(monkeypatch, capsys) -> None:
    with pytest.raises(SystemExit):
        _run_with(monkeypatch, capsys, SystemExit(3))
