"""The studio's main window: the model editor in the middle, the layer palette on the left,
the properties and the data on the right; menus, toolbar, undo, recent projects, status bar.

The editor needs no torch and shows at once; the views that do (Data, Train, Inspect, Predict) are
built when ``ui.engine`` has imported torch on a pool thread, which starts when the window shows.
Until then their docks say so, and an action that needs them waits for it (``when_engine_ready``).
"""

from __future__ import annotations

import contextlib
import copy
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QToolBar,
)

from cnnstudio import Project, StudioError, list_templates, new_project
from cnnstudio.params import format_bytes, human
from cnnstudio.progress import TaskState
from cnnstudio.shapes import format_shape
from cnnstudio.templates import get_template
from ui.app_settings import AppSettings
from ui.background import Jobs
from ui.document import ProjectDocument
from ui.editor.backbone_dialog import BackboneDialog
from ui.editor.block_actions import BlockActions
from ui.editor.canvas import ModelCanvas
from ui.editor.clipboard import ClipboardActions
from ui.editor.commands import (
    DuplicateLayersCommand,
    InsertLayerCommand,
    OpenGraphCommand,
    RemoveLayersCommand,
    ReplaceModelCommand,
    SetBackboneCommand,
)
from ui.editor.palette import PalettePanel
from ui.editor.properties import PropertyPanel
from ui.engine import LOADING_TEXT, EngineLoader, torch_imported
from ui.icons import clear_cache, icon
from ui.scrolling import VerticalScroll
from ui.theme import THEMES, apply_theme, set_role
from ui.training.shortcuts import RUN_KEYS

if TYPE_CHECKING:  # the views that need torch: imported when the engine is loaded
    from cnnstudio.progress import TaskState as EngineLoad
    from ui.data_view import DataPanel
    from ui.export_dialog import ExportDialog
    from ui.inspector import InspectorView
    from ui.predict_view import PredictView
    from ui.training.panel import TrainPanel
    from ui.training.sweep_dialog import SweepDialog


def project_folder_refusal(folder: Path) -> str | None:
    """Why ``folder`` cannot take a saved project, or None: a file of that name, or a folder
    with other things in it and no project (a project's files would be mixed with them)."""
    if folder.is_file():
        return f"{folder} is a file: give the project a folder name"
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "project.json").is_file():
        return (
            f"{folder} has other files in it: give a new folder name (it is made for you) "
            "or choose an empty folder"
        )
    return None


