"""The layer palette: every kind in the catalogue, grouped and searchable; drag one onto the
canvas (or double-click it to add it after the selection)."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QMimeData, Qt, Signal
from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from cnnstudio.blocks import BUILTIN_BLOCKS
from cnnstudio.layers import GROUPS, LAYER_KINDS
from ui.editor.canvas import MIME_BLOCK, MIME_KIND
from ui.icons import GROUP_ICONS, icon

KIND_ROLE = Qt.ItemDataRole.UserRole + 1
BLOCK_ROLE = Qt.ItemDataRole.UserRole + 2
BLOCKS_GROUP = "Blocks"


class _KindTree(QTreeWidget):
    def mimeData(self, items: list[QTreeWidgetItem]) -> QMimeData:
        mime = QMimeData()
        kinds = [item.data(0, KIND_ROLE) for item in items if item.data(0, KIND_ROLE)]
        if kinds:
            mime.setData(MIME_KIND, QByteArray(kinds[0].encode()))
            mime.setText(kinds[0])
        blocks = [item.data(0, BLOCK_ROLE) for item in items if item.data(0, BLOCK_ROLE)]
        if blocks and not kinds:
            mime.setData(MIME_BLOCK, QByteArray(blocks[0].encode()))
            mime.setText(blocks[0])
        return mime

    def mimeTypes(self) -> list[str]:
        return [MIME_KIND, MIME_BLOCK]


class PalettePanel(QWidget):
    """Layer kinds by group, with a search field."""

    kind_activated = Signal(str)
    block_activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._build_ui()
        self._connect()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search layers")
        self.search_action = self.search.addAction(
            icon("search"), QLineEdit.ActionPosition.LeadingPosition
        )
        self.search.setClearButtonEnabled(True)
        self.tree = _KindTree(self)
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QTreeWidget.DragDropMode.DragOnly)
        self.tree.setIndentation(12)
        self.tree.setRootIsDecorated(True)
        for group in GROUPS:
            top = QTreeWidgetItem([group])
            top.setIcon(0, icon(GROUP_ICONS[group]))
            top.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.tree.addTopLevelItem(top)
            for kind in (k for k in LAYER_KINDS.values() if k.group == group):
                item = QTreeWidgetItem([kind.name])
                item.setData(0, KIND_ROLE, kind.name)
                item.setToolTip(0, kind.help)
                item.setIcon(0, icon(GROUP_ICONS[group]))
                top.addChild(item)
        self.blocks_top = QTreeWidgetItem([BLOCKS_GROUP])
        self.blocks_top.setIcon(0, icon("model"))
        self.blocks_top.setFlags(Qt.ItemFlag.ItemIsEnabled)
        self.tree.addTopLevelItem(self.blocks_top)
        self.set_project_blocks([])
        self.tree.expandAll()
        layout.addWidget(self.search)
        layout.addWidget(self.tree)

    def _connect(self) -> None:
        self.search.textChanged.connect(self._on_search_changed)
        self.tree.itemDoubleClicked.connect(self._on_item_double_clicked)

    def refresh_icons(self) -> None:
        """Redraw the icons in the current theme's colours."""
        self.search_action.setIcon(icon("search"))
        for g in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(g)
            glyph = icon(GROUP_ICONS.get(top.text(0), "model"))
            top.setIcon(0, glyph)
            for i in range(top.childCount()):
                top.child(i).setIcon(0, glyph)

    def kind_items(self) -> dict[str, QTreeWidgetItem]:
        found = {}
        for g in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(g)
            for i in range(top.childCount()):
                if top.child(i).data(0, KIND_ROLE):
                    found[top.child(i).data(0, KIND_ROLE)] = top.child(i)
        return found

    def visible_kinds(self) -> list[str]:
        return [k for k, item in self.kind_items().items() if not item.isHidden()]

    def _on_search_changed(self, text: str) -> None:
        needle = text.strip().lower()
        for g in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(g)
            shown = 0
            for i in range(top.childCount()):
                item = top.child(i)
                kind = LAYER_KINDS.get(item.data(0, KIND_ROLE))
                if kind is None:  # a block
                    match = not needle or needle in f"{item.text(0)} block".lower()
                    item.setHidden(not match)
                    shown += match
                    continue
                match = (
                    not needle
                    or needle in kind.name.lower()
                    or needle in kind.help.lower()
                    or needle in kind.group.lower()
                )
                item.setHidden(not match)
                shown += match
            top.setHidden(shown == 0)

    def _on_item_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        kind = item.data(0, KIND_ROLE)
        if kind:
            self.kind_activated.emit(kind)
        elif item.data(0, BLOCK_ROLE):
            self.block_activated.emit(item.data(0, BLOCK_ROLE))

    def set_project_blocks(self, names: list[str]) -> None:
        """The "Blocks" section: the project's own blocks, then the built-in ones it lacks."""
        if [
            self.blocks_top.child(i).data(0, BLOCK_ROLE)
            for i in range(self.blocks_top.childCount())
        ] == block_names(names):
            return
        self.blocks_top.takeChildren()
        for name in block_names(names):
            item = QTreeWidgetItem([name])
            item.setData(0, BLOCK_ROLE, name)
            own = name in names
            item.setToolTip(
                0,
                f"The project's block {name!r}: double-click to add a use"
                if own
                else f"The built-in {name} block: double-click to add it to the model",
            )
            item.setIcon(0, icon("model"))
            self.blocks_top.addChild(item)

    def block_items(self) -> dict[str, QTreeWidgetItem]:
        top = self.blocks_top
        return {top.child(i).data(0, BLOCK_ROLE): top.child(i) for i in range(top.childCount())}


def block_names(project_blocks: list[str]) -> list[str]:
    return [*project_blocks, *(n for n in BUILTIN_BLOCKS if n not in project_blocks)]
