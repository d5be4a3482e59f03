"""House rules that must fail loudly when broken: the engine never imports Qt."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import cnnstudio

ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph", "ui")


def test_import_linter_contracts_hold() -> None:
    from importlinter.api import read_configuration

    contracts = read_configuration(str(ROOT / "pyproject.toml"))["contracts_options"]
    assert any(
        c["type"] == "forbidden"
        and "cnnstudio" in c["source_modules"]
        and {"PySide6", "pyqtgraph", "ui"} <= set(c["forbidden_modules"])
        for c in contracts
    ), "a contract keeps Qt and the UI out of the engine"
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is part of the dev extras"
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr  # non-zero when one is broken


def test_importing_every_engine_module_loads_no_qt() -> None:
    modules = [m.name for m in pkgutil.walk_packages(cnnstudio.__path__, "cnnstudio.")]
    modules = [m for m in modules if m != "cnnstudio.__main__"]
    assert "cnnstudio.spec" in modules and "cnnstudio.cli" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"the engine imported {result.stdout.strip()}"
