"""The Train view's run list, results, learning-rate finder, memory hint and curve export, on a
project trained for real beforehand (two short runs)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtWidgets import QMessageBox

from cnnstudio import load_project
from cnnstudio.data import DataSettings
from cnnstudio.project import Project
from cnnstudio.runs import list_runs
from cnnstudio.train import Finished, Trainer, evaluate_run
from cnnstudio.train_settings import check_training
from tests.test_train import colour_folder, tiny_model
from ui.main_window import MainWindow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved project folder with two finished runs (made once for this module)."""
    root = tmp_path_factory.mktemp("trained")
    training = check_training({"epochs": 2, "batch_size": 16, "log_every": 1, "lr": 0.01,
                               "workers": 0})  # fmt: skip
    data = DataSettings(source="folder", path=str(colour_folder(root / "img")))
    project = Project(model=tiny_model(), name="tiny", training=training, path=root / "proj",
                      data=data)  # fmt: skip
    project.save()
    for lr in (1e-5, 0.01):  # the first run barely learns: its results have mistakes to show
        project.training["lr"] = lr
        result = Trainer(project).run()
        assert isinstance(result, Finished), result
    return root / "proj"


@pytest.fixture
def opened(window: MainWindow, trained: Path, tmp_path: Path, qtbot) -> MainWindow:
    folder = tmp_path / "proj"
    shutil.copytree(trained, folder)
    assert window.open_project(folder)
    qtbot.waitUntil(lambda: getattr(window.data_panel.dataset, "source", "") == "folder",
                    timeout=60000)  # fmt: skip
    qtbot.waitUntil(lambda: window.document.analysis_is_current, timeout=30000)
    return window


def test_run_list_shows_every_run_with_its_accuracy(opened: MainWindow) -> None:
    from PySide6.QtCore import Qt

    view = opened.train_panel.runs_view
    runs = list_runs(opened.document.project.runs_dir)
    table = view.table.model()  # the run table: a model behind a sort/filter proxy
    assert table.rowCount() == len(runs) == 2

    def cell(row: int, column: int, role=Qt.ItemDataRole.DisplayRole) -> str:
        return table.index(row, column).data(role)

    for row, info in enumerate(runs):
        assert cell(row, 1) == "finished"
        assert cell(row, 2) == "2/2"
        assert cell(row, 3) == f"{info.best_val_accuracy:.2%}"
        data_folder = Path(opened.document.project.data.path).name
        assert cell(row, 4) == f"folder {data_folder}"
        assert "trained on image folder " in cell(row, 4, Qt.ItemDataRole.ToolTipRole)
        summary = cell(row, view.model.column("settings"))  # was column 5: settings now differ
        assert "sgd" in summary or "adamw" in summary


def test_selecting_two_runs_overlays_their_curves(opened: MainWindow) -> None:
    panel = opened.train_panel
    names = [r.name for r in panel.runs_view.runs]
    panel.runs_view.select_runs(names)
    assert len(panel.runs_view.selected()) == 2
    loss_items = [i for i in panel.curves.overlays if i in panel.curves.loss_plot.listDataItems()]
    assert {item.name() for item in loss_items} == set(names)
    assert len(panel.curves.overlays) == 4  # and each run's validation accuracy, same colour
    legend = panel.curves.legend.text()
    entries = [part.split("&nbsp;")[-1] for part in legend.split("&nbsp;&nbsp;&nbsp; ")]
    assert sorted(e for e in entries if e in names) == sorted(names), legend  # one entry a run
    assert len(loss_items) == 2 and all(len(i.getData()[0]) > 5 for i in loss_items)
    panel.runs_view.select_runs([])
    assert panel.curves.overlays == []


