"""Where a run computes: choosing the device (auto: CUDA, then MPS, then the CPU), naming it,
listing this machine's devices, its free memory, and the precision and autocast a run uses on it."""

from __future__ import annotations

import contextlib

import torch

from cnnstudio.errors import SweepError, TrainingError


def pick_device(name: str = "auto") -> torch.device:
    """'auto': CUDA, then MPS, then the CPU. TrainingError for a device this machine lacks."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _has_mps():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            have = ", ".join(f"cuda:{i}" for i in range(count)) or "none"
            raise TrainingError(
                f"{name} is not available: this machine's CUDA devices: {have}; choose cpu or auto"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not _has_mps():
        raise TrainingError("mps is not available on this machine: choose cpu or auto")
    return device


def _has_mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def device_name(device: torch.device) -> str:
    """The device in words: a GPU's name and memory, or the CPU's thread count."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def cuda_count() -> int:
    """This machine's CUDA devices (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_devices(text: str) -> list[str]:
    """A sweep's ``--devices``: "cuda:0,cuda:1" (a device may repeat: two runs at once on it),
    or "all" for every CUDA device of this machine; SweepError for text that names none."""
    if text.strip() == "all":
        count = cuda_count()
        if not count:
            raise SweepError("--devices all: this machine has no CUDA device")
        return [f"cuda:{index}" for index in range(count)]
    found = [part.strip() for part in text.split(",") if part.strip()]
    if not found:
        raise SweepError(
            f"--devices {text!r}: name devices separated by commas, e.g. cuda:0,cuda:1"
        )
    return found


def available_devices() -> list[tuple[str, str]]:
    """The devices a run can use here, as (setting, description): "auto", the CPU, every CUDA
    device with its name and memory, and MPS where there is one."""
    auto = pick_device("auto")
    found = [("auto", f"auto: {device_name(auto)}"), ("cpu", device_name(torch.device("cpu")))]
    for index in range(cuda_count()):
        cuda = torch.device("cuda", index)
        found.append((f"cuda:{index}", f"cuda:{index}: {device_name(cuda)}"))
    if _has_mps():
        found.append(("mps", device_name(torch.device("mps"))))
    return found


def pick_precision(setting: str, device: torch.device) -> str:
    """The precision a run uses: mixed precision ("auto": bf16 where supported, else fp16) on CUDA
    only, fp32 elsewhere."""
    if device.type != "cuda":
        return "fp32"
    if setting == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return setting


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to bf16 or fp16 for mixed precision; nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device; None where it is not known (CPU, MPS)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return None
