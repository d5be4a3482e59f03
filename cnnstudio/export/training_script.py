"""The "training-script" export: one runnable train.py in plain PyTorch and torchvision for the
project: its model, data, normalisation, augmentation and training settings.

The script is assembled from real source: the model's class (model_code), the project's
constants, the training recipe (the source of cnnstudio.recipe's functions, which the studio's
trainer runs: the same schedule, split and parameter groups) and the program in
training_template.py. It is checked by loading the model's weights into its ``Net`` in a fresh
Python and comparing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnstudio import recipe
from cnnstudio.data import load_dataset
from cnnstudio.export.check import check_parses, write_text
from cnnstudio.export.fresh_python import BUILD_AND_LOAD, check_generated
from cnnstudio.export.model_code import constants, imports, literal, model_code
from cnnstudio.export.source_text import function_source, template_program
from cnnstudio.model_source import ModelSource
from cnnstudio.normalization import normalization

RECIPE = (
    recipe.lr_factor,
    recipe.make_scheduler,
    recipe.stratified_split,
    recipe.param_groups,
    recipe.make_optimizer,
)
"""The trainer's functions the script carries, in this order."""

_RECIPE_COMMENT = [
    "# CNN Studio's training recipe (cnnstudio/recipe.py), the code its own trainer runs: the",
    "# learning-rate schedule, the stratified split and the optimizer's parameter groups.",
]


