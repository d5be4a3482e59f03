"""benchmarks/gpu_check.py, the one command a GPU session runs: on the CPU with --quick it prints
one table and writes the same as JSON, each check either ran or says why it was skipped; a check
that fails is a row with its error, and one that would pass the time budget is skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def gpu_check():
    """benchmarks/gpu_check.py as a module."""
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return sys.modules[spec.name]


def cpu_options(module, budget_s: float = 480.0):
    import torch

    return module.Options(torch.device("cpu"), quick=True, budget_s=budget_s)


def test_a_failing_check_is_a_row_with_its_error() -> None:
    module = gpu_check()

    def broken(options):
        raise ValueError("the check broke\nsecond line")

    row = module.run_check(module.Check("broken", broken, (1, 1, 1)), cpu_options(module), 0.0)
    assert (row.status, row.result) == ("error", "ValueError: the check broke")
    assert "ValueError" in row.figures["traceback"]


def test_a_check_past_the_budget_is_skipped_and_says_so() -> None:
    module = gpu_check()
    ran = []
    check = module.Check("long", lambda options: ran.append(1), (10, 10, 10))
    row = module.run_check(check, cpu_options(module, budget_s=100.0), 95.0)
    assert row.status == "skipped" and "budget" in row.result and "95 s spent" in row.result
    assert ran == []


def test_a_check_that_cannot_run_here_says_why() -> None:
    module = gpu_check()
    memory = next(c for c in module.CHECKS if c.name == "memory estimate vs measured")
    row = module.run_check(memory, cpu_options(module), 0.0)
    assert row.status == "skipped" and row.result.startswith("skipped, no CUDA: ")


def test_asking_for_cuda_without_it_is_one_line_and_exit_2(tmp_path) -> None:
    module = gpu_check()
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert module.main(["--device", "cuda", "--json", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_cpu_quick_prints_one_table_and_writes_it_as_json(tmp_path) -> None:
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
         "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["environment"]["device"] == "cpu" and report["environment"]["quick"] is True
    rows = {row["check"]: row for row in report["checks"]}
    assert list(rows) == [check.name for check in gpu_check().CHECKS]
    for name, row in rows.items():
        assert row["status"] in ("ran", "skipped"), f"{name}: {row['result']}"
        if row["status"] == "skipped":  # and says why
            assert row["result"].startswith("skipped, ") and len(row["result"]) > 20
        assert name in done.stdout and row["result"] in done.stdout  # the same in the table
    assert rows["torchrun, one process"]["result"].startswith("gloo, world 1, all_reduce 1")
    assert rows["memory estimate vs measured"]["result"].startswith("skipped, no CUDA")
    assert rows["out of memory on purpose"]["result"].startswith("skipped, no CUDA")
    trainer = rows["Trainer vs plain loop, SimpleCNN 32×32"]["figures"]
    assert trainer["Trainer"] > 0 and trainer["plain loop"] > 0
    assert rows["self-test in the window"]["met"] is True
