"""Datasets: folders and their bad files, the standard sets on disk, splits, augmentation,
normalization, the two feeding paths, previews and summaries."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnstudio import ProjectError
from cnnstudio.augment import AUGMENT_PARAMS, NO_AUGMENTATION, augment_batch
from cnnstudio.batches import LoaderBatches, TensorBatches, make_batches
from cnnstudio.data import DataSettings, dataset_stats, load_dataset, preview, summarize
from cnnstudio.errors import Cancelled, DataError
from cnnstudio.images import scan_folder
from cnnstudio.normalization import normalization
from cnnstudio.progress import TaskState
from cnnstudio.recipe import stratified_split
from cnnstudio.sample_set import SAMPLE_CLASSES, generate_sample_set
from cnnstudio.standard_sets import STANDARD_SETS, download, is_downloaded
from tests import data_factory as make
from tests.helpers import spec_of

AUGMENT_ON = {p.name: p.default for p in AUGMENT_PARAMS}


def folder_settings(path: Path, **kw) -> DataSettings:
    return DataSettings(source="folder", path=str(path), **kw)


# Image folders


def test_folder_scan_lists_bad_files_with_reasons(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "pets")
    expected = make.add_bad_files(root)
    scan = scan_folder(root, verify=True)
    assert scan.classes == ["cat", "dog"]
    assert len(scan.files["train"]) == 12
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert reasons[name].startswith(fragment), reasons[name]


def test_header_scan_is_cheap_but_loading_still_skips_truncated_files(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "pets")
    make.add_bad_files(root)
    dataset = load_dataset(folder_settings(root), (3, 20, 24))
    assert dataset.in_memory
    assert len(dataset) == 12 and dataset.images.shape == (12, 3, 20, 24)
    assert "cut.jpg" in {Path(s.path).name for s in dataset.skipped}
    assert sorted(torch.cat(list(dataset.splits.values())).tolist()) == list(range(12))


def test_summary_of_a_loaded_folder_equals_the_verifying_summary(tmp_path: Path) -> None:
    from cnnstudio.data import summarize_dataset

    root = make.image_folder(tmp_path / "pets")
    make.add_bad_files(root)
    settings = folder_settings(root)
    dataset = load_dataset(settings, (3, 20, 24))
    fast, full = summarize_dataset(dataset), summarize(settings, (3, 20, 24))
    assert fast.counts == full.counts and fast.classes == full.classes
    assert {Path(s.path).name for s in fast.skipped} == {Path(s.path).name for s in full.skipped}
    assert fast.warnings == full.warnings


def test_grayscale_palette_and_transparent_images_become_rgb(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "d", per_class=2, size=(8, 8))
    gray = np.full((8, 8), 77, dtype=np.uint8)
    Image.fromarray(gray).save(root / "cat" / "gray.png")
    Image.fromarray(make.rgb(5, (8, 8))).convert("P").save(root / "cat" / "palette.gif")
    clear = np.zeros((8, 8, 4), dtype=np.uint8)
    Image.fromarray(clear, "RGBA").save(root / "cat" / "clear.png")
    dataset = load_dataset(folder_settings(root), (3, 8, 8))
    by_name = {p.name: dataset.images[i] for i, p in enumerate(dataset.paths)}
    assert torch.equal(by_name["gray.png"], torch.full((3, 8, 8), 77, dtype=torch.uint8))
    assert torch.equal(by_name["clear.png"], torch.full((3, 8, 8), 255, dtype=torch.uint8))
    assert by_name["palette.gif"].shape == (3, 8, 8)
    as_gray = load_dataset(folder_settings(root), (1, 8, 8))
    assert as_gray.images.shape[1] == 1


def test_images_are_resized_to_the_model_input(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "d", per_class=2, size=(40, 30))
    dataset = load_dataset(folder_settings(root), (3, 16, 16))
    assert dataset.images.shape == (4, 3, 16, 16)
    assert dataset.image_sizes == ((40, 30), (40, 30))


def test_train_and_val_folders_are_the_split(tmp_path: Path) -> None:
    make.image_folder(tmp_path / "d" / "train", per_class=5)
    make.image_folder(tmp_path / "d" / "val", per_class=2)
    dataset = load_dataset(folder_settings(tmp_path / "d"), (3, 20, 24))
    assert dataset.classes == ["cat", "dog"]
    assert len(dataset.splits["train"]) == 10 and len(dataset.splits["val"]) == 4
    assert all("val" in str(dataset.paths[i]) for i in dataset.splits["val"].tolist())


def test_large_folder_stays_on_disk_and_goes_through_workers(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "d", per_class=4)
    dataset = load_dataset(folder_settings(root), (3, 20, 24), memory_limit=10)
    assert not dataset.in_memory and len(dataset.paths) == 8
    batches = make_batches(dataset, "train", 4, "cpu", (0.5,) * 3, (0.25,) * 3, train=True,
                           augment=AUGMENT_ON)  # fmt: skip
    assert isinstance(batches, LoaderBatches)
    shapes = [tuple(x.shape) for x, _ in batches]
    assert sum(s[0] for s in shapes) == len(dataset.splits["train"])


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda p: p.mkdir(), "no class folders in"),
        (lambda p: make.image_folder(p, classes=("only",)), "holds only one class ('only')"),
        (lambda p: (make.image_folder(p), (p / "empty").mkdir()), "class folder"),
        (lambda p: None, "does not exist"),
    ],
)
def test_unusable_folders_get_a_clear_message(tmp_path: Path, build, fragment: str) -> None:
    root = tmp_path / "d"
    build(root)
    with pytest.raises(DataError, match=re.escape(fragment)) as caught:
        scan_folder(root)
    assert str(root) in str(caught.value)


def test_loose_images_hint_at_the_layout(tmp_path: Path) -> None:
    tmp_path.joinpath("d").mkdir()
    Image.fromarray(make.rgb(0)).save(tmp_path / "d" / "a.png")
    with pytest.raises(DataError, match="1 images lie directly in it"):
        scan_folder(tmp_path / "d")


# Standard sets


def test_cifar10_from_torchvisions_on_disk_format(tmp_path: Path) -> None:
    written = make.cifar10(tmp_path)
    assert is_downloaded("cifar10", tmp_path)
    dataset = load_dataset(DataSettings(source="cifar10"), (3, 32, 32), data_root=tmp_path)
    assert dataset.classes == make.CIFAR_CLASSES
    # validation is held out of the 100 training images; the official 10 test images stay unseen
    held = sorted(dataset.splits["train"].tolist() + dataset.splits["val"].tolist())
    assert held == list(range(100)) and 15 <= len(dataset.splits["val"]) <= 25
    assert dataset.splits["test"].tolist() == list(range(100, 110))
    first = written["data_batch_1"][0].reshape(3, 32, 32)
    assert np.array_equal(dataset.images[0].numpy(), first)
    test_first = written["test_batch"][0].reshape(3, 32, 32)
    assert np.array_equal(dataset.images[100].numpy(), test_first)
    assert dataset.labels[100] == written["test_batch_labels"][0]


def test_cifar_batch_that_would_run_code_is_refused(tmp_path: Path) -> None:
    make.cifar10(tmp_path)

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as handle:
        pickle.dump({"data": Payload(), "labels": []}, handle)
    with pytest.raises(DataError, match=r"refusing to load builtins\.print"):
        load_dataset(DataSettings(source="cifar10"), (3, 32, 32), data_root=tmp_path)


@pytest.mark.parametrize("key", ["mnist", "fashionmnist"])
def test_mnist_family_from_idx_files(tmp_path: Path, key: str) -> None:
    folder = "MNIST" if key == "mnist" else "FashionMNIST"
    images = make.mnist(tmp_path, folder=folder)
    dataset = load_dataset(DataSettings(source=key), (1, 28, 28), data_root=tmp_path)
    assert dataset.images.shape == (40, 1, 28, 28)
    assert np.array_equal(dataset.images[3, 0].numpy(), images[3])
    assert len(dataset.classes) == 10
    as_rgb = load_dataset(DataSettings(source=key), (3, 32, 32), data_root=tmp_path)
    assert as_rgb.images.shape == (40, 3, 32, 32)


def test_missing_standard_set_says_download_first(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"CIFAR-100 is not in .*: download it first"):
        load_dataset(DataSettings(source="cifar100"), (3, 32, 32), data_root=tmp_path)


@pytest.fixture
def cifar_server(tmp_path: Path, monkeypatch):
    """CIFAR-10's archive served from a file:// address, with its real checksum."""
    archive = make.cifar10_archive(tmp_path / "cifar-10-python.tar.gz", tmp_path)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "url", archive.as_uri())
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5)
    return archive


