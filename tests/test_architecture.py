"""House rules that must fail loudly when broken: the engine never imports Qt, its modules keep
to their floors, and neither the engine nor the window has an import circle."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert any(
        c["type"] == "layers" and c.get("containers") == ["cnnstudio"] and c.get("exhaustive")
        for c in contracts
    ), "an exhaustive layers contract gives every engine module its floor"
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is part of the dev extras"
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr  # non-zero when one is broken


@pytest.mark.slow
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


def _import_circles(package: str) -> list[tuple[str, str]]:
    """Pairs of modules of ``package`` that import each other, directly or through others."""
    import grimp

    graph = grimp.build_graph(package)
    modules = sorted(m for m in graph.modules if m != package)
    return [
        (a, b)
        for i, a in enumerate(modules)
        for b in modules[i + 1 :]
        if not graph.is_module_squashed(a)
        and graph.chain_exists(a, b)
        and graph.chain_exists(b, a)
        and not (b.startswith(a + ".") or a.startswith(b + "."))  # a package and its own modules
    ]


def test_the_engine_has_no_import_circle() -> None:
    """Also inside its packages (the layers contract orders only the top-level modules)."""
    assert _import_circles("cnnstudio") == []


def test_the_window_has_no_import_circle() -> None:
    assert _import_circles("ui") == []


def test_a_circle_is_found_when_there_is_one(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "circled"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circled import b\n")
    (package / "b.py").write_text("from circled import c\n")
    (package / "c.py").write_text("import circled.a\n")
    (package / "d.py").write_text("from circled import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _import_circles("circled") == [
        ("circled.a", "circled.b"),
        ("circled.a", "circled.c"),
        ("circled.b", "circled.c"),
    ]
