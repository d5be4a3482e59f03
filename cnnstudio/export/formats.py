"""The export formats (the registry the command line and the Export dialog list) and what an
export reports back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnstudio.errors import ExportError


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


def format_of(path: Path | str) -> str:
    """The export format a file name asks for by its extension (``model.onnx``: "onnx");
    ExportError when the extension names none, or more than one (.py: the model's code or the
    training script)."""
    suffix = Path(path).suffix.lower()
    matches = [f.name for f in FORMATS.values() if f.suffix and f.suffix == suffix]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ExportError(
            f"{Path(path).name}: a {suffix} file can be {' or '.join(matches)}: "
            "choose with --format",
            path=path,
        )
    known = ", ".join(
        f"{f.suffix} ({f.name})" for f in FORMATS.values() if f.suffix and f.suffix != ".py"
    )
    raise ExportError(
        f"{Path(path).name}: no export format has the extension {suffix or '(none)'!r}; the "
        f"known ones are {known}, .py (python or training-script); a project folder needs "
        "--format project",
        path=path,
    )


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