def test_confusion_matrix_matches_the_engine(opened: MainWindow) -> None:
    panel = opened.train_panel
    newest = panel.runs_view.runs[0]
    panel.runs_view.select_runs([newest.name])
    evaluation = evaluate_run(opened.document.project, newest.name)
    table = panel.results_view.confusion
    n = len(evaluation.classes)
    assert (table.rowCount(), table.columnCount()) == (n, n)
    shown = np.array([[int(table.item(i, j).text()) for j in range(n)] for i in range(n)])
    assert (shown == evaluation.confusion).all()
    per_class = panel.results_view.per_class
    assert per_class.rowCount() == n
    recall = {per_class.item(r, 0).text(): float(per_class.item(r, 2).text()) for r in range(n)}
    for m in evaluation.per_class:
        assert recall[m.name] == pytest.approx(m.recall, abs=1e-4)
    assert f"{evaluation.accuracy:.2%}" in panel.results_view.title.text()


def test_per_class_figures_read_alike_and_sort_by_value(opened: MainWindow) -> None:
    from PySide6.QtCore import Qt

    panel = opened.train_panel
    panel.runs_view.select_runs([panel.runs_view.runs[0].name])
    results = panel.results_view
    table, n = results.per_class, len(results.evaluation.classes)
    for row in range(n):
        for column in (1, 2, 3):  # precision, recall, F1: three decimals each, 1 as 1.000
            text = table.item(row, column).text()
            assert len(text.split(".")[1]) == 3, text
    table.sortItems(1, Qt.SortOrder.DescendingOrder)
    shown = [float(table.item(row, 1).text()) for row in range(n)]
    assert shown == sorted(shown, reverse=True)
    confusion = results.confusion
    name = results.evaluation.classes[0]
    assert confusion.horizontalHeaderItem(0).toolTip() == f"predicted {name}"
    assert confusion.verticalHeaderItem(0).toolTip() == f"true {name}"


def test_per_class_table_shows_every_column_at_1280_wide(opened: MainWindow, qtbot) -> None:
    opened.resize(1280, 800)
    panel = opened.train_panel
    panel.tabs.setCurrentWidget(panel.results_view)
    panel.runs_view.select_runs([panel.runs_view.runs[0].name])
    table = panel.results_view.per_class
    qtbot.waitUntil(lambda: table.isVisible() and table.rowCount() > 0)
    header = table.horizontalHeader()
    last = table.columnCount() - 1
    qtbot.waitUntil(  # once the splitter has laid the panes out
        lambda: (
            header.sectionViewportPosition(last) + header.sectionSize(last)
            <= table.viewport().width() + 1
        )
    )
    assert header.sectionSize(last) >= header.sectionSizeFromContents(last).width()


def test_clicking_a_cell_shows_its_mistakes_and_opens_one(opened: MainWindow, qtbot) -> None:
    panel = opened.train_panel
    panel.runs_view.select_runs([panel.runs_view.runs[-1].name])
    results = panel.results_view
    evaluation = results.evaluation
    off = [(m.true, m.predicted) for m in evaluation.mistakes]
    assert off, "the barely trained run should make mistakes"
    true, predicted = off[0]
    results.confusion.cellClicked.emit(true, predicted)
    expected = [m for m in evaluation.mistakes if (m.true, m.predicted) == (true, predicted)]
    qtbot.waitUntil(lambda: results.gallery.count() == len(expected), timeout=10000)
    confidences = [m.confidence for m in results.shown]
    assert confidences == sorted(confidences, reverse=True)
    with qtbot.waitSignal(panel.inspect_requested) as opened_image:
        results.gallery.itemDoubleClicked.emit(results.gallery.item(0))
    image, label = opened_image.args
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert Path(expected[0].path).name in label  # the run trained on a folder: its files


def test_deleting_a_run_asks_and_removes_its_folder(opened: MainWindow, monkeypatch) -> None:
    view = opened.train_panel.runs_view
    doomed = view.runs[0]
    asked = []

    def answer(*args, **kwargs):
        asked.append(args[1])
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    view.select_runs([doomed.name])
    view.delete_button.click()
    assert asked == ["Delete runs"]
    assert not doomed.folder.exists()
    assert [r.name for r in view.runs] == [
        r.name for r in list_runs(opened.document.project.runs_dir)
    ]
    assert view.table.model().rowCount() == 1


