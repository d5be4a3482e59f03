"""The export dialog: a format, a run and a path chosen, the export run off the GUI thread, and the
result or the error shown in the dialog."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnstudio import Project
from cnnstudio.params import format_bytes
from tests.test_train import tiny_model


@pytest.fixture
def project(tmp_path: Path) -> Project:
    made = Project(model=tiny_model(), name="tiny colours", path=tmp_path / "proj")
    made.save()
    return made


def _choose(box, data) -> None:
    box.setCurrentIndex(box.findData(data))


@pytest.mark.slow
def test_exports_onnx_and_shows_the_check(qtbot, project: Project, tmp_path: Path) -> None:
    from ui.export_dialog import ExportDialog

    dialog = ExportDialog(project)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.run_box.count() == 1  # no runs yet: only the untrained model
    assert dialog.run_box.currentData() is None
    _choose(dialog.format_box, "onnx")
    assert dialog.path_edit.text().endswith("tiny_colours.onnx")
    assert "onnxruntime" in dialog.format_help.text()
    target = tmp_path / "out" / "model.onnx"
    dialog.path_edit.setText(str(target))
    with qtbot.waitSignal(dialog.exported, timeout=120000):
        qtbot.mouseClick(dialog.export_button, _left())
    assert target.is_file()
    text = dialog.result_label.text()
    assert text.startswith("Written model.onnx (") and "checked: max difference" in text
    assert f"({format_bytes(target.stat().st_size)})" in text  # the CLI's convention too
    assert dialog.export_button.isEnabled()
    dialog.close()
    assert not dialog.busy()


def test_an_export_error_is_shown_in_the_dialog(qtbot, project: Project, tmp_path: Path) -> None:
    from ui.export_dialog import ExportDialog

    dialog = ExportDialog(project)
    qtbot.addWidget(dialog)
    _choose(dialog.format_box, "python")
    assert dialog.path_edit.text().endswith("tiny_colours.py")
    dialog.path_edit.setText(str(tmp_path / "not-a-module-name.py"))
    with qtbot.waitSignal(dialog.failed, timeout=60000) as failed:
        qtbot.mouseClick(dialog.export_button, _left())
    assert "Python module name" in failed.args[0]
    assert "Python module name" in dialog.result_label.text()
    dialog.close()


def _left():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


def test_runs_with_a_checkpoint_are_offered_first(qtbot, project: Project) -> None:
    import json

    from ui.export_dialog import ExportDialog

    run = project.runs_dir / "20250101-120000"
    run.mkdir(parents=True)
    (run / "settings.json").write_text(json.dumps({"training": {"epochs": 3}}))
    (run / "state.json").write_text(json.dumps({"state": "finished", "best_val_accuracy": 0.875}))
    (run / "last.pt").write_bytes(b"")
    dialog = ExportDialog(project)
    qtbot.addWidget(dialog)
    assert dialog.run_box.count() == 2
    assert dialog.run_box.itemText(0) == "20250101-120000 (finished, best 87.5%)"
    assert dialog.run_box.currentData() == "20250101-120000"
