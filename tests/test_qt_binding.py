"""The Qt binding itself: a version that leaks references to None aborts the process after a few
thousand event-loop calls, so it must never be the one installed."""

from __future__ import annotations

import sys

from PySide6.QtTest import QTest


def test_event_loop_calls_keep_references_to_none(qapp) -> None:
    before = sys.getrefcount(None)
    for _ in range(300):
        qapp.processEvents()
        QTest.qWait(0)
    assert sys.getrefcount(None) >= before - 50, "this PySide6 leaks references to None"
