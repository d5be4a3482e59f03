"""Start CNN Studio: parse the arguments, create the application, show the window, run the loop."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnstudio-gui", description="CNN Studio")
    parser.add_argument("project", nargs="?", help="project folder to open")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from cnnstudio import StudioError, load_project, new_project
    from ui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    app.setApplicationName("CNN Studio")
    try:
        project = load_project(args.project) if args.project else new_project("simple-cnn")
    except StudioError as error:
        print(f"cnnstudio: error: {error}", file=sys.stderr)
        return 2
    window = MainWindow(project)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
