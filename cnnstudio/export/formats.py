"""The export formats (the registry the command line and the Export dialog list) and what an
export reports back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, the file suffix, a title and a one-line explanation."""

    name: str
    suffix: str
    title: str
    help: str
    needs_spec: bool = False


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "safetensors",
            ".safetensors",
            "Weights (safetensors)",
            "The weights only, safe to load anywhere; pair them with the model's code.",
        ),
        ExportFormat(
            "onnx",
            ".onnx",
            "ONNX",
            "The whole model for onnxruntime, TensorRT, OpenVINO, browsers and phones.",
        ),
        ExportFormat(
            "pt2",
            ".pt2",
            "PyTorch program (torch.export)",
            "The whole model as a torch.export program; load it with torch.export.load.",
        ),
        ExportFormat(
            "torchscript",
            ".pt",
            "TorchScript",
            "The whole model for torch.jit.load and LibTorch (C++); deprecated by PyTorch.",
        ),
        ExportFormat(
            "python",
            ".py",
            "PyTorch code",
            "A readable .py file with the model written out layer by layer, and its weights.",
            needs_spec=True,
        ),
        ExportFormat(
            "training-script",
            ".py",
            "Training script",
            "A runnable train.py in plain PyTorch and torchvision for this project.",
            needs_spec=True,
        ),
        ExportFormat(
            "project",
            "",
            "Project folder",
            "A copy of the project with this run, to open in CNN Studio elsewhere.",
            needs_spec=True,
        ),
    )
}


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how closely the written model matches the original."""

    path: Path
    format: str
    max_abs_diff: float
    files: tuple[Path, ...]
    seconds: float

    @property
    def size(self) -> int:
        """Bytes written, all files together."""
        return sum(_size(f) for f in self.files)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0
