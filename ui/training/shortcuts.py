"""The Run menu's shortcuts, apart from the Train view so that the window can offer them before
the view (which needs torch) is built."""

from __future__ import annotations

RUN_KEYS = {  # shortcuts of the Run menu; the first of each is shown in the menu
    "train": ("Ctrl+Return", "Ctrl+Enter", "F5"),
    "pause": ("Ctrl+P",),
    "stop": ("Ctrl+.", "Shift+F5"),
}
