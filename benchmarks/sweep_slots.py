"""A sweep one run after another against the same sweep with several runs at once (``run_sweep``'s
slots, ``sweep --devices``): the wall time of each and their ratio, side by side in one process.

The default project (SimpleCNN on the built-in sample set), a grid of ``--runs`` learning rates,
``--epochs`` epochs each. On a machine with several GPUs name them (``--devices cuda:0,cuda:1``):
each run then has a GPU of its own and the ratio approaches the number of GPUs. On one device
(``--devices cpu,cpu`` or ``cuda:0,cuda:0``) the runs share it: on the CPU they share its cores
(torch's threads are split between the slots), so expect about 1×; on a large GPU small runs that
leave it idle between steps gain.

    .venv/bin/python benchmarks/sweep_slots.py [--devices cpu,cpu] [--runs 4] [--epochs 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from cnnstudio import new_project
from cnnstudio.sweep import Axis, SweepPlan, open_sweep, parse_devices, run_sweep


def timed_sweep(root: Path, name: str, runs: int, epochs: int, devices: list[str]) -> float:
    """Seconds for a fresh project's sweep of ``runs`` learning rates (on ``devices`` at once;
    none: one after another on the project's device)."""
    project = new_project(path=root / name)
    device = devices[0] if devices else "auto"
    project.training = {**project.training, "device": device, "workers": 0}
    project.save()
    rates = tuple(10 ** (-4 + 2 * i / max(1, runs - 1)) for i in range(runs))
    plan = SweepPlan(grid=(Axis("lr", rates),), epochs=epochs)
    sweep = open_sweep(project.runs_dir, plan)
    started = time.perf_counter()
    done = run_sweep(project, sweep, devices=devices)
    seconds = time.perf_counter() - started
    states = {r.state for r in done.runs}
    if states != {"done"}:
        raise SystemExit(f"{name}: the sweep ended with runs {sorted(states)}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cpu", help="the slots: cuda:0,cuda:1, cpu,cpu")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    devices = parse_devices(args.devices)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        one_by_one = timed_sweep(root, "sequential", args.runs, args.epochs, devices[:1])
        at_once = timed_sweep(root, "slots", args.runs, args.epochs, devices)
    threads = torch.get_num_threads()
    print(f"{args.runs} runs of {args.epochs} epoch(s), SimpleCNN on the sample set; "
          f"torch threads {threads}")  # fmt: skip
    print(f"one after another on {devices[0]}:  {one_by_one:7.1f} s")
    print(f"{len(devices)} at once on {','.join(devices)}:  {at_once:7.1f} s")
    print(f"ratio (one after another / at once): {one_by_one / at_once:.2f}")


if __name__ == "__main__":
    main()
