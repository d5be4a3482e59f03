"""The project commands: ``new`` (from a template, a data set or a PyTorch model), ``summary``
(the analysis: shapes, parameters, memory), ``data`` (a data set's classes and counts), ``adapt``
and ``download`` (the standard sets)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cnnstudio.activation_memory import ActivationMemory, activation_memory
from cnnstudio.analysis import Analysis, analyze
from cnnstudio.cli_args import EXIT_INVALID, UsageError, input_shape, positive_int
from cnnstudio.data import (
    SOURCES,
    DataSettings,
    DataSummary,
    display_names,
    suggested_defaults,
    summarize,
)
from cnnstudio.data_settings import one_scan
from cnnstudio.params import format_bytes, human
from cnnstudio.progress import Progress, TaskState
from cnnstudio.project import PROJECT_FILE, load_project, new_project
from cnnstudio.shapes import format_shape
from cnnstudio.standard_sets import STANDARD_SETS, data_root, download, is_downloaded
from cnnstudio.templates import list_templates


def add_new(commands) -> None:
    new = commands.add_parser("new", help="create a project folder from a template")
    new.add_argument("dir", metavar="DIR", type=Path, help="folder to create the project in")
    new.add_argument(
        "--template",
        default="simple-cnn",
        choices=list_templates(),
        metavar="NAME",
        help=f"model template: {', '.join(list_templates())}",
    )
    new.add_argument("--classes", type=positive_int, metavar="N", help="number of classes")
    new.add_argument("--input", type=input_shape, metavar="C,H,W", help="input shape, e.g. 3,32,32")
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


def add_data(commands) -> None:
    data = commands.add_parser("data", help="classes, counts and unreadable files of a dataset")
    data.add_argument(
        "path",
        metavar="PATH",
        type=Path,
        help="an image folder, or a project folder (its data is summarised)",
    )
    data.add_argument("--json", action="store_true", help="print one JSON object")
    data.set_defaults(handler=_cmd_data)


def add_download(commands) -> None:
    fetch = commands.add_parser("download", help="download a standard dataset")
    fetch.add_argument(
        "set", choices=sorted(STANDARD_SETS), metavar="SET", help=", ".join(sorted(STANDARD_SETS))
    )
    fetch.add_argument("--root", type=Path, help="data folder (default: the user's data folder)")
    fetch.set_defaults(handler=_cmd_download)


def add_summary(commands) -> None:
    summary = commands.add_parser("summary", help="per-layer shapes, parameters and FLOPs")
    summary.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.set_defaults(handler=_cmd_summary)


def add_adapt(commands) -> None:
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


def _cmd_new(args: argparse.Namespace) -> int:
    with one_scan():  # the data folder is scanned once for the project and what it prints
        return _new(args)


def _new(args: argparse.Namespace) -> int:
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
