"""Every CUDA path of the studio checked by one command: one table, also written as JSON.

Each check runs in its own try/except (a failing check is a row with its error, the rest go on)
and is skipped, saying why, where it cannot run (no CUDA) or would not fit in ``--budget-s``:

- Trainer vs a plain PyTorch loop (SimpleCNN 32×32; ResNet-18 224×224), bf16 autocast and
  channels_last on CUDA (train_throughput.py); target ratio ≥ 0.97;
- the device-resident data path (uint8 images on the device, whole-batch augmentation) vs
  compute only (the same steps on one batch that never changes); target ≥ 0.9;
- the memory estimate (``cnnstudio.train.estimate_memory``) vs ``torch.cuda.max_memory_allocated``
  for every template and three backbones at the batch the estimate says fits; within 25 %;
- an out-of-memory on purpose: the Trainer's message, its suggested batch, and that batch trains;
- torch.compile: speed-up and compile time; torchrun with nccl (gloo on the CPU), one process;
- the "fast" preset (``FAST_PRESET`` below: the studio has no preset of that name yet):
  images/s of resnet-small on 32×32 (target ≥ 100k img/s on one H200) and the time to 99 %
  validation accuracy on the sample set;
- inspection latency (inspect_latency.py), predict throughput (predict_throughput.py);
- the window's self-test (``main.py --self-test``, offscreen) training on the device.

    python benchmarks/gpu_check.py [--device cuda] [--quick] [--budget-s 480] [--json PATH]

``--device cpu --quick`` runs in under two minutes (tests/test_gpu_check.py). The JSON goes to
``--json``, else $OUT/gpu_check.json when $OUT is set, else /tmp/gpu_check.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # the studio, and the other benchmarks

import torch  # noqa: E402
from torch import nn  # noqa: E402

WORKER_MARK = "gpu_check worker: "
# The settings a "fast" preset for small images would hold (no such preset in the studio yet):
# data on the device and whole-batch augmentation are what the Trainer does for in-memory data.
FAST_PRESET = {
    "batch_size": 512,
    "optimizer": "adamw",
    "lr": 4e-3,
    "weight_decay": 5e-4,
    "schedule": "onecycle",
    "precision": "bf16",
    "channels_last": True,
    "compile": True,
    "label_smoothing": 0.1,
}


class Skipped(Exception):
    """A check that cannot run here; its message says why."""


@dataclass(frozen=True)
class Options:
    device: torch.device
    quick: bool
    budget_s: float

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def precision(self) -> str:
        return "bf16" if self.cuda else "fp32"


@dataclass
class Outcome:
    """What a check found: one line for the table, the target, whether it was met (None: no
    target), and the figures for the JSON."""

    result: str
    target: str = ""
    met: bool | None = None
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    check: str
    status: str  # "ran", "skipped" or "error"
    result: str
    target: str = ""
    met: bool | None = None
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Options], Outcome]
    cost_s: tuple[float, float, float]  # expected seconds: CUDA, CPU --quick, CPU

    def cost(self, options: Options) -> float:
        if options.cuda:
            return self.cost_s[0]
        return self.cost_s[1] if options.quick else self.cost_s[2]


# Helpers shared by the checks


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _require_cuda(options: Options, what: str) -> None:
    if not options.cuda:
        raise Skipped(f"no CUDA: {what}")


def _sample_project(template: str = "simple-cnn", val_fraction: float = 0.2):
    """A new project of ``template`` on the sample set (5,000 images 32×32, 10 classes)."""
    from cnnstudio import new_project
    from cnnstudio.data import DataSettings

    return new_project(template, data=DataSettings(val_fraction=val_fraction))


def _model_and_optimizer(spec, options: Options) -> tuple[nn.Module, torch.optim.Optimizer]:
    from cnnstudio import build_model

    torch.manual_seed(0)
    model = build_model(spec, pretrained=False).to(options.device)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    return model, optimizer


def _step(model, optimizer, x, y, options: Options) -> torch.Tensor:
    """One training step as the Trainer takes it (autocast, channels_last input)."""
    from cnnstudio.train import autocast

    x = x.contiguous(memory_format=torch.channels_last)
    with autocast(options.precision, options.device):
        loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def _rate(model, optimizer, batches, steps: int, options: Options) -> float:
    """Images/s of ``steps`` training steps on the (x, y) pairs ``batches`` yields (cycled),
    after two steps of warm-up."""
    source = iter(batches)

    def take():
        nonlocal source
        try:
            return next(source)
        except StopIteration:
            source = iter(batches)
            return next(source)

    for _ in range(2):
        _step(model, optimizer, *take(), options)
    _sync(options.device)
    seen, start = 0, time.perf_counter()
    for _ in range(steps):
        x, y = take()
        _step(model, optimizer, x, y, options)
        seen += len(y)
    _sync(options.device)
    return seen / (time.perf_counter() - start)


def _device_batches(options: Options, images: int, batch_size: int):
    """Random uint8 32×32 images on the device, batched with whole-batch augmentation
    (``cnnstudio.batches.TensorBatches``, as the Trainer batches in-memory data)."""
    from data_throughput import AUGMENT, MEAN, STD

    from cnnstudio.batches import TensorBatches

    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (images,), generator=generator)
    return TensorBatches(
        pixels.to(options.device), labels.to(options.device), torch.arange(images),
        batch_size, MEAN, STD, augment=AUGMENT, shuffle=True, drop_last=True,
    )  # fmt: skip


def _run_process(command: list[str], env: dict[str, str], timeout: float):
    """``command``'s CompletedProcess; past ``timeout`` its whole process group is killed (a
    torchrun worker too, which would otherwise keep the GPU) and TimeoutError raised."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise TimeoutError(f"{Path(command[-1]).name}: no answer within {timeout:.0f} s") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _ratio_outcome(name_a: str, a: float, name_b: str, b: float, target: float) -> Outcome:
    ratio = a / b
    return Outcome(
        f"{name_a} {a:,.0f} img/s, {name_b} {b:,.0f} img/s, ratio {ratio:.3f}",
        f"ratio ≥ {target}",
        ratio >= target,
        {name_a: a, name_b: b, "ratio": ratio},
    )