def test_resume_continues_the_selected_run(opened: MainWindow, qtbot) -> None:
    panel = opened.train_panel
    opened.document.set_training("epochs", 3)
    target = panel.runs_view.runs[-1]
    panel.runs_view.select_runs([target.name])
    with qtbot.waitSignal(panel.run_finished, timeout=120000) as finished:
        panel.resume_button.click()
    result = finished.args[0]
    assert isinstance(result, Finished), result
    assert Path(result.run_dir) == target.folder
    assert result.epochs_done == 3
    assert len(panel.curves.epochs) == 1  # only the third epoch was trained


def test_lr_finder_plots_and_applies_its_suggestion(opened: MainWindow, qtbot) -> None:
    view = opened.train_panel.lr_view
    view.steps = 30
    with qtbot.waitSignal(view.ended, timeout=120000):
        assert view.start()
    assert view.result is not None, view.status.text()
    x, _ = view.curve.getData()
    assert len(x) == len(view.result.lrs) >= 10
    assert view.marker.isVisible()
    axis = view.plot.getAxis("bottom")  # rates as the settings write them, not 10^-7 and 0.0001
    assert axis.tickStrings([-7.0, -4.0, -2.0, 0.0, 1.0], 1, 1) == [
        "1e-7",
        "1e-4",
        "0.01",
        "1",
        "10",
    ]
    view.apply_button.click()
    assert opened.document.project.training["lr"] == float(f"{view.result.suggestion:.2g}")
    assert opened.document.dirty


def test_memory_hint_follows_the_batch_size(opened: MainWindow, qtbot) -> None:
    panel = opened.train_panel
    qtbot.waitUntil(lambda: opened.document.activations is not None, timeout=60000)
    first = panel.form.memory_hint.text()
    assert "batch 16" in first and "MiB" in first
    panel.form.editors["batch_size"].setValue(512)
    assert "batch 512" in panel.form.memory_hint.text()


def test_legend_covers_no_point_and_a_new_run_starts_from_empty_axes(
    opened: MainWindow, qtbot
) -> None:
    curves = opened.train_panel.curves
    opened.train_panel.runs_view.select_runs([r.name for r in opened.train_panel.runs_view.runs])
    opened.train_panel.tabs.setCurrentWidget(curves)
    qtbot.waitUntil(lambda: curves.isVisible())
    # one line of text above the plots, not an item over them
    assert curves.legend.geometry().bottom() < curves.plots.geometry().top()
    assert "validation" in curves.legend.text()
    qtbot.waitUntil(lambda: curves.loss_plot.viewRange()[0][1] > 5)  # the overlaid runs
    curves.clear()
    assert curves.loss_plot.viewRange() == [[0.0, 1.0], [0.0, 1.0]]
    assert all(run.name not in curves.legend.text() for run in opened.train_panel.runs_view.runs)