def training_script_code(src: ModelSource, script: Path) -> str:
    """The text of the standalone training script for ``src.project`` (to be written at
    ``script``; the built-in sample set is written beside it as an image folder)."""
    from cnnstudio.train_settings import check_training

    project = src.project
    settings = check_training(project.training)
    code = model_code(src, pretrained=True)
    data_lines, data_text = _data_lines(project, script)
    mean, std = _training_mean_std(src)
    src_with_stats = ModelSource(**{**src.__dict__, "mean": mean, "std": std})
    header = [
        f'"""Train {src.name} with plain PyTorch and torchvision (exported from CNN Studio).',
        "",
        "    python train.py [--epochs N] [--batch-size N] [--data PATH] [--out model.pt]",
        "",
        f"The model, the data ({data_text}), the normalisation, the augmentation and the",
        f"training settings ({settings['optimizer']}, lr {settings['lr']:g}, "
        f"{settings['schedule']} schedule) are the project's.",
        "Left out: mixed precision, channels-last, torch.compile, early stopping, checkpoints",
        "to resume from, and several GPUs; CNN Studio's own trainer does those.",
        '"""',
        "",
    ]
    recipe_source = "\n\n\n".join(function_source(f).rstrip("\n") for f in RECIPE)
    lines = [
        *header,
        *_script_imports(code),
        "",
        *constants(src_with_stats),
        f"CLASS_FOLDERS = {literal(list(src.class_ids or src.classes), wrap=True)}  # labels",
        *data_lines,
        *_settings_lines(project, settings),
        "",
        "",
        *code.class_lines,
        "",
        "",
        *_RECIPE_COMMENT,
        "",
        "",
        recipe_source,
        "",
        "",
        template_program("training"),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _script_imports(code) -> list[str]:
    """The model's imports, with math (the schedule), the data loading and torchvision."""
    lines = imports(code, ("math",))
    lines[lines.index("from torch import nn") :] = [
        "from torch import nn",
        "from torch.utils.data import DataLoader, Subset",
        "from torchvision import transforms as T",
    ]
    if "import torchvision" not in lines:
        lines.insert(lines.index("from torch import nn"), "import torchvision")
    return lines


def _settings_lines(project, settings: dict[str, Any]) -> list[str]:
    """The split, augmentation and training constants, as the template names them."""
    backbone_ids = [n.id for n in project.model.nodes if n.kind == "Backbone"]
    backbone_lr = settings["lr"] if settings["backbone_lr"] == "same" else settings["backbone_lr"]
    return [
        f"VAL_FRACTION = {project.data.val_fraction!r}  # when the data has no val/ split",
        f"SPLIT_SEED = {project.data.split_seed!r}",
        f"AUGMENT = {literal(dict(project.data.augment), wrap=True)}",
        "",
        f"EPOCHS = {settings['epochs']}",
        f"BATCH_SIZE = {settings['batch_size']}",
        f"OPTIMIZER = {literal(settings['optimizer'])}",
        f"LR = {settings['lr']!r}",
        f"BACKBONES = {literal(tuple(backbone_ids))}  # layers trained at BACKBONE_LR",
        f"BACKBONE_LR = {backbone_lr!r}",
        f"WEIGHT_DECAY = {settings['weight_decay']!r}",
        f"MOMENTUM = {settings['momentum']!r}",
        f"NESTEROV = {settings['nesterov']!r}",
        f"SCHEDULE = {literal(settings['schedule'])}",
        f"WARMUP_EPOCHS = {settings['warmup_epochs']!r}",
        f"STEP_SIZE = {settings['step_size']!r}",
        f"GAMMA = {settings['gamma']!r}",
        f"LABEL_SMOOTHING = {settings['label_smoothing']!r}",
        f"GRAD_CLIP = {settings['grad_clip']!r}",
        f"SEED = {settings['seed']!r}",
    ]


def _data_lines(project, script: Path) -> tuple[list[str], str]:
    """The DATA constants and a description; writes the sample set beside the script."""
    data = project.data
    if data.source == "folder":
        return [
            'SOURCE = "folder"',
            f"DATA = {literal(str(Path(data.path).resolve()))}",
        ], "image folder"
    if data.source == "sample":
        folder = script.with_name(f"{script.stem}_data")
        _write_sample_folder(folder)
        return [
            'SOURCE = "folder"',
            "# CNN Studio's built-in sample set, written out as an image folder",
            f"DATA = str(Path(__file__).with_name({literal(folder.name)}))",
        ], "the built-in sample set, as an image folder"
    return [
        f"SOURCE = {literal(data.source)}",
        'DATA = str(Path.home() / "data")  # downloaded here by torchvision when missing',
    ], f"torchvision's {data.source}"


def _write_sample_folder(folder: Path) -> None:
    from PIL import Image

    from cnnstudio.sample_set import SAMPLE_CLASSES, generate_sample_set

    images, labels = generate_sample_set()
    counts: dict[int, int] = {}
    for image, label in zip(images, labels, strict=True):
        label = int(label)
        counts[label] = counts.get(label, 0) + 1
        target = folder / SAMPLE_CLASSES[label] / f"{counts[label]:04d}.png"
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(target)


def _training_mean_std(src: ModelSource) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The run's normalisation, or the one the project would train with (reading its images only
    when it needs their statistics)."""
    if src.run_folder is not None and src.mean:
        return src.mean, src.std
    project = src.project
    norm = normalization(project.data, project.model)
    if not norm.known:
        dataset = load_dataset(project.data, tuple(project.model.input_shape))
        norm = normalization(project.data, project.model, dataset)
    return norm.mean, norm.std


def write_training_script(src: ModelSource, path: Path) -> tuple[list[Path], float, float]:
    """Write the script (and the sample set beside it when the project uses it), load the
    model's weights into the script's model in a fresh Python, and compare."""
    text = training_script_code(src, path)
    check_parses(text, path, "training-script", "script")
    write_text(path, text, "training-script")
    files = [path]
    if src.project.data.source == "sample":
        files.append(path.with_name(f"{path.stem}_data"))
    flags = ("pretrained",) if model_code(src, pretrained=True).takes_pretrained else ()
    diff, limit = check_generated(
        src,
        path,
        "training-script",
        f"loading the model of {path.name} in a fresh Python",
        make_model=BUILD_AND_LOAD,
        flags=flags,
    )
    return files, diff, limit
