"""Start CNN Studio from the source tree (`make run`; --self-test, --screenshot DIR). The program
itself is ui.app.main, which the installed `cnnstudio-gui` command runs too."""

from __future__ import annotations

import sys

from ui.app import main

if __name__ == "__main__":
    import multiprocessing

    # the standalone program on Windows and macOS starts DataLoader workers by running itself
    multiprocessing.freeze_support()
    sys.exit(main())
