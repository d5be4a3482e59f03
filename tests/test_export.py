"""Export: every format written, loaded back and compared; generated code run in a fresh Python;
weights import with its mismatch list; the command line after a short training run."""

from __future__ import annotations

import os
import pickle
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnstudio import Project, build_model, load_project
from cnnstudio.cli import main
from cnnstudio.data import DataSettings
from cnnstudio.errors import ExportError, WeightsError
from cnnstudio.export import (
    FORMATS,
    default_file_name,
    export,
    export_source,
    export_training_script,
)
from cnnstudio.model_source import ModelSource, from_run
from cnnstudio.runs import find_run
from cnnstudio.train import Trainer
from cnnstudio.train_settings import check_training
from cnnstudio.weights import load_weights
from tests.helpers import spec_of
from tests.test_train import colour_folder, tiny_model

MODEL_FORMATS = ("safetensors", "pt2", "torchscript", "onnx", "python")


def skip_model():
    """Add and Concat skip connections, a branch from the input, and an id that is a keyword."""
    return spec_of(
        ("conv1", "Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}),
        ("bn1", "BatchNorm2d", {}),
        ("relu1", "ReLU", {}),
        ("conv2", "Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}),
        ("add1", "Add", {}, ("conv2", "relu1")),
        ("side", "Conv2d", {"out_channels": 2, "kernel_size": 1, "padding": 0}, ("input",)),
        ("cat", "Concat", {}, ("add1", "side")),
        ("pool", "MaxPool2d", {"kernel_size": 2}),
        ("lambda", "LeakyReLU", {"negative_slope": 0.2}),
        ("gap", "AdaptiveAvgPool2d", {"output_size": 2}),
        ("flat", "Flatten", {}),
        ("fc", "Linear", {"out_features": 3}),
        input_shape=(3, 12, 12),
        num_classes=3,
    )


def backbone_model(freeze: bool = True):
    """A ResNet-18 without ImageNet weights (nothing to download) under a small head."""
    return spec_of(
        ("backbone", "Backbone", {"name": "resnet18", "weights": "none", "freeze": freeze}),
        ("drop", "Dropout", {"p": 0.2}),
        ("fc", "Linear", {"out_features": 3}),
        input_shape=(3, 32, 32),
        num_classes=3,
    )


SPECS = {"tiny": tiny_model, "skip": skip_model, "backbone": backbone_model}


def source_of(name: str) -> ModelSource:
    torch.manual_seed(0)
    spec = SPECS[name]()
    model = build_model(spec, pretrained=False)
    # non-trivial batch-norm statistics, so that eval mode matters
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    classes = tuple(f"class {i}" for i in range(spec.num_classes))
    channels = spec.input_shape[0]
    return ModelSource(
        model=model.eval(),
        input_shape=spec.input_shape,
        spec=spec,
        classes=classes,
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
        name=name,
    )


CASES = [(m, f) for m in ("tiny", "skip") for f in MODEL_FORMATS] + [
    ("backbone", f) for f in ("safetensors", "onnx", "python")
]


def marked(model: str, format: str):
    """The case, marked slow when it takes seconds: ONNX (torch.export, then onnxruntime), Python
    (checked in a fresh interpreter) and the ResNet backbone."""
    if model == "backbone" or format in ("onnx", "python"):
        return pytest.param(model, format, marks=pytest.mark.slow)
    return model, format


@pytest.mark.parametrize(("model", "format"), [marked(*case) for case in CASES])
def test_export_round_trip(model: str, format: str, tmp_path: Path) -> None:
    src = source_of(model)
    path = tmp_path / default_file_name(model, format)
    result = export(src, format, path)
    assert result.path == path and result.format == format
    assert all(f.is_file() for f in result.files) and path in result.files
    assert result.max_abs_diff <= 1e-4
    assert result.size > 0
    x = torch.randn(4, *src.input_shape)
    expected = src.model(x).detach()
    if format == "safetensors":
        copy = build_model(src.spec, pretrained=False).eval()
        load_weights(copy, path)
        actual = copy(x).detach()
    elif format == "pt2":
        actual = torch.export.load(str(path)).module()(x).detach()
    elif format == "torchscript":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
            actual = torch.jit.load(str(path))(x).detach()
    elif format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        actual = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
    else:
        assert path.with_suffix(".safetensors") in result.files
        return  # the export ran it in a fresh interpreter; see the tests below
    assert torch.allclose(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.slow
def test_onnx_takes_any_batch_size(batch: int, tmp_path: Path) -> None:
    import onnxruntime

    src = source_of("skip")
    export(src, "onnx", tmp_path / "skip.onnx")
    session = onnxruntime.InferenceSession(
        str(tmp_path / "skip.onnx"), providers=["CPUExecutionProvider"]
    )
    x = torch.randn(batch, *src.input_shape)
    (out,) = session.run(None, {"image": x.numpy()})
    assert out.shape == (batch, 3)
    np.testing.assert_allclose(out, src.model(x).detach().numpy(), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_generated_code_is_readable_and_self_contained(tmp_path: Path) -> None:
    src = source_of("skip")
    export(src, "python", tmp_path / "skip_net.py")
    text = (tmp_path / "skip_net.py").read_text(encoding="utf-8")
    assert "self.conv1 = nn.Conv2d(3, 4, kernel_size=3, padding=1)" in text
    assert "self.fc = nn.Linear(24, 3)" in text  # "auto" in_features resolved to a number
    assert "def forward(self, x" in text
    assert "add1 = x + relu1" in text  # the Add, as plain Python, kept for the Concat
    assert "torch.cat([add1, x], dim=1)" in text
    assert 'getattr(self, "lambda")' in text  # a keyword id still works
    assert "cnnstudio" not in text.lower().replace("cnn studio", "")
    assert "auto" not in text
    for name in ("CLASSES", "INPUT_SHAPE", "MEAN", "STD", "def preprocess", "def load"):
        assert name in text


@pytest.mark.slow
def test_generated_code_classifies_images_from_the_command_line(tmp_path: Path) -> None:
    src = source_of("tiny")
    export(src, "python", tmp_path / "tiny_net.py")
    work = tmp_path / "elsewhere"
    work.mkdir()
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(work / "red.png")
    done = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "tiny_net.py"), "red.png", "--top", "2"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("red.png: class ")
    assert done.stdout.count("%") == 2


@pytest.mark.slow
def test_generated_code_preprocesses_like_the_studio(tmp_path: Path) -> None:
    """The file's preprocess() gives what CNN Studio feeds the model for the same image."""
    from cnnstudio.images import decode_image

    src = source_of("tiny")
    export(src, "python", tmp_path / "tiny_net.py")
    namespace = runpy.run_path(str(tmp_path / "tiny_net.py"), run_name="exported")
    pixels = np.random.default_rng(0).integers(0, 255, (30, 24, 4), np.uint8)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "photo.png")
    with Image.open(tmp_path / "photo.png") as image:
        ours = namespace["preprocess"](image)
    studio = torch.from_numpy(decode_image(tmp_path / "photo.png", 3, (16, 16))).float() / 255
    studio = (studio - 0.5) / 0.25
    torch.testing.assert_close(ours, studio)


def test_weights_that_do_not_fit_are_listed(tmp_path: Path) -> None:
    wider = tiny_model()
    wider = wider.set_params("conv1", out_channels=16).set_params("bn1", num_features=16)
    torch.save(build_model(wider, pretrained=False).state_dict(), tmp_path / "wider.pt")
    model = build_model(tiny_model(), pretrained=False)
    with pytest.raises(WeightsError) as caught:
        load_weights(model, tmp_path / "wider.pt")
    message = str(caught.value)
    assert "conv1.weight: file 16×3×3×3, model 8×3×3×3" in message
    assert "fc.weight: file 4×1024, model 4×512" in message
    state = {f"extra{i}.weight": torch.zeros(1) for i in range(14)}
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(WeightsError) as caught:
        load_weights(model, tmp_path / "other.pt")
    lines = str(caught.value).splitlines()
    assert "missing: conv1.weight" in lines[1]
    assert len(lines) == 12 and lines[-1].strip().startswith("and ")
    assert "23 problems" in lines[0]  # 9 missing, 14 unexpected


def test_weights_load_from_safetensors_and_checkpoints(tmp_path: Path) -> None:
    src = source_of("tiny")
    export(src, "safetensors", tmp_path / "w.safetensors")
    torch.save({"model": src.model.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")
    for name in ("w.safetensors", "checkpoint.pt"):
        model = build_model(tiny_model(), pretrained=False).eval()
        load_weights(model, tmp_path / name)
        x = torch.randn(2, 3, 16, 16)
        torch.testing.assert_close(model(x), src.model(x))


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_pickle_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"conv1.weight": _Payload(marker)}))
    with pytest.raises(WeightsError, match="never code"):
        load_weights(build_model(tiny_model(), pretrained=False), tmp_path / "evil.pt")
    assert not marker.exists()


def test_export_errors_name_the_problem(tmp_path: Path) -> None:
    src = source_of("tiny")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="cannot write"):
        export(src, "onnx", tmp_path / "file" / "model.onnx")
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export(src, "tflite", tmp_path / "m.tflite")
    with pytest.raises(ExportError, match="needs the model's spec"):
        export(src.model, "python", tmp_path / "m.py", input_shape=(3, 16, 16))
    with pytest.raises(ExportError, match="Python module name"):
        export(src, "python", tmp_path / "my-model.py")
    broken = tiny_model().set_params("conv1", kernel_size=40)
    bad = ModelSource(model=src.model, input_shape=(3, 16, 16), spec=broken)
    with pytest.raises(ExportError, match="invalid") as caught:
        export(bad, "safetensors", tmp_path / "m.safetensors")
    assert caught.value.layer == "conv1"