# The checks


def _trainer_vs_plain(options: Options, project, batch_size: int, epochs: int) -> Outcome:
    """train_throughput.py's two sides, alternating (best of two rounds; one when quick)."""
    from train_throughput import plain_loop, trainer

    plain, ours = [], []
    for _ in range(1 if options.quick else 2):
        args = (options.device, epochs, project, batch_size, options.precision)
        plain.append(plain_loop(*args))
        ours.append(trainer(*args))
    outcome = _ratio_outcome("Trainer", max(ours), "plain loop", max(plain), 0.97)
    outcome.result += f" (batch {batch_size}, {options.precision})"
    return outcome


def check_trainer_simple_cnn(options: Options) -> Outcome:
    if options.quick:  # 1,000 training images, one epoch
        return _trainer_vs_plain(options, _sample_project(val_fraction=0.8), 128, 1)
    return _trainer_vs_plain(options, _sample_project(), 128, 4 if options.cuda else 2)


def check_trainer_resnet18(options: Options) -> Outcome:
    from inspect_latency import backbone_spec

    if options.quick and not options.cuda:
        raise Skipped("ResNet-18 at 224×224 trains at a few images/s on a CPU (not with --quick)")
    project = _sample_project(val_fraction=0.2)
    project.model = backbone_spec("resnet18", freeze=False)
    return _trainer_vs_plain(options, project, 256, 2)


def check_data_path(options: Options) -> Outcome:
    """The same training steps fed by the device-resident data path and by one fixed batch."""
    from cnnstudio import create_model_spec

    template, batch, images, steps = (
        ("resnet-small", 512, 50_000, 60) if options.cuda else ("simple-cnn", 128, 1024, 8)
    )
    model, optimizer = _model_and_optimizer(create_model_spec(template), options)
    batches = _device_batches(options, images, batch)
    fixed = [next(iter(batches))]
    data = _rate(model, optimizer, batches, steps, options)
    compute = _rate(model, optimizer, fixed, steps, options)
    outcome = _ratio_outcome("device data", data, "compute only", compute, 0.9)
    outcome.result += f" ({template}, batch {batch}, flip + crop + jitter)"
    return outcome


def _measured_memory(spec, batch: int, options: Options) -> int:
    """Peak bytes allocated by two training steps of ``spec`` at ``batch`` (from an empty
    allocator: weights, optimizer state, activations and the batch itself)."""
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(options.device)
    torch.cuda.reset_peak_memory_stats(options.device)
    model, optimizer = _model_and_optimizer(spec, options)
    x = torch.randn(batch, *spec.input_shape, device=options.device)
    y = torch.randint(0, spec.num_classes, (batch,), device=options.device)
    for _ in range(2):
        _step(model, optimizer, x, y, options)
    _sync(options.device)
    peak = torch.cuda.max_memory_allocated(options.device) - before
    del model, optimizer, x, y
    torch.cuda.empty_cache()
    return peak