class MainWindow(QMainWindow):
    """The top-level window over one project."""

    weights_imported = Signal(object)  # the folder of the run made from the weights
    weights_import_failed = Signal(str)

    engine_ready = Signal()  # torch is loaded and the Data, Train, Inspect, Predict views built

    def __init__(
        self,
        project: Project | None = None,
        settings: AppSettings | None = None,
        load_engine: Callable[[EngineLoad], None] | None = None,
    ) -> None:
        """``load_engine`` imports the engine on a pool thread (``ui.engine.import_engine``
        unless given: a test gives one that holds it back)."""
        super().__init__()
        self.settings = settings or AppSettings()
        self.document = ProjectDocument(project or new_project(), self)
        self.data_panel: DataPanel | None = None  # these four: once the engine is loaded
        self.train_panel: TrainPanel | None = None
        self.inspector: InspectorView | None = None
        self.predict_view: PredictView | None = None
        self.torch_at_show: bool | None = None  # whether torch was imported when first shown
        self.engine = EngineLoader(self, self._show_engine_status, load_engine)
        self._build_ui()
        self._build_actions()
        self._connect()
        self._restore_layout()
        self._update_title()
        self.document.request_analysis()
        self._warmup = Jobs(self)
        self._imports = Jobs(self)
        self._imports.finished.connect(self._on_weights_imported)
        self._imports.failed.connect(self._on_weights_import_failed)
        if load_engine is None and torch_imported():
            self.engine.start()  # torch is here already (tests, a second window): views at once

    # Building

    def _build_ui(self) -> None:
        offscreen = QApplication.platformName() == "offscreen"  # no real screen: tests, pictures
        available = self.screen().availableGeometry().size()
        self.resize(QSize(1280, 820) if offscreen else first_size(available))
        self.setDockNestingEnabled(True)
        # the right column (Properties, Data) runs the whole height: the Data view is tall, and
        # the Train view below the editor keeps the width its curves need
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setAcceptDrops(True)
        self.canvas = ModelCanvas(self.document, self)
        self.setCentralWidget(self.canvas)
        self.palette_panel = PalettePanel(self)
        self.property_panel = PropertyPanel(self.document, self)
        self.palette_dock = self._dock(
            "Layers", "palette", self.palette_panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.property_dock = self._dock(
            "Properties", "properties", self.property_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        right = Qt.DockWidgetArea.RightDockWidgetArea
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        self.data_dock = self._dock("Data", "data", self._loading_label(), right)
        self.train_dock = self._dock("Train", "train", self._loading_label(), bottom)
        self.inspect_dock = self._dock("Inspect", "inspect", self._loading_label(), bottom)
        self.tabifyDockWidget(self.train_dock, self.inspect_dock)
        self.predict_dock = self._dock("Predict", "predict", self._loading_label(), bottom)
        self.tabifyDockWidget(self.inspect_dock, self.predict_dock)
        self.train_dock.raise_()
        self.tabifyDockWidget(self.property_dock, self.data_dock)
        self.property_dock.raise_()
        self.device_label = QLabel(self)
        self.path_label = QLabel(self)
        self.totals_label = QLabel(self)
        bar = self.statusBar()
        bar.addWidget(self.totals_label, 1)
        bar.addPermanentWidget(self.path_label)
        bar.addPermanentWidget(self.device_label)
        self.device_label.setText(LOADING_TEXT)

    def _loading_label(self) -> QLabel:
        label = QLabel(LOADING_TEXT, self)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        set_role(label, "muted")
        return label

    def _build_engine_views(self) -> None:
        """The views that need torch, in the docks that waited for them (on ``engine.loaded``)."""
        from ui.data_view import DataPanel
        from ui.inspector import InspectorView
        from ui.predict_view import PredictView
        from ui.training.panel import TrainPanel

        self.data_panel = DataPanel(self.document, self)
        data_scroll = VerticalScroll(self.data_panel, self)
        data_scroll.scroll_wheel_over(self.data_panel.chart)
        self.train_panel = TrainPanel(self.document, self)
        self.train_panel.save_first = self._offer_save_for_training
        self.train_panel.image_source_for = self._image_source_for
        self.train_panel.busy_elsewhere = self._train_refusal
        self.inspector = InspectorView(self)
        self.predict_view = PredictView(self)
        for dock, view in ((self.data_dock, data_scroll), (self.train_dock, self.train_panel),
                           (self.inspect_dock, self.inspector),
                           (self.predict_dock, self.predict_view)):  # fmt: skip
            dock.widget().deleteLater()
            dock.setWidget(view)

    def _dock(self, title: str, name: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None, icon_name: str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if icon_name:
            action.setIcon(icon(icon_name))
            action.setProperty("icon_name", icon_name)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self.new_action = self._action(
            "&New", self.new_project, QKeySequence.StandardKey.New, "new"
        )
        self.open_action = self._action(
            "&Open…", self.open_project_dialog, QKeySequence.StandardKey.Open, "open"
        )
        self.save_action = self._action(
            "&Save", self.save_project, QKeySequence.StandardKey.Save, "save"
        )
        self.save_as_action = self._action(
            "Save &As…", self.save_project_as, QKeySequence("Ctrl+Shift+S")
        )
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.export_action = self._action("&Export…", self.show_export_dialog, "Ctrl+E", "export")
        self.open_image_action = self._action(
            "Open &Image…", self.open_image_dialog, QKeySequence("Ctrl+Shift+O"), "open"
        )
        self.open_image_action.setToolTip(
            "Inspect an image: its predicted classes, feature maps and where the network looks"
        )
        self.import_action = self._action("&Import Weights…", self.import_weights_dialog)
        self.import_action.setToolTip(
            "Load a .safetensors or state-dict file into the model as a new run"
        )
        self.undo_action = self.document.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_action.setIcon(icon("undo"))
        self.undo_action.setProperty("icon_name", "undo")
        self.redo_action = self.document.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.redo_action.setIcon(icon("redo"))
        self.redo_action.setProperty("icon_name", "redo")
        self.delete_action = self._action(
            "&Delete", self.delete_selected, QKeySequence.StandardKey.Delete, "delete"
        )
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.canvas.addAction(self.delete_action)
        self.duplicate_action = self._action(
            "D&uplicate", self.duplicate_selected, QKeySequence("Ctrl+D"), "duplicate"
        )
        self.zoom_in_action = self._action(
            "Zoom &In", lambda: self.canvas.zoom_by(1.2), QKeySequence.StandardKey.ZoomIn, "zoom-in"
        )
        self.zoom_out_action = self._action(
            "Zoom &Out",
            lambda: self.canvas.zoom_by(1 / 1.2),
            QKeySequence.StandardKey.ZoomOut,
            "zoom-out",
        )
        self.fit_action = self._action(
            "&Fit Model", self.canvas.zoom_to_fit, QKeySequence("Ctrl+0"), "fit"
        )
        self.clipboard = ClipboardActions(self.document, self.canvas, self)
        self._build_menus()
        self._build_run_menu()
        self._build_toolbar()
        self._fill_recent_menu()

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions([self.new_action, self.open_action])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addSeparator()
        file_menu.addActions([self.save_action, self.save_as_action])
        file_menu.addSeparator()
        file_menu.addAction(self.open_image_action)
        file_menu.addActions([self.import_action, self.export_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menu.addMenu("&Edit")
        edit_menu.addActions([self.undo_action, self.redo_action])
        edit_menu.addSeparator()
        edit_menu.addActions(self.clipboard.actions())
        edit_menu.addActions([self.delete_action, self.duplicate_action])
        self.block_actions = BlockActions(self)
        edit_menu.addSeparator()
        edit_menu.addActions(self.block_actions.actions)
        model_menu = menu.addMenu("&Model")
        templates = model_menu.addMenu(icon("template"), "&Templates")
        for name in list_templates():
            action = templates.addAction(name)
            action.setToolTip(get_template(name).description)
            action.triggered.connect(lambda _c=False, n=name: self.apply_template(n))
        model_menu.addAction(icon("backbones"), "Choose &Backbone…", self.choose_backbone)
        view_menu = menu.addMenu("&View")
        view_menu.addActions([self.zoom_in_action, self.zoom_out_action, self.fit_action])
        self._add_navigation_actions(view_menu)
        view_menu.addSeparator()
        docks = (self.palette_dock, self.property_dock, self.data_dock, self.train_dock,
                 self.inspect_dock, self.predict_dock)  # fmt: skip
        for dock in docks:
            view_menu.addAction(dock.toggleViewAction())
        theme_menu = view_menu.addMenu("&Theme")
        self.theme_actions = QActionGroup(self)  # exclusive: the current theme is marked
        for theme in THEMES:
            action = theme_menu.addAction(theme.capitalize())
            action.setCheckable(True)
            action.setChecked(theme == self.settings.theme())
            action.setData(theme)
            self.theme_actions.addAction(action)
            action.triggered.connect(lambda _c=False, t=theme: self.set_theme(t))

    def _build_run_menu(self) -> None:
        """Run: Train, Pause, Stop, Resume from Checkpoint (the Train view's actions, with their
        shortcuts), between Model and View. Until the Train view is built, Train and Resume wait
        for it; Pause and Stop have no run to act on."""
        view_menu = next(a for a in self.menuBar().actions() if a.text() == "&View")
        run_menu = QMenu("&Run", self)
        self.menuBar().insertMenu(view_menu, run_menu)
        self.run_menu = run_menu
        self.sweep_dialog: SweepDialog | None = None
        self.sweep_action = self._action("S&weep…", self.show_sweep_dialog)
        self.sweep_action.setToolTip("Train a grid or random search of settings, run after run")
        train, pause, stop, resume = (
            QAction(text, run_menu)
            for text in ("&Train", "&Pause", "&Stop", "&Resume from Checkpoint")
        )
        for action, keys in ((train, RUN_KEYS["train"]), (pause, RUN_KEYS["pause"]),
                             (stop, RUN_KEYS["stop"])):  # fmt: skip
            action.setShortcuts([QKeySequence(key) for key in keys])
        pause.setEnabled(False)
        stop.setEnabled(False)
        train.triggered.connect(lambda: self._when_train_panel("Training", 0))
        resume.triggered.connect(lambda: self._when_train_panel("Resuming", 3))
        self._fill_run_menu([train, pause, stop, resume])

    def _fill_run_menu(self, run_actions: list[QAction]) -> None:
        self.run_menu.clear()  # deletes the stand-ins the menu owns
        self.run_menu.addActions(run_actions[:3])
        self.run_menu.addSeparator()
        self.run_menu.addAction(run_actions[3])
        self.run_menu.addSeparator()
        self.run_menu.addAction(self.sweep_action)

    def _when_train_panel(self, what: str, index: int) -> None:
        """A Run menu action used before the Train view was built: its own, once it is."""
        self.when_engine_ready(what, lambda: self.train_panel.run_actions[index].trigger())

    def _add_navigation_actions(self, view_menu) -> None:
        """The whole-graph zoom and the overview's toggle (the canvas's navigation)."""
        self.whole_graph_action = self._action(
            "&Whole Graph", self.canvas.zoom_whole, QKeySequence("Ctrl+9"), "fit"
        )
        self.overview_action = QAction("&Overview", self, checkable=True, checked=True)
        self.overview_action.setToolTip("A small picture of the whole graph when it does not fit")
        self.overview_action.toggled.connect(self.canvas.overview.set_enabled)
        view_menu.addActions([self.whole_graph_action, self.overview_action])
        self.zoom_in_action.setShortcuts([QKeySequence.StandardKey.ZoomIn, QKeySequence("Ctrl+=")])

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("toolbar_main")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        toolbar.addActions([self.new_action, self.open_action, self.save_action])
        toolbar.addSeparator()
        toolbar.addActions([self.undo_action, self.redo_action])
        toolbar.addSeparator()
        toolbar.addActions([self.duplicate_action, self.delete_action])
        toolbar.addSeparator()
        toolbar.addActions([self.zoom_out_action, self.zoom_in_action, self.fit_action])
        self.addToolBar(toolbar)

    def _connect(self) -> None:
        self.canvas.selection_changed.connect(self._on_canvas_selection_changed)
        self.canvas.wiring_message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.palette_panel.kind_activated.connect(self._on_palette_kind_activated)
        self.document.analysis_ready.connect(self._on_analysis_ready)
        self.document.analysis_failed.connect(self._on_analysis_failed)
        self.document.activations_ready.connect(self._on_activations_ready)
        self.document.dirty_changed.connect(lambda _d: self._update_title())
        self.document.project_replaced.connect(self._update_title)
        self.document.project_replaced.connect(self._update_inspector_source)
        self.document.class_names_changed.connect(self._update_inspector_source)
        self.engine.loaded.connect(self._on_engine_loaded)
        self.engine.failed.connect(self._on_engine_failed)

    def _connect_engine_views(self) -> None:
        self.train_panel.runs_view.selection_changed.connect(self._update_inspector_source)
        self.train_panel.run_finished.connect(self._update_inspector_source)
        self.train_panel.run_started.connect(self._update_inspector_source)
        self.train_panel.epoch_ended.connect(self._update_inspector_source)
        self.train_panel.inspect_requested.connect(self._on_inspect_requested)
        self.data_panel.sample_activated.connect(self._on_inspect_requested)
        self.predict_view.inspect_requested.connect(self._on_inspect_requested)

    # The engine (torch), loaded after the window shows

    def engine_loaded(self) -> bool:
        """Whether torch is loaded and the Data, Train, Inspect and Predict views are built."""
        return self.train_panel is not None

    def when_engine_ready(self, what: str, action: Callable[[], Any], silent: bool = False) -> Any:
        """Run ``action`` (which needs torch's views) now, or once torch has loaded, the window
        showing meanwhile that ``what`` waits for it; the action's result when it ran now."""
        return self.engine.when_loaded(what, action, silent)

    def _on_engine_loaded(self) -> None:
        self._build_engine_views()
        self._connect_engine_views()
        self._fill_run_menu(self.train_panel.run_actions)
        self.device_label.setText(_device_summary())
        self._update_inspector_source()
        QTimer.singleShot(WARM_UP_DELAY_MS, self._warmup, lambda: self._warmup.submit(_warm_up))
        self.engine_ready.emit()

    def _on_engine_failed(self, message: str) -> None:
        text = f"PyTorch could not be loaded: {message}"
        self.device_label.setText("PyTorch not loaded")
        self.device_label.setToolTip(text)
        for dock in (self.data_dock, self.train_dock, self.inspect_dock, self.predict_dock):
            dock.widget().setText(f"{text}\nThe editor works; training and inspecting need it.")
            set_role(dock.widget(), "error")

    def _show_engine_status(self, text: str | None) -> None:
        if text is None:
            self.statusBar().clearMessage()
        else:
            self.statusBar().showMessage(text)

    def _restore_layout(self) -> None:
        geometry, state = self.settings.geometry(), self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        else:  # first start: sized once the window is shown (before, the docks take their hints)
            self._first_start = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.torch_at_show is None:  # the first show: the editor's path is checked torch-free
            self.torch_at_show = "torch" in sys.modules
            QTimer.singleShot(0, self.engine, self.engine.start)  # after this first paint
        if getattr(self, "_first_start", False):
            self._first_start = False
            QTimer.singleShot(0, self._first_layout)

    def _first_layout(self) -> None:
        """The editor gets most of the room; the curves and the right column stay readable."""
        horizontal, vertical = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
        self.resizeDocks(
            [self.palette_dock, self.property_dock], [210, side_width(self.width())], horizontal
        )
        self.resizeDocks([self.train_dock], [bottom_height(self.height())], vertical)

    # Slots

    def _on_canvas_selection_changed(self, ids: list[str]) -> None:
        self.property_panel.show_node(ids[0] if len(ids) == 1 else None)
        if len(ids) == 1:
            self.property_dock.raise_()

    def _on_palette_kind_activated(self, kind: str) -> None:
        selected = self.canvas.selected_ids()
        spec = self.document.spec
        index = spec.index(selected[-1]) + 1 if selected else len(spec.nodes)
        command = InsertLayerCommand(self.document, kind, index)
        self.document.push(command)
        self.canvas.select([command.node.id])

    def _on_analysis_failed(self, message: str) -> None:
        self.totals_label.setText(f"The model could not be analysed: {message}")
        set_role(self.totals_label, "error")

    def _on_analysis_ready(self, analysis) -> None:
        if self.totals_label.property("role") == "error":
            set_role(self.totals_label, None)
        state = (
            "valid"
            if analysis.valid
            else (f"{len(analysis.errors)} problem{'s' if len(analysis.errors) > 1 else ''}")
        )
        frozen = analysis.total_params - analysis.trainable_params
        frozen_text = f" ({human(frozen)} frozen)" if frozen else ""
        self.totals_label.setText(
            f"{analysis.total_params:,} parameters{frozen_text} · {human(analysis.flops)} FLOPs "
            f"· {self._activations_text()} · input "
            f"{format_shape(analysis.input_shape)} → {format_shape(analysis.output_shape)} · "
            f"{state}"
        )

    def _on_activations_ready(self, _measured) -> None:
        if self.document.analysis is not None and self.document.analysis_is_current:
            self._on_analysis_ready(self.document.analysis)

    def _activations_text(self) -> str:
        """The activation memory per image (what autograd keeps for backward), once measured."""
        saved, error = self.document.activations, self.document.activations_error
        if saved is not None:
            return f"{format_bytes(saved.per_image_bytes)} activations per image"
        return f"activations not measured ({error})" if error else "measuring activations…"

    # Edits

    def delete_selected(self) -> None:
        ids = [i for i in self.canvas.selected_ids() if "." not in i]  # not a block's inner layer
        if ids:
            self.document.push(RemoveLayersCommand(self.document, ids))
        else:
            self.canvas.delete_selected_wires()

    def duplicate_selected(self) -> None:
        ids = [i for i in self.canvas.selected_ids() if "." not in i]
        if ids:
            command = DuplicateLayersCommand(self.document, ids)
            self.document.push(command)
            self.canvas.select(command.new_ids)

    def apply_template(self, name: str) -> None:
        spec = self.document.spec
        template = get_template(name)
        starts_pretrained = template.create(spec.num_classes).nodes[0].kind == "Backbone"
        shape = template.input_shape if starts_pretrained else spec.input_shape
        self.document.push(
            ReplaceModelCommand(
                self.document, template.create(spec.num_classes, shape), f"Template {name}"
            )
        )

    def choose_backbone(self) -> None:
        dialog = BackboneDialog(self)
        accepted = dialog.exec()
        if accepted and dialog.opened is not None:
            self.open_as_graph(dialog.opened)
        elif accepted and dialog.chosen:
            info = next(r for r in dialog.rows if r.name == dialog.chosen)
            self.document.push(SetBackboneCommand(self.document, info.name, info.input_size))

    def open_as_graph(self, opened) -> None:
        """A network opened for editing (the backbone chooser's "open as editable graph")
        replaces the model, one undo step; its weights become a run at the next save."""
        self.document.push(OpenGraphCommand(self.document, opened))
        self.canvas.zoom_to_fit()
        self.statusBar().showMessage(
            f"Opened {opened.source} as an editable graph ({len(opened.imported.spec.nodes)} "
            f"layers); its {opened.weights} weights become a run when the project is saved",
            15000,
        )

    # Dropping an image folder anywhere on the window

    def dragEnterEvent(self, event) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:  # a folder becomes the data; files go to the inspector (which explains misfits)
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        if paths[0].is_dir():
            self.when_engine_ready("Reading the folder", lambda: self._drop_folder(paths[0]))
        else:
            self.when_engine_ready("Inspecting the image", lambda: self._drop_files(paths))

    def _drop_folder(self, folder: Path) -> None:
        self.data_dock.raise_()
        self.data_panel.choose_folder(folder)

    def _drop_files(self, paths: list[Path]) -> None:
        self.inspect_dock.show()
        self.inspect_dock.raise_()
        self.inspector.inspect_files(paths)

    def _image_source_for(self, project_dict: dict):
        """Images for a run's results gallery: the Data view's dataset, when the run trained on
        the same data, split and input size as the project now has."""
        dataset = self.data_panel.dataset
        if dataset is None:
            return None
        data = project_dict.get("data", {}) if isinstance(project_dict, dict) else {}
        now = self.document.project.data
        same = (
            data.get("source") == now.source
            and data.get("path") == now.path
            and data.get("val_fraction") == now.val_fraction
            and data.get("split_seed") == now.split_seed
            and list(project_dict.get("model", {}).get("input_shape", []))
            == list(dataset.input_shape)
        )
        if not same:
            return None
        from cnnstudio.data import images_at  # loaded: the Data view has read a dataset

        return lambda indices: images_at(dataset, indices)

    # Sweeps (Run > Sweep…)

    def show_sweep_dialog(self) -> SweepDialog | None:
        """Run > Sweep…: the sweep dialog (one per window; a sweep goes on when it is hidden);
        None while it waits for torch."""
        return self.when_engine_ready("The sweep dialog", self._show_sweep_dialog)

    def _show_sweep_dialog(self) -> SweepDialog:
        from ui.training.sweep_dialog import SweepDialog

        if self.sweep_dialog is None:
            self.sweep_dialog = SweepDialog(self.document, self)
            self.sweep_dialog.busy_elsewhere = self._sweep_refusal
            self._connect_sweep(self.sweep_dialog)
        self.sweep_dialog.find_unfinished()
        self.sweep_dialog.show()
        self.sweep_dialog.raise_()
        self.sweep_dialog.activateWindow()
        return self.sweep_dialog

    def _connect_sweep(self, dialog: SweepDialog) -> None:
        """The Train view's curves show the sweep's current run; its run list, each run made."""
        curves = self.train_panel.curves
        dialog.run_started.connect(self._on_sweep_run_started)
        dialog.step_logged.connect(curves.add_step)
        dialog.epoch_ended.connect(curves.add_epoch)
        dialog.sweep_run_ended.connect(lambda _event: self.train_panel.runs_view.refresh())
        dialog.sweep_ended.connect(lambda _ended: curves.flush())
        dialog.progress_changed.connect(self._on_sweep_progress)

    def _on_sweep_progress(self, percent: int, status: str) -> None:
        """The Train view's progress bar and status line follow the sweep (it said "ready")."""
        self.train_panel.controller.show_progress(percent, f"sweep · {status}")

    def _on_sweep_run_started(self, event) -> None:
        self.train_panel.curves.clear()
        self.train_panel.curves.steps_per_epoch = max(1, event.steps_per_epoch)
        self.train_panel.runs_view.refresh()
        self.train_dock.raise_()

    def _sweep_refusal(self) -> str | None:
        """Why a sweep cannot start now: a run, the learning-rate finder or an evaluation is
        going, or the model has problems."""
        if self.train_panel.busy():
            return "The Train view is busy (a run, the learning-rate finder or an evaluation)."
        return self.train_panel.controller.refusal()

    def _train_refusal(self) -> str | None:
        if self.sweep_dialog is not None and self.sweep_dialog.running:
            return "A sweep is running: stop it first (Run > Sweep…)."
        return None

    def _offer_sweep_resume(self) -> None:
        """A project just opened has a sweep that did not finish: offer to continue it."""
        from ui.training.sweep_dialog import unfinished_sweep

        sweep = unfinished_sweep(self.document.project.runs_dir)
        if sweep is None or (self.sweep_dialog is not None and self.sweep_dialog.running):
            return
        answer = QMessageBox.question(
            self, "Continue the sweep?",
            f"Sweep {sweep.id} of this project stopped with {len(sweep.missing)} of "
            f"{len(sweep.runs)} runs left. Continue it now?",
        )  # fmt: skip
        if answer == QMessageBox.StandardButton.Yes:
            self.show_sweep_dialog().resume(sweep)

    # Inspecting and exporting

    def _update_inspector_source(self, *_args) -> None:
        """Inspect the run in progress (its weights now), else the selected run, else the latest
        run with a checkpoint."""
        from ui.inspector.sources import live_source, run_source

        panel = self.train_panel
        if panel is None:  # called again once the views are built
            return
        worker = panel.runner.worker
        if panel.running and worker is not None and worker.trainer.run_dir is not None:
            self.inspector.set_model_source(live_source(worker.trainer))
            self.predict_view.set_model_source(live_source(worker.trainer))
            return
        chosen = [r for r in panel.runs_view.selected() if r.has_checkpoint]
        if not chosen:
            chosen = [r for r in panel.runs_view.runs if r.has_checkpoint][:1]
        project = self.document.project
        source = run_source(chosen[0].folder, project) if chosen else None
        self.inspector.set_model_source(source)
        self.predict_view.set_model_source(source)

    def _on_inspect_requested(self, image, label: str) -> None:
        self.inspect_dock.show()
        self.inspect_dock.raise_()
        if isinstance(image, Path):  # a file (the Predict view's rows)
            self.inspector.inspect_files([image])
        else:
            self.inspector.inspect_array(image)
        self.statusBar().showMessage(f"Inspecting {label}", 5000)

    def open_image_dialog(self) -> None:
        """File > Open Image: the chosen file goes to the Inspect view, as a dropped one does."""
        self.when_engine_ready("Opening an image", self._open_image_dialog)

    def _open_image_dialog(self) -> None:
        from ui.inspector.view import IMAGE_FILTER

        start = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        path, _ = QFileDialog.getOpenFileName(self, "Inspect an image", start, IMAGE_FILTER)
        if path:
            self._on_inspect_requested(Path(path), Path(path).name)

    def show_export_dialog(self) -> ExportDialog | None:
        """File > Export: the dialog works on its own thread; the window stays usable. None while
        it waits for torch (it opens once torch has loaded)."""
        return self.when_engine_ready("Export", self._show_export_dialog)

    def _show_export_dialog(self) -> ExportDialog:
        from ui.export_dialog import ExportDialog

        dialog = ExportDialog(self.document.project, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def import_weights_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import weights", str(Path.home()),
            "Weights (*.safetensors *.pt *.pth *.bin);;All files (*)",
        )  # fmt: skip
        if path:
            self.import_weights(path)

    def import_weights(self, path: str | Path) -> int:
        """Load a weights file into the model as a new run, off the GUI thread (the job's number;
        0: refused, or waiting for torch)."""
        return self.when_engine_ready("Importing weights", lambda: self._import(path)) or 0

    def _import(self, path: str | Path) -> int:
        if self.document.project.path is None:
            QMessageBox.warning(self, "Cannot import weights", "Save the project first.")
            return 0
        project = copy.deepcopy(self.document.project)
        self.statusBar().showMessage(f"Importing {Path(path).name}…")
        return self._imports.submit(_import_weights, project, Path(path), self.data_panel.dataset)

    def _on_weights_imported(self, _number: int, folder) -> None:
        self.statusBar().showMessage(f"Weights imported as run {folder.name}", 8000)
        self.train_panel.runs_view.refresh(select=folder.name)
        self.train_dock.raise_()
        self.weights_imported.emit(folder)

    def _on_weights_import_failed(self, _number: int, message: str) -> None:
        self.statusBar().clearMessage()
        QMessageBox.warning(self, "Cannot import the weights", message)
        self.weights_import_failed.emit(message)

    def warmed_up(self) -> bool:
        """Whether the background imports made after the window showed are done."""
        return (self._warmup.latest > 0 or self._warmup.closed) and not self._warmup.busy()

    # Files

    def confirm_leaving(self, doing: str = "quit") -> bool:
        """Before the project is left (quit, a new or another project): one question while a run
        trains, that stops it and saves or discards unsaved changes; else ``maybe_save``. False,
        with everything as it was (the run going on), when the user cancels."""
        sweeping = self.sweep_dialog is not None and self.sweep_dialog.running
        if not (self.train_panel is not None and self.train_panel.running) and not sweeping:
            return self.maybe_save()
        what = "A sweep is running" if sweeping else "A run is training"
        text = f"{what}. Stop it and {doing}?\n\nIt stops after its current step and "
        text += "writes a checkpoint, so it can be resumed."
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel
        if self.document.dirty:
            text += f"\n\n{self.document.project.name} has unsaved changes: save them?"
            buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                       | QMessageBox.StandardButton.Cancel)  # fmt: skip
        answer = QMessageBox.question(self, what, text, buttons, QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.Save and not self.save_project():
            return False  # the save failed or was cancelled: the run goes on
        self.statusBar().showMessage("Stopping the run: writing a checkpoint…")
        self.train_panel.stop_and_wait()
        if sweeping:
            self.sweep_dialog.stop_and_wait()
        self.statusBar().clearMessage()
        return True

    def maybe_save(self) -> bool:
        """Ask before unsaved changes are lost; False when the user cancels."""
        if not self.document.dirty:
            return True
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            f"Save the changes to {self.document.project.name} before closing it?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project()
        return True

    def new_project(self) -> None:
        if self.confirm_leaving("start a new project"):
            self.document.replace_project(new_project())

    def open_project_dialog(self) -> None:
        if not self.confirm_leaving("open another project"):
            return
        folder = QFileDialog.getExistingDirectory(
            self, "Open project folder", self._projects_folder()
        )
        if folder:
            self.open_project(folder)

    def open_project(self, folder: str | Path) -> bool:
        try:
            self.document.open(folder)
        except StudioError as error:
            QMessageBox.warning(self, "Cannot open the project", str(error))
            return False
        except Exception as error:  # a bug of ours, but the user must hear of it, not a traceback
            traceback.print_exc()
            QMessageBox.warning(
                self,
                "Cannot open the project",
                f"{folder}: {type(error).__name__}: {error}",
            )
            return False
        self._remember(str(self.document.project.path))
        QTimer.singleShot(
            0, lambda: self.when_engine_ready("", self._offer_sweep_resume, silent=True)
        )
        return True

    def save_project(self) -> bool:
        if self.document.project.path is None:
            return self.save_project_as()
        return self._save(None)

    def save_project_as(self) -> bool:
        """Save into a folder named in the dialog: a new name makes the folder; an existing
        folder is taken when it is empty or holds a project (after asking to replace it)."""
        start = Path(self._projects_folder()) / (self.document.project.name or "project")
        folder, _ = QFileDialog.getSaveFileName(
            self, "Save project as (the project's folder)", str(start), "Project folder (*)"
        )
        if not folder:
            return False
        refusal = project_folder_refusal(Path(folder))
        if refusal:
            QMessageBox.warning(self, "Cannot save the project there", refusal)
            return False
        if (Path(folder) / "project.json").is_file() and Path(folder) != (
            self.document.project.path
        ):
            answer = QMessageBox.question(
                self, "Replace the project?",
                f"{folder} holds a project already. Replace its project.json with this project? "
                "Its runs stay.",
            )  # fmt: skip
            if answer != QMessageBox.StandardButton.Yes:
                return False
        return self._save(folder)

    def _offer_save_for_training(self) -> bool:
        """Train on a project never saved: its runs need its folder, so offer to save it."""
        answer = QMessageBox.question(
            self, "Save the project to train it",
            "A run keeps its checkpoints, curves and results in the project's folder. "
            "Save the project now?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )  # fmt: skip
        return answer == QMessageBox.StandardButton.Save and self.save_project_as()

    def _projects_folder(self) -> str:
        """Where the project dialogs open: beside the last project, else the user's documents."""
        last = self.settings.last_project()
        if last and Path(last).parent.is_dir():
            return str(Path(last).parent)
        return QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)

    def _save(self, folder: str | None) -> bool:
        try:
            self.document.save(folder)
        except StudioError as error:
            QMessageBox.warning(self, "Cannot save the project", str(error))
            return False
        self._remember(str(self.document.project.path))
        self._update_title()
        if self.train_panel is not None:  # else it reads the project's runs when it is built
            self.train_panel.runs_view.set_runs_dir(self.document.project.runs_dir)
            self.train_panel.project_saved()
        return True

    def _remember(self, path: str) -> None:
        self.settings.add_recent(path)
        self.settings.set_last_project(path)
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_projects():
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self._open_recent(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_projects()))

    def _open_recent(self, path: str) -> None:
        if self.confirm_leaving("open another project"):
            self.open_project(path)

    def _update_title(self) -> None:
        project = self.document.project
        self.setWindowTitle(f"{project.name}[*] — CNN Studio")
        self.setWindowModified(self.document.dirty)
        self.path_label.setText(str(project.path) if project.path else "not saved yet")

    def set_theme(self, theme: str) -> None:
        self.settings.set_theme(theme)
        apply_theme(QApplication.instance(), theme)
        clear_cache()
        for action in self.findChildren(QAction):
            name = action.property("icon_name")
            if name:
                action.setIcon(icon(name))
        self.palette_panel.refresh_icons()
        if self.engine_loaded():
            self.train_panel.refresh_theme()
            self.inspector.refresh_theme()
            self.data_panel.refresh_theme()
        self.canvas.rebuild()
        for action in self.theme_actions.actions():
            action.setChecked(action.data() == theme)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.confirm_leaving("quit"):
            event.ignore()
            return
        self.engine.shutdown()
        if self.engine_loaded():
            self.train_panel.shutdown()
            self.inspector.shutdown()
            self.predict_view.shutdown()
            self.data_panel.shutdown()
        if self.sweep_dialog is not None:
            self.sweep_dialog.shutdown()
        self._warmup.shutdown()
        self._imports.shutdown()
        self.document.shutdown()
        self.settings.save_window(self.saveGeometry(), self.saveState())
        event.accept()


WARM_UP_DELAY_MS = 300


DEFAULT_SIZE = QSize(1920, 1200)


def first_size(available: QSize) -> QSize:
    """The window's size on its first start: 1920×1200, or the screen's free area less a margin
    on a smaller screen (1280×800 gave a window taller than the screen, its status bar cut)."""
    return DEFAULT_SIZE.boundedTo(QSize(available.width() - 16, available.height() - 16))


def side_width(window_width: int) -> int:
    """The right column's (Properties, Data) first width: 27 % of the window, 330 to 480 pixels,
    so that at 1280 wide the Train view below the editor keeps room for its three plots."""
    return max(330, min(480, round(0.27 * window_width)))


def bottom_height(window_height: int) -> int:
    """The Train/Inspect/Predict docks' first height: 38 % of the window, 260 to 420 pixels (the
    curves readable, the editor keeping most of the height)."""
    return max(260, min(420, round(0.38 * window_height)))


def _import_weights(_state: TaskState, project, path: Path, dataset):
    """A run from a weights file, normalised as training would normalise the project's data."""
    from cnnstudio.data import class_names
    from cnnstudio.normalization import normalization
    from cnnstudio.runs import import_weights

    if dataset is not None and tuple(dataset.input_shape) == tuple(project.model.input_shape):
        norm = normalization(project.data, project.model, dataset)
        classes = list(dataset.classes)
    else:
        norm = normalization(project.data, project.model)
        classes = class_names(project.data)
    return import_weights(project, path, norm.mean, norm.std, classes)


def _warm_up(_state: TaskState) -> None:
    """Import what the first run and the first inspection need while the user looks at the window:
    torch loads torch._dynamo (creating an optimizer does) and TensorBoard lazily, and importing
    them in the middle of a run stalls the event loop for a quarter of a second."""
    import torch._dynamo
    import torchvision  # noqa: F401

    with contextlib.suppress(ImportError):  # training warns about it when it starts
        import torch.utils.tensorboard  # noqa: F401


def _device_summary() -> str:
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB"
    return f"CPU, {torch.get_num_threads()} threads"
