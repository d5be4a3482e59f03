"""Pictures of the run table and of Compare, from a real sweep: the sample set's default project,
a 2×2 grid (lr 1e-3, 1e-2 × sgd, adamw) for 2 epochs, trained by `cnnstudio sweep` when the
project has no runs yet (about a minute on a laptop CPU). The Train view is pictured in the main
window at 1920×1080 and at 1280×800, the Compare dialog at its own size and at 1400×380 and
860×280, each in the light and the dark theme; the best two are the README's.

    .venv/bin/python benchmarks/run_table_screenshots.py [--project DIR] [--out DIR] [--docs]

--docs also copies window-runs-table.png (the Train view at 1920×1080) and window-compare.png
(Compare's curves at the dialog's own size), both light, into docs/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from cnnstudio import load_project, run_table, runs
from cnnstudio.cli import main as cli

DOCS = Path(__file__).resolve().parents[1] / "docs"
GRID = ["--grid", "lr=1e-3,1e-2", "--grid", "optimizer=sgd,adamw", "--epochs", "2"]


def make_runs(project: Path) -> None:
    """The sample project and its sweep, unless the folder has runs already."""
    if not (project / "project.json").is_file():
        cli(["new", str(project)])
    if not runs.list_runs(load_project(project).runs_dir):
        cli(["sweep", str(project), *GRID])
    table = run_table.run_table(load_project(project).runs_dir)
    if table.best is not None and not any(row.notes.tags for row in table.rows):
        best = next(row for row in table.rows if row.info.name == table.best)
        runs.set_notes(best.info.folder, tags=["keep"], note="the one to export")


def settle(seconds: float = 5.0) -> None:
    from ui.self_test import wait_until

    wait_until(lambda: False, seconds)  # let the docks and the plots lay themselves out


def pictures(window, out: Path, theme: str) -> list[Path]:
    panel = window.train_panel
    view = panel.runs_view
    written = []
    for width, height in ((1920, 1080), (1280, 800)):
        window.resize(width, height)
        window.train_dock.raise_()
        panel.tabs.setCurrentWidget(view)
        others = [row.info.name for row in view.rows() if row.info.name != view.model.table.best]
        view.select_runs(others[:2])  # the best run unselected: its bold and star show
        settle(2)
        path = out / f"runs-table-{theme}-{width}x{height}.png"
        panel.grab().save(str(path))
        written.append(path)
    view.select_runs([row.info.name for row in view.rows()])
    view.compare()
    dialog = view.compare_dialog
    for tab in range(dialog.tabs.count()):
        for size in (None, (1400, 380), (860, 280)):
            dialog.resize(*(size or (1000, 560)))
            dialog.tabs.setCurrentIndex(tab)
            dialog.x_box.setCurrentText("optimizer" if tab == 3 else "lr")
            settle(1)
            shape = "default" if size is None else f"{size[0]}x{size[1]}"
            path = out / f"compare-{tab}-{theme}-{shape}.png"
            dialog.grab().save(str(path))
            written.append(path)
    dialog.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", default=str(Path(tempfile.gettempdir()) / "rtable-demo"))
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "rtable-shots"))
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    project, out = Path(args.project), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    make_runs(project)
    app = QApplication.instance() or QApplication([])
    from ui.app_settings import AppSettings
    from ui.main_window import MainWindow
    from ui.self_test import _settle

    settings = AppSettings(QSettings(str(out / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(load_project(project), settings)
    window.show()
    _settle(window)
    written = []
    for theme in ("light", "dark"):
        window.set_theme(theme)
        written += pictures(window, out, theme)
    window.document.discard_changes()
    window.close()
    if args.docs:
        shutil.copy(out / "runs-table-light-1920x1080.png", DOCS / "window-runs-table.png")
        shutil.copy(out / "compare-1-light-default.png", DOCS / "window-compare.png")
    print("\n".join(str(p) for p in written))
    app.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