def _memory_specs() -> list[tuple[str, Any]]:
    from inspect_latency import backbone_spec

    from cnnstudio import create_model_spec, list_templates

    specs = [(name, create_model_spec(name)) for name in list_templates()]
    for name in ("resnet18", "efficientnet_b0", "mobilenet_v3_small"):
        specs.append((f"backbone {name}", backbone_spec(name, freeze=False)))
    return specs


def _memory_entry(name: str, spec, options: Options) -> dict[str, Any]:
    """Estimate and measurement of ``spec`` at the batch the estimate says fits the free memory
    (at most 65,536, the settings' largest); after an out-of-memory, again at half that batch."""
    from cnnstudio.train import TrainSettings, estimate_memory, free_memory

    estimate = estimate_memory(spec, TrainSettings(), options.precision)
    batch = min(65_536, estimate.largest_batch(free_memory(options.device)))
    entry: dict[str, Any] = {"model": name, "batch": batch}
    for attempt in (batch, batch // 2):
        try:
            entry["measured"] = _measured_memory(spec, attempt, options)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            entry["error"] = f"out of memory at batch {attempt}, which the estimate said fits"
            continue
        entry.update(measured_batch=attempt, estimate=estimate.total(attempt))
        entry["ratio"] = entry["measured"] / entry["estimate"]
        break
    return entry


def check_memory_estimate(options: Options) -> Outcome:
    _require_cuda(options, "torch.cuda.max_memory_allocated needs a GPU")
    models = [_memory_entry(name, spec, options) for name, spec in _memory_specs()]
    ratios = [m["ratio"] for m in models if "ratio" in m]
    good = [m for m in models if "error" not in m and abs(m["ratio"] - 1) <= 0.25]
    worst = max(models, key=lambda m: abs(m.get("ratio", 99) - 1))
    return Outcome(
        f"{len(good)}/{len(models)} within 25 %; measured/estimate "
        f"{min(ratios, default=0):.2f}–{max(ratios, default=0):.2f}; worst {worst['model']} "
        f"(batch {worst['batch']}: {worst.get('error') or round(worst['ratio'], 2)})",
        "each within 25 %",
        len(good) == len(models),
        {"models": models},
    )


def check_out_of_memory(options: Options) -> Outcome:
    """ResNet-18 at 224×224, batch 2,048, with all but 8 GiB of the GPU taken (as by another
    program): the Trainer's message, its suggested batch, and a run at that batch."""
    from inspect_latency import backbone_spec

    from cnnstudio.train import Failed, Finished, Trainer, free_memory

    _require_cuda(options, "an out-of-memory on purpose needs a GPU")
    project = _sample_project()
    project.model = backbone_spec("resnet18", freeze=False)
    ballast = torch.empty(free_memory(options.device) - (8 << 30), dtype=torch.uint8,
                          device=options.device)  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as folder:
            project.path = Path(folder)
            project.training.update(epochs=1, batch_size=2048, device=str(options.device))
            project.save()
            first = Trainer(project).run()
            if not (isinstance(first, Failed) and first.reason == "out_of_memory"):
                return Outcome(f"no out-of-memory at batch 2,048: {first}", "clean message", False)
            found = re.search(r"use batch size (\d+)", first.message)
            if found is None:
                return Outcome(f"no batch suggested: {first.message}", "a batch", False)
            suggested = int(found.group(1))
            project.training.update(batch_size=suggested)
            second = Trainer(project).run()
    finally:
        del ballast
        torch.cuda.empty_cache()
    trained = isinstance(second, Finished)
    return Outcome(
        f"message: {first.message!r}; batch {suggested} then "
        + ("trained" if trained else f"failed: {getattr(second, 'message', second)}"),
        "suggested batch trains",
        trained,
        {"message": first.message, "suggested_batch": suggested, "then": repr(second)},
    )


def check_compile(options: Options) -> Outcome:
    from cnnstudio import create_model_spec

    if options.quick and not options.cuda:
        raise Skipped("compiling takes about 30 s on this CPU (not with --quick)")
    template, batch, steps = ("resnet-small", 512, 60) if options.cuda else ("simple-cnn", 32, 5)
    spec = create_model_spec(template)
    batches = _device_batches(options, batch * 4, batch)
    model, optimizer = _model_and_optimizer(spec, options)
    eager = _rate(model, optimizer, batches, steps, options)
    compiled = torch.compile(model)
    start = time.perf_counter()
    _step(compiled, optimizer, *next(iter(batches)), options)
    _sync(options.device)
    compile_s = time.perf_counter() - start
    fast = _rate(compiled, optimizer, batches, steps, options)
    return Outcome(
        f"{template} batch {batch}: compiled {fast:,.0f} img/s, eager {eager:,.0f} img/s, "
        f"speed-up {fast / eager:.2f}×; first compiled step {compile_s:.1f} s",
        "speed-up > 1",
        fast > eager,
        {"eager": eager, "compiled": fast, "speedup": fast / eager, "compile_s": compile_s},
    )


def torchrun_worker() -> None:
    """Run by torchrun: join the group (nccl on CUDA, else gloo), all-reduce, one DDP step."""
    import torch.distributed as dist

    from cnnstudio import create_model_spec

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if backend == "nccl" else None
    device = device or torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    total = torch.ones(1, device=device) * (dist.get_rank() + 1)
    dist.all_reduce(total)
    options = Options(device, quick=True, budget_s=60)
    model, _ = _model_and_optimizer(create_model_spec("simple-cnn"), options)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.index
                                              is not None else None)  # fmt: skip
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
    x, y = torch.randn(8, 3, 32, 32, device=device), torch.randint(0, 10, (8,), device=device)
    loss = _step(ddp, optimizer, x, y, options)
    report = {"backend": dist.get_backend(), "world": dist.get_world_size(),
              "all_reduce": total.item(), "loss": loss.item(), "device": str(device)}  # fmt: skip
    dist.destroy_process_group()
    print(WORKER_MARK + json.dumps(report), flush=True)


