"""``main.py --self-test`` and ``--screenshot``: check a built (or packaged) studio works end to
end, and picture its views for the README."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from cnnstudio.train import Failed


def wait_until(condition: Callable[[], object], seconds: float) -> bool:
    """Process events until ``condition()`` holds (True) or ``seconds`` have passed (False)."""
    deadline = time.monotonic() + seconds
    while True:
        QApplication.processEvents()
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _settle(window, seconds: float = 120.0) -> None:
    """Let the analysis and the data scan finish (or the data fail to load)."""
    data = window.data_panel

    def settled() -> bool:
        if window.document.analysis is not None and data.dataset is not None:
            return True
        return bool(data.warnings.text()) and data.summary is None and not data.progress.isVisible()

    wait_until(settled, seconds)


def run_self_test(window) -> int:
    """The window built, the model analysed, the data read, one training step taken."""
    _settle(window)
    problems = []
    if window.document.analysis is None or not window.document.analysis.valid:
        problems.append("the default model did not analyse as valid")
    if window.data_panel.dataset is None:
        problems.append(f"the data did not load: {window.data_panel.warnings.text()}")
    with tempfile.TemporaryDirectory() as folder:
        result, losses = _train_a_step(window, Path(folder))
        _check_native_operators(problems)
        inspected = ""
        if isinstance(result, Failed) or result is None or not losses:
            problems.append(f"training failed: {getattr(result, 'message', result)}")
        else:
            inspected = _inspect_one(window, Path(result.run_dir), problems)
            _export_code(window, Path(result.run_dir), Path(folder), problems)
        window.close()
    if problems:
        for problem in problems:
            print(f"self-test: {problem}", file=sys.stderr)
        return 1
    print(
        f"self-test passed: model analysed, {len(window.data_panel.dataset)} images read, one "
        f"training step in the Train view on device "
        f"{window.document.project.training.get('device', 'auto')} (loss {losses[0]:.3f}), "
        f"one inspection ({inspected}), "
        "the run exported as PyTorch code"
    )
    return 0


def _train_a_step(window, folder: Path, seconds: float = 300.0):
    """Train the project in the Train view, on its own thread as a user would, and stop it after
    its first logged step; the run's result (None if it did not end in time) and the losses."""
    panel = window.train_panel
    window.document.project.training.update(epochs=1, log_every=1, **_forced_device())
    window.document.save(folder / "project")
    panel.refresh_form()
    if not panel.start():
        return Failed("settings", panel.message.text()), []
    deadline = time.monotonic() + seconds
    wait_until(lambda: panel.steps or panel.result is not None, seconds)
    panel.runner.stop()  # taken between two steps; a checkpoint is written
    wait_until(lambda: panel.result is not None, deadline - time.monotonic())
    return panel.result, [loss for _step, loss in panel.steps]


def _forced_device() -> dict[str, str]:
    """The device the self-test trains on when CNNSTUDIO_SELF_TEST_DEVICE names one (the GPU
    check forces cuda); else the project's own ("auto")."""
    device = os.environ.get("CNNSTUDIO_SELF_TEST_DEVICE")
    return {"device": device} if device else {}


def _check_native_operators(problems: list[str]) -> None:
    """torchvision's compiled operators (a bundle that misses them fails here, not at a user)."""
    import torch
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    try:
        keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
    except RuntimeError as error:
        problems.append(f"torchvision's native operators are missing: {error}")
        return
    if keep != [0, 2]:
        problems.append(f"torchvision's nms gave {keep}, expected [0, 2]")


def _inspect(window, run_dir: Path, image, seconds: float = 120.0):
    """Inspect ``image`` with the run's checkpoint through the Inspect view's own thread; the
    Inspection, or the view's message when it failed (or did not answer in time)."""
    from ui.inspector.sources import run_source

    view = window.inspector
    answers: list = []  # the view's own signals say when the inspection has ended, either way
    view.inspected.connect(answers.append)
    view.failed.connect(answers.append)
    view.set_model_source(run_source(run_dir))
    view.inspect_array(image)
    wait_until(lambda: answers, seconds)
    view.inspected.disconnect(answers.append)
    view.failed.disconnect(answers.append)
    return answers[0] if answers else f"no result within {seconds:.0f} s"


def _inspect_one(window, run_dir: Path, problems: list[str]) -> str:
    """Inspect a sample image with the run the self-test trained."""
    from cnnstudio.data import images_at

    result = _inspect(window, run_dir, images_at(window.data_panel.dataset, [0])[0])
    if isinstance(result, str):
        problems.append(f"inspection failed: {result}")
        return "failed"
    top = result.predictions[0]
    layers = len(result.maps)
    return f"{top.name} {top.probability:.0%}, Grad-CAM at {result.cam_layer}, {layers} layers"


def _train_screenshot(window, path: Path, epochs: int = 3) -> None:
    """A short real run of the default project in the Train view, pictured when it ends."""
    with tempfile.TemporaryDirectory() as folder:
        window.document.project.training.update(epochs=epochs, log_every=5)
        window.document.save(folder)
        window.train_panel.refresh_form()
        window.train_dock.raise_()
        window.resizeDocks([window.train_dock], [400], Qt.Orientation.Vertical)
        window.train_panel.start()
        wait_until(lambda: window.train_panel.result is not None, 600)  # run_finished handled
        window.grab().save(str(path))
        _results_screenshot(window, path.with_name("window-results.png"))


