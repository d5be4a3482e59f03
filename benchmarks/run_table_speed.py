"""How long does the Runs tab take to read a project's runs? The run table (``run_table.run_table``:
settings, state, notes and every epoch record of each run) against the run list it replaced
(``runs.list_runs``: settings and state), on 100 run folders written by hand, each with 800
logged steps and 2 epochs; and the run table read again with no run changed (the rows kept from
the first read). Best of 5, side by side, and their ratios.

    .venv/bin/python benchmarks/run_table_speed.py [--runs 100] [--steps 800]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnstudio import run_table, runs
from tests.test_run_table import fake_run


def best_of(function, folder: Path, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(folder)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        step = {"type": "step", "global_step": 0, "loss": 1.0, "lr": 0.1, "time": 1.0}
        for n in range(args.runs):
            run = fake_run(root, f"20261201-{n:04d}", [0.5, 0.6], lr=1e-3 * (n + 1))
            with (run / runs.METRICS).open("a") as out:
                out.write((json.dumps(step) + "\n") * args.steps)
        old = best_of(runs.list_runs, root)

        def first_read(folder: Path) -> None:
            run_table.forget_rows()
            run_table.run_table(folder)

        new, again = best_of(first_read, root), best_of(run_table.run_table, root)
    print(f"{args.runs} runs of {args.steps} logged steps: run list {1000 * old:.0f} ms, "
          f"run table {1000 * new:.0f} ms (ratio {new / old:.1f}), read again with no run "
          f"changed {1000 * again:.0f} ms (ratio {again / old:.1f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
