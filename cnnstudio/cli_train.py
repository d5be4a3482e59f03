"""The training commands: ``train`` (a run, with Ctrl+C writing a checkpoint), ``evaluate`` (a
run on its validation split, another split or a folder) and ``lr-find``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from cnnstudio.cli_args import UsageError, positive_float, positive_int, stderr_progress
from cnnstudio.params import format_rate
from cnnstudio.progress import Progress, TaskState
from cnnstudio.project import load_project


def add_train(commands) -> None:
    train = commands.add_parser("train", help="train the project's model")
    train.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    train.add_argument("--epochs", type=positive_int, metavar="N")
    train.add_argument("--batch-size", type=positive_int, metavar="N")
    train.add_argument("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:1, mps")
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN",
        help="continue the latest run (or RUN) from its last checkpoint",
    )
    train.add_argument(
        "--gpus",
        type=positive_int,
        metavar="N",
        help="train on N GPUs of this machine at once (torchrun, one process each; with "
        "--device cpu, N CPU processes); default: the project's gpus setting",
    )
    train.add_argument(
        "--events",
        choices=("text", "json"),
        default="text",
        help="json: every event as one JSON line on stdout (what the window reads)",
    )
    train.add_argument("--project-file", type=Path, metavar="PATH", help=argparse.SUPPRESS)
    train.set_defaults(handler=_cmd_train)


def add_evaluate(commands) -> None:
    evaluate_cmd = commands.add_parser(
        "evaluate",
        help="accuracy, confusion matrix, per class, mistakes",
        description=(
            "Evaluate a run from its best checkpoint (its last when it has no best yet, as a "
            "stopped run may). Without --data: on the run's own data, a standard set's official "
            "test split (never used in training: validation is held out of the training "
            "images), else the validation split. With --data: on a labelled image folder."
        ),
    )
    evaluate_cmd.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    evaluate_cmd.add_argument("--run", metavar="RUN", help="run folder name (default: latest)")
    evaluate_cmd.add_argument(
        "--data",
        type=Path,
        metavar="FOLDER",
        help="a labelled image folder never used for training: one subfolder per class, named "
        "as the run's class folders (a class it lacks is fine; one the model does not know is "
        "an error), or a folder with train/ and val/ or test/, whose val/ or test/ is read; "
        "unreadable images are listed and skipped",
    )
    evaluate_cmd.add_argument(
        "--split",
        choices=("val", "test"),
        help="without --data: the split of the run's data (test: standard sets only)",
    )
    evaluate_cmd.add_argument(
        "--save",
        action="store_true",
        help="also write the result into the run folder: evaluation-<FOLDER name>.json for "
        "--data, evaluation-test.json for the test split, evaluation.json for the validation "
        "split (what a finished run writes)",
    )
    evaluate_cmd.add_argument("--device", metavar="DEVICE")
    evaluate_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate_cmd.set_defaults(handler=_cmd_evaluate)


def add_lr_find(commands) -> None:
    lr_find = commands.add_parser("lr-find", help="suggest a learning rate (range test)")
    lr_find.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    lr_find.add_argument("--steps", type=positive_int, default=100, metavar="N")
    lr_find.add_argument(
        "--csv",
        type=Path,
        metavar="PATH",
        help="where to write the curve (default: DIR/lr_find.csv)",
    )
    lr_find.add_argument("--device", metavar="DEVICE")
    lr_find.add_argument(
        "--start-lr", type=positive_float, default=1e-7, metavar="LR", help="default: 1e-7"
    )
    lr_find.add_argument(
        "--end-lr", type=positive_float, default=10.0, metavar="LR", help="default: 10"
    )
    lr_find.set_defaults(handler=_cmd_lr_find)


def _cmd_train(args: argparse.Namespace) -> int:
    import signal

    from cnnstudio.launch import watch_stop_file
    from cnnstudio.train import Trainer, estimate_memory, free_memory, pick_device, pick_precision
    from cnnstudio.train_settings import TrainSettings

    project = _train_project(args)
    if args.gpus is not None:
        project.training = {**project.training, "gpus": args.gpus}
    launched = _launch(args, project)
    if launched is not None:
        return launched
    trainer = Trainer(
        project,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        resume=args.resume,
    )
    # the overrides are checked like the project's own settings (a bad --device names the place)
    settings = TrainSettings.from_dict({**project.training, **trainer.overrides})
    device = pick_device(settings.device)
    free = free_memory(device)
    if free is not None:
        estimate = estimate_memory(
            project.model, settings, pick_precision(settings.precision, device)
        )
        if estimate.total(settings.batch_size) > free:
            print(
                f"warning: batch size {settings.batch_size} needs about "
                f"{estimate.total(settings.batch_size) / 2**30:.1f} GiB but {device} has "
                f"{free / 2**30:.1f} GiB free; batch size "
                f"{estimate.largest_batch(free)} should fit",
                file=sys.stderr,
            )
    received: list[int] = []

    def on_signal(number: int, _frame) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(number)
        print(
            "\nstopping: writing a checkpoint (press Ctrl+C again to quit at once)", file=sys.stderr
        )
        trainer.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    asked = watch_stop_file(trainer.stop)  # a launcher's stop (train --gpus, the window)
    try:
        result = trainer.run(_JsonPrinter() if args.events == "json" else _TrainPrinter())
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return _train_exit(result, received, asked)


def _train_project(args: argparse.Namespace):
    """The project to train: DIR's, or (the window's unsaved copy) the one in --project-file
    with DIR as its folder."""
    if args.project_file is None:
        return load_project(args.dir)
    project = load_project(args.project_file)
    project.path = args.dir
    return project


def _launch(args: argparse.Namespace, project) -> int | None:
    """With gpus > 1 (and not already a rank of torchrun): the same command under torchrun, one
    process per GPU; its exit code. None: train in this process."""
    from cnnstudio.launch import check_gpus, run_torchrun, under_torchrun

    gpus = int(project.training.get("gpus", 1))
    if gpus <= 1 or under_torchrun():
        return None
    device = args.device or str(project.training.get("device", "auto"))
    check_gpus(gpus, device)
    forwarded = [str(args.dir)]
    options = {"--epochs": args.epochs, "--batch-size": args.batch_size, "--device": args.device,
               "--project-file": args.project_file}  # fmt: skip
    for flag, value in options.items():
        if value is not None:
            forwarded += [flag, str(value)]
    if args.resume:
        forwarded += ["--resume"] + ([] if args.resume is True else [str(args.resume)])
    forwarded += ["--events", args.events]
    print(f"training with {gpus} processes under torchrun", file=sys.stderr, flush=True)
    return run_torchrun(gpus, forwarded)


class _JsonPrinter:
    """Every event as one JSON line (the window's launched runs read them)."""

    def __call__(self, event) -> None:
        from cnnstudio.launch import event_to_json

        print(event_to_json(event), flush=True)


class _TrainPrinter:
    """Prints a run's progress: a live line on a terminal, one line per epoch always."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def __call__(self, event) -> None:
        name = type(event).__name__
        if name == "RunStarted":
            how = "resuming" if event.resumed else "training"
            print(
                f"{how} on {event.device_name}, {event.precision}: {event.train_images} "
                f"training and {event.val_images} validation images, {event.epochs} epochs of "
                f"{event.steps_per_epoch} steps; run {event.run_dir}"
            )
        elif name == "StepLogged" and self.live:
            eta = time.strftime("%H:%M:%S", time.gmtime(event.eta_seconds))
            print(
                f"\repoch {event.epoch} step {event.step}/{event.steps} loss {event.loss:.4f} "
                f"acc {event.accuracy:.3f} {event.images_per_sec:,.0f} img/s ETA {eta}  ",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif name == "EpochEnded":
            if self.live:
                print("\r" + " " * 78 + "\r", end="", file=sys.stderr)
            mark = " (best so far)" if event.best else ""
            rate = event.train_images / max(event.train_seconds, 1e-9)
            print(
                f"epoch {event.epoch}/{event.epochs}: loss {event.train_loss:.4f} acc "
                f"{event.train_accuracy:.4f} | val loss {event.val_loss:.4f} acc "
                f"{event.val_accuracy:.4f} | {rate:,.0f} img/s, {event.seconds:.1f} s{mark}",
                flush=True,
            )
        elif name == "Warned":
            print(f"warning: {event.message}", file=sys.stderr)
        elif name == "DataProgress" and self.live:
            share = f" {100 * event.done / event.total:.0f}%" if event.total else ""
            print(f"\r{event.what}:{share}  ", end="", file=sys.stderr, flush=True)


def _train_exit(result, received: list[int], asked=lambda: False) -> int:
    """The exit code (a stop the launcher asked for ends like a finished run: the launcher
    reports it, and torchrun would report a failure), and rank 0's last line."""
    import signal

    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 speaks for the run
        return 1 if type(result).__name__ == "Failed" else 0
    if type(result).__name__ == "Failed":
        print(f"cnnstudio train: error: {result.message}", file=sys.stderr)
        return 1
    best = (
        f" (best {result.best_val_accuracy:.4f} at epoch {result.best_epoch})"
        if result.best_val_accuracy is not None
        else ""
    )
    final = result.final_val_accuracy
    final_text = f"{final:.4f}" if final is not None else "n/a"
    if result.state == "stopped":
        print(
            f"stopped after {result.epochs_done} epochs; resume with --resume; run {result.run_dir}"
        )
        if asked():
            return 0
        return 128 + (received[0] if received else signal.SIGINT)
    how = "early stopping, " if result.state == "early_stopped" else ""
    print(f"{how}final validation accuracy: {final_text}{best}; run {result.run_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnstudio.runs import find_run
    from cnnstudio.train import evaluate_run_folder

    project = load_project(args.dir)
    if args.data is not None and args.split is not None:
        raise UsageError("--split is for the run's own data: leave it out with --data")
    folder = find_run(project.runs_dir, args.run)
    result, dataset = evaluate_run_folder(
        folder, project=project, data=args.data, split=args.split, device=args.device,
        state=TaskState(stderr_progress()), save=args.save,
    )  # fmt: skip
    for skipped in dataset.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    if args.json:
        shown = result.to_dict()
        shown["skipped"] = [{"path": s.path, "reason": s.reason} for s in dataset.skipped]
        print(json.dumps(shown, indent=2))
        return 0
    print(
        f"run {folder.name} ({result.checkpoint}): accuracy {result.accuracy:.4f}, loss "
        f"{result.loss:.4f} on {int(result.confusion.sum())} images of the {result.data}"
    )
    _print_evaluation(result)
    return 0


def _print_evaluation(result, mistakes: int = 10) -> None:
    """The confusion matrix, the per-class table and the most confident mistakes."""
    width = max(len(c) for c in [*result.classes, "class"])
    print("\nconfusion matrix (rows: true class, columns: predicted)")
    cell = max(5, len(str(int(result.confusion.max(initial=0)))) + 1)
    print(" " * width + "".join(str(i).rjust(cell) for i in range(len(result.classes))))
    for i, name in enumerate(result.classes):
        print(f"{name:<{width}}" + "".join(str(int(v)).rjust(cell) for v in result.confusion[i]))
    print(f"\n{'class':<{width}}  precision  recall      f1  support")
    for m in result.per_class:
        print(
            f"{m.name:<{width}}  {m.precision:9.4f}  {m.recall:6.4f}  {m.f1:6.4f}  {m.support:7d}"
        )
    if result.mistakes:
        print(f"\nmost confident mistakes ({min(mistakes, len(result.mistakes))} shown)")
    for m in result.mistakes[:mistakes]:
        where = m.path or f"image {m.index}"
        print(
            f"  {where}: true {result.classes[m.true]}, predicted "
            f"{result.classes[m.predicted]} ({m.confidence:.1%})"
        )


def _cmd_lr_find(args: argparse.Namespace) -> int:
    from cnnstudio.lr_finder import find_lr

    project = load_project(args.dir)
    live = sys.stderr.isatty()

    def progress(report: Progress) -> None:
        if live:
            lr, loss = report.detail
            print(
                f"\rstep {report.done}/{report.total} lr {format_rate(lr)} loss {loss:.4f}  ",
                end="",
                file=sys.stderr,
                flush=True,
            )

    if args.start_lr >= args.end_lr:
        raise UsageError(
            f"--start-lr ({format_rate(args.start_lr)}) must be below --end-lr "
            f"({format_rate(args.end_lr)})"
        )
    result = find_lr(
        project,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        steps=args.steps,
        device=args.device,
        state=TaskState(progress),
    )
    if live:
        print(file=sys.stderr)
    target = args.csv or args.dir / "lr_find.csv"
    try:
        result.save_csv(target)
    except OSError as error:
        raise UsageError(
            f"cannot write {target} ({error.strerror or error}): make its folder writable, or "
            "give --csv a file in a folder you can write to"
        ) from None
    print(f"suggested learning rate: {format_rate(result.suggestion)} (curve in {target})")
    if result.note:
        print(f"note: {result.note}")
    return 0
