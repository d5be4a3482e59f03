"""The engine's exception types.

Every error carries what a message needs: the place (a file, a position inside it, a layer id), what
was expected and what was found. ``str(error)`` is the one line a user reads.
"""

from __future__ import annotations

from pathlib import Path


class StudioError(Exception):
    """Base of every error CNN Studio raises on purpose."""


class ProjectError(StudioError):
    """A project file could not be read or written.

    ``path`` is the file, ``where`` the position inside it (``model.nodes[3].params``, or
    ``line 12, column 5``) when one is known.
    """

    def __init__(self, path: Path | str | None, message: str, where: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.where = where
        self.message = message
        place = str(self.path) if self.path is not None else "project"
        if where:
            place = f"{place}, {where}"
        super().__init__(f"{place}: {message}")


class ModelError(StudioError):
    """A model spec cannot be built; ``issues`` lists each problem with the layer it belongs to."""

    def __init__(self, issues: list | tuple) -> None:
        self.issues = tuple(issues)
        lines = [str(issue) for issue in self.issues] or ["the model is invalid"]
        head = lines[0] if len(lines) == 1 else f"{len(lines)} problems: " + "; ".join(lines)
        super().__init__(head)


class WeightsError(StudioError):
    """Pretrained weights could not be found, downloaded or read."""


class DataError(StudioError):
    """A dataset cannot be found, downloaded or read. ``path`` is the file or folder concerned."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.message = message
        super().__init__(message)


class Cancelled(StudioError):
    """Long work (a download, a scan, a run) was stopped by the user."""


class TrainingError(StudioError):
    """A run cannot start or go on: no such device, nothing to resume, a project not saved yet."""


class InspectError(StudioError):
    """An image or a layer cannot be inspected: an unreadable file, an unknown layer name, a layer
    without the kind of output asked for. ``path`` or ``layer`` names the place."""

    def __init__(self, message: str, path: Path | str | None = None, layer: str | None = None):
        self.path = Path(path) if path is not None else None
        self.layer = layer
        self.message = message
        super().__init__(message)


class ExportError(StudioError):
    """A model cannot be exported, or its exported copy does not compute what the model computes.

    ``format`` is the export format ("onnx", "python", ...), ``path`` the file concerned and
    ``layer`` the layer a format cannot hold, when one is known.
    """

    def __init__(
        self,
        message: str,
        format: str | None = None,
        path: Path | str | None = None,
        layer: str | None = None,
    ) -> None:
        self.format = format
        self.path = Path(path) if path is not None else None
        self.layer = layer
        self.message = message
        super().__init__(message)


class WiringError(StudioError):
    """An edge of the model graph cannot be made, moved or removed: it would make a cycle, give a
    one-input layer a second input, or leave the output behind another layer. ``str(error)`` says
    why and what to do instead."""


class BlockError(StudioError):
    """A selection cannot become a block, or a block edit cannot be made: the message says which
    layer is in the way and why."""


class SweepError(StudioError):
    """A sweep cannot be planned or continued: an unknown setting (with the nearest name), a value
    its setting does not allow, no sweep to resume, a sweep already running elsewhere."""
