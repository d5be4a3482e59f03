"""The "python" export: one readable .py file with ``<name>.safetensors`` beside it. The file is
the model's class written out layer by layer (model_code), its constants (CLASSES, MEAN, STD),
and the preprocessing, ``load()`` and a command line that classifies images, which come from
model_template.py. It is checked by running it in a fresh Python."""

from __future__ import annotations

from pathlib import Path

from cnnstudio.errors import ExportError
from cnnstudio.export.check import check_parses, write_text
from cnnstudio.export.fresh_python import check_generated
from cnnstudio.export.model_code import constants, imports, literal, model_code
from cnnstudio.export.source_text import template_program
from cnnstudio.export.weights_file import save_safetensors
from cnnstudio.model_source import ModelSource


def python_code(src: ModelSource, weights_name: str = "model.safetensors") -> str:
    """The text of the generated .py file for ``src`` (see the module docstring)."""
    code = model_code(src)
    stem = Path(weights_name).stem
    header = [
        f'"""{src.name}: a convolutional network exported from CNN Studio, in plain PyTorch.',
        "",
        f"Classify images (the weights are read from {weights_name} beside this file):",
        "",
        f"    python {stem}.py image1.png image2.jpg",
        "",
        "or from Python:",
        "",
        f"    from {stem} import load, preprocess",
        "    model = load()",
        "    logits = model(preprocess(PIL.Image.open('cat.png')).unsqueeze(0))",
        '"""',
        "",
    ]
    body = [
        *imports(code),
        "",
        *constants(src),
        f"WEIGHTS = Path(__file__).with_name({literal(weights_name)})",
        "",
        "",
        *code.class_lines,
        "",
        "",
        template_program("model"),
    ]
    return "\n".join(header + body).rstrip() + "\n"


def write_python(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    """Write the file and its weights, run it in a fresh Python and compare."""
    if path.suffix != ".py" or not path.stem.isidentifier():
        raise ExportError(
            f"cannot write {path}: the file name must be a Python module name ending in .py "
            "(letters, digits and _)",
            "python",
            path,
        )
    weights = path.with_suffix(".safetensors")
    text = python_code(src, weights.name)
    check_parses(text, path, "python", "code")
    save_safetensors(src, weights, "python")
    write_text(path, text, "python")
    diff, limit = check_generated(
        src, path, "python", f"running {path.name} in a fresh Python", weights=weights
    )
    return [path, weights], diff, limit
