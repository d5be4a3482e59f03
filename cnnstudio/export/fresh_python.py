"""Running generated code the way its user will: in a fresh Python interpreter (isolated mode,
without CNN Studio on the path), and comparing its model's output with the studio's. The
standalone program has no separate Python: there the code runs in this process, still from the
file on disk with its own imports."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from cnnstudio.errors import ExportError
from cnnstudio.export.check import CHECK_BATCH, compare, reference, sample
from cnnstudio.model_source import ModelSource
from cnnstudio.weights import state_tensors

# argv: the generated file, the weights, the input batch, where to save the output, and flags
_RUNNER = """
import sys
argv = globals().get("ARGV") or sys.argv  # ARGV: run inside the standalone program
if "ARGV" not in globals():
    sys.modules["cnnstudio"] = None  # the generated code must not need CNN Studio
import runpy
import torch
namespace = runpy.run_path(argv[1], run_name="exported_model")
{make_model}
with torch.no_grad():
    torch.save(model(torch.load(argv[3], weights_only=True)), argv[4])
"""

LOAD = 'model = namespace["load"](argv[2])'
"""The model made by the generated file's own ``load(weights)``."""

BUILD_AND_LOAD = """\
model = namespace["Net"](**({"pretrained": False} if "pretrained" in argv[5:] else {})).eval()
model.load_state_dict(torch.load(argv[2], weights_only=True))"""
"""The generated ``Net()`` (told not to download backbone weights when it takes ``pretrained``),
with a state dict loaded into it."""


def check_generated(
    src: ModelSource,
    path: Path,
    format: str,
    what: str,
    *,
    make_model: str = LOAD,
    weights: Path | None = None,
    flags: tuple[str, ...] = (),
) -> tuple[float, float]:
    """Run ``path`` in a fresh Python, make its model with ``make_model`` (LOAD or
    BUILD_AND_LOAD) from ``weights`` (default: the model's state dict, written for the check),
    and compare its output with the model's. ``what`` says what runs, for the messages."""
    x = sample(src, CHECK_BATCH, 1)
    with tempfile.TemporaryDirectory(prefix="cnnstudio-export-") as tmp:
        folder = Path(tmp)
        torch.save(x, folder / "input.pt")
        if weights is None:
            weights = folder / "weights.pt"
            torch.save(state_tensors(src.model), weights)
        code = _RUNNER.replace("{make_model}", make_model)
        arguments = [str(path), str(weights), str(folder / "input.pt"), str(folder / "output.pt")]
        _run_isolated(["-c", code, *arguments, *flags], folder, what, format)
        out = torch.load(folder / "output.pt", weights_only=True)
    return compare(reference(src, x), out, format)


def _run_isolated(args: list[str], cwd: Path, what: str, format: str, timeout: float = 600):
    """Run Python (isolated mode: no user site, no PYTHONPATH, cwd ``cwd``) with ``args``
    (``["-c", code, *arguments]``). The standalone program has no separate Python: there the code
    runs in this process (the file is still run from disk, with its own imports)."""
    if getattr(sys, "frozen", False):
        return _run_here(args, what, format)
    try:
        done = subprocess.run(
            [sys.executable, "-I", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ExportError(f"{what} did not finish in {timeout:.0f} s", format) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        raise ExportError(f"{what} failed: {last}", format)
    return done


def _run_here(args: list[str], what: str, format: str) -> None:
    flag, code, *arguments = args
    assert flag == "-c"
    try:
        exec(compile(code, "<export check>", "exec"), {"ARGV": ["-c", *arguments]})
    except Exception as error:  # whatever the generated code raises is the export's failure
        raise ExportError(f"{what} failed: {type(error).__name__}: {error}", format) from None
