"""Where the Inspect view's model comes from: a run's checkpoint, or the weights of a run in
progress copied between two steps (the run neither pauses nor slows down). Each source is a
function the inspector calls on its own thread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cnnstudio import model_source
from cnnstudio.errors import InspectError
from cnnstudio.model_source import ModelSource


def run_source(folder: Path, project=None) -> Callable[[], ModelSource]:
    """The best checkpoint (else the last) of the run in ``folder``; its classes named as
    ``project`` names them now (None: as they were named when it trained)."""
    return lambda: model_source.from_run(folder, project=project)


def live_source(trainer) -> Callable[[], ModelSource]:
    """The weights of ``trainer``'s run as they are when the inspection starts."""

    def load() -> ModelSource:
        source = trainer.model_source(timeout=30)
        if source is None:
            raise InspectError("the run has not taken its first step yet: try again in a moment")
        return source

    return load