def check_torchrun(options: Options) -> Outcome:
    backend = "nccl" if options.cuda else "gloo"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=1", __file__, "--torchrun-worker"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not options.cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    done = _run_process(command, env, timeout=90)
    lines = [x for x in done.stdout.splitlines() if x.startswith(WORKER_MARK)]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Outcome(f"torchrun exit {done.returncode}: {tail}", backend, False)
    report = json.loads(lines[-1][len(WORKER_MARK) :])
    met = report["backend"] == backend and report["all_reduce"] == 1.0
    return Outcome(
        f"{report['backend']}, world {report['world']}, all_reduce {report['all_reduce']:g}, "
        f"one DDP step on {report['device']} (loss {report['loss']:.3f})",
        f"{backend}, one process",
        met,
        report,
    )


def _fast_run(options: Options, epochs: int, val_fraction: float) -> list[Any]:
    """The Trainer with FAST_PRESET (compile off on the CPU) on resnet-small and the sample
    set: its EpochEnded events."""
    from cnnstudio.train import EpochEnded, Failed, Trainer

    project = _sample_project("resnet-small", val_fraction)
    preset = {**FAST_PRESET, "compile": options.cuda, "precision": options.precision}
    epochs_seen: list[Any] = []
    with tempfile.TemporaryDirectory() as folder:
        project = replace(project, path=Path(folder))
        project.training.update(preset, epochs=epochs, device=str(options.device), log_every=50)
        project.save()
        result = Trainer(project).run(
            lambda e: epochs_seen.append(e) if isinstance(e, EpochEnded) else None
        )
    if isinstance(result, Failed):
        raise RuntimeError(f"the fast-preset run failed: {result.message}")
    return epochs_seen


def check_fast_preset(options: Options) -> Outcome:
    """Images/s of resnet-small with the fast settings, steady state on 50,000 device-resident
    images, and the Trainer's time to 99 % on the sample set."""
    from cnnstudio import create_model_spec

    batch = FAST_PRESET["batch_size"] if options.cuda else 64
    model, optimizer = _model_and_optimizer(create_model_spec("resnet-small"), options)
    trained = torch.compile(model) if options.cuda else model
    batches = _device_batches(options, 50_000 if options.cuda else 256, batch)
    rate = _rate(trained, optimizer, batches, 90 if options.cuda else 3, options)
    figures: dict[str, Any] = {"images_per_s": rate, "preset": FAST_PRESET}
    result = f"resnet-small 32×32 batch {batch}: {rate:,.0f} img/s"
    if options.quick and not options.cuda:
        result += "; time to 99 % not measured (--quick on a CPU)"
    else:
        epochs = _fast_run(options, 12 if options.cuda else 3, 0.2)
        reached = next((i for i, e in enumerate(epochs) if e.val_accuracy >= 0.99), None)
        elapsed = sum(e.seconds for e in epochs[: (reached or 0) + 1])
        figures.update(epochs=[asdict(e) for e in epochs],
                       epoch_99=None if reached is None else reached + 1)  # fmt: skip
        result += (
            f"; 99 % at epoch {reached + 1}, {elapsed:.1f} s of epochs (compile included)"
            if reached is not None
            else f"; 99 % not reached after epoch {len(epochs)} ({epochs[-1].val_accuracy:.1%})"
        )
    result += " (preset defined in gpu_check.py: the studio has none)"
    return Outcome(result, "≥ 100k img/s on one H200", rate >= 100_000 if options.cuda else None,
                   figures)  # fmt: skip


