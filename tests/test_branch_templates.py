"""Templates with branches: Inception modules and fire modules joined by Concat, made from the
catalogue, that the command line creates, that export as code and ONNX and that learn the sample
set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnstudio import Project, cli, create_model_spec, load_project, new_project
from cnnstudio.analysis import analyze
from cnnstudio.augment import AUGMENT_PARAMS
from cnnstudio.data import DataSettings
from cnnstudio.export import export
from cnnstudio.model_source import untrained
from cnnstudio.sample_set import SAMPLE_CLASSES, generate_sample_set
from cnnstudio.train import Finished, Trainer
from cnnstudio.train_settings import check_training

BRANCHED = {"inception-small": (3, 4), "squeezenet-small": (6, 2)}  # Concats, inputs of each


@pytest.mark.parametrize("name", BRANCHED)
def test_modules_join_their_branches_with_concat(name: str) -> None:
    spec = create_model_spec(name)
    concats = [node for node in spec.nodes if node.kind == "Concat"]
    count, branches = BRANCHED[name]
    assert len(concats) == count
    assert all(len(node.inputs) == branches for node in concats)
    analysis = analyze(spec)
    assert analysis.valid, [str(e) for e in analysis.errors]
    assert analysis.total_params < 1_500_000
    shapes = {info.id: info.output_shape for info in analysis.layers}
    for node in concats:
        assert shapes[node.id][0] == sum(shapes[source][0] for source in node.inputs)


@pytest.mark.parametrize("name", BRANCHED)
def test_cli_new_creates_a_project_of_the_template(name: str, tmp_path: Path, capsys) -> None:
    assert cli.main(["new", str(tmp_path / "p"), "--template", name]) == 0
    assert f"{name}, 10 classes, input 3×32×32" in capsys.readouterr().out
    assert load_project(tmp_path / "p").model == create_model_spec(name, 10, (3, 32, 32))


def sample_folder(root: Path, per_class: int, size: int) -> Path:
    """A subset of the built-in sample set written as an image folder."""
    images, labels = generate_sample_set(per_class=per_class, size=size)
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / SAMPLE_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)))
        picture.save(folder / f"{index}.png")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", BRANCHED)
def test_template_learns_a_subset_of_the_sample_set(name: str, tmp_path: Path) -> None:
    """600 images at 16×16 without augmentation, 10 short epochs: a couple of seconds per epoch
    on a CPU (on the full set at 32×32 both reach 80 % in 3 epochs; see docs/features.md)."""
    plain = {param.name: type(param.default)() for param in AUGMENT_PARAMS}  # all off
    folder = sample_folder(tmp_path / "images", 60, 16)
    data = DataSettings(source="folder", path=str(folder), augment=plain)
    training = check_training({"epochs": 10, "batch_size": 32, "lr": 2e-3, "workers": 0})
    project = Project(model=create_model_spec(name, 10, (3, 16, 16)), name=name, data=data,
                      training=training, path=tmp_path / "proj")  # fmt: skip
    project.save()
    result = Trainer(project).run(lambda event: None)
    assert isinstance(result, Finished) and result.state == "finished"
    assert result.final_val_accuracy >= 0.3  # chance is 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", BRANCHED)
def test_generated_code_and_onnx_compute_what_the_template_does(name: str, tmp_path: Path) -> None:
    source = untrained(new_project(name))
    for format, file_name in (("python", "model.py"), ("onnx", "model.onnx")):
        result = export(source, format, tmp_path / file_name)
        assert result.max_abs_diff <= 1e-4, format
