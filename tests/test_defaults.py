"""Defaults that follow the data: the augmentation and batch size a project starts with, their
reasons, the warnings for settings that destroy small images, and the same through new_project
on folders of real images (sklearn's digits, the LFW faces, scikit-image's photographs)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from cnnstudio import load_project, new_project
from cnnstudio.augment import CIFAR_RECIPE, augment_warnings, default_augmentation
from cnnstudio.data import DataSettings, load_dataset, suggested_defaults, summarize
from cnnstudio.train_settings import default_batch_size

ROOT = Path(__file__).resolve().parents[1]


def bench():
    """benchmarks/defaults_accuracy.py as a module (it writes the real image folders)."""
    spec = importlib.util.spec_from_file_location(
        "defaults_accuracy", ROOT / "benchmarks" / "defaults_accuracy.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def folder(path: Path) -> DataSettings:
    return DataSettings(source="folder", path=str(path))


# The rules


def test_tiny_grayscale_folder_gets_no_flips_padding_1_and_no_jitter() -> None:
    defaults = default_augmentation("folder", (1, 8, 8))
    s = defaults.settings
    assert (s["hflip"], s["crop_padding"]) == (False, 1)
    assert s["brightness"] == s["contrast"] == s["saturation"] == 0
    assert "1/8 of 8 px" in defaults.reasons["crop_padding"]
    assert defaults.reasons["brightness"] == "colour jitter off: grayscale images"
    assert "turn them on for photographs" in defaults.reasons["hflip"]
    assert defaults.summary == (
        "Defaults for 8×8 grayscale images: no flips, crop padding 1, no colour jitter"
    )


@pytest.mark.parametrize("source", ["cifar10", "cifar100", "sample"])
def test_cifar_and_the_sample_set_keep_the_lessons_recipe(source: str) -> None:
    defaults = default_augmentation(source, (3, 32, 32))
    assert defaults.settings == CIFAR_RECIPE
    assert CIFAR_RECIPE["hflip"] and CIFAR_RECIPE["crop_padding"] == 4
    assert "recipe" in defaults.summary


def test_large_photos_get_padding_in_proportion_and_colour_jitter() -> None:
    s = default_augmentation("folder", (3, 224, 224)).settings
    assert s["crop_padding"] == 28 and s["saturation"] == 0.2 and not s["hflip"]


@pytest.mark.parametrize(("source", "hflip"), [("mnist", False), ("fashionmnist", True)])
def test_mnist_is_never_mirrored_but_clothes_are(source: str, hflip: bool) -> None:
    defaults = default_augmentation(source, (1, 28, 28))
    assert defaults.settings["hflip"] is hflip
    assert defaults.settings["crop_padding"] == 3 and defaults.settings["saturation"] == 0


def test_every_setting_has_a_reason() -> None:
    defaults = default_augmentation("folder", (3, 5, 40))
    assert set(defaults.reasons) == set(CIFAR_RECIPE)
    assert defaults.settings["crop_padding"] == 0
    assert "too small to shift" in defaults.reasons["crop_padding"]


@pytest.mark.parametrize(
    ("images", "batch"), [(160, 16), (320, 32), (639, 32), (4000, 64), (5, 16)]
)
def test_small_sets_get_smaller_batches(images: int, batch: int) -> None:
    size, reason = default_batch_size(images)
    assert size == batch
    assert ("an epoch at 64" in reason) == (batch != 64)


# The warnings


def test_the_recipe_on_8x8_images_warns_by_name_with_the_fix() -> None:
    (warning,) = augment_warnings(CIFAR_RECIPE, 8, 8)
    assert warning == (
        "crop padding 4 on 8×8 images shifts them by up to half their size: "
        "set crop padding to 1 (1/8 of 8 px)"
    )
    assert augment_warnings(CIFAR_RECIPE, 32, 32) == []


def test_rotation_and_resized_crop_warn_on_tiny_images() -> None:
    settings = {**CIFAR_RECIPE, "crop_padding": 0, "rotation": 45.0, "resized_crop": True}
    rotation, crop = augment_warnings(settings, 25, 25)
    assert rotation.startswith("rotation 45° on 25×25 images") and "15 or less" in rotation
    assert "keeps as little as 7×7 px" in crop and "resized crop scale to 0.36 or more" in crop
    assert augment_warnings(settings, 224, 224) == []


@given(
    st.sampled_from(["folder", "mnist", "fashionmnist", "cifar10"]),
    st.sampled_from([1, 3]),
    st.integers(1, 512),
    st.integers(1, 512),
)
def test_the_defaults_never_warn(source: str, channels: int, height: int, width: int) -> None:
    defaults = default_augmentation(source, (channels, height, width))
    if source != "cifar10":  # the recipe is kept as it is; at 32×32 it never warns
        assert augment_warnings(defaults.settings, height, width) == []


def test_summary_warns_about_the_projects_augmentation(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / name / f"{i}.png")
    recipe = replace(folder(root), augment=dict(CIFAR_RECIPE))
    assert any("crop padding 4 on 8×8" in w for w in summarize(recipe).warnings)
    assert not any("crop padding" in w for w in summarize(recipe, check_augment=False).warnings)
    # at the model's input size: 32×32 images are shifted by 1/8 only
    assert not any("crop padding" in w for w in summarize(recipe, (1, 32, 32)).warnings)


# Real folders through new_project


def test_real_folders_get_defaults_that_fit_them(tmp_path: Path) -> None:
    b = bench()
    digits = b.write_digits(tmp_path / "digits", limit=40)
    faces = b.write_faces(tmp_path / "faces", limit=6)
    photos = tmp_path / "photos"
    import skimage.data

    for name in ("astronaut", "coffee"):
        (photos / name).mkdir(parents=True)
        picture = Image.fromarray(getattr(skimage.data, name)())
        for i in range(3):
            crop = picture.crop((20 * i, 10 * i, 20 * i + 300, 10 * i + 300))
            crop.resize((224, 224)).save(photos / name / f"{i}.jpg")
    expected = {  # hflip, crop padding, brightness, input shape
        digits: (False, 1, 0.0, (1, 8, 8)),
        faces: (False, 3, 0.0, (1, 25, 25)),
        photos: (False, 28, 0.2, (3, 224, 224)),
    }
    for root, (hflip, padding, brightness, shape) in expected.items():
        project = new_project(data=folder(root), path=tmp_path / f"{root.name}-project")
        project.save()
        loaded = load_project(project.path)
        augment = loaded.data.augment
        assert (augment["hflip"], augment["crop_padding"], augment["brightness"]) == (
            hflip,
            padding,
            brightness,
        ), root.name
        assert loaded.model.input_shape == shape and loaded.training["batch_size"] == 16
        dataset = load_dataset(loaded.data, loaded.model.input_shape)
        assert dataset.images.shape[1:] == shape
        assert summarize(loaded.data, loaded.model.input_shape).warnings == []


def test_existing_projects_keep_their_augmentation(tmp_path: Path) -> None:
    root = bench().write_digits(tmp_path / "digits", limit=20)
    project = new_project(data=folder(root), path=tmp_path / "p")
    project.data = replace(project.data, augment={**project.data.augment, "crop_padding": 4})
    project.save()
    assert load_project(tmp_path / "p").data.augment["crop_padding"] == 4
    assert suggested_defaults(project.data).augment.settings["crop_padding"] == 1


# The benchmark's own path, on tiny data


@pytest.mark.slow
def test_benchmark_quick_path_prints_the_table(tmp_path: Path) -> None:
    b = bench()
    rows = [b.compare(name, tmp_path, epochs=1, quick=True) for name in ("digits", "faces")]
    table = b.format_table(rows).splitlines()
    assert table[0].split() == ["data", "set", "images", "classes", "studio", "plain", "diff"]
    assert [line.split()[:4] for line in table[1:]] == [
        ["digits", "8×8", "gray", "10"],
        ["faces", "25×25", "gray", "2"],
    ]
    assert all(0 <= r.studio <= 1 and 0 <= r.plain <= 1 for r in rows)


def test_a_new_project_on_a_folder_reads_its_files_once_and_later_sees_it_change(
    tmp_path: Path, monkeypatch
) -> None:
    """Defaults, classes and image shape of a new project come from one scan of the folder (a
    big folder's headers were read three times); a later question scans afresh."""
    import cnnstudio.data_settings as data_settings
    from cnnstudio.data import class_names
    from cnnstudio.fit import data_needs

    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((20, 24), 40 * i, np.uint8)).save(tmp_path / name / f"{i}.png")
    scans: list[str] = []
    real = data_settings.scan_folder

    def counted(path, *args, **kwargs):
        scans.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data_settings, "scan_folder", counted)
    made = new_project(data=folder(tmp_path))
    assert len(scans) == 1
    assert made.model.num_classes == 2 and tuple(made.model.input_shape) == (1, 20, 24)
    needs = data_needs(folder(tmp_path))  # what the window asks of data: classes and shape
    assert needs.classes == ("cats", "dogs") and len(scans) == 2
    (tmp_path / "birds").mkdir()
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(tmp_path / "birds" / "0.png")
    assert class_names(folder(tmp_path)) == ["birds", "cats", "dogs"] and len(scans) == 3