def test_download_reports_progress_and_extracts(tmp_path: Path, cifar_server) -> None:
    events = []
    root = tmp_path / "data"
    download("cifar10", root, TaskState(lambda p: events.append((p.done, p.total))))
    assert events and events[-1][0] == cifar_server.stat().st_size
    assert is_downloaded("cifar10", root)
    assert len(load_dataset(DataSettings(source="cifar10"), (3, 32, 32), data_root=root)) == 110


def test_cancelled_download_leaves_no_file(tmp_path: Path, cifar_server) -> None:
    root = tmp_path / "data"
    with pytest.raises(Cancelled):
        download("cifar10", root, TaskState(should_stop=lambda: True))
    assert list(root.iterdir()) == []


def test_damaged_download_is_refused(tmp_path: Path, cifar_server, monkeypatch) -> None:
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)
    with pytest.raises(DataError, match="arrived damaged"):
        download("cifar10", tmp_path / "data")


def test_no_network_gives_one_clear_message(tmp_path: Path, no_network) -> None:
    with pytest.raises(DataError) as caught:
        download("mnist", tmp_path)
    message = str(caught.value)
    assert message.startswith("cannot download MNIST (https://")
    assert "Temporary failure in name resolution" in message
    assert f"put train-images-idx3-ubyte.gz into {tmp_path / 'MNIST' / 'raw'}" in message