def test_curves_export_as_csv_and_png(opened: MainWindow, qtbot, tmp_path: Path) -> None:
    panel = opened.train_panel
    with qtbot.waitSignal(panel.run_finished, timeout=120000):
        panel.start()
    rows = list(csv.DictReader(io.StringIO(panel.curves.curves_csv())))
    assert len(rows) == len(panel.steps)
    assert [float(r["loss"]) for r in rows] == pytest.approx([v for _, v in panel.steps])
    epochs = [r for r in rows if r["epoch"]]
    assert [int(r["epoch"]) for r in epochs] == [1, 2]
    panel.curves.save_png(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert load_project(opened.document.project.path).name == "tiny"


# The Inspect and Export parts of the window, on the same trained project


def test_an_image_dropped_on_the_window_is_inspected_with_the_selected_run(
    opened: MainWindow, qtbot, tmp_path: Path
) -> None:
    from tests.test_inspector_view import drop_files, picture

    panel = opened.train_panel
    older = panel.runs_view.runs[-1]
    panel.runs_view.select_runs([older.name])
    with qtbot.waitSignal(opened.inspector.inspected, timeout=60000) as got:
        drop_files(opened, picture(tmp_path / "red.png"))
    assert opened.inspector.model_label.text() == f"run {older.name} (best)"
    assert [p.name for p in got.args[0].predictions][:1][0] in {"c0", "c1", "c2", "c3"}
    assert not opened.inspect_dock.visibleRegion().isEmpty()


def test_a_gallery_image_opens_in_the_inspect_view(opened: MainWindow, qtbot) -> None:
    panel = opened.train_panel
    panel.runs_view.select_runs([panel.runs_view.runs[-1].name])
    mistake = panel.results_view.evaluation.mistakes[0]
    image = opened.data_panel.dataset.images[mistake.index].permute(1, 2, 0).numpy()
    with qtbot.waitSignal(opened.inspector.inspected, timeout=60000) as got:
        panel.inspect_requested.emit(image, "validation image")
    assert got.args[0].image.shape == (16, 16, 3)


def test_a_run_in_progress_is_inspected_live(opened: MainWindow, qtbot, tmp_path: Path) -> None:
    from tests.test_inspector_view import picture

    panel = opened.train_panel
    opened.document.set_training("epochs", 40)
    panel.start()
    qtbot.waitUntil(lambda: len(panel.steps) >= 2, timeout=60000)  # run_started set the source
    with qtbot.waitSignal(opened.inspector.inspected, timeout=60000):
        opened.inspector.inspect_files([picture(tmp_path / "x.png")])
    assert opened.inspector.model_label.text().endswith("(live)")
    assert panel.running, "inspecting did not stop the run"
    steps = len(panel.steps)
    qtbot.waitUntil(lambda: len(panel.steps) > steps, timeout=30000)  # nor pause it
    with qtbot.waitSignal(panel.run_finished, timeout=30000):
        panel.stop_button.click()


def test_file_open_image_inspects_the_chosen_file(
    opened: MainWindow, qtbot, tmp_path: Path, monkeypatch
) -> None:
    from PySide6.QtWidgets import QFileDialog

    from tests.test_inspector_view import picture

    path = picture(tmp_path / "walk.png")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    assert opened.open_image_action in opened.menuBar().actions()[0].menu().actions()
    with qtbot.waitSignal(opened.inspector.inspected, timeout=60000):
        opened.open_image_action.trigger()
    assert opened.inspect_dock.isVisible()
    assert "walk.png" in opened.statusBar().currentMessage()


def test_file_export_writes_a_checked_file_of_the_newest_run(
    opened: MainWindow, qtbot, tmp_path: Path
) -> None:
    assert opened.export_action.shortcut().toString() == "Ctrl+E"
    dialog = opened.show_export_dialog()
    assert dialog.isVisible()
    newest = opened.train_panel.runs_view.runs[0].name
    assert newest in dialog.run_box.currentText()
    dialog.format_box.setCurrentIndex(dialog.format_box.findData("safetensors"))
    target = tmp_path / "weights.safetensors"
    dialog.path_edit.setText(str(target))
    with qtbot.waitSignal(dialog.exported, timeout=60000) as done:
        dialog.export_button.click()
    assert target.is_file() and done.args[0].max_abs_diff == 0
    assert "checked: max difference" in dialog.result_label.text()
    dialog.close()


def test_imported_weights_become_a_run_and_misfits_are_listed(
    opened: MainWindow, qtbot, tmp_path: Path, monkeypatch
) -> None:
    from safetensors.torch import save_file

    from cnnstudio import build_model
    from cnnstudio.model_source import from_run

    model = build_model(opened.document.spec)
    good = tmp_path / "good.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(good))
    view = opened.train_panel.runs_view
    with qtbot.waitSignal(opened.weights_imported, timeout=60000):
        opened.import_weights(good)
    assert (
        view.runs[0].state == "imported"
        and view.runs[0].summary == "imported from good.safetensors"
    )
    assert [r.name for r in view.selected()] == [view.runs[0].name]
    loaded = from_run(view.runs[0].folder)
    for key, value in model.state_dict().items():
        assert loaded.model.state_dict()[key].equal(value)
    assert loaded.classes == ("c0", "c1", "c2", "c3")

    state = model.state_dict()
    state["conv1.weight"] = state["conv1.weight"][:4].clone()
    del state["fc.bias"]
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: warnings.append(a[2]))
    runs_before = len(view.runs)
    with qtbot.waitSignal(opened.weights_import_failed, timeout=60000):
        opened.import_weights(bad)
    assert len(warnings) == 1
    assert "conv1.weight" in warnings[0] and "fc.bias" in warnings[0]
    view.refresh()
    assert len(view.runs) == runs_before, "nothing written for weights that do not fit"


