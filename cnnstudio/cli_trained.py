"""The commands that use a trained model (a run, or the untrained model): ``inspect`` (one
image), ``predict`` (a folder of images, as a table or CSV) and ``export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnstudio.cli_args import EXIT_USAGE, UsageError, positive_int, progress_bar
from cnnstudio.export import FORMATS as EXPORT_FORMATS
from cnnstudio.params import format_bytes
from cnnstudio.progress import TaskState
from cnnstudio.project import load_project


def add_inspect(commands) -> None:
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
    inspect_cmd.add_argument("--top", type=positive_int, default=5, metavar="K")
    inspect_cmd.add_argument(
        "--out",
        type=Path,
        metavar="OUTDIR",
        help="folder for the PNG files (default: IMAGE's name with -inspect, beside it)",
    )
    inspect_cmd.set_defaults(handler=_cmd_inspect)


def add_predict(commands) -> None:
    predict_cmd = commands.add_parser(
        "predict", help="the classes a run predicts for image files and folders (and a CSV)"
    )
    predict_cmd.add_argument("dir", metavar="DIR", type=Path, help="project folder")
    predict_cmd.add_argument(
        "images", metavar="IMAGES", type=Path, nargs="+", help="image files or folders (recursive)"
    )
    predict_cmd.add_argument("--run", metavar="RUN", help="run folder name (default: latest)")
    predict_cmd.add_argument("--top", type=positive_int, default=5, metavar="K")
    predict_cmd.add_argument("--csv", type=Path, metavar="OUT", help="write the table as CSV")
    predict_cmd.add_argument("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:1, mps")
    predict_cmd.set_defaults(handler=_cmd_predict)


def add_export(commands) -> None:
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
    done = predict(source, args.images, k=args.top, state=TaskState(progress_bar()))
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
