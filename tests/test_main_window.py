"""The window shows what the engine's analysis reports."""

from __future__ import annotations

from cnnstudio import new_project
from ui.main_window import MainWindow


def test_window_lists_the_layers_of_the_default_project(qtbot) -> None:
    project = new_project("simple-cnn")
    window = MainWindow(project)
    qtbot.addWidget(window)
    table = window.layer_table
    assert table.rowCount() == len(project.model.nodes)
    assert [table.item(0, c).text() for c in range(4)] == ["conv1", "Conv2d", "32×32×32", "896"]
    assert "2,169,770 parameters" in window.statusBar().currentMessage()


def test_window_shows_a_layer_problem(qtbot) -> None:
    project = new_project("simple-cnn")
    project.model = project.model.set_params("fc1", in_features=1000)
    window = MainWindow(project)
    qtbot.addWidget(window)
    row = [n.id for n in project.model.nodes].index("fc1")
    assert window.layer_table.item(row, 5).text().startswith("Linear expects 1000 input features")
    assert "1 problem" in window.statusBar().currentMessage()