def check_inspect(options: Options) -> Outcome:
    from inspect_latency import measure, resnet18_spec, write_photo

    from cnnstudio import create_model_spec

    repeats = 3 if options.quick else 15
    cases = [("SimpleCNN 32×32", create_model_spec("simple-cnn"), 200.0),
             ("ResNet-18 224×224", resnet18_spec(), 1000.0)]  # fmt: skip
    figures, parts = {}, []
    with tempfile.TemporaryDirectory() as folder:
        photo = write_photo(Path(folder) / "photo.jpg")
        for name, spec, target in cases:
            median, worst = measure(spec, photo, repeats, str(options.device))
            figures[name] = {"median_ms": median, "worst_ms": worst, "target_ms": target}
            parts.append(f"{name} median {median:.1f} ms (worst {worst:.1f})")
    met = all(f["median_ms"] <= f["target_ms"] for f in figures.values())
    return Outcome("; ".join(parts), "200 ms / 1 s", met, figures)


def check_predict(options: Options) -> Outcome:
    from predict_throughput import measure, write_images

    count, repeats = (64, 1) if options.quick else (1024, 3)
    with tempfile.TemporaryDirectory() as folder:
        paths = write_images(Path(folder) / "32", count, 32)
        ours, plain = measure(32, paths, repeats, str(options.device))
    outcome = _ratio_outcome("predict", ours, "plain loop", plain, 0.9)
    outcome.result += f" ({count} PNG files 32×32, SimpleCNN)"
    return outcome


def check_self_test(options: Options) -> Outcome:
    """``main.py --self-test`` offscreen, training on the device, with settings of its own (a
    fresh HOME, as tests/test_window.py runs it): the user's are neither read nor written."""
    if importlib.util.find_spec("PySide6") is None:
        raise Skipped("PySide6 is not installed here")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT),
               "HOME": home, "XDG_CONFIG_HOME": str(Path(home) / "config"),
               "CNNSTUDIO_SELF_TEST_DEVICE": str(options.device)}  # fmt: skip
        done = _run_process([sys.executable, str(ROOT / "main.py"), "--self-test"], env, 150)
    passed = done.returncode == 0 and "self-test passed" in done.stdout
    text = done.stdout if passed else done.stderr or done.stdout
    line = (text.strip().splitlines() or [f"exit {done.returncode}, no output"])[-1]
    return Outcome(line, f"passes on {options.device}", passed, {"exit": done.returncode})


def check_sweep_slots(options: Options) -> Outcome:
    """A sweep of four short runs one after another vs two at once on the same GPU (``sweep
    --devices cuda:0,cuda:0``): small runs leave a big GPU idle between their steps."""
    _require_cuda(options, "runs at once share a GPU here (on a CPU they share its cores)")
    from cnnstudio.sweep import Axis, SweepPlan, open_sweep, run_sweep
    from cnnstudio.train.devices import pick_device

    device = str(pick_device(str(options.device)))
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, devices in (("one after another", [device]), ("two at once", [device] * 2)):
            project = _sample_project()
            project.training = {**project.training, "device": device, "workers": 0}
            project.save(Path(folder) / name.replace(" ", "-"))
            plan = SweepPlan(grid=(Axis("lr", (1e-3, 2e-3, 3e-3, 4e-3)),), epochs=2)
            start = time.perf_counter()
            sweep = run_sweep(project, open_sweep(project.runs_dir, plan), devices=devices)
            seconds[name] = time.perf_counter() - start
            if {r.state for r in sweep.runs} != {"done"}:
                states = [r.state for r in sweep.runs]
                return Outcome(f"{name}: runs ended {states}", "every run done", False, seconds)
    ratio = seconds["one after another"] / seconds["two at once"]
    return Outcome(
        f"4 runs of 2 epochs: {seconds['one after another']:.1f} s one after another, "
        f"{seconds['two at once']:.1f} s two at once ({ratio:.2f}×)",
        "two at once no slower (≥ 1.0×)",
        ratio >= 1.0,
        {**seconds, "ratio": ratio},
    )