def test_every_standard_set_has_addresses() -> None:
    for std in STANDARD_SETS.values():
        for urls, name, md5 in std.downloads():
            assert urls and all(u.startswith("http") for u in urls) and len(md5) == 32 and name


# Sample set and splits


def test_sample_set_is_deterministic_balanced_colour() -> None:
    images, labels = generate_sample_set(per_class=20)
    again, _ = generate_sample_set(per_class=20)
    assert np.array_equal(images, again)
    assert images.shape == (200, 3, 32, 32) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [20] * len(SAMPLE_CLASSES) == [20] * 10


def test_stratified_split_keeps_class_shares() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    train, val = stratified_split(labels, 0.2, seed=3)
    assert torch.bincount(labels[val]).tolist() == [10, 6, 4]
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert len(train) + len(val) == 100
    again = stratified_split(labels, 0.2, seed=3)
    assert torch.equal(again[1], val)
    assert not torch.equal(stratified_split(labels, 0.2, seed=4)[1], val)


def test_tiny_class_keeps_a_training_image() -> None:
    train, _ = stratified_split(torch.tensor([0, 0, 1]), 0.5, seed=0)
    assert sorted(torch.tensor([0, 0, 1])[train].tolist()) == [0, 1]


# Augmentation


def test_augmentation_keeps_shape_and_range() -> None:
    images = torch.randint(0, 256, (16, 3, 20, 24), dtype=torch.uint8)
    settings = {**AUGMENT_ON, "rotation": 30.0, "resized_crop": True}
    out = augment_batch(images, settings, torch.Generator().manual_seed(0))
    assert out.shape == (16, 3, 20, 24) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, images.float() / 255)


