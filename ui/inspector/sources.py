"""Where the Inspect view's model comes from: a run's checkpoint, or the weights of a run in
progress copied between two steps (the run neither pauses nor slows down). Each source is a
function the inspector calls on its own thread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cnnstudio.build import build_model
from cnnstudio.errors import InspectError
from cnnstudio.runs import LoadedRun, load_run, read_settings
from ui.inspector.worker import ModelSource


def run_source(folder: Path) -> Callable[[], LoadedRun]:
    """The best checkpoint (else the last) of the run in ``folder``; the inspector labels a loaded
    run itself ("run <name> (best)")."""
    return lambda: load_run(folder)


def live_source(trainer) -> Callable[[], ModelSource]:
    """The weights of ``trainer``'s run as they are when the inspection starts."""

    def load() -> ModelSource:
        state = trainer.snapshot(timeout=30)
        run_dir = Path(trainer.run_dir) if trainer.run_dir else None
        settings = read_settings(run_dir) if run_dir else None
        if state is None or settings is None:
            raise InspectError("the run has not taken its first step yet: try again in a moment")
        spec = trainer.project.model
        model = build_model(spec, pretrained=False)
        model.load_state_dict(state)
        model.eval()
        return ModelSource(model, spec.input_shape, tuple(settings["mean"]),
                           tuple(settings["std"]), list(settings["classes"]),
                           f"run {run_dir.name} (live)")  # fmt: skip

    return load
