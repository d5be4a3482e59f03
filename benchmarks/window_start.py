"""How soon does the studio's window show, and how soon are its torch views ready? Next to it, how
long a bare ``import torch`` takes on the same machine in the same run.

Starts the real program (``main.py --time-start``, offscreen) in fresh processes and times, from
the moment each process is started, the line it prints at the window's first paint and the line
it prints once torch is imported and the Data, Train, Inspect and Predict views are built. Each
measurement is taken ``--runs`` times in turn (program, bare import, program, ...) and the median
printed, so that a busy moment of the machine shifts both alike. Target (issue 20): the window
within 1.5 s; before, it showed at 4.5 s, after torch.

    .venv/bin/python benchmarks/window_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def program_start() -> tuple[float, float, bool]:
    """Seconds from starting ``main.py --time-start`` to the window's first paint and to torch's
    views being ready, and whether torch was imported when the window showed."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "main.py", "--time-start"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    shown = ready = None
    torch_at_show = True
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("window-shown"):
            shown = time.perf_counter() - started
            torch_at_show = line.strip().endswith("True")
        elif line.startswith("engine-"):
            ready = time.perf_counter() - started
            if not line.startswith("engine-ready"):
                raise SystemExit(f"the program could not load torch: {line.strip()}")
    process.wait()
    if shown is None or ready is None:
        raise SystemExit(f"main.py --time-start exited ({process.returncode}) without its lines")
    return shown, ready, torch_at_show


def bare_torch_import() -> float:
    """Seconds for a fresh ``python -c "import torch"``, interpreter start included."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - started


def bare_python() -> float:
    """Seconds for a fresh ``python -c pass``: what every process pays before its first import."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    shown, ready, torch_bare, python_bare, early = [], [], [], [], []
    for _ in range(args.runs):
        window, views, torch_at_show = program_start()
        shown.append(window)
        ready.append(views)
        early.append(not torch_at_show)
        torch_bare.append(bare_torch_import())
        python_bare.append(bare_python())
    median = statistics.median
    print(f"median of {args.runs} fresh processes each (seconds from process start):")
    print(f"  main window shown (first paint)       {median(shown):6.2f}")
    print(f"  torch loaded, its views built         {median(ready):6.2f}")
    print(f"  python -c 'import torch'              {median(torch_bare):6.2f}")
    print(f"  python -c pass                        {median(python_bare):6.2f}")
    print(f"  window shown / import torch           {median(shown) / median(torch_bare):6.2f}")
    print(f"  window shown before torch imported    {sum(early)} of {args.runs}")


if __name__ == "__main__":
    main()
