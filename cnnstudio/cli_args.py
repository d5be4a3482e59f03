"""What the command modules share: the exit codes, the error for a bad argument found after
parsing (UsageError, exit code 2), argument types that name what they expect, and the progress
lines printed on stderr when it is a terminal."""

from __future__ import annotations

import argparse
import sys

from cnnstudio.progress import Progress

EXIT_INVALID = 1  # the model does not build (summary)
EXIT_USAGE = 2  # a bad argument or file


class UsageError(Exception):
    """A bad argument value found after parsing; exit code 2."""


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e-4, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def input_shape(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected channels,height,width such as 3,32,32, got {text!r}"
        )
    return shape  # type: ignore[return-value]


def stderr_progress():
    """A progress outlet printing a live line on stderr when it is a terminal."""
    live = sys.stderr.isatty()

    def progress(report: Progress) -> None:
        if live and report.total:
            end = "\n" if report.done >= report.total else ""
            share = f"{report.what}: {report.done}/{report.total}"
            print(f"\r{share}  ", end=end, file=sys.stderr, flush=True)

    return progress


def progress_bar():
    """A progress callback drawing a bar on stderr when it is a terminal (nothing otherwise)."""
    live = sys.stderr.isatty()

    def show(report: Progress) -> None:
        if live and report.total:
            filled = 30 * report.done // report.total
            print(f"\r{report.what} [{'#' * filled}{' ' * (30 - filled)}] {report.done}/"
                  f"{report.total}", end="", file=sys.stderr, flush=True)  # fmt: skip

    return show
