"""The standalone program built by `make bundle` (build.spec): it starts, trains and has what
torchvision and the window need. Skipped unless dist/cnnstudio exists (or CNNSTUDIO_TEST_BUNDLE=1,
which makes a missing program a failure)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "dist" / "cnnstudio"
PROGRAM = FOLDER / ("cnnstudio.exe" if sys.platform == "win32" else "cnnstudio")
REQUIRED = os.environ.get("CNNSTUDIO_TEST_BUNDLE") == "1"

pytestmark = pytest.mark.skipif(
    not REQUIRED and not PROGRAM.exists(),
    reason="no bundle: build it with `make bundle` (or set CNNSTUDIO_TEST_BUNDLE=1)",
)


@pytest.fixture(scope="module")
def internal() -> Path:
    assert PROGRAM.exists(), f"{PROGRAM} is missing: run `make bundle`"
    return FOLDER / "_internal"


@pytest.mark.slow
def test_bundle_self_test_passes(internal: Path, tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    done = subprocess.run(
        [str(PROGRAM), "--self-test"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "self-test passed" in done.stdout


def test_bundle_has_torchvision_native_operators(internal: Path) -> None:
    # torchvision 0.29's nms, roi_align and image decoding live in _C_stable and image_stable,
    # which PyInstaller's hook misses; build.spec adds them where torchvision looks.
    names = {path.name.split(".")[0] for path in (internal / "torchvision").iterdir()}
    assert {"_C_stable", "image_stable"} <= names


def test_bundle_has_every_icon(internal: Path) -> None:
    icons = {path.name for path in (ROOT / "resources" / "icons").glob("*.svg")}
    bundled = {path.name for path in (internal / "resources" / "icons").glob("*.svg")}
    assert icons and icons <= bundled, sorted(icons - bundled)
