"""The learning-rate finder's suggestion: always a rate of the range tested, with a note when the
curve points outside it; and learning rates written as people write them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnstudio import cli
from cnnstudio.lr_finder import suggest_lr, suggestion_note
from cnnstudio.params import format_rate
from cnnstudio.project import new_project


def rates(start: float = 1e-7, end: float = 10.0, steps: int = 100) -> list[float]:
    ratio = (end / start) ** (1 / (steps - 1))
    return [start * ratio**i for i in range(steps)]


def test_a_loss_that_only_rises_suggests_the_smallest_rate_and_says_so() -> None:
    # the 156-image folder: the lowest loss at the very start gave a tenth of it, 1e-8 < 1e-7
    lrs = rates()
    losses = [2.0 + i * 0.01 for i in range(len(lrs))]
    assert suggest_lr(lrs, losses) == lrs[0] == 1e-7
    note = suggestion_note(lrs, losses, diverged=False)
    assert note.startswith("the loss was lowest at or near the smallest rate tested (1e-7)")
    assert "try a lower start" in note


def test_a_loss_that_still_falls_at_the_end_says_so() -> None:
    lrs = rates()
    losses = [3.0 - i * 0.01 for i in range(len(lrs))]
    assert lrs[0] <= suggest_lr(lrs, losses) <= lrs[-1]
    assert "still fell at the largest rate tested (10)" in suggestion_note(lrs, losses, False)


def test_a_clear_dip_inside_the_range_has_no_note() -> None:
    lrs = rates()
    losses = [2.3 - 2.0 / (1 + math.exp(-(math.log10(lr) + 3) * 3)) for lr in lrs]
    losses = [loss + (0 if lr < 1 else 5 * (lr - 1)) for loss, lr in zip(losses, lrs, strict=True)]
    suggestion = suggest_lr(lrs, losses)
    assert 1e-5 < suggestion < 1e-1
    assert suggestion_note(lrs, losses, diverged=True) == "stopped when the loss diverged"
    assert suggestion_note(lrs, losses, diverged=False) == ""


@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=120))
def test_the_suggestion_is_always_a_rate_of_the_range_tested(losses: list[float]) -> None:
    lrs = rates(steps=max(2, len(losses)))[: len(losses)]
    assert lrs[0] <= suggest_lr(lrs, losses) <= lrs[-1]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(3e-4, "3e-4"), (1.2e-3, "1.2e-3"), (1.25e-3, "1.25e-3"), (1e-8, "1e-8"), (0.01, "0.01"),
     (0.3, "0.3"), (10.0, "10"), (0.0, "0"), (5e-4, "5e-4")],
)  # fmt: skip
def test_rates_are_written_as_people_write_them(value: float, shown: str) -> None:
    assert format_rate(value) == shown


@given(st.floats(1e-12, 1e4))
def test_a_written_rate_reads_back_close_to_itself(value: float) -> None:
    shown = format_rate(value)
    assert float(shown) == pytest.approx(value, rel=5e-3)
    assert len(shown) <= 8 and float(shown) > 0


def test_lr_find_refuses_a_start_above_the_end(tmp_path: Path, capsys) -> None:
    new_project("lenet5", path=tmp_path / "proj").save()
    args = ["lr-find", str(tmp_path / "proj"), "--start-lr", "1", "--end-lr", "1e-3"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--start-lr (1) must be below --end-lr (1e-3)")
    assert len(err.splitlines()) == 1


@pytest.mark.slow
def test_lr_find_says_when_the_best_rate_is_below_the_range(tmp_path: Path, capsys) -> None:
    new_project("lenet5", path=tmp_path / "proj").save()
    args = ["lr-find", str(tmp_path / "proj"), "--steps", "8", "--device", "cpu"]
    assert cli.main([*args, "--start-lr", "3", "--end-lr", "100"]) == 0  # diverges at once
    out = capsys.readouterr().out
    assert out.startswith("suggested learning rate: 3 (curve in ")
    assert "note: the loss was lowest at or near the smallest rate tested (3)" in out
