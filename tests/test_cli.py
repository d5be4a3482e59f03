"""The command line, run as a user runs it: `python -m cnnstudio ...` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# every test starts Python, which imports torch: seconds each
pytestmark = pytest.mark.slow


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnstudio", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_new_then_summary(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    made = cli("new", str(folder), "--template", "simple-cnn")
    assert made.returncode == 0, made.stderr
    assert "2,169,770 parameters" in made.stdout
    assert (folder / "project.json").is_file()
    shown = cli("summary", str(folder))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["id", "kind", "output", "params", "FLOPs", "activations"]
    assert any(line.split()[:4] == ["fc1", "Linear", "512", "2,097,664"] for line in lines)
    # the first conv keeps its 3×32×32 input image for backward: 12 KiB
    assert any(
        line.split()[:2] == ["conv1", "Conv2d"] and line.endswith("12.00 KiB") for line in lines
    )
    assert "parameters: 2,169,770 (2,169,770 trainable)" in shown.stdout
    assert "activations per image: 980.00 KiB" in shown.stdout


def test_summary_json(tmp_path: Path) -> None:
    cli("new", str(tmp_path / "p"), "--template", "lenet5", "--classes", "4", "--input", "1,32,32")
    result = cli("summary", str(tmp_path / "p"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    keys = {"valid", "input_shape", "total_params", "trainable_params", "flops", "output_shape",
            "layers", "errors"}  # fmt: skip
    assert keys <= set(data)
    assert data["valid"] is True and data["input_shape"] == [1, 32, 32]
    assert data["output_shape"] == [4] and data["errors"] == []
    assert {"id", "kind", "output_shape", "params", "flops", "error"} <= set(data["layers"][0])
    assert data["total_params"] == sum(layer["params"] for layer in data["layers"])
    assert data["activation_bytes"] == sum(layer["activation_bytes"] for layer in data["layers"])
    assert data["layers"][0]["activation_bytes"] >= 4 * 32 * 32  # conv1 keeps its input


def test_summary_of_invalid_model_lists_errors_and_exits_1(tmp_path: Path) -> None:
    cli("new", str(tmp_path / "p"))
    file = tmp_path / "p" / "project.json"
    data = json.loads(file.read_text())
    fc1 = next(n for n in data["model"]["nodes"] if n["id"] == "fc1")
    fc1["params"]["in_features"] = 1000
    file.write_text(json.dumps(data))
    text = cli("summary", str(tmp_path / "p"))
    assert text.returncode == 1
    assert ("error: fc1: Linear expects 1000 input features but receives 4096 from flatten1: "
            "set in_features to 4096 or auto") in text.stdout  # fmt: skip
    as_json = json.loads(cli("summary", str(tmp_path / "p"), "--json").stdout)
    assert as_json["valid"] is False
    assert as_json["errors"][0]["layer"] == "fc1"
    assert as_json["activation_bytes"] is None  # an invalid model is not built, not measured


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("new",), "the following arguments are required: DIR"),
        (("new", "x", "--template", "nope"), "argument --template: invalid choice: 'nope'"),
        (("new", "x", "--classes", "zero"), "expected a whole number, got 'zero'"),
        (("new", "x", "--input", "3,32"), "expected channels,height,width"),
        (("summary", "does-not-exist"), "no project here: project.json not found"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path: Path, args, fragment: str) -> None:
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_malformed_project_file_gives_one_line(tmp_path: Path) -> None:
    (tmp_path / "project.json").write_text('{"schema_version": 1, "model": ')
    result = cli("summary", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"cnnstudio summary: error: {tmp_path / 'project.json'}, line 1, column 32: Expecting value"
    ]


def test_new_never_overwrites_a_project(tmp_path: Path) -> None:
    assert cli("new", str(tmp_path)).returncode == 0
    before = (tmp_path / "project.json").read_bytes()
    again = cli("new", str(tmp_path), "--template", "lenet5")
    assert again.returncode == 2 and "already holds a project" in again.stderr
    assert (tmp_path / "project.json").read_bytes() == before


def test_output_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    assert cli("new", str(folder), "--template", "simple-cnn").returncode == 0
    # the reader leaves before the first line is written, as `| head -1` does after it
    reader = subprocess.Popen(
        [sys.executable, "-m", "cnnstudio", "summary", str(folder), "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader.stdout.close()
    _, err = reader.communicate(timeout=300)
    assert err.decode() == ""
    assert reader.returncode == 1


def test_new_on_tiny_digits_takes_fitting_defaults_and_data_warns_about_a_bad_edit(
    tmp_path: Path,
) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i in range(40):
        (tmp_path / "digits" / str(digits.target[i])).mkdir(parents=True, exist_ok=True)
        image = (digits.images[i] * 255 / 16).round().astype("uint8")
        Image.fromarray(image).save(tmp_path / "digits" / str(digits.target[i]) / f"{i}.png")
    made = cli("new", str(tmp_path / "p"), "--data-folder", str(tmp_path / "digits"))
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[1] == (
        "Defaults for 8×8 grayscale images: no flips, crop padding 1, no colour jitter; "
        "batch size 16: 30 training images make only 1 step an epoch at 64"
    )
    project = json.loads((tmp_path / "p" / "project.json").read_text())
    assert project["data"]["augment"]["crop_padding"] == 1
    assert cli("data", str(tmp_path / "p")).stdout.count("warning:") == 0
    project["data"]["augment"]["crop_padding"] = 4
    (tmp_path / "p" / "project.json").write_text(json.dumps(project))
    shown = cli("data", str(tmp_path / "p")).stdout
    assert "warning: crop padding 4 on 8×8 images shifts them by up to half their size" in shown
