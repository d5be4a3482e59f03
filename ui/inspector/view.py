"""The Inspect view: drop, paste or open an image and see it as the model sees it, the top classes,
the Grad-CAM heat map over the image (with its opacity), the layers in model order, the feature
maps of the selected layer (click one to enlarge it) and the filters of a selected convolution.

The view lives in the wide, short bottom dock: the prediction (image, heat map, top classes) and
the layers (list, feature maps, filters) sit side by side from ``WIDE`` px on, else on two pages.
The pictures fill the dock's height; small inputs grow pixel by pixel (``picture_view``).

Every inspection runs on a pool thread (``ui.background.Jobs``); the newest request wins, and
``requests.InspectRequests`` keeps which one that is and the model source. The result holds the
maps of every listed layer, so choosing another layer redraws at once.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QImage, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QTabBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnnstudio.inspect import Inspection
from cnnstudio.pictures import colormap
from cnnstudio.shapes import format_shape
from ui.background import Jobs
from ui.icons import icon
from ui.inspector.picture_view import PictureView
from ui.inspector.requests import Answer, InspectRequests, answer
from ui.inspector.top_classes import Row, TopClassesView
from ui.theme import colours, set_role

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp);;All files (*)"
MAX_MAPS = 256  # a grid of more maps is unreadable in a dock; the heading says how many are shown
MAP_LUT = colormap(np.linspace(0.0, 1.0, 256), "inferno")
HEAT_METHOD_TEXTS = {  # cnnstudio.inspect.HEAT_METHODS: the name shown, and what it shows
    "grad-cam": ("Grad-CAM", "where a late convolution finds the class (coarse regions)"),
    "saliency": ("Saliency", "which input pixels change the class score most (fine, noisy)"),
}
HINT = "Drop an image here, paste one (Ctrl+V) or choose Open image…"
WIDE = 1200  # px: from this width the prediction and the layers sit side by side, else on pages
PAGES = ("Prediction", "Layers")


def _graphics(parent: QWidget) -> pg.GraphicsLayoutWidget:
    widget = pg.GraphicsLayoutWidget(parent)
    widget.setBackground(colours().base)
    widget.setAcceptDrops(False)  # drops go to the view, which takes them anywhere
    widget.viewport().setAcceptDrops(False)
    return widget


def _picture_box(widget: pg.GraphicsLayoutWidget, col: int) -> pg.ViewBox:
    """A view box in column ``col`` of ``widget`` that shows pictures upright, without mouse
    panning, as large as the box allows."""
    box = widget.addViewBox(row=0, col=col, lockAspect=True, enableMouse=False)
    box.invertY(True)
    box.setMenuEnabled(False)
    return box


def _levels(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low, low + 1.0)


def _heading(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setProperty("role", "heading")
    label.setWordWrap(True)  # a long layer name wraps rather than widening the column
    return label


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage (a pasted picture) as H×W×3 uint8."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    data = np.frombuffer(rgb.constBits(), np.uint8, count=stride * height)
    return data.reshape(height, stride)[:, : width * 3].reshape(height, width, 3).copy()


class InspectorView(QWidget):
    """Inspect images with a model handed over by ``set_model_source``."""

    inspected = Signal(object)  # Inspection
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: Inspection | None = None
        self.layer: str | None = None
        self.map_images: list[pg.ImageItem] = []
        self.filter_images: list[pg.ImageItem] = []
        self.requests = InspectRequests()
        self._grid_shape = (0, 0, 0, 0)  # columns, cell height, cell width, pad
        self._splitter_moved = False
        self._jobs = Jobs(self, newest_wins=True)
        self._build_ui()
        self._connect()
        self._show_empty()

    # Building

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(6)
        layout.addLayout(self._build_toolbar())
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setProperty("role", "muted")
        layout.addWidget(self.message)
        # the dock is wide and short: the prediction and the layers side by side when the width
        # allows, else one at a time on two pages (``pages`` in the toolbar)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setChildrenCollapsible(False)
        self.prediction_panel = self._build_prediction()
        self.layers_panel = self._build_layers()
        self.splitter.addWidget(self.prediction_panel)
        self.splitter.addWidget(self.layers_panel)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 5)
        layout.addWidget(self.splitter, 1)
        self.setAcceptDrops(True)
        self._arrange()

    def _build_toolbar(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(8)
        self.open_button = QPushButton(icon("open"), "Open image…", self)
        self.open_button.setToolTip("Inspect an image file (or drop one anywhere on this view)")
        row.addWidget(self.open_button)
        explain = QLabel("Explain", self)
        explain.setProperty("role", "muted")
        row.addWidget(explain)
        self.target_box = QComboBox(self)
        self.target_box.setToolTip("The class the heat map explains")
        self.target_box.setMinimumContentsLength(14)
        self.target_box.addItem("top prediction", None)
        row.addWidget(self.target_box)
        self.method_box = QComboBox(self)
        for method, (text, tip) in HEAT_METHOD_TEXTS.items():
            self.method_box.addItem(text, method)
            self.method_box.setItemData(
                self.method_box.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.method_box.setToolTip("How the heat map is made:\n" + "\n".join(
            f"{text}: {tip}" for text, tip in HEAT_METHOD_TEXTS.values()
        ))  # fmt: skip
        row.addWidget(self.method_box)
        self.pages = QTabBar(self)
        self.pages.setDocumentMode(True)
        self.pages.setDrawBase(False)
        for page in PAGES:
            self.pages.addTab(page)
        self.pages.setToolTip("The prediction (image, heat map, top classes) or the layers")
        row.addWidget(self.pages)
        row.addStretch(1)
        self.model_label = QLabel(self)
        self.model_label.setProperty("role", "muted")
        row.addWidget(self.model_label)
        return row

    def _build_prediction(self) -> QWidget:
        host = QWidget(self)
        outer = QHBoxLayout(host)
        outer.setContentsMargins(0, 0, 6, 0)
        outer.setSpacing(12)
        column = QVBoxLayout()
        column.setSpacing(4)
        pictures = QHBoxLayout()
        pictures.setSpacing(8)
        self.input_view = PictureView("input, as the model sees it", HINT, host)
        self.heat_view = PictureView("Grad-CAM", "The heat map appears here.", host)
        pictures.addWidget(self.input_view)
        pictures.addWidget(self.heat_view)
        column.addLayout(pictures, 1)
        opacity_row = QHBoxLayout()
        label = QLabel("Heat-map opacity", host)
        label.setProperty("role", "muted")
        self.opacity = QSlider(Qt.Orientation.Horizontal, host)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setToolTip("How strongly the heat map covers the image")
        opacity_row.addWidget(label)
        opacity_row.addWidget(self.opacity, 1)
        column.addLayout(opacity_row)
        outer.addLayout(column, 2)
        chart_column = QVBoxLayout()
        chart_column.setSpacing(4)
        chart_column.addWidget(_heading("Top classes", host))
        self.chart = TopClassesView("The most likely classes appear here.", host)
        self.chart.setMaximumWidth(300)  # wider bars say no more; the pictures take the room
        chart_column.addWidget(self.chart, 1)
        outer.addLayout(chart_column, 1)
        return host

    def _build_layers(self) -> QWidget:
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._build_tree())
        splitter.addWidget(self._build_maps())
        splitter.addWidget(self._build_filters())
        for index, stretch in enumerate((3, 5, 3)):
            splitter.setStretchFactor(index, stretch)
        splitter.setSizes([300, 500, 300])  # the maps take the most room
        return splitter

    def _build_tree(self) -> QWidget:
        host = QWidget(self)
        column = QVBoxLayout(host)
        column.setContentsMargins(6, 0, 6, 0)
        column.setSpacing(4)
        column.addWidget(_heading("Layers", host))
        self.layer_tree = QTreeWidget(host)
        self.layer_tree.setHeaderLabels(["Layer", "Kind", "Output"])
        self.layer_tree.setRootIsDecorated(True)
        self.layer_tree.setUniformRowHeights(True)
        self.layer_tree.setAlternatingRowColors(True)
        header = self.layer_tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.layer_tree.setMinimumSize(220, 80)
        column.addWidget(self.layer_tree, 1)
        return host

    def _build_maps(self) -> QWidget:
        host = QWidget(self)
        column = QVBoxLayout(host)
        column.setContentsMargins(6, 0, 6, 0)
        column.setSpacing(4)
        self.maps_heading = _heading("Feature maps", host)
        column.addWidget(self.maps_heading)
        note_row = QHBoxLayout()
        self.maps_note = QLabel(host)
        self.maps_note.setProperty("role", "muted")
        self.maps_note.setWordWrap(True)
        self.enlarged_title = QLabel(host)
        self.enlarged_title.setProperty("role", "muted")
        note_row.addWidget(self.maps_note, 1)
        note_row.addWidget(self.enlarged_title)
        column.addLayout(note_row)
        self.maps_widget = _graphics(host)
        self.maps_widget.setMinimumSize(160, 80)
        self.maps_box = _picture_box(self.maps_widget, 0)
        self.enlarged_box = _picture_box(self.maps_widget, 1)
        self.enlarged_item = pg.ImageItem(axisOrder="row-major")
        self.enlarged_item.setLookupTable(MAP_LUT)
        self.enlarged_box.addItem(self.enlarged_item)
        layout = self.maps_widget.ci.layout
        layout.setColumnStretchFactor(0, 3)
        layout.setColumnStretchFactor(1, 2)
        column.addWidget(self.maps_widget, 1)
        return host

    def _build_filters(self) -> QWidget:
        host = QWidget(self)
        column = QVBoxLayout(host)
        column.setContentsMargins(6, 0, 0, 0)
        column.setSpacing(4)
        self.filters_heading = _heading("Filters", host)
        column.addWidget(self.filters_heading)
        self.filters_note = QLabel(host)
        self.filters_note.setProperty("role", "muted")
        self.filters_note.setWordWrap(True)
        column.addWidget(self.filters_note)
        self.filters_widget = _graphics(host)
        self.filters_widget.setMinimumSize(120, 80)
        self.filters_box = _picture_box(self.filters_widget, 0)
        column.addWidget(self.filters_widget, 1)
        return host

    def _connect(self) -> None:
        self.open_button.clicked.connect(self._on_open_clicked)
        self.target_box.activated.connect(self._on_target_activated)
        self.method_box.activated.connect(self._on_target_activated)
        self.opacity.valueChanged.connect(self._on_opacity_changed)
        self.pages.currentChanged.connect(self._on_page_changed)
        self.splitter.splitterMoved.connect(self._on_splitter_moved)
        self.layer_tree.currentItemChanged.connect(self._on_layer_current_changed)
        self.maps_widget.scene().sigMouseClicked.connect(self._on_maps_clicked)
        self._jobs.finished.connect(self._on_inspection_finished)
        self._jobs.failed.connect(self._on_inspection_failed)
        paste = QShortcut(QKeySequence(QKeySequence.StandardKey.Paste), self)
        paste.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        paste.activated.connect(self.paste)

    # Public

    def set_model_source(self, source: Any) -> None:
        """Inspect with another model from now on. ``source`` is a ModelSource or a function
        returning one, called off the GUI thread when the next image comes (it may load a
        checkpoint). The shown image, if any, is inspected again with the new model."""
        image = self.requests.set_source(source)
        if image is not None:
            self._submit(image)

    def inspect_files(self, paths: list[str | Path]) -> None:
        """Inspect the first of ``paths`` (a drop may bring several files)."""
        files = [Path(p) for p in paths]
        if not files:
            return
        if len(files) > 1:
            self._show_message(f"{len(files)} files: inspecting {files[0].name}")
        self._submit(files[0])

    def inspect_array(self, image: np.ndarray) -> None:
        """Inspect an H×W×C image array (uint8, or float in [0, 1])."""
        self._submit(np.array(image, copy=True))

    def paste(self) -> None:
        """Inspect the picture (or image file) on the clipboard."""
        mime = QApplication.clipboard().mimeData()
        if mime is not None and mime.hasImage():
            self.inspect_array(qimage_to_array(QImage(mime.imageData())))
        elif mime is not None and mime.hasUrls():
            self.inspect_files([u.toLocalFile() for u in mime.urls() if u.isLocalFile()])
        else:
            self._show_message("The clipboard holds no image to inspect.", error=True)

    def select_layer(self, name: str) -> None:
        """Show the feature maps (and filters) of layer ``name``."""
        item = self._layer_items().get(name)
        if item is not None:
            self.layer_tree.setCurrentItem(item)

    def enlarge_map(self, index: int) -> None:
        """Show feature map ``index`` of the selected layer large, beside the grid."""
        maps = self._current_maps()
        if maps is None or maps.ndim != 3 or not 0 <= index < len(maps):
            return
        self.enlarged_item.setImage(maps[index], levels=_levels(maps[index]))
        self.enlarged_title.setText(f"enlarged: map {index + 1} of {len(maps)}")
        self.enlarged_box.autoRange(padding=0.02)

    def busy(self) -> bool:
        return self._jobs.busy()

    def wait(self, msecs: int = 60000) -> bool:
        return self._jobs.wait(msecs)

    def shutdown(self) -> None:
        """Drop queued requests and join the running one (the window calls this before it closes;
        an inspection takes well under a second and cannot be interrupted midway)."""
        self._jobs.shutdown(-1)

    # Drops

    def dragEnterEvent(self, event) -> None:
        if self._dropped_files(event.mimeData()) or event.mimeData().hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        files = self._dropped_files(mime)
        if files:
            event.acceptProposedAction()
            self.inspect_files(files)
        elif mime.hasImage():
            event.acceptProposedAction()
            self.inspect_array(qimage_to_array(QImage(mime.imageData())))
        else:
            event.ignore()

    @staticmethod
    def _dropped_files(mime) -> list[Path]:
        if not mime.hasUrls():
            return []
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        return [path for path in paths if not path.is_dir()]

    # Requests and answers

    def _submit(self, image: Any) -> None:
        request = self.requests.ask(
            image, self.layer, self.target_box.currentData(), self.method_box.currentData()
        )
        self._jobs.submit(answer, request)
        self.open_button.setText("Inspecting…")

    def _on_inspection_finished(self, _number: int, reply: Answer) -> None:
        if not self.requests.take(reply):
            return
        source, result = reply.source, reply.inspection
        self.open_button.setText("Open image…")
        self.model_label.setText(source.label)
        self._fill_targets(source.classes)
        self.result = result
        self._show_message("")
        self._show_result(result)
        self.inspected.emit(result)

    def _on_inspection_failed(self, _number: int, message: str) -> None:
        self.requests.fail()
        self.open_button.setText("Open image…")
        self._show_message(message, error=True)
        self.failed.emit(message)

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        set_role(self.message, "error" if error else "muted")
        self.message.setVisible(bool(text))

    def _fill_targets(self, classes: list[str]) -> None:
        current = [self.target_box.itemText(i) for i in range(1, self.target_box.count())]
        if current == list(classes):
            return
        chosen = self.target_box.currentData()
        self.target_box.clear()
        self.target_box.addItem("top prediction", None)
        for index, name in enumerate(classes):
            self.target_box.addItem(name, index)
        if chosen is not None and chosen < len(classes):
            self.target_box.setCurrentIndex(chosen + 1)

    # Drawing

    def _show_empty(self) -> None:
        self._show_message("")
        self.maps_heading.setText("Feature maps")
        self.maps_note.setText("The maps of the layer selected in the list appear here.")
        self.filters_heading.setText("Filters")
        self.filters_note.setText("The filters of a selected convolution appear here.")

    def _show_result(self, result: Inspection) -> None:
        image = (np.clip(result.image, 0, 1) * 255).round().astype(np.uint8)
        if image.shape[2] == 1:
            image = image[:, :, 0]
        self.input_view.set_picture(image)
        self.heat_view.set_picture(image)
        self.heat_view.set_heat(colormap(result.heat, "jet"))
        self.heat_view.set_opacity(self.opacity.value() / 100)
        name = HEAT_METHOD_TEXTS[result.heat_method][0]
        if result.heat_method == "grad-cam":
            where = f" at {result.cam_layer}" if result.cam_layer else " (no spatial layer)"
        else:
            where = " (per input pixel)"
        self.heat_view.set_title(f"{name} of {result.target_name}{where}")
        self.chart.set_rows(
            [Row(p.name, p.probability, p.index == result.target) for p in result.predictions]
        )
        if self.layer not in result.maps:
            self.layer = result.layer
        self._fill_layers(result)
        self._show_layer()

    def _fill_layers(self, result: Inspection) -> None:
        names = [entry.name for entry in result.layers]
        if names == list(self._layer_items()):
            self.select_layer(self.layer or "")
            return
        self.layer_tree.blockSignals(True)
        self.layer_tree.clear()
        parent = None
        for entry in result.layers:
            shown = entry.name.split(".", 1)[1] if entry.depth else entry.name
            item = QTreeWidgetItem([shown, entry.kind, format_shape(entry.output_shape)])
            item.setData(0, Qt.ItemDataRole.UserRole, entry.name)
            item.setToolTip(0, entry.name)
            item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if entry.depth and parent is not None:
                parent.addChild(item)
            else:
                self.layer_tree.addTopLevelItem(item)
                parent = item
        self.layer_tree.setRootIsDecorated(any(entry.depth for entry in result.layers))
        self.layer_tree.expandAll()
        self.layer_tree.blockSignals(False)
        self.select_layer(self.layer or "")

    def _layer_items(self) -> dict[str, QTreeWidgetItem]:
        items = {}
        for index in range(self.layer_tree.topLevelItemCount()):
            top = self.layer_tree.topLevelItem(index)
            for item in [top, *(top.child(i) for i in range(top.childCount()))]:
                items[item.data(0, Qt.ItemDataRole.UserRole)] = item
        return items

    def _on_layer_current_changed(self, item: QTreeWidgetItem | None, _previous) -> None:
        if item is None:
            return
        self.layer = item.data(0, Qt.ItemDataRole.UserRole)
        self._show_layer()

    def _current_maps(self) -> np.ndarray | None:
        if self.result is None or self.layer is None:
            return None
        return self.result.maps.get(self.layer)

    def _show_layer(self) -> None:
        maps = self._current_maps()
        if maps is None:
            return
        shape = format_shape(maps.shape)
        self.maps_heading.setText(f"Feature maps · {self.layer}")
        if maps.ndim == 3:
            shown = maps[:MAX_MAPS]
            more = f"; the first {len(shown)} shown" if len(shown) < len(maps) else ""
            self.maps_note.setText(f"{len(maps)} maps of {maps.shape[1]}×{maps.shape[2]}{more}"
                                   " · click one to enlarge")  # fmt: skip
            self.map_images = self._draw_grid(self.maps_box, self.map_images, shown, rgb=False)
            self._grid_shape = self._layout_of(shown)
            self.enlarge_map(0)
        else:
            self.maps_note.setText(f"{self.layer} gives {shape} values, not maps: shown as a row")
            strip = maps.reshape(1, -1)
            self.map_images = self._draw_grid(self.maps_box, self.map_images, strip[None], False)
            self._grid_shape = (0, 0, 0, 0)
            self.enlarged_item.clear()
            self.enlarged_title.setText("")
        self._show_filters()

    def _show_filters(self) -> None:
        pictures = self.result.filters.get(self.layer) if self.result is not None else None
        self.filters_heading.setText(f"Filters · {self.layer}")
        if pictures is None:
            self.filters_note.setText("only convolutions have filters")
            self.filter_images = self._draw_grid(self.filters_box, self.filter_images, None, False)
            return
        kind = "RGB" if pictures.ndim == 4 else "mean over the inputs"
        size = f"{pictures.shape[1]}×{pictures.shape[2]}"
        self.filters_note.setText(f"{len(pictures)} of {size}, {kind}")
        self.filter_images = self._draw_grid(
            self.filters_box, self.filter_images, pictures[:MAX_MAPS], rgb=pictures.ndim == 4
        )

    @staticmethod
    def _layout_of(maps: np.ndarray) -> tuple[int, int, int, int]:
        count, height, width = maps.shape[:3]
        return math.ceil(math.sqrt(count)), height, width, max(1, round(max(height, width) / 8))

    def _draw_grid(
        self, box: pg.ViewBox, old: list[pg.ImageItem], maps: np.ndarray | None, rgb: bool
    ) -> list[pg.ImageItem]:
        for item in old:
            box.removeItem(item)
        if maps is None or len(maps) == 0:
            return []
        columns, height, width, pad = self._layout_of(maps)
        if maps.shape[1] == 1:  # a strip of values: tall enough to see
            height, columns = max(1, maps.shape[2] // 12), 1
        items = []
        for index, picture in enumerate(maps):
            item = pg.ImageItem(axisOrder="row-major")
            if rgb:
                item.setImage((np.clip(picture, 0, 1) * 255).round().astype(np.uint8))
            else:
                item.setImage(picture, levels=_levels(picture))
                item.setLookupTable(MAP_LUT)
            row, col = divmod(index, columns)
            item.setRect(QRectF(col * (width + pad), row * (height + pad), width, height))
            box.addItem(item)
            items.append(item)
        box.autoRange(padding=0.01)
        return items

    # Slots

    def _on_open_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Inspect an image", "", IMAGE_FILTER)
        if path:
            self.inspect_files([path])

    def _on_target_activated(self, _index: int) -> None:
        if self.requests.image is not None:
            self._submit(self.requests.image)

    def _on_opacity_changed(self, value: int) -> None:
        self.heat_view.set_opacity(value / 100)

    def _on_maps_clicked(self, event) -> None:
        columns, height, width, pad = self._grid_shape
        if not columns:
            return
        point = self.maps_box.mapSceneToView(event.scenePos())
        col, row = int(point.x() // (width + pad)), int(point.y() // (height + pad))
        inside = point.x() >= 0 and point.y() >= 0 and col < columns
        if inside and point.x() - col * (width + pad) < width:
            self.enlarge_map(row * columns + col)

    def refresh_theme(self) -> None:
        """Redraw in the current theme's colours."""
        for widget in (self.maps_widget, self.filters_widget):
            widget.setBackground(colours().base)
        self.open_button.setIcon(icon("open"))
        for view in (self.input_view, self.heat_view, self.chart):
            view.update()

    # Layout

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._arrange()

    def _on_page_changed(self, _index: int) -> None:
        self._arrange()

    def _arrange(self) -> None:
        """Both parts side by side from WIDE px on; below, the page chosen in ``pages``."""
        wide = self.width() >= WIDE
        self.pages.setVisible(not wide)
        page = self.pages.currentIndex()
        self.prediction_panel.setVisible(wide or page == 0)
        self.layers_panel.setVisible(wide or page == 1)
        if wide and not self._splitter_moved:
            self._share_width()

    def _share_width(self) -> None:
        """Give the prediction the width its square pictures need at this height (and the chart
        its preferred width), at most half of the whole; the layers take the rest."""
        side = max(80, self.splitter.height() - 2 * self.opacity.sizeHint().height() - 12)
        wanted = 2 * side + self.chart.sizeHint().width() + 40  # 40: the gaps between them
        total = self.splitter.width()
        prediction = min(wanted, total // 2)
        self.splitter.setSizes([prediction, total - prediction])

    def _on_splitter_moved(self, _position: int, _index: int) -> None:
        self._splitter_moved = True  # the user's division stays from now on