def test_flip_only_gives_each_image_or_its_mirror() -> None:
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = augment_batch(
        images, {**NO_AUGMENTATION, "hflip": True}, torch.Generator().manual_seed(1)
    )
    plain, mirrored = images.float() / 255, images.flip(3).float() / 255
    same = [torch.allclose(out[i], plain[i], atol=1e-6) for i in range(64)]
    flipped = [torch.allclose(out[i], mirrored[i], atol=1e-6) for i in range(64)]
    assert all(a or b for a, b in zip(same, flipped, strict=True))
    assert 10 < sum(flipped) < 54


def test_padded_crop_is_a_shifted_window() -> None:
    images = torch.randint(1, 256, (32, 1, 10, 10), dtype=torch.uint8)
    out = augment_batch(images, {**NO_AUGMENTATION, "crop_padding": 2}, torch.Generator())
    padded = torch.nn.functional.pad(images.float() / 255, (2, 2, 2, 2))
    for i in range(32):
        windows = [padded[i, :, dy : dy + 10, dx : dx + 10] for dy in range(5) for dx in range(5)]
        assert any(torch.allclose(out[i], w, atol=1e-6) for w in windows)


def test_colour_jitter_stays_within_its_range() -> None:
    images = torch.full((100, 3, 4, 4), 100, dtype=torch.uint8)
    out = augment_batch(images, {**NO_AUGMENTATION, "brightness": 0.2}, torch.Generator())
    factors = out[:, 0, 0, 0] / (100 / 255)
    assert factors.min() >= 0.8 - 1e-5 and factors.max() <= 1.2 + 1e-5
    assert factors.std() > 0.05


# Normalization and the two paths


def test_dataset_stats_match_numpy(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "d", per_class=5)
    dataset = load_dataset(folder_settings(root), (3, 20, 24))
    mean, std = dataset_stats(dataset)
    train = dataset.images[dataset.splits["train"]].numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, train.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(std, train.std(axis=(0, 2, 3)), rtol=1e-6)


def test_stats_are_computed_once_and_stored(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "d", per_class=5)
    settings = folder_settings(root)
    dataset = load_dataset(settings, (3, 20, 24))
    spec = spec_of(input_shape=(3, 20, 24))
    first = normalization(settings, spec, dataset)
    stored = first.data
    assert stored.mean == first.mean and stored.stats_key
    again = normalization(stored, spec, dataset)
    assert again.data is stored and again.mean == first.mean
    assert normalization(stored, spec).mean == first.mean  # known without reading the images
    assert not normalization(settings, spec).known
    restored = DataSettings.from_dict(json.loads(json.dumps(stored.to_dict())))
    assert restored == stored


def test_backbone_preprocessing_is_used_for_a_pretrained_start() -> None:
    from torchvision.models import ResNet18_Weights

    dataset = load_dataset(DataSettings(), (3, 32, 32))
    pretrained = spec_of(("bb", "Backbone", {"name": "resnet18"}), input_shape=(3, 32, 32))
    norm = normalization(DataSettings(), pretrained, dataset)
    assert norm.mean == tuple(ResNet18_Weights.DEFAULT.transforms().mean)
    assert norm.mean == (0.485, 0.456, 0.406) and norm.std == (0.229, 0.224, 0.225)
    with pytest.raises(DataError, match="does not start with a pretrained Backbone"):
        normalization(DataSettings(normalize="backbone"), spec_of(input_shape=(3, 32, 32)))


def test_fast_and_classic_paths_give_the_same_values_without_augmentation(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "d", per_class=5)
    in_memory = load_dataset(folder_settings(root), (3, 20, 24))
    on_disk = load_dataset(folder_settings(root), (3, 20, 24), memory_limit=0)
    mean, std = dataset_stats(in_memory)
    fast = TensorBatches(in_memory.images, in_memory.labels, in_memory.splits["train"], 4, mean,
                         std)  # fmt: skip
    classic = LoaderBatches(on_disk, "train", 4, mean, std, augment=None, shuffle=False,
                            device=torch.device("cpu"), workers=0)  # fmt: skip
    fast_x = torch.cat([x for x, _ in fast])
    classic_x = torch.cat([x for x, _ in classic])
    torch.testing.assert_close(fast_x, classic_x, rtol=0, atol=1e-5)
    assert torch.equal(torch.cat([y for _, y in fast]), torch.cat([y for _, y in classic]))