CHECKS = (  # expected seconds on CUDA, CPU --quick, CPU: what the budget skips by
    Check("Trainer vs plain loop, SimpleCNN 32×32", check_trainer_simple_cnn, (30, 25, 60)),
    Check("Trainer vs plain loop, ResNet-18 224×224", check_trainer_resnet18, (50, 0, 1200)),
    Check("device data vs compute only", check_data_path, (15, 8, 20)),
    Check("memory estimate vs measured", check_memory_estimate, (40, 0, 0)),
    Check("out of memory on purpose", check_out_of_memory, (40, 0, 0)),
    Check("torchrun, one process", check_torchrun, (20, 15, 15)),
    Check("inspection latency", check_inspect, (10, 5, 15)),
    Check("predict throughput", check_predict, (15, 5, 20)),
    Check("self-test in the window", check_self_test, (40, 30, 30)),
    Check("torch.compile", check_compile, (70, 0, 60)),
    Check("fast preset, resnet-small 32×32", check_fast_preset, (150, 8, 150)),
    Check("sweep: two runs at once on one GPU", check_sweep_slots, (45, 0, 0)),  # last: budget
)


def run_check(check: Check, options: Options, spent: float) -> Row:
    """The check's row: its outcome, the reason it was skipped, or its error."""
    if spent + check.cost(options) > options.budget_s:
        more = f"about {check.cost(options):.0f} s more would pass {options.budget_s:.0f} s"
        return Row(check.name, "skipped", f"skipped, the budget: {spent:.0f} s spent, {more}")
    start = time.perf_counter()
    try:
        outcome = check.run(options)
        row = Row(check.name, "ran", outcome.result, outcome.target, outcome.met,
                  figures=outcome.figures)  # fmt: skip
    except Skipped as reason:
        row = Row(check.name, "skipped", f"skipped, {reason}")
    except Exception as error:  # a failing check is a row; the others still run
        trace = traceback.format_exc(limit=-3)
        row = Row(check.name, "error", f"{type(error).__name__}: {error}".splitlines()[0],
                  figures={"traceback": trace})  # fmt: skip
    if options.cuda:
        torch.cuda.empty_cache()
    row.seconds = time.perf_counter() - start
    return row


def environment(options: Options) -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "device": str(options.device),
                            "quick": options.quick, "budget_s": options.budget_s,
                            "cpu_threads": torch.get_num_threads()}  # fmt: skip
    if options.cuda:
        properties = torch.cuda.get_device_properties(options.device)
        info.update(gpu=properties.name, gpu_memory_gib=properties.total_memory / 2**30,
                    cuda=torch.version.cuda, bf16=torch.cuda.is_bf16_supported())  # fmt: skip
    return info


def print_table(info: dict[str, Any], rows: list[Row]) -> None:
    print("  ".join(f"{key} {value}" for key, value in info.items()))
    width = max(len(row.check) for row in rows)
    print(f"{'check':<{width}}  {'status':<7}  {'met':<4}  {'s':>5}  result [target]")
    for row in rows:
        met = {True: "yes", False: "NO", None: "-"}[row.met]
        target = f" [{row.target}]" if row.target else ""
        print(f"{row.check:<{width}}  {row.status:<7}  {met:<4}  {row.seconds:5.1f}  "
              f"{row.result}{target}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="smaller runs (CPU: under 2 min)")
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--json", type=Path, help="default: $OUT/ or /tmp/gpu_check.json")
    parser.add_argument("--torchrun-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torchrun_worker:
        torchrun_worker()
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: --device {args.device}: CUDA is not available here", file=sys.stderr)
        return 2
    options = Options(device, args.quick, args.budget_s)
    started, rows = time.perf_counter(), []
    for check in CHECKS:
        rows.append(run_check(check, options, time.perf_counter() - started))
        print(f"[{time.perf_counter() - started:5.0f} s] {rows[-1].check}: {rows[-1].status}",
              file=sys.stderr, flush=True)  # fmt: skip
    info = environment(options) | {"total_s": round(time.perf_counter() - started, 1)}
    print_table(info, rows)
    path = args.json or Path(os.environ.get("OUT") or "/tmp") / "gpu_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": info, "checks": [asdict(r) for r in rows]},
                               indent=2, default=str))  # fmt: skip
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
