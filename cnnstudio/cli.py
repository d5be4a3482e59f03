"""The command line: ``python -m cnnstudio new|summary ...``.

Every failure the user can cause prints one line on stderr and exits non-zero (2 for a bad argument
or file, 1 for an invalid model); a traceback would be a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from cnnstudio.cli_args import EXIT_USAGE, UsageError
from cnnstudio.cli_project import add_adapt, add_data, add_download, add_new, add_summary
from cnnstudio.cli_sweep import add_runs, add_sweep
from cnnstudio.cli_train import add_evaluate, add_lr_find, add_train
from cnnstudio.cli_trained import add_export, add_inspect, add_predict
from cnnstudio.errors import StudioError
from cnnstudio.feature_cache import add_cache


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (usage stays behind --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


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
        add_new,
        add_data,
        add_train,
        add_evaluate,
        add_lr_find,
        add_inspect,
        add_predict,
        add_export,
        add_download,
        add_summary,
        add_adapt,
        add_sweep,
        add_runs,
        add_cache,
    ):
        add(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
