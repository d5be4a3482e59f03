"""Panels in docks scroll up and down only: a focused field never scrolls the labels sideways
out of view, the dock keeps the panel's least width, and the wheel over a chart scrolls the
panel (issue 19, items 1 and 8)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from ui.main_window import MainWindow


def test_focusing_a_training_field_keeps_its_label_in_view(qtbot, window: MainWindow) -> None:
    window.resize(1280, 800)
    panel = window.train_panel
    window.train_dock.raise_()
    form = panel.form
    qtbot.waitUntil(form.isVisible)
    for name, editor in form.editors.items():
        editor.setFocus()
        QApplication.processEvents()
        label = form.layout().labelForField(editor)
        if label is None:
            continue
        left = label.mapTo(window, QPoint(0, 0)).x()
        assert left >= panel.mapTo(window, QPoint(0, 0)).x(), name  # not scrolled off the left


def test_the_data_dock_keeps_the_panel_width_and_the_wheel_over_the_chart_scrolls_it(
    qtbot, window: MainWindow
) -> None:
    window.resize(1280, 800)
    window.data_dock.show()
    window.data_dock.raise_()
    scroll = window.data_dock.widget()
    qtbot.waitUntil(lambda: window.data_panel.chart.isVisible())
    assert scroll.width() >= window.data_panel.minimumSizeHint().width()
    assert (
        scroll.horizontalScrollBar().maximum() == 0 or not scroll.horizontalScrollBar().isVisible()
    )
    bar = scroll.verticalScrollBar()
    if bar.maximum() == 0:  # everything fits at this size: make the panel taller than the dock
        window.data_panel.setMinimumHeight(scroll.viewport().height() + 400)
        qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(0)
    chart = window.data_panel.chart
    centre = QPointF(chart.viewport().rect().center())
    where = QPointF(chart.viewport().mapToGlobal(centre.toPoint()))
    no_button, no_key = Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    wheel = QWheelEvent(centre, where, QPoint(0, 0), QPoint(0, -120), no_button, no_key,
                        Qt.ScrollPhase.NoScrollPhase, False)  # fmt: skip
    QApplication.sendEvent(chart.viewport(), wheel)
    assert bar.value() > 0
