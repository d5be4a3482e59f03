"""The real source that generated files are assembled from: the template modules beside this one
(``<name>_template.py``: Python that ruff checks, read here as text and never imported) and the
functions the studio itself runs (``inspect.getsource``), such as cnnstudio.recipe's.

The standalone program (build.spec) needs both as .py files: it collects cnnstudio's modules
with their source ("pyz+py"), and the templates, which nothing imports, as data files.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import resources

from cnnstudio.errors import ExportError

MARKER = "# ---- exported below this line ----"
"""The line of a template above which stand only stand-ins for what the generator writes."""


def template_program(name: str) -> str:
    """What template ``name`` (``<name>_template.py``) gives the generated file: its text below
    the marker line."""
    file = resources.files(__package__).joinpath(f"{name}_template.py")
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ExportError(
            f"the template {file.name} is missing from this installation of CNN Studio "
            f"({error.strerror or error}): reinstall it"
        ) from None
    _, marker, program = text.partition(f"\n{MARKER}\n")
    if not marker:
        raise ExportError(f"the template {file.name} has no line {MARKER!r}")
    return program.strip("\n") + "\n"


def function_source(function: Callable) -> str:
    """The source text of ``function`` as it stands in its module."""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError) as error:
        raise ExportError(
            f"the source of {function.__module__}.{function.__qualname__} is missing from this "
            f"installation of CNN Studio ({error}): reinstall it"
        ) from None
