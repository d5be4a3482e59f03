"""The command line: ``python -m cnnstudio new|summary ...``.

Every failure the user can cause prints one line on stderr and exits non-zero (2 for a bad argument
or file, 1 for an invalid model); a traceback would be a bug.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from cnnstudio.activation_memory import ActivationMemory, activation_memory
from cnnstudio.analysis import Analysis, analyze
from cnnstudio.cli_sweep import add_runs, add_sweep
from cnnstudio.data import (
    SOURCES,
    DataSettings,
    DataSummary,
    display_names,
    suggested_defaults,
    summarize,
)
from cnnstudio.errors import StudioError
from cnnstudio.export import FORMATS as EXPORT_FORMATS
from cnnstudio.feature_cache import add_cache
from cnnstudio.params import format_bytes, format_rate, human
from cnnstudio.progress import Progress, TaskState
from cnnstudio.project import PROJECT_FILE, load_project, new_project
from cnnstudio.shapes import format_shape
from cnnstudio.standard_sets import STANDARD_SETS, data_root, download, is_downloaded
from cnnstudio.templates import list_templates

EXIT_INVALID = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (usage stays behind --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class UsageError(Exception):
    """A bad argument value found after parsing; exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # the reader left (`| head`): Python's documented way to stop quietly, with stdout
        # pointed at devnull so that the exit's own flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (StudioError, UsageError) as error:
        print(f"cnnstudio {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"cnnstudio {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # a file the engine did not wrap: still one line naming it
        where = f"{error.filename}: " if error.filename else ""
        print(f"cnnstudio {args.command}: error: {where}{error.strerror or error}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    except Exception as error:  # a bug of ours: one line for the user, the traceback in a file
        report = _write_traceback()
        print(
            f"cnnstudio {args.command}: internal error: {type(error).__name__}: {error} (a bug in "
            f"CNN Studio; please report it with {report})",
            file=sys.stderr,
        )
        return EXIT_USAGE


def _write_traceback() -> str:
    """The current exception's traceback in a new file in the temporary folder; its path."""
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile(
        "w", prefix="cnnstudio-error-", suffix=".txt", delete=False, encoding="utf-8"
    ) as file:
        traceback.print_exc(file=file)
    return file.name


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnstudio", description="CNN Studio from the command line.")
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    for add in (
        _add_new,
        _add_data,
        _add_train,
        _add_evaluate,
        _add_lr_find,
        _add_inspect,
        _add_predict,
        _add_export,
        _add_download,
        _add_summary,
        _add_adapt,
        add_sweep,
        add_runs,
        add_cache,
    ):
        add(commands)
    return parser


def _add_new(commands) -> None:
    new = commands.add_parser("new", help="create a project folder from a template")
    new.add_argument("dir", metavar="DIR", type=Path, help="folder to create the project in")
    new.add_argument(
        "--template",
        default="simple-cnn",
        choices=list_templates(),
        metavar="NAME",
        help=f"model template: {', '.join(list_templates())}",
    )
    new.add_argument("--classes", type=_positive_int, metavar="N", help="number of classes")
    new.add_argument(
        "--input", type=_input_shape, metavar="C,H,W", help="input shape, e.g. 3,32,32"
    )
    new.add_argument("--name", help="project name (default: the folder's name)")
    source = new.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        choices=[s for s in SOURCES if s != "folder"],
        metavar="SET",
        help="standard data: sample (built in), cifar10, cifar100, mnist, fashionmnist",
    )
    source.add_argument(
        "--data-folder", type=Path, metavar="PATH", help="an image folder (one subfolder per class)"
    )
    _add_from_model(new)
    new.set_defaults(handler=_cmd_new)


def _add_from_model(new) -> None:
    new.add_argument(
        "--from-model",
        metavar="SOURCE",
        help="start from a PyTorch model traced with torch.fx: torchvision:NAME (e.g. "
        "torchvision:resnet18) or package.module:ClassOrFactory (runs that code); "
        "its weights become an imported run",
    )
    new.add_argument(
        "--weights",
        metavar="NAME",
        help="with torchvision:NAME, torchvision's weights (e.g. DEFAULT; downloaded or read "
        "from torch's cache); without it the weights are random",
    )


def _add_data(commands) -> None:
    data = commands.add_parser("data", help="classes, counts and unreadable files of a dataset")
    data.add_argument(
        "path",
        metavar="PATH",
        type=Path,
        help="an image folder, or a project folder (its data is summarised)",
    )
    data.add_argument("--json", action="store_true", help="print one JSON object")
    data.set_defaults(handler=_cmd_data)


def _add_train(commands) -> None:
    train = commands.add_parser("train", help="train the project's model")
    train.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    train.add_argument("--epochs", type=_positive_int, metavar="N")
    train.add_argument("--batch-size", type=_positive_int, metavar="N")
    train.add_argument("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:1, mps")
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN",
        help="continue the latest run (or RUN) from its last checkpoint",
    )
    train.set_defaults(handler=_cmd_train)


def _add_evaluate(commands) -> None:
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


def _add_lr_find(commands) -> None:
    lr_find = commands.add_parser("lr-find", help="suggest a learning rate (range test)")
    lr_find.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    lr_find.add_argument("--steps", type=_positive_int, default=100, metavar="N")
    lr_find.add_argument(
        "--csv",
        type=Path,
        metavar="PATH",
        help="where to write the curve (default: DIR/lr_find.csv)",
    )
    lr_find.add_argument("--device", metavar="DEVICE")
    lr_find.add_argument(
        "--start-lr", type=_positive_float, default=1e-7, metavar="LR", help="default: 1e-7"
    )
    lr_find.add_argument(
        "--end-lr", type=_positive_float, default=10.0, metavar="LR", help="default: 10"
    )
    lr_find.set_defaults(handler=_cmd_lr_find)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e-4, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def _add_inspect(commands) -> None:
    inspect_cmd = commands.add_parser(
        "inspect", help="top-k, feature maps, filters and Grad-CAM of an image (PNG files)"
    )
    inspect_cmd.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    inspect_cmd.add_argument("image", metavar="IMAGE", type=Path, help="image file")
    inspect_cmd.add_argument(
        "--layer",
        action="append",
        metavar="ID",
        help="layer whose feature maps to draw; repeat for more (default: the convolutions)",
    )
    inspect_cmd.add_argument("--run", metavar="RUN", help="run folder name (default: latest)")
    inspect_cmd.add_argument(
        "--target", metavar="CLASS", help="class for Grad-CAM, a name or index (default: top)"
    )
    inspect_cmd.add_argument("--top", type=_positive_int, default=5, metavar="K")
    inspect_cmd.add_argument(
        "--out",
        type=Path,
        metavar="OUTDIR",
        help="folder for the PNG files (default: IMAGE's name with -inspect, beside it)",
    )
    inspect_cmd.set_defaults(handler=_cmd_inspect)


def _add_predict(commands) -> None:
    predict_cmd = commands.add_parser(
        "predict", help="the classes a run predicts for image files and folders (and a CSV)"
    )
    predict_cmd.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    predict_cmd.add_argument(
        "images", metavar="IMAGES", type=Path, nargs="+", help="image files or folders (recursive)"
    )
    predict_cmd.add_argument("--run", metavar="RUN", help="run folder name (default: latest)")
    predict_cmd.add_argument("--top", type=_positive_int, default=5, metavar="K")
    predict_cmd.add_argument("--csv", type=Path, metavar="OUT", help="write the table as CSV")
    predict_cmd.add_argument("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:1, mps")
    predict_cmd.set_defaults(handler=_cmd_predict)


def _add_export(commands) -> None:
    export_cmd = commands.add_parser("export", help="write the model as a file, code or script")
    export_cmd.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    export_cmd.add_argument(
        "--format",
        choices=list(EXPORT_FORMATS),
        metavar="FORMAT",
        help=", ".join(EXPORT_FORMATS) + " (default: from the extension of --out)",
    )
    export_cmd.add_argument("--run", metavar="RUN", help="run folder name (default: latest)")
    export_cmd.add_argument(
        "--untrained",
        action="store_true",
        help="export the freshly initialised model (random weights) instead of a run's",
    )
    export_cmd.add_argument("--out", required=True, type=Path, metavar="PATH", help="file to write")
    export_cmd.set_defaults(handler=_cmd_export)


def _add_download(commands) -> None:
    fetch = commands.add_parser("download", help="download a standard dataset")
    fetch.add_argument(
        "set", choices=sorted(STANDARD_SETS), metavar="SET", help=", ".join(sorted(STANDARD_SETS))
    )
    fetch.add_argument("--root", type=Path, help="data folder (default: the user's data folder)")
    fetch.set_defaults(handler=_cmd_download)


def _add_summary(commands) -> None:
    summary = commands.add_parser("summary", help="per-layer shapes, parameters and FLOPs")
    summary.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.set_defaults(handler=_cmd_summary)


def _add_adapt(commands) -> None:
    adapt = commands.add_parser(
        "adapt", help="make the model's classes and input shape follow the project's data"
    )
    adapt.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    adapt.set_defaults(handler=_cmd_adapt)


def _cmd_adapt(args: argparse.Namespace) -> int:
    from cnnstudio.fit import adaptation, data_needs, fitted, misfits

    project = load_project(args.dir)
    needs = data_needs(project.data)
    after = fitted(project.model, needs)
    change = adaptation(project.model, after)
    if not change:
        print(f"{project.file}: the model already fits the data ({len(needs.classes)} classes)")
        return 0
    project.model = after
    project.save()
    left = "".join(f"; {m.message}" for m in misfits(after, needs))
    print(f"Adapted {project.file}: {change}{left}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _input_shape(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected channels,height,width such as 3,32,32, got {text!r}"
        )
    return shape  # type: ignore[return-value]


def _cmd_new(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    if (folder / PROJECT_FILE).exists():
        raise UsageError(f"{folder} already holds a project; choose another folder")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder")
    data = None
    if args.data_folder is not None:
        data = DataSettings(source="folder", path=str(args.data_folder.resolve()))
    elif args.data is not None:
        data = DataSettings(source=args.data)
    if args.from_model is not None:
        return _new_from_model(args, folder, data)
    if args.weights is not None:
        raise UsageError("--weights needs --from-model")
    project = new_project(args.template, args.classes, args.input, args.name, folder, data)
    project.save()
    analysis = analyze(project.model)
    state = "" if analysis.valid else f" ({len(analysis.errors)} problems: run summary)"
    print(
        f"Created {folder / PROJECT_FILE}: {args.template}, {project.model.num_classes} "
        f"classes, input {format_shape(project.model.input_shape)}, "
        f"{analysis.total_params:,} parameters{state}"
    )
    _print_defaults(project.data)
    return 0


def _new_from_model(args: argparse.Namespace, folder: Path, data: DataSettings | None) -> int:
    """``new --from-model``: the traced model as the project's graph, its weights as an imported
    run (so Inspect, Evaluate, Predict and Export work on it at once)."""
    from cnnstudio.fx_import import import_module, load_model
    from cnnstudio.normalization import normalization
    from cnnstudio.runs import import_state

    torchvision = args.from_model.startswith("torchvision:")
    if args.weights is not None and not torchvision:
        raise UsageError("--weights is for torchvision:NAME models; a module brings its own")
    shape = args.input or (3, 224, 224)
    imported = import_module(load_model(args.from_model, args.weights), shape, args.from_model)
    classes = imported.spec.num_classes
    if args.classes is not None and args.classes != classes:
        raise UsageError(
            f"--classes {args.classes}: {args.from_model} gives {classes} outputs; "
            "leave --classes out (cnnstudio adapt fits the head to the data later)"
        )
    project = new_project("simple-cnn", classes, shape, args.name, folder, data)
    project = dataclasses.replace(project, model=imported.spec)
    project.save()
    if torchvision:  # torchvision's classifiers are fed ImageNet-normalised images
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    else:
        norm = normalization(project.data, project.model)
        mean, std = norm.mean, norm.std
    weights = args.weights or "random"
    run = import_state(project, imported.state_dict, mean, std, f"{args.from_model} ({weights})")
    analysis = analyze(project.model)
    print(
        f"Created {folder / PROJECT_FILE}: {args.from_model} ({len(project.model.nodes)} layers, "
        f"{analysis.total_params:,} parameters), {classes} classes, input "
        f"{format_shape(shape)}; its {weights} weights are the run {run.name}"
    )
    _print_defaults(project.data)
    return 0


def _print_defaults(data: DataSettings) -> None:
    """Which augmentation and batch size the new project took from its data."""
    defaults = suggested_defaults(data)
    print(f"{defaults.augment.summary}; {defaults.batch_reason}")


def _cmd_summary(args: argparse.Namespace) -> int:
    project = load_project(args.dir)
    analysis = analyze(project.model)
    saved = activation_memory(project.model) if analysis.valid else None
    if args.json:
        print(json.dumps(_summary_dict(analysis, saved), indent=2))
    else:
        print(format_summary(analysis, saved))
    return 0 if analysis.valid else EXIT_INVALID


def _summary_dict(analysis: Analysis, saved: ActivationMemory | None) -> dict:
    """The analysis as JSON, with the measured activation bytes per image (None: not measured,
    the model is not valid), in total and per layer."""
    summary = analysis.to_dict()
    summary["activation_bytes"] = saved.per_image_bytes if saved else None
    for layer in summary["layers"]:
        layer["activation_bytes"] = saved.layer(layer["id"]) if saved else None
    return summary


def _cmd_data(args: argparse.Namespace) -> int:
    path: Path = args.path
    if (path / PROJECT_FILE).is_file():
        project = load_project(path)
        summary = summarize(project.data, project.model.input_shape)
        summary = dataclasses.replace(summary, classes=display_names(summary.classes, project.data))
    else:
        # no project: no augmentation settings to check
        summary = summarize(DataSettings(source="folder", path=str(path)), check_augment=False)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(format_data_summary(summary))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import signal

    from cnnstudio.train import Trainer, estimate_memory, free_memory, pick_device, pick_precision
    from cnnstudio.train_settings import TrainSettings

    project = load_project(args.dir)
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
    try:
        result = trainer.run(_TrainPrinter())
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return _train_exit(result, received)


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


def _train_exit(result, received: list[int]) -> int:
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
        state=TaskState(_stderr_progress()), save=args.save,
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


def _stderr_progress():
    """A progress outlet printing a live line on stderr when it is a terminal."""
    live = sys.stderr.isatty()

    def progress(report: Progress) -> None:
        if live and report.total:
            end = "\n" if report.done >= report.total else ""
            share = f"{report.what}: {report.done}/{report.total}"
            print(f"\r{share}  ", end=end, file=sys.stderr, flush=True)

    return progress


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


def _cmd_inspect(args: argparse.Namespace) -> int:
    from cnnstudio.inspect import inspect_image
    from cnnstudio.model_source import from_run
    from cnnstudio.pictures import write_pictures
    from cnnstudio.runs import find_run

    project = load_project(args.dir)
    run = from_run(find_run(project.runs_dir, args.run), project=project)
    layers = args.layer or ()
    result = inspect_image(run.model, args.image, run.input_shape, run.mean, run.std, run.classes,
                           layers=layers, target=args.target, k=args.top)  # fmt: skip
    out = args.out or args.image.with_name(f"{args.image.stem}-inspect")
    written = write_pictures(result, out, args.layer)
    for rank, prediction in enumerate(result.predictions, 1):
        print(f"{rank}. {prediction.name} {100 * prediction.probability:.1f}%")
    print(
        f"Grad-CAM of {result.target_name} at {result.cam_layer}; {len(written)} pictures in "
        f"{out} (run {run.run_folder.name}, {run.checkpoint.name})"
    )
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from cnnstudio.model_source import from_run
    from cnnstudio.predict import predict, write_csv
    from cnnstudio.runs import BEST, LAST, find_run, latest_run
    from cnnstudio.train import pick_device

    project = load_project(args.dir)
    if args.run is None and latest_run(project.runs_dir, (LAST, BEST)) is None:
        raise UsageError(
            f"{args.dir} has no trained run yet: train one first (python -m cnnstudio train "
            f"{args.dir})"
        )
    source = from_run(find_run(project.runs_dir, args.run))
    source.model.to(pick_device(args.device or "auto"))
    done = predict(source, args.images, k=args.top, state=TaskState(_progress_bar()))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(format_predictions(done))
    if not done.results:
        print(f"cnnstudio predict: error: none of the {len(done.skipped)} files could be read",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if args.csv is not None:
        write_csv(done, args.csv)
        print(f"wrote {args.csv}")
    return 0


def _progress_bar():
    """A progress callback drawing a bar on stderr when it is a terminal (nothing otherwise)."""
    live = sys.stderr.isatty()

    def show(report: Progress) -> None:
        if live and report.total:
            filled = 30 * report.done // report.total
            print(f"\r{report.what} [{'#' * filled}{' ' * (30 - filled)}] {report.done}/"
                  f"{report.total}", end="", file=sys.stderr, flush=True)  # fmt: skip

    return show


def format_predictions(done) -> str:
    """The ``predict`` table (path, class, confidence, top k), the files left out, a total."""
    header = ("path", "class", "confidence", f"top {done.k}")
    rows = [
        (
            str(r.path),
            r.predicted,
            f"{100 * r.confidence:.1f}%",
            ", ".join(f"{p.name} {100 * p.probability:.1f}%" for p in r.top),
        )
        for r in done.results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    out = [
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}"
        for row in [header, *rows]
    ]
    out += [f"skipped: {s.path}: {s.reason}" for s in done.skipped]
    out.append(
        f"{len(done.results)} images predicted with {done.label}"
        + (f"; {len(done.skipped)} unreadable" if done.skipped else "")
    )
    return "\n".join(out)


def _cmd_export(args: argparse.Namespace) -> int:
    from cnnstudio.export import export, export_source, format_of

    if args.untrained and args.run:
        raise UsageError("--run and --untrained exclude each other")
    chosen = args.format or format_of(args.out)
    project = load_project(args.dir)
    source = export_source(project, args.run, untrained=args.untrained)
    result = export(source, chosen, args.out)
    for path in result.files:
        print(f"wrote {path} ({format_bytes(_size_of(path))})")
    print(f"checked: max difference {result.max_abs_diff:.2g} ({result.seconds:.1f} s)")
    return 0


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _cmd_download(args: argparse.Namespace) -> int:
    root = args.root or data_root()
    title = STANDARD_SETS[args.set].title
    if is_downloaded(args.set, root):
        print(f"{title} is already in {root}")
        return 0

    def progress(report: Progress) -> None:
        done, total = report.done, report.total
        share = f"{100 * done / total:5.1f}%" if total else ""
        print(f"\r{report.what}: {done / 2**20:7.1f} MiB {share}", end="", file=sys.stderr,
              flush=True)  # fmt: skip

    folder = download(args.set, root, TaskState(progress))
    print(file=sys.stderr)
    print(f"{title} is in {folder}")
    return 0


def format_data_summary(summary: DataSummary) -> str:
    """Classes with image counts per split, sizes, warnings and skipped files."""
    splits = list(summary.counts)
    width = max(len(c) for c in [*summary.classes, "class"])
    out = [f"{summary.source}" + (f": {summary.root}" if summary.root else "")]
    out.append("  ".join(["class".ljust(width), *(s.rjust(7) for s in splits)]))
    for i, name in enumerate(summary.classes):
        out.append(
            "  ".join([name.ljust(width), *(str(summary.counts[s][i]).rjust(7) for s in splits)])
        )
    totals = [sum(summary.counts[s]) for s in splits]
    out.append("  ".join(["total".ljust(width), *(str(t).rjust(7) for t in totals)]))
    if summary.image_size_min:
        (w0, h0), (w1, h1) = summary.image_size_min, summary.image_size_max
        sizes = f"{w0}×{h0}" if (w0, h0) == (w1, h1) else f"{w0}×{h0} to {w1}×{h1}"
        out.append(f"{len(summary.classes)} classes; image size {sizes}")
    for warning in summary.warnings:
        out.append(f"warning: {warning}")
    for skipped in summary.skipped:
        out.append(f"skipped: {skipped.path}: {skipped.reason}")
    return "\n".join(out)


def format_summary(analysis: Analysis, saved: ActivationMemory | None = None) -> str:
    """The per-layer table, the totals, and the problems, as ``summary`` prints them; with
    ``saved``, each layer's activation memory per image (what autograd keeps for backward)."""
    header = ("id", "kind", "output", "params", "FLOPs", "activations")
    rows = [
        (
            info.id,
            info.kind,
            format_shape(info.output_shape),
            f"{info.params:,}" if info.output_shape else "-",
            human(info.flops) if info.output_shape else "-",
            format_bytes(saved.layer(info.id)) if saved else "-",
        )
        for info in analysis.layers
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            str(c).ljust(w) if i < 3 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    frozen = analysis.total_params - analysis.trainable_params
    out.append("")
    out.append(
        f"input {format_shape(analysis.input_shape)} -> output "
        f"{format_shape(analysis.output_shape)}"
    )
    out.append(
        f"parameters: {analysis.total_params:,} ({analysis.trainable_params:,} trainable"
        + (f", {frozen:,} frozen)" if frozen else ")")
    )
    kept = format_bytes(saved.per_image_bytes) if saved else "-"
    out.append(
        f"FLOPs per image: {human(analysis.flops)}; activations per image: {kept} "
        "(what autograd keeps for the backward pass, measured)"
    )
    for issue in analysis.errors:
        out.append(f"error: {issue}")
    for issue in analysis.warnings:
        out.append(f"warning: {issue}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
