"""Transfer learning on cached features: where a model splits into its frozen part and the rest,
that the head learns the same from cached features as from images, and the cache's file: made
once, reused, made again when the weights, the data or the preprocessing change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnstudio import Project, build_model
from cnnstudio.augment import NO_AUGMENTATION
from cnnstudio.cli import main as cli_main
from cnnstudio.data import Dataset, DataSettings
from cnnstudio.feature_cache import (
    Head,
    cache_files,
    cache_key,
    frozen_features,
    frozen_split,
)
from cnnstudio.runs import load_checkpoint
from cnnstudio.templates import create_model_spec
from cnnstudio.train import DataProgress, Trainer, Warned
from cnnstudio.train_settings import check_training
from tests.helpers import spec_of
from tests.test_train import colour_folder, tiny_model

BACKBONE = ("bb", "Backbone", {"name": "resnet18", "weights": "none", "freeze": True})


def frozen_chain(*rest: tuple, frozen: bool = True):
    """A frozen ResNet-18 (at 16×16 it costs little) and the given layers after it."""
    bb = (*BACKBONE[:2], {**BACKBONE[2], "freeze": frozen})
    layers = rest or (("relu", "ReLU", {}), ("fc", "Linear", {"out_features": 4}))
    return spec_of(bb, *layers, input_shape=(3, 16, 16), num_classes=4)


def split_layers(spec) -> tuple[str, ...] | None:
    split = frozen_split(build_model(spec, pretrained=False))
    return split.layers if split else None


# Where the model splits


def test_resnet18_features_splits_after_its_backbone() -> None:
    spec = create_model_spec("resnet18-features", num_classes=3)
    backbone = spec.nodes[0].id
    assert spec.nodes[0].kind == "Backbone"
    assert split_layers(spec) == (backbone,)


def test_a_frozen_chain_takes_parameter_free_layers_and_merges_inside_it() -> None:
    assert split_layers(frozen_chain()) == ("bb", "relu")
    merged = frozen_chain(
        ("relu", "ReLU", {}),
        ("add", "Add", {}, ("relu", "bb")),
        ("fc", "Linear", {"out_features": 4}),
    )
    # the cut after relu would leave the Add reading bb too: the frozen part ends at the Add
    assert split_layers(merged) == ("bb", "relu", "add")


@pytest.mark.parametrize(
    "after",
    [
        ("drop", "Dropout", {"p": 0.5}),  # random in training: not a per-image feature
        ("bn", "BatchNorm1d", {}),  # running statistics that training updates
        ("fc0", "Linear", {"out_features": 8}),  # trainable
    ],
)
def test_the_frozen_part_stops_at_a_layer_that_trains_or_depends_on_the_batch(after) -> None:
    spec = frozen_chain(after, ("fc", "Linear", {"out_features": 4}))
    assert split_layers(spec) == ("bb",)


def test_no_split_without_frozen_weights() -> None:
    assert split_layers(frozen_chain(frozen=False)) is None
    assert split_layers(tiny_model()) is None
    pooled_first = spec_of(
        ("pool", "MaxPool2d", {"kernel_size": 2}),
        ("flat", "Flatten", {}),
        ("fc", "Linear", {"out_features": 4}),
        input_shape=(3, 16, 16),
        num_classes=4,
    )
    assert split_layers(pooled_first) is None  # parameter-free layers alone are not worth it


def test_the_head_on_features_gives_the_loss_and_gradients_of_the_whole_model() -> None:
    spec = frozen_chain(
        ("relu", "ReLU", {}),
        ("fc1", "Linear", {"out_features": 16}),
        ("relu2", "ReLU", {}),
        ("fc", "Linear", {"out_features": 4}),
    )
    torch.manual_seed(0)
    model = build_model(spec, pretrained=False).train()
    split = frozen_split(model)
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1])

    def loss_and_grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return loss.detach(), grads

    whole, whole_grads = loss_and_grads(F.cross_entropy(model(x), y))
    head = Head(model, split)
    features = frozen_features(model, split, x)
    cached, cached_grads = loss_and_grads(F.cross_entropy(head(features), y))
    assert torch.allclose(whole, cached, atol=1e-6)
    head_params = {"fc1.weight", "fc1.bias", "fc.weight", "fc.bias"}
    assert set(whole_grads) == set(cached_grads) == head_params
    for name, grad in whole_grads.items():
        assert torch.allclose(grad, cached_grads[name], atol=1e-6), name


# The cache's key


def dataset(images: torch.Tensor) -> Dataset:
    labels = torch.arange(len(images)) % 4
    splits = {"train": torch.arange(0, 8), "val": torch.arange(8, 10)}
    return Dataset("folder", ["a", "b", "c", "d"], labels, splits, (3, 16, 16), images=images)


def test_the_key_changes_with_the_weights_the_data_and_the_preprocessing() -> None:
    model = build_model(frozen_chain(), pretrained=False)
    split = frozen_split(model)
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    data = {"source": "folder", "path": "/x", "augment": dict(NO_AUGMENTATION)}
    base = {"data": data, "mean": (0.5,) * 3, "std": (0.25,) * 3, "views": 0, "seed": 0}

    def key(**changes):
        values = {**base, **changes}
        the_model = values.pop("model", model)
        return cache_key(the_model, split, values.pop("dataset", dataset(images)), **values)

    first = key()
    assert key() == first
    assert key(seed=5) == first  # without augmented views the seed draws nothing
    other_images = images.clone()
    other_images[0, 0, 0, 0] ^= 1
    other_weights = build_model(frozen_chain(), pretrained=False)
    other_weights.load_state_dict(model.state_dict())
    with torch.no_grad():
        other_weights.bb.net.conv1.weight[0, 0, 0, 0] += 1
    changed = [
        key(mean=(0.4,) * 3),
        key(std=(0.2,) * 3),
        key(dataset=dataset(other_images)),
        key(data={**data, "val_fraction": 0.3}),
        key(views=2),
        key(model=other_weights),
    ]
    assert first not in changed and len(set(changed)) == len(changed)


# Runs with the cache


def transfer_project(root: Path, name: str, **training) -> Project:
    folder = root / "images"
    if not folder.is_dir():
        colour_folder(folder, per_class=10)
    augment = training.pop("augment", None) or dict(NO_AUGMENTATION)
    settings = {"epochs": 2, "batch_size": 8, "log_every": 1, "lr": 0.01, "schedule": "constant",
                "workers": 0, **training}  # fmt: skip
    made = Project(model=frozen_chain(), name=name, training=check_training(settings),
                   data=DataSettings(source="folder", path=str(folder), augment=augment),
                   path=root / name)  # fmt: skip
    made.save()
    return made


def train(project: Project, **overrides) -> tuple:
    events: list = []
    result = Trainer(project, **overrides).run(events.append)
    assert result.state == "finished", result
    run = Path(result.run_dir)
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["type"] == "epoch"]
    settings = json.loads((run / "settings.json").read_text())
    return run, epochs, settings["feature_cache"], events


def computed(events: list) -> bool:
    return any(isinstance(e, DataProgress) and e.what.startswith("computing") for e in events)


def test_a_cached_run_trains_as_the_full_forward_and_keeps_the_whole_model(tmp_path) -> None:
    cached_run, cached_epochs, cache, events = train(transfer_project(tmp_path, "cached"))
    full_run, full_epochs, no_cache, _ = train(
        transfer_project(tmp_path, "full", feature_cache=False)
    )
    assert computed(events) and cache["layers"] == ["bb", "relu"] and no_cache is None
    for with_cache, without in zip(cached_epochs, full_epochs, strict=True):
        for metric in ("train_loss", "val_loss", "val_accuracy"):
            assert with_cache[metric] == pytest.approx(without[metric], rel=1e-4, abs=1e-5)
    for name in ("last.pt", "best.pt"):
        cached_state = load_checkpoint(cached_run / name)["model"]
        full_state = load_checkpoint(full_run / name)["model"]
        assert list(cached_state) == list(full_state)
        assert all(torch.allclose(cached_state[k], full_state[k], atol=1e-5) for k in full_state)
    # the final evaluation runs the whole model on the validation images
    evaluation = json.loads((cached_run / "evaluation.json").read_text())
    full_evaluation = json.loads((full_run / "evaluation.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(full_evaluation["accuracy"])


@pytest.mark.slow
def test_the_cache_is_written_once_reused_and_remade_when_the_data_change(tmp_path) -> None:
    project = transfer_project(tmp_path, "proj", epochs=1)
    _run, _epochs, first, events = train(project)
    path = Path(first["file"])
    assert computed(events) and not first["reused"]
    assert path.parent == tmp_path / "proj" / "cache" / "features" and path.is_file()
    written = path.stat().st_mtime_ns

    _run, _epochs, second, events = train(project)
    assert second["reused"] and second["file"] == first["file"] and not computed(events)
    assert any(isinstance(e, DataProgress) and str(path) in e.what for e in events)
    assert path.stat().st_mtime_ns == written

    resumed = train(project, epochs=2, resume=True)[2]  # the checkpoint's weights: the same key
    assert resumed["reused"] and resumed["file"] == first["file"]

    image = next((tmp_path / "images" / "c0").iterdir())
    Image.new("RGB", (16, 16), (0, 0, 0)).save(image)  # a picture changed: new features
    _run, _epochs, third, events = train(project)
    assert computed(events) and third["file"] != first["file"]
    assert len(cache_files(tmp_path / "proj")) == 2


@pytest.mark.slow
def test_augmentation_without_views_runs_the_backbone_and_says_so(tmp_path) -> None:
    augment = {**NO_AUGMENTATION, "hflip": True}
    project = transfer_project(tmp_path, "aug", epochs=1, augment=augment)
    _run, _epochs, cache, events = train(project)
    warnings = [e.message for e in events if isinstance(e, Warned)]
    assert cache is None and any("feature_cache_views" in w for w in warnings)

    project.training = {**project.training, "feature_cache_views": 2}
    _run, epochs, cache, events = train(project)
    assert cache["views"] == 2 and computed(events) and len(epochs) == 1


def test_the_cache_command_lists_and_clears_the_files(tmp_path, capsys) -> None:
    project = transfer_project(tmp_path, "proj", epochs=1)
    train(project)
    assert cli_main(["cache", str(tmp_path / "proj")]) == 0
    listed = capsys.readouterr().out
    assert "1 file(s)" in listed and ".safetensors" in listed
    assert cli_main(["cache", str(tmp_path / "proj"), "--clear"]) == 0
    assert "deleted 1" in capsys.readouterr().out and cache_files(tmp_path / "proj") == []
    assert cli_main(["cache", str(tmp_path / "nothing")]) != 0