def _results_screenshot(window, path: Path) -> None:
    """The finished run's results: confusion matrix, per-class table and its worst mistakes."""
    panel = window.train_panel
    runs = panel.runs_view.runs
    if not runs:
        return
    panel.runs_view.select_runs([runs[0].name])
    panel.tabs.setCurrentWidget(panel.results_view)
    results = panel.results_view
    evaluation = results.evaluation
    if evaluation is not None and evaluation.mistakes:
        worst = evaluation.mistakes[0]
        results.show_cell(worst.true, worst.predicted)
        wait_until(lambda: not results.busy() and results.gallery.count() > 0, 30)
    QApplication.processEvents()
    window.grab().save(str(path))
    _inspect_screenshot(window, runs[0].folder, path.with_name("window-inspect.png"))
    _predict_screenshot(window, runs[0].folder, path.with_name("window-predict.png"))


def _inspect_screenshot(window, run_dir: Path, path: Path) -> None:
    """A validation image inspected with the finished run: maps, Grad-CAM, top classes."""
    from cnnstudio.data import images_at

    dataset = window.data_panel.dataset
    if dataset is None:
        return
    window.inspect_dock.raise_()
    window.resizeDocks([window.inspect_dock], [430], Qt.Orientation.Vertical)
    view = window.inspector
    _inspect(window, run_dir, images_at(dataset, [int(dataset.splits["val"][0])])[0], 60)
    view.select_layer("conv2")
    QApplication.processEvents()
    window.grab().save(str(path))
    view.grab().save(str(path.with_name("inspect.png")))


def _predict_screenshot(window, run_dir: Path, path: Path, count: int = 48) -> None:
    """Validation images written as PNG files (and one that is not an image) predicted with the
    finished run in the Predict view; window-predict.png and predict.png."""
    from PIL import Image

    from cnnstudio.data import images_at
    from ui.inspector.sources import run_source

    dataset = window.data_panel.dataset
    if dataset is None:
        return
    view = window.predict_view
    with tempfile.TemporaryDirectory() as folder:
        val = dataset.splits["val"]
        indices = [int(i) for i in val[:: max(1, len(val) // count)][:count]]  # every class
        for index, pixels in zip(indices, images_at(dataset, indices), strict=True):
            name = dataset.classes[int(dataset.labels[index])]
            (Path(folder) / name).mkdir(exist_ok=True)
            Image.fromarray(pixels.squeeze()).save(Path(folder) / name / f"{index:05d}.png")
        (Path(folder) / "notes.png").write_text("not a picture")
        window.predict_dock.raise_()
        answers: list = []
        view.predicted.connect(answers.append)
        view.failed.connect(answers.append)
        view.set_model_source(run_source(run_dir))
        view.predict_paths([folder])
        wait_until(lambda: answers, 120)
        QApplication.processEvents()
        window.grab().save(str(path))
        view.grab().save(str(path.with_name("predict.png")))
        view.clear()


def write_screenshots(window, folder: str | Path) -> int:
    """window.png (the model editor), window-data.png and data.png (the Data view),
    window-dark.png (the dark theme), window-train.png (a short real run), window-results.png
    (its confusion matrix and mistakes), window-inspect.png and inspect.png (an image inspected),
    window-predict.png and predict.png (a folder predicted)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    window.resize(1440, 900)
    _settle(window)
    window.canvas.select(["conv3"])
    QApplication.processEvents()
    window.grab().save(str(folder / "window.png"))
    window.data_dock.raise_()
    QApplication.processEvents()
    window.data_panel.grab().save(str(folder / "data.png"))
    window.grab().save(str(folder / "window-data.png"))
    _train_screenshot(window, folder / "window-train.png")
    theme = window.settings.theme()
    window.set_theme("dark")
    window.property_dock.raise_()
    window.train_dock.raise_()
    QApplication.processEvents()
    window.grab().save(str(folder / "window-dark.png"))
    window.settings.set_theme(theme)
    window.document.discard_changes()
    window.close()
    print(f"screenshots written to {folder}")
    return 0


def _export_code(window, run_dir: Path, folder: Path, problems: list[str]) -> None:
    """Export the run as PyTorch code (checked by running it), and read the sources the training
    script is assembled from: a bundle that lacks the templates or cnnstudio's .py files fails
    here, not when a user exports."""
    from cnnstudio.errors import StudioError
    from cnnstudio.export import export
    from cnnstudio.export.source_text import function_source, template_program
    from cnnstudio.export.training_script import RECIPE
    from cnnstudio.model_source import from_run

    try:
        source = from_run(run_dir, project=window.document.project)
        export(source, "python", folder / "exported_model.py")
        template_program("training")
        for function in RECIPE:
            function_source(function)
    except StudioError as error:
        problems.append(f"export failed: {error}")