@pytest.mark.slow
def test_a_bare_module_exports_with_its_input_shape(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten()).eval()
    result = export(model, "onnx", tmp_path / "m.onnx", input_shape=(1, 5, 5))
    assert result.max_abs_diff < 1e-5
    assert set(FORMATS) >= {"safetensors", "onnx", "pt2", "torchscript", "python"}


# A project, trained for one epoch


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("export_project")
    data = colour_folder(root / "images", per_class=12)
    training = check_training({"epochs": 1, "batch_size": 16, "lr": 0.01, "workers": 0,
                               "schedule": "cosine", "warmup_epochs": 0.5})  # fmt: skip
    project = Project(model=tiny_model(), name="tiny colours",
                      data=DataSettings(source="folder", path=str(data)), training=training,
                      path=root / "proj")  # fmt: skip
    project.save()
    result = Trainer(project).run()
    assert type(result).__name__ == "Finished", result
    return project


@pytest.mark.slow
def test_cli_exports_the_latest_run(trained: Project, tmp_path: Path, capsys) -> None:
    out = tmp_path / "model.onnx"
    code = main(["export", str(trained.path), "--format", "onnx", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"wrote {out} (" in printed and "checked: max difference" in printed
    run = from_run(find_run(trained.runs_dir))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 16, 16)
    (logits,) = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(logits, run.model(x).detach().numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_cli_python_export_carries_the_run(trained: Project, tmp_path: Path, capsys) -> None:
    out = tmp_path / "colours.py"
    assert main(["export", str(trained.path), "--format", "python", "--out", str(out)]) == 0
    assert "colours.safetensors" in capsys.readouterr().out
    exported = runpy.run_path(str(out), run_name="exported")
    assert exported["CLASSES"] == ["c0", "c1", "c2", "c3"]
    run = from_run(find_run(trained.runs_dir))
    assert exported["MEAN"] == tuple(run.mean) and exported["STD"] == tuple(run.std)


def test_cli_without_a_run_asks_for_untrained(tmp_path: Path, capsys) -> None:
    project = Project(model=tiny_model(), name="fresh", path=tmp_path / "fresh")
    project.save()
    out = tmp_path / "fresh.safetensors"
    assert main(["export", str(project.path), "--format", "safetensors", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--untrained" in error and "train first" in error
    args = ["export", str(project.path), "--format", "safetensors", "--out", str(out)]
    assert main([*args, "--untrained"]) == 0
    assert "checked: max difference 0" in capsys.readouterr().out
    model = build_model(tiny_model(), pretrained=False)
    load_weights(model, out)


@pytest.mark.slow
def test_training_script_trains_in_a_fresh_python(trained: Project, tmp_path: Path) -> None:
    script = tmp_path / "script" / "train.py"
    result = export_training_script(trained, script)
    assert result.files == (script,)
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-I", str(script), "--epochs", "1", "--workers", "0", "--out", "w.pt"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "epoch 1/1" in done.stdout
    model = build_model(tiny_model(), pretrained=False)
    load_weights(model, work / "w.pt")  # the script's weights fit the studio's model


def test_project_folder_export_opens_elsewhere(trained: Project, tmp_path: Path) -> None:
    source = export_source(trained)
    result = export(source, "project", tmp_path / "copy")
    assert result.max_abs_diff == 0.0
    opened = load_project(tmp_path / "copy")
    assert opened.model == trained.model
    run = from_run(find_run(opened.runs_dir))
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(run.model(x), source.model(x))
    with pytest.raises(ExportError, match="not an empty folder"):
        export(source, "project", tmp_path / "copy")


def test_the_standalone_program_checks_generated_code_in_process(tmp_path, monkeypatch) -> None:
    """A PyInstaller program has no separate Python to run the generated file with: the check
    runs the file inside the program instead, and still compares the outputs."""
    src = source_of("skip")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr("subprocess.run", _no_subprocess)
    result = export(src, "python", tmp_path / "skip_net.py")
    assert result.max_abs_diff == 0
    with pytest.raises(ExportError, match="failed: RuntimeError"):  # a real check, not a pass
        export(_broken_load(src), "python", tmp_path / "skip_net2.py")
    assert "cnnstudio" in sys.modules and sys.modules["cnnstudio"] is not None


def _broken_load(src: ModelSource) -> ModelSource:
    """A source whose weights file will not load into the generated class (one key renamed)."""
    import dataclasses

    class Renamed(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

        def state_dict(self, *args, **kwargs):
            state = self.inner.state_dict(*args, **kwargs)
            first = next(iter(state))
            state["renamed." + first] = state.pop(first)
            return state

    return dataclasses.replace(src, model=Renamed(src.model))


def _no_subprocess(*args, **kwargs):
    raise AssertionError("no interpreter to start inside the standalone program")


@pytest.mark.slow
@pytest.mark.parametrize("format, name", [("python", "model.py"), ("training-script", "train.py")])
def test_cli_export_to_a_relative_path(
    format: str, name: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    project = Project(model=tiny_model(), name="fresh", path=tmp_path / "fresh")
    project.save()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = Path("rel") / name
    args = ["export", str(project.path), "--format", format, "--out", str(out), "--untrained"]
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"wrote {elsewhere / out} (" in printed and "checked: max difference" in printed
    assert (elsewhere / out).is_file()