def test_tensor_batches_shuffle_per_epoch_and_shard_across_ranks() -> None:
    images = torch.arange(10, dtype=torch.uint8)[:, None, None, None].expand(10, 1, 2, 2)
    labels = torch.arange(10)
    indices = torch.arange(10)

    def seen(batches):
        return torch.cat([y for _, y in batches]).tolist()

    one = TensorBatches(images, labels, indices, 3, (0.0,), (1.0,), shuffle=True, seed=5)
    first = seen(one)
    one.set_epoch(1)
    assert sorted(first) == list(range(10)) and seen(one) != first
    ranks = [TensorBatches(images, labels, indices, 2, (0.0,), (1.0,), shuffle=True, seed=5,
                           rank=r, world=3) for r in range(3)]  # fmt: skip
    parts = [seen(r) for r in ranks]
    assert {len(p) for p in parts} == {4} and set().union(*parts) == set(range(10))
    assert len({len(r) for r in ranks}) == 1


@pytest.mark.parametrize("augment", [None, AUGMENT_ON])
def test_channels_last_batches_hold_the_same_images_laid_out_for_the_model(augment) -> None:
    """channels_last changes the layout of the batches (without augmentation), never the
    images, labels, order, shards or the merged last batch."""
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (23, 3, 6, 5), dtype=torch.uint8, generator=generator)
    labels = torch.arange(23) % 4
    indices = torch.tensor([0, 2, 3, 5, 7, 8, 9, 11, 12, 14, 15, 17, 18, 20, 22])
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)

    def batches(channels_last: bool, rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        made = TensorBatches(images, labels, indices, 4, mean, std, augment=augment,
                             shuffle=True, merge_single=True, seed=1, rank=rank, world=2,
                             channels_last=channels_last)  # fmt: skip
        made.set_epoch(2)
        return list(made)

    for rank in (0, 1):
        plain, laid_out = batches(False, rank), batches(True, rank)
        assert [len(y) for _, y in laid_out] == [len(y) for _, y in plain] == [4, 4]
        for (x, y), (x_cl, y_cl) in zip(plain, laid_out, strict=True):
            assert torch.equal(x_cl, x) and torch.equal(y_cl, y)
            if not augment:
                assert x_cl.is_contiguous(memory_format=torch.channels_last)


def test_preview_gives_augmented_images_of_one_class() -> None:
    dataset = load_dataset(DataSettings(), (3, 32, 32))
    grid = preview(dataset, 2, 6, AUGMENT_ON, seed=1)
    assert grid.shape == (6, 32, 32, 3) and grid.dtype == np.uint8
    plain = preview(dataset, 2, 6, None, seed=1)
    train = dataset.splits["train"]
    members = {bytes(dataset.images[i].permute(1, 2, 0).numpy()) for i in train[
        dataset.labels[train] == 2].tolist()}  # fmt: skip
    assert all(bytes(image) in members for image in plain)


# Settings, summary, command line


def test_data_settings_errors_name_the_place() -> None:
    with pytest.raises(ProjectError) as caught:
        DataSettings.from_dict({"augment": {"crop_padding": -1}})
    assert caught.value.where == "data.augment.crop_padding"
    with pytest.raises(ProjectError, match=r"unknown setting 'sourse' \(did you mean 'source'"):
        DataSettings.from_dict({"sourse": "sample"})
    with pytest.raises(ProjectError, match="needs 'path'"):
        DataSettings.from_dict({"source": "folder"})


def test_summary_counts_sizes_and_warnings(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "d", classes=("a", "b"), per_class=10)
    for i in range(10, 40):
        Image.fromarray(make.rgb(i, (30, 10))).save(root / "b" / f"{i}.png")
    make.add_bad_files(root, "a")
    summary = summarize(folder_settings(root))
    assert summary.classes == ["a", "b"]
    assert [a + b for a, b in zip(summary.counts["train"], summary.counts["val"],
                                  strict=True)] == [10, 40]  # fmt: skip
    assert summary.image_size_min == (24, 10) and summary.image_size_max == (30, 20)
    assert any("imbalanced: 'a' has 10 images, 'b' has 40" in w for w in summary.warnings)
    assert len(summary.skipped) == 4


def test_sample_summary_without_a_folder() -> None:
    summary = summarize(DataSettings())
    assert summary.classes == list(SAMPLE_CLASSES)
    assert summary.counts == {"train": [400] * 10, "val": [100] * 10}
    assert summary.warnings == []


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnstudio", *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_cli_data_json_for_a_folder_and_a_project(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "pets", per_class=5)
    expected = make.add_bad_files(root)
    result = run_cli("data", str(root), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["classes"] == ["cat", "dog"]
    assert data["counts"]["train"]["cat"] + data["counts"]["val"]["cat"] == 5
    assert {Path(s["path"]).name for s in data["skipped"]} == set(expected)
    assert all(s["reason"] for s in data["skipped"])
    made = run_cli("new", str(tmp_path / "proj"), "--data-folder", str(root))
    assert made.returncode == 0, made.stderr
    assert "2 classes, input 3×20×24" in made.stdout
    text = run_cli("data", str(tmp_path / "proj"))
    assert text.returncode == 0 and "skipped:" in text.stdout and "cut.jpg" in text.stdout


@pytest.mark.slow
def test_cli_data_on_a_bad_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("data", str(tmp_path / "empty"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"cnnstudio data: error: no class folders in {tmp_path / 'empty'}: expected one "
        "subfolder per class holding its images"
    ]


def _png_bytes(seed: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(make.rgb(seed, (6, 5))).save(buffer, "PNG")
    return buffer.getvalue()


@st.composite
def damaged_image_bytes(draw) -> bytes:
    """Real image bytes cut, flipped or replaced: what a broken disk or download leaves."""
    good = _png_bytes(draw(st.integers(0, 3)))
    how = draw(st.sampled_from(["cut", "flip", "random", "keep"]))
    if how == "cut":
        return good[: draw(st.integers(0, len(good)))]
    if how == "flip":
        at = draw(st.integers(0, len(good) - 1))
        return good[:at] + bytes([good[at] ^ draw(st.integers(1, 255))]) + good[at + 1 :]
    if how == "random":
        return draw(st.binary(max_size=200))
    return good


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(blob=damaged_image_bytes())
def test_any_file_is_loaded_or_skipped_never_raised(tmp_path: Path, blob: bytes) -> None:
    root = tmp_path / f"d{abs(hash(blob))}"
    make.image_folder(root, per_class=1, size=(6, 5))
    (root / "cat" / "suspect.png").write_bytes(blob)
    scan = scan_folder(root, verify=True)
    loaded = {p.name for p, _ in scan.files["train"]}
    skipped = {Path(s.path).name for s in scan.skipped}
    assert ("suspect.png" in loaded) != ("suspect.png" in skipped)
    dataset = load_dataset(folder_settings(root), (3, 5, 6))
    assert dataset.images.shape[1:] == (3, 5, 6)
    assert len(dataset) + len(dataset.skipped) == 3


def test_cli_download_fetches_once(tmp_path: Path, cifar_server, capsys) -> None:
    from cnnstudio.cli import main

    root = tmp_path / "data"
    assert main(["download", "cifar10", "--root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert f"CIFAR-10 is in {root / 'cifar-10-batches-py'}" in out and "MiB" in err
    assert main(["download", "cifar10", "--root", str(root)]) == 0
    assert "already in" in capsys.readouterr().out
