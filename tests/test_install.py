"""The studio as `pip install .` leaves it: built into a wheel, installed elsewhere, and started by
its `cnnstudio-gui` command with nothing of the source tree on the path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# building and installing the wheel takes seconds, the self-test more
pytestmark = pytest.mark.slow

# Run the installed command's own script as `python -S` would, so that the source tree's editable
# install (a .pth file in site-packages) stays out, and report where the modules came from.
REPORT = """
import json, runpy, sys
sys.argv = sys.argv[1:]  # as if the command itself had been started
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    code = exit.code
files = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}
icons = sys.modules["ui.icons"].ICON_DIR
print(json.dumps({"code": code, "files": files, "icons": str(icons)}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the project, installed into a folder of its own."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("cnnstudio", "ui", "resources"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir",
         str(root / "wheels"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "wheels").glob("cnnstudio-*.whl")
    target = root / "site"
    done = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--no-compile", "--target", str(target),
         str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def test_the_install_carries_every_icon_and_the_gui_command(installed: Path) -> None:
    icons = {path.name for path in (ROOT / "resources" / "icons").glob("*.svg")}
    carried = {path.name for path in (installed / "resources" / "icons").glob("*.svg")}
    assert icons and icons == carried
    (info,) = installed.glob("cnnstudio-*.dist-info")
    gui = PathDistribution(info).entry_points.select(group="gui_scripts")
    assert [(e.name, e.value) for e in gui] == [("cnnstudio-gui", "ui.app:main")]


@pytest.mark.skipif(sys.platform == "win32", reason="the Windows command is an .exe launcher")
def test_the_installed_command_passes_the_self_test(installed: Path, tmp_path: Path) -> None:
    libraries = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    env = {"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "PATH": os.environ["PATH"],
           "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "PYTHONPATH": os.pathsep.join([str(installed), *libraries])}  # fmt: skip
    command = installed / "bin" / "cnnstudio-gui"
    done = subprocess.run(
        [sys.executable, "-S", "-c", REPORT, str(command), "--self-test"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr[-3000:]
    files = {name: file for name, file in report["files"].items() if file}
    for name in ("ui.app", "ui.icons", "ui.main_window", "cnnstudio", "cnnstudio.train"):
        assert Path(files[name]).is_relative_to(installed), (name, files[name])
    assert Path(report["icons"]) == installed / "resources" / "icons"
    sources = [ROOT / name for name in ("cnnstudio", "ui", "resources", "main.py")]
    from_source = [n for n, f in files.items() if any(Path(f).is_relative_to(s) for s in sources)]
    assert from_source == []
