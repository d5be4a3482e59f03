"""Application preferences (not project settings) in QSettings, behind one small module."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings

MAX_RECENT = 8


class AppSettings:
    """Recent projects, the last project, the window layout and the theme."""

    def __init__(self, settings: QSettings | None = None) -> None:
        self.q = settings or QSettings("CNN Studio", "CNN Studio")

    def recent_projects(self) -> list[str]:
        value = self.q.value("recent_projects", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or []]

    def add_recent(self, path: str) -> None:
        recent = [p for p in self.recent_projects() if p != path]
        self.q.setValue("recent_projects", [path, *recent][:MAX_RECENT])

    def last_project(self) -> str | None:
        value = self.q.value("last_project")
        return str(value) if value else None

    def set_last_project(self, path: str | None) -> None:
        self.q.setValue("last_project", path or "")

    def theme(self) -> str:
        return str(self.q.value("theme", "system"))

    def set_theme(self, theme: str) -> None:
        self.q.setValue("theme", theme)

    def geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self.q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)
        self.q.sync()