def test_a_data_sample_double_clicked_is_inspected(opened: MainWindow, qtbot) -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    panel = opened.data_panel

    def grid_of_this_data() -> bool:  # not the grid of the project open before
        size = tuple(panel.dataset.input_shape[1:])
        return panel.samples is not None and panel.samples[1][0].shape[:2] == size

    qtbot.waitUntil(lambda: grid_of_this_data() and not panel.busy(), timeout=30000)
    shown = panel.samples[1][2]  # the picture under the pointer when it is double-clicked
    with qtbot.waitSignal(opened.inspector.inspected, timeout=60000) as got:
        QTest.mouseDClick(panel.sample_labels[2], Qt.MouseButton.LeftButton,
                          Qt.KeyboardModifier.NoModifier, QPoint(50, 50))  # fmt: skip
    assert got.args[0].image.shape == shown.shape
    assert np.allclose(got.args[0].image, shown / 255, atol=1 / 255)


def test_the_device_list_names_this_machines_devices(opened: MainWindow) -> None:
    from cnnstudio.train import available_devices

    combo = opened.train_panel.form.editors["device"]
    assert [combo.itemData(i) for i in range(combo.count())] == [d for d, _ in available_devices()]
    assert combo.itemText(1).startswith("CPU (")
    combo.setCurrentIndex(1)
    assert opened.document.project.training["device"] == "cpu"


def test_a_narrow_matrix_numbers_its_columns_and_a_wide_one_names_them(qtbot) -> None:
    from cnnstudio.metrics import Evaluation, per_class_metrics
    from ui.training.results_view import ResultsView

    names = ["circle", "ring", "square", "frame", "triangle", "diamond", "plus", "x", "hbar", "v"]
    confusion = np.eye(len(names), dtype=np.int64) * 9 + 1
    evaluation = Evaluation(names, 0.9, 0.3, confusion, per_class_metrics(confusion, names), [])
    view = ResultsView()
    qtbot.addWidget(view)
    view.resize(640, 400)
    view.show()
    view.set_evaluation(evaluation, "run")
    matrix = view.confusion

    def columns() -> list[str]:
        return [matrix.horizontalHeaderItem(c).text() for c in range(len(names))]

    def rows() -> list[str]:
        return [matrix.verticalHeaderItem(r).text() for r in range(len(names))]

    qtbot.waitUntil(lambda: columns() == [str(i) for i in range(len(names))])
    assert rows() == [f"{i} {name}" for i, name in enumerate(names)]
    assert "numbered" in view.caption.text()
    view.resize(2600, 400)
    qtbot.waitUntil(lambda: columns() == names)
    assert rows() == names and "numbered" not in view.caption.text()


def test_opening_a_trained_project_shows_its_newest_run(opened: MainWindow, qtbot) -> None:
    panel = opened.train_panel
    newest = panel.runs_view.runs[0]
    assert [r.name for r in panel.runs_view.selected()] == [newest.name]
    qtbot.waitUntil(lambda: panel.results_view.evaluation is not None, timeout=30000)
    assert newest.name in panel.results_view.title.text()
    x, _ = panel.curves.overlays[0].getData()  # its loss drawn, not empty axes
    assert len(panel.curves.overlays) == 2 and len(x) > 0
