"""The experiment commands: ``cnnstudio sweep DIR --grid lr=1e-3,3e-3 ...`` (a sweep of runs,
cnnstudio.sweep) and ``cnnstudio runs DIR [--json]`` (the run table, cnnstudio.run_table).

cli.py registers them (``add_sweep``, ``add_runs``) and reports their errors: a SweepError or a
ProjectError is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cnnstudio import run_table
from cnnstudio.errors import SweepError
from cnnstudio.project import load_project

if TYPE_CHECKING:
    from cnnstudio.sweep import Sweep


def add_sweep(commands) -> None:
    sweep = commands.add_parser(
        "sweep", help="train a grid or random search of settings, one run after another"
    )
    sweep.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a setting and its values; several --grid make every combination",
    )
    sweep.add_argument(
        "--random",
        type=int,
        default=0,
        metavar="N",
        help="N random draws from the --range settings (Optuna)",
    )
    sweep.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH[:log]",
        help="a numeric setting drawn between LOW and HIGH (log: on a log scale)",
    )
    sweep.add_argument(
        "--devices",
        metavar="LIST",
        help="run several at once, one on each device: cuda:0,cuda:1 (or all: every CUDA device)",
    )
    sweep.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    sweep.add_argument("--epochs", type=int, metavar="N", help="epochs of every run")
    sweep.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="ID",
        help="continue the latest sweep (or sweep ID) with its missing runs",
    )
    sweep.add_argument(
        "--new", action="store_true", help="start the plan again even where a sweep of it has ended"
    )
    sweep.set_defaults(handler=cmd_sweep)


def add_runs(commands) -> None:
    runs_cmd = commands.add_parser("runs", help="every run of a project, its settings and results")
    runs_cmd.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    runs_cmd.add_argument("--json", action="store_true", help="print the table as JSON")
    runs_cmd.set_defaults(handler=cmd_runs)


def cmd_sweep(args: argparse.Namespace) -> int:
    from cnnstudio.sweep import SweepControl, parse_devices, run_sweep  # the trainer: only now

    project = load_project(args.dir)
    devices = parse_devices(args.devices) if args.devices else []
    sweep = _open(args, project.runs_dir)
    print(_plan_text(sweep))
    if not sweep.missing:
        print(f"every run of sweep {sweep.id} has ended: nothing to run (--new runs it again)")
        return 0
    control = SweepControl()
    received: list[int] = []

    def on_signal(number: int, _frame) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(number)
        print("\nstopping the sweep: the current run writes a checkpoint (Ctrl+C again to quit "
              "at once); --resume continues it", file=sys.stderr)  # fmt: skip
        control.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_sweep(project, sweep, _SweepPrinter(), control, devices=devices)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    print(_queue_table(sweep))
    return 128 + received[0] if received else 0


def _open(args: argparse.Namespace, runs_dir: Path) -> Sweep:
    from cnnstudio.sweep import SweepPlan, load_sweep, open_sweep, parse_axis, parse_range

    if args.resume is not False:
        if args.grid or args.range or args.random:
            raise SweepError(
                "--resume continues a sweep as it was planned: drop --grid, --range and --random"
            )
        return load_sweep(runs_dir, None if args.resume is True else args.resume)
    plan = SweepPlan(
        grid=tuple(parse_axis(text) for text in args.grid),
        ranges=tuple(parse_range(text) for text in args.range),
        random=args.random,
        seed=args.seed,
        epochs=args.epochs,
    )
    return open_sweep(runs_dir, plan, fresh=args.new)


def _plan_text(sweep: Sweep) -> str:
    counts = sweep.counts()
    ended = len(sweep.runs) - len(sweep.missing)
    left = f", {ended} ended, {len(sweep.missing)} to run" if ended else ""
    count = sweep.plan.epochs
    epochs = f", {count} epoch{'s' if count != 1 else ''} each" if count else ""
    head = f"sweep {sweep.id}: {len(sweep.runs)} runs{left}{epochs}"
    done = ", ".join(f"{n} {state}" for state, n in counts.items() if n and state != "pending")
    return head + (f" ({done})" if done and ended else "") + "\n" + _queue_table(sweep)


def _queue_table(sweep: Sweep) -> str:
    names = list(dict.fromkeys(name for r in sweep.runs for name in r.settings))
    header = ["#", *names, "state", "best acc", "final acc", "run"]
    rows = [
        [
            str(r.index + 1),
            *(run_table.format_setting(r.settings.get(n)) for n in names),
            r.state,
            _number(r.best_val_accuracy),
            _number(r.final_val_accuracy),
            r.run or "",
        ]
        for r in sweep.runs
    ]
    return columns(header, rows)


class _SweepPrinter:
    """A line when a run starts and one when it ends; warnings on stderr."""

    def __call__(self, event) -> None:
        from cnnstudio.sweep import SweepEnded, SweepRunEnded, SweepRunStarted

        if isinstance(event, SweepRunStarted):
            how = "resuming" if event.resumed else "starting"
            where = f" on {event.device}" if event.device else ""
            print(f"run {event.index + 1}/{event.total}: {how}{where} {_settings(event.settings)}",
                  flush=True)  # fmt: skip
        elif isinstance(event, SweepRunEnded):
            r = event.run
            result = (
                f"best val acc {_number(r.best_val_accuracy)}, final "
                f"{_number(r.final_val_accuracy)}"
                if r.state == "done"
                else r.message
            )
            where = f" (run {r.run})" if r.run else ""
            print(f"run {r.index + 1}/{event.total} {r.state}: {_settings(r.settings)}: "
                  f"{result}{where}", flush=True)  # fmt: skip
        elif isinstance(event, SweepEnded):
            print(f"sweep {event.sweep} {event.state}: " + ", ".join(
                f"{n} {state}" for state, n in event.counts.items() if n))  # fmt: skip
        elif type(event).__name__ == "Warned":
            print(f"warning: {event.message}", file=sys.stderr)


def _settings(settings: dict) -> str:
    return ", ".join(f"{k} {run_table.format_setting(v)}" for k, v in settings.items())


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def cmd_runs(args: argparse.Namespace) -> int:
    project = load_project(args.dir)
    table = run_table.run_table(project.runs_dir)
    if args.json:
        print(json.dumps(table.to_dict(), indent=2))
        return 0
    if not table.rows:
        print(f"no runs in {project.runs_dir}")
        return 0
    print(format_run_table(table))
    return 0


def format_run_table(table: run_table.RunTable) -> str:
    """The run table as text: a row per run, the settings that differ as columns, * the best."""
    header = ["", "run", "when", "state", "data", *table.columns, "best acc", "final acc",
              "best loss", "final loss", "time", "img/s", "sweep", "tags", "note"]  # fmt: skip
    rows = []
    for row in table.rows:
        info, m = row.info, row.metrics
        data = info.data + (
            f" ({row.images} images, {row.classes} classes)" if row.images is not None else ""
        )
        rows.append([
            "*" if info.name == table.best else "", info.name, info.started.replace("T", " "),
            info.state, data,
            *(run_table.format_setting(row.settings.get(c)) for c in table.columns),
            _number(m["best_val_accuracy"]), _number(m["final_val_accuracy"]),
            _number(m["best_val_loss"]), _number(m["final_val_loss"]),
            "" if row.seconds is None else f"{row.seconds:.1f} s",
            "" if row.images_per_sec is None else f"{row.images_per_sec:,.0f}",
            row.notes.sweep, ", ".join(row.notes.tags), row.notes.note,
        ])  # fmt: skip
    return columns(header, rows)


def columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: each column as wide as its widest cell, two spaces apart."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])
