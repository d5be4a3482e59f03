"""The studio as a program: parse the arguments, create the application, show the window, run the
loop. ``main.py`` (``make run``), the installed ``cnnstudio-gui`` command and the standalone
program all start here."""

from __future__ import annotations

import argparse
import ctypes.util
import os
import sys

LINUX_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0", "xkbcommon-x11": "libxkbcommon-x11-0",
    "xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1", "xcb-image": "libxcb-image0",
    "xcb-render-util": "libxcb-render-util0", "xcb-xkb": "libxcb-xkb1",
    "xcb-shape": "libxcb-shape0",
    "xcb-randr": "libxcb-randr0", "xcb-xinerama": "libxcb-xinerama0", "EGL": "libegl1",
    "GL": "libgl1", "fontconfig": "libfontconfig1", "dbus-1": "libdbus-1-3",
}  # fmt: skip
"""The system libraries (by ctypes name) that Qt's window needs on Linux, with their Debian and
Ubuntu packages: the README's list, and what the program checks before it opens its window."""


def missing_qt_libraries() -> list[str]:
    """System libraries Qt's xcb platform plugin needs on Linux that this machine lacks."""
    if not sys.platform.startswith("linux"):
        return []
    if os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb" or not os.environ.get("DISPLAY"):
        return []
    needed = LINUX_LIBRARIES
    return [package for lib, package in needed.items() if ctypes.util.find_library(lib) is None]


def display_problem() -> str | None:
    """Why the window cannot open on this Linux machine, in words with the way out, or None.

    Without a display Qt aborts the process with its own message (about xcb-cursor0 or a display
    it could not connect to), which does not say that there is no screen or how to work without
    one."""
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return None  # offscreen, vnc, eglfs...: Qt needs no X or Wayland display
    display, wayland = os.environ.get("DISPLAY"), os.environ.get("WAYLAND_DISPLAY")
    if wayland and not platform.startswith("xcb"):
        return None
    if display and _x_display_answers(display):
        return None
    where = f"DISPLAY={display} does not answer" if display else "DISPLAY is not set"
    return (
        f"CNN Studio found no display to open its window on ({where}).\n"
        "Start it from a desktop session, or work without a window:\n"
        "  python -m cnnstudio train PROJECT      train, evaluate, export from the command line\n"
        "  QT_QPA_PLATFORM=offscreen python main.py --self-test   check the studio headless"
    )


def _x_display_answers(display: str) -> bool:
    """Whether the X server ``display`` accepts a connection (through libxcb, which Qt's window
    needs anyway); True when libxcb cannot be asked, so that Qt's own check decides."""
    import ctypes

    name = ctypes.util.find_library("xcb")
    if name is None:
        return True
    try:
        xcb = ctypes.CDLL(name)
        xcb.xcb_connect.restype = ctypes.c_void_p
        xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
        xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
        connection = xcb.xcb_connect(display.encode(), None)
        failed = xcb.xcb_connection_has_error(connection)
        xcb.xcb_disconnect(connection)
    except (OSError, AttributeError):
        return True
    return not failed


def main(argv: list[str] | None = None) -> int:
    """Open the studio (or run --self-test / --screenshot); the process's exit code."""
    args = _parse(argv)
    checking = bool(args.self_test or args.screenshot)
    if checking:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    missing = missing_qt_libraries()
    if missing:
        print(
            "CNN Studio needs these system libraries for its window: "
            + " ".join(missing)
            + f"\nOn Debian or Ubuntu: sudo apt install {' '.join(missing)}",
            file=sys.stderr,
        )
        return 1
    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setApplicationName("CNN Studio")
    app.setOrganizationName("CNN Studio")

    from ui.theme import apply_theme

    settings = _settings(scratch=checking or args.time_start)
    apply_theme(app, settings.theme())
    # no splash: the window itself shows before torch is imported (ui.engine), in about a second
    from ui.main_window import MainWindow

    window = MainWindow(settings=settings)
    if args.time_start:
        _time_start(app, window)
    window.show()
    if args.project:
        if not window.open_project(args.project):
            return 2
    elif not checking and not args.time_start and settings.last_project():
        window.open_project(settings.last_project())
    if checking:
        from ui.self_test import wait_until

        if not wait_until(window.engine_loaded, 600):
            print(f"PyTorch did not load: {window.engine.error}", file=sys.stderr)
            return 1
    if args.self_test:
        from ui.self_test import run_self_test

        return run_self_test(window)
    if args.screenshot:
        from ui.self_test import write_screenshots

        return write_screenshots(window, args.screenshot)
    return app.exec()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cnnstudio-gui", description="CNN Studio")
    parser.add_argument("project", nargs="?", help="project folder to open")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="build the window offscreen, train one step, exit 0 when all works",
    )
    parser.add_argument("--screenshot", metavar="DIR", help="write a PNG of each view into DIR")
    parser.add_argument(
        "--time-start",
        action="store_true",
        help="print when the window is first painted and when torch's views are ready, then exit "
        "(benchmarks/window_start.py)",
    )
    return parser.parse_args(argv)


def _time_start(app, window) -> None:
    """``--time-start``: a line on stdout at the window's first paint (with whether torch was
    imported when it showed), then one once torch's views are built, and quit; a benchmark that
    times the lines as they arrive measures the start as a user sees it."""
    from PySide6.QtCore import QEvent, QObject

    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        print(line, flush=True)

    def ready() -> None:
        if said and said[-1].startswith("window-shown") and window.engine_loaded():
            say("engine-ready")
            app.quit()

    class FirstPaint(QObject):
        def eventFilter(self, watched, event) -> bool:
            if event.type() == QEvent.Type.Paint:
                watched.removeEventFilter(self)
                say(f"window-shown torch-at-show={window.torch_at_show}")
                ready()  # torch was imported before the window (the views came at once)
            return False

    window.installEventFilter(FirstPaint(window))
    window.engine_ready.connect(ready)
    window.engine.failed.connect(lambda message: (say(f"engine-failed {message}"), app.quit()))


def _settings(scratch: bool):
    """The user's settings; for a check or a picture of the studio as it ships, fresh ones in a
    scratch folder (not the user's layout, theme or recent projects)."""
    from ui.app_settings import AppSettings

    if not scratch:
        return AppSettings()
    import tempfile

    from PySide6.QtCore import QSettings

    folder = tempfile.mkdtemp(prefix="cnnstudio-")
    return AppSettings(QSettings(f"{folder}/settings.ini", QSettings.Format.IniFormat))
