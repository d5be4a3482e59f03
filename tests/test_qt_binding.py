"""The Qt binding itself: a version that leaks references to None aborts the process after a few
thousand event-loop calls, so it must never be the one installed."""

from __future__ import annotations

import gc
import sys

import pytest
from PySide6.QtTest import QTest


# From 3.12 None is immortal (PEP 683): its count no longer moves, so neither can the leak show
# in it nor can the lost references free None and abort the process.
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None's reference count is fixed from 3.12")
def test_event_loop_calls_keep_references_to_none(qapp) -> None:
    # Earlier tests leave garbage (closed windows, finished jobs) whose collection frees references
    # to None too: collect it first, and keep the collector out of the measured calls.
    qapp.processEvents()
    gc.collect()
    gc.disable()
    try:
        before = sys.getrefcount(None)
        for _ in range(300):
            qapp.processEvents()
            QTest.qWait(0)
        after = sys.getrefcount(None)
    finally:
        gc.enable()
    assert after >= before - 50, "this PySide6 leaks references to None"
