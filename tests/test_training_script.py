"""The exported training script computes what the studio's trainer computes: the same stratified
split of an image folder, the same learning rate at every step for every schedule (with warm-up
and without), and the same optimizer over the same parameter groups. The script carries the
trainer's own recipe (cnnstudio.recipe) and is, like the exported model file, code that ruff
passes."""

from __future__ import annotations

import inspect
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnstudio import Project, build_model, model_source, recipe
from cnnstudio.data import DataSettings, load_dataset
from cnnstudio.export import python_code, training_script_code
from cnnstudio.export.source_text import MARKER, template_program
from cnnstudio.train import make_optimizer, make_scheduler
from cnnstudio.train_settings import OPTIMIZERS, SCHEDULES, TrainSettings, check_training
from tests.data_factory import image_folder
from tests.test_export import backbone_model
from tests.test_train import tiny_model

ROOT = Path(__file__).resolve().parents[1]
EXPORT = ROOT / "cnnstudio" / "export"


MODELS = {
    "tiny": lambda: tiny_model(classes=3),
    "backbone": lambda: backbone_model(freeze=False),
    "frozen backbone": lambda: backbone_model(freeze=True),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of unequal size; one holds more than ten files, so that names sort as text
    ("10.png" before "2.png") in both programs."""
    root = tmp_path_factory.mktemp("images")
    for name, count in (("cat", 5), ("dog", 12), ("owl", 2)):
        image_folder(root, (name,), per_class=count, size=(16, 16))
    return root


def project_of(folder: Path, tmp_path: Path, model: str = "tiny", **training) -> Project:
    data = DataSettings(source="folder", path=str(folder), val_fraction=0.3, split_seed=5)
    return Project(
        model=MODELS[model](),
        name="script test",
        data=data,
        training=check_training({"workers": 0, **training}),
        path=tmp_path / "project",
    )


def script_namespace(project: Project, tmp_path: Path) -> dict:
    """The exported script's globals, run as a module (its main() does not start)."""
    script = tmp_path / "script" / "train.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(training_script_code(model_source.untrained(project), script))
    return runpy.run_path(str(script), run_name="exported_training_script")


def test_the_script_carries_the_trainers_recipe(images: Path, tmp_path: Path) -> None:
    text = training_script_code(model_source.untrained(project_of(images, tmp_path)), tmp_path)
    for function in (
        recipe.lr_factor,
        recipe.make_scheduler,
        recipe.stratified_split,
        recipe.param_groups,
        recipe.make_optimizer,
    ):
        assert inspect.getsource(function) in text
        assert text.count(f"def {function.__name__}(") == 1  # no second copy
    assert template_program("training") in text
    assert MARKER not in text
    # the templates are read as text, never imported
    assert "cnnstudio.export.training_template" not in sys.modules
    assert "cnnstudio.export.model_template" not in sys.modules


def test_the_script_splits_an_image_folder_as_the_studio_does(images: Path, tmp_path) -> None:
    project = project_of(images, tmp_path)
    namespace = script_namespace(project, tmp_path)
    train_set, val_set = namespace["datasets"](str(images))
    studio = load_dataset(project.data, tuple(project.model.input_shape))

    def studio_files(split: str) -> list[Path]:
        return [Path(studio.paths[i]).resolve() for i in studio.splits[split].tolist()]

    def script_files(subset) -> list[Path]:
        return [Path(subset.dataset.samples[i][0]).resolve() for i in subset.indices]

    assert script_files(val_set) == studio_files("val")
    assert script_files(train_set) == studio_files("train")
    assert len(script_files(val_set)) == 2 + 4 + 1  # 30 % of 5, 12 and 2 images, at least one
    labels = torch.randint(0, 7, (300,), generator=torch.Generator().manual_seed(1))
    for fraction, seed in ((0.2, 0), (0.5, 3), (0.05, 11)):
        ours = namespace["stratified_split"](labels, fraction, seed)
        theirs = recipe.stratified_split(labels, fraction, seed)
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


@pytest.mark.parametrize("warmup_epochs", [0.0, 1.5])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_script_schedules_as_the_trainer_does(
    schedule: str, warmup_epochs: float, images: Path, tmp_path: Path
) -> None:
    training = {"schedule": schedule, "warmup_epochs": warmup_epochs, "epochs": 5,
                "step_size": 2, "gamma": 0.5, "lr": 0.1}  # fmt: skip
    project = project_of(images, tmp_path, **training)
    namespace = script_namespace(project, tmp_path)
    settings = TrainSettings.from_dict(project.training)
    steps_per_epoch = 3

    studio_optimizer = make_optimizer(build_model(project.model, pretrained=False), settings)
    studio = _learning_rates(
        studio_optimizer, make_scheduler(studio_optimizer, settings, steps_per_epoch), 5 * 3
    )
    optimizer, scheduler = namespace["optimizer_and_scheduler"](
        namespace["Net"](), settings.epochs, steps_per_epoch
    )
    script = _learning_rates(optimizer, scheduler, 5 * 3)
    assert script == studio  # the same code on the same numbers: equal to the last bit
    steps = {"total_steps": 15, "warmup_steps": int(warmup_epochs * 3), "steps_per_epoch": 3}
    factors = [
        recipe.lr_factor(step, schedule=schedule, step_size=2, gamma=0.5, **steps)
        for step in range(15)
    ]
    assert [lrs[-1] for lrs in script] == pytest.approx([0.1 * f for f in factors], rel=1e-12)
    assert len(set(script)) > 1 or (schedule == "constant" and not warmup_epochs)


def _learning_rates(optimizer, scheduler, steps: int) -> list[tuple[float, ...]]:
    """The learning rate of every group before each of ``steps`` optimizer steps."""
    rates = []
    for _ in range(steps):
        rates.append(tuple(group["lr"] for group in optimizer.param_groups))
        optimizer.step()  # no gradients: nothing changes, but the scheduler may step after it
        scheduler.step()
    return rates


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("model", list(MODELS))
def test_the_script_optimizes_the_groups_the_trainer_does(
    model: str, optimizer: str, images: Path, tmp_path: Path
) -> None:
    training = {"optimizer": optimizer, "lr": 0.02, "backbone_lr": 0.001, "weight_decay": 0.01,
                "momentum": 0.8, "nesterov": True}  # fmt: skip
    project = project_of(images, tmp_path, model, **training)
    namespace = script_namespace(project, tmp_path)
    settings = TrainSettings.from_dict(project.training)
    studio = make_optimizer(build_model(project.model, pretrained=False), settings)
    script, _ = namespace["optimizer_and_scheduler"](namespace["Net"](), 1, 1)
    assert type(script) is type(studio)
    assert script.defaults == studio.defaults
    assert _groups(script) == _groups(studio)
    lrs = {group["lr"] for group in script.param_groups}
    assert lrs == ({0.001, 0.02} if model == "backbone" else {0.02})


def _groups(optimizer) -> list[tuple]:
    """Each group's name, learning rate, weight decay and parameter shapes, in order."""
    return [
        (g["name"], g["lr"], g["weight_decay"], [tuple(p.shape) for p in g["params"]])
        for g in optimizer.param_groups
    ]


def test_generated_files_pass_ruff(images: Path, tmp_path: Path) -> None:
    """The exported model file and training script pass the house's lint rules and formatter,
    as their templates do."""
    pytest.importorskip("ruff")
    project = project_of(images, tmp_path, "backbone")
    source = model_source.untrained(project)
    folder = tmp_path / "generated"
    folder.mkdir()
    (folder / "train.py").write_text(training_script_code(source, folder / "train.py"))
    (folder / "model.py").write_text(python_code(source, "model.safetensors"))
    rules = ["--select", "E,F,W,I,B,UP,SIM,RUF", "--ignore", "RUF001,RUF002,RUF003"]
    options = ["--isolated", "--line-length", "100", "--target-version", "py310"]
    for command in (["check", *options, *rules], ["format", "--check", *options]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *command, str(folder)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_template_goes_into_the_standalone_program() -> None:
    """build.spec collects cnnstudio/export/*_template.py as data files: the exporter reads each
    as text (PyInstaller would not ship a module nothing imports)."""
    templates = sorted(EXPORT.glob("*_template.py"))
    assert [path.name for path in templates] == ["model_template.py", "training_template.py"]
    for path in templates:
        assert MARKER in path.read_text(encoding="utf-8").splitlines()
    spec = (ROOT / "build.spec").read_text(encoding="utf-8")
    assert '(ROOT / "cnnstudio" / "export").glob("*_template.py")' in spec
    assert '"cnnstudio": "pyz+py"' in spec  # recipe's source, for inspect.getsource
