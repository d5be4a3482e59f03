"""Hostile files and folders (issue 15): each ends in one clear message naming the place and
what to do, never a traceback, and nothing already saved is lost."""

from __future__ import annotations

import argparse
import collections
import errno
import io
import os
import pickle
import stat
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnstudio import cli, new_project, runs
from cnnstudio.data import DataSettings, load_dataset
from cnnstudio.errors import DataError, TrainingError
from cnnstudio.images import decode_image, decode_images, scan_folder
from cnnstudio.progress import quiet
from tests import data_factory as make


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width``×``height`` pixels (no pixel data: a few bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


# Images over PIL's pixel limit (decompression bombs)

HUGE = [(100_000, 100_000), (20_000, 10_000)]


@pytest.mark.parametrize("size", HUGE)
@pytest.mark.parametrize("verify", [False, True])
def test_image_over_the_pixel_limit_is_skipped_with_the_reason(
    tmp_path: Path, size: tuple[int, int], verify: bool
) -> None:
    root = make.image_folder(tmp_path / "pets")
    bomb = png_header(root / "cat" / "bomb.png", *size)
    scan = scan_folder(root, verify=verify)
    reasons = {Path(s.path): s.reason for s in scan.skipped}
    assert reasons[bomb].startswith("image too large to decode safely"), reasons
    assert "remove it from the folder" in reasons[bomb]
    assert len(scan.files["train"]) == 12


def test_decoding_an_image_over_the_pixel_limit_names_the_file(tmp_path: Path) -> None:
    bomb = png_header(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(DataError, match="image too large to decode safely") as caught:
        decode_image(bomb, 3, (8, 8))
    assert caught.value.path == bomb and str(bomb) in str(caught.value)
    [reason] = decode_images([bomb], 3, (8, 8), quiet())
    assert reason.startswith("image too large to decode safely")


def test_loading_a_folder_with_an_image_over_the_pixel_limit_skips_it(tmp_path: Path) -> None:
    root = make.image_folder(tmp_path / "pets")
    png_header(root / "dog" / "bomb.png", 100_000, 100_000)
    dataset = load_dataset(DataSettings(source="folder", path=str(root)), (3, 20, 24))
    assert len(dataset.labels) == 12


def test_cli_data_and_new_list_an_image_over_the_pixel_limit(tmp_path: Path, capsys) -> None:
    root = make.image_folder(tmp_path / "pets")
    bomb = png_header(root / "cat" / "bomb.png", 100_000, 100_000)
    assert cli.main(["data", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"skipped: {bomb}: image too large to decode safely" in out
    assert cli.main(["new", str(tmp_path / "proj"), "--data-folder", str(root)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err


# Files written atomically keep the permissions a user expects


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_a_new_file_gets_the_umask_default_mode(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        written = new_project(path=tmp_path).save()
    finally:
        os.umask(old)
    assert mode_of(written) == 0o666 & ~umask


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o666])
def test_a_replaced_file_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    project = new_project(path=tmp_path)
    written = project.save()
    written.chmod(mode)
    project.name = "renamed"
    assert project.save() == written
    assert mode_of(written) == mode


# Project folders the studio cannot write to


def saved_project(folder: Path) -> Path:
    new_project("lenet5", path=folder).save()
    return folder


def test_train_when_runs_is_a_file_names_it(tmp_path: Path, capsys) -> None:
    folder = saved_project(tmp_path / "proj")
    (folder / "runs").write_text("not a folder")
    assert cli.main(["train", str(folder), "--epochs", "1", "--device", "cpu"]) == 1  # a failed run
    err = capsys.readouterr().err
    assert f"{folder / 'runs'} is a file, not a folder" in err
    assert "rename or move the file" in err and "Traceback" not in err
    assert (folder / "runs").read_text() == "not a folder"


def read_only_below(monkeypatch, folder: Path, number: int) -> None:
    """Writes below ``folder`` fail as on a read-only disk (chmod does not stop root)."""
    real_mkdir, real_mkstemp = Path.mkdir, tempfile.mkstemp

    def refuse(path) -> None:
        if Path(path).is_relative_to(folder):
            raise OSError(number, os.strerror(number), str(path))

    def mkdir(self, *args, **kwargs):
        if not self.is_dir():
            refuse(self)
        return real_mkdir(self, *args, **kwargs)

    def mkstemp(*args, dir=None, **kwargs):
        refuse(dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("number", [errno.EROFS, errno.EACCES])
def test_train_in_a_read_only_folder_is_one_line(
    tmp_path: Path, monkeypatch, capsys, number
) -> None:
    folder = saved_project(tmp_path / "proj")
    read_only_below(monkeypatch, folder, number)
    assert cli.main(["train", str(folder), "--epochs", "1", "--device", "cpu"]) == 1  # a failed run
    err = capsys.readouterr().err
    assert f"cannot create a run folder in {folder / 'runs'} ({os.strerror(number)})" in err
    assert "make the project folder writable" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_lr_find_in_a_read_only_folder_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = saved_project(tmp_path / "proj")
    read_only_below(monkeypatch, folder, errno.EROFS)
    assert cli.main(["lr-find", str(folder), "--steps", "3", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {folder / 'lr_find.csv'} (Read-only file system)" in err
    assert len(err.strip().splitlines()) == 1


# Checkpoints: a full disk, a damaged file


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "last.pt"
    runs.save_checkpoint(path, {"epoch": 1, "model": {"w": torch.ones(3)}})
    before = path.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TrainingError) as caught:
        runs.save_checkpoint(path, {"epoch": 2, "model": {"w": torch.zeros(3)}})
    assert str(caught.value) == (
        f"no space left on the device while writing {path}: free space; the previous "
        "checkpoint is kept"
    )
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]
    assert runs.load_checkpoint(path)["epoch"] == 1


def checkpoint_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"epoch": 1, "model": {"w": torch.zeros(64, 64)}}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b[:10],
        lambda b: b"",
        lambda b: b"hello world" * 10,
        lambda b: pickle.dumps(collections.OrderedDict(a=1)) + b"\0" * 8,
    ],
    ids=["half", "ten-bytes", "empty", "text", "pickle"],
)
def test_a_damaged_checkpoint_says_which_file_and_what_to_do(tmp_path: Path, damage) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(damage(checkpoint_bytes()))
    with pytest.raises(TrainingError) as caught:
        runs.load_checkpoint(path)
    message = str(caught.value)
    assert message == (
        f"the checkpoint {path} is damaged (truncated or not a checkpoint): delete the run or "
        "start a new one"
    )


def test_a_checkpoint_holding_code_is_refused_without_advice_to_run_it(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    torch.save({"epoch": 1, "extra": argparse.Namespace(a=1)}, path)
    with pytest.raises(TrainingError, match="holds objects other than tensors") as caught:
        runs.load_checkpoint(path)
    assert str(path) in str(caught.value) and "weights_only" not in str(caught.value)


def test_a_number_of_more_digits_than_python_reads_is_a_project_error(tmp_path) -> None:
    """Python refuses integers of more than 4,300 digits with a ValueError of its own."""
    from cnnstudio import ProjectError, load_project, new_project

    project = new_project()
    project.path = tmp_path / "p"
    project.save()
    file = tmp_path / "p" / "project.json"
    file.write_text(file.read_text().replace('"epochs": 10', '"epochs": 1' + "0" * 5000))
    with pytest.raises(
        ProjectError, match=r"project.json: holds a number of more than 4,300 digits"
    ):
        load_project(tmp_path / "p")


def test_a_png_with_an_empty_header_chunk_is_skipped_not_a_crash(tmp_path) -> None:
    """Found by the image fuzz: PIL's header reader raises ValueError('Truncated IHDR chunk')."""
    good = io.BytesIO()
    Image.new("RGB", (12, 12)).save(good, format="PNG")
    bad = bytearray(good.getvalue())
    bad[8:12] = b"\x00\x00\x00\x00"  # the IHDR chunk claims a length of 0
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(2):
            (tmp_path / label / f"good{i}.png").write_bytes(good.getvalue())
    (tmp_path / "b" / "bad.png").write_bytes(bytes(bad))
    dataset = load_dataset(DataSettings(source="folder", path=str(tmp_path)), (3, 8, 8))
    assert len(dataset) == 4
    ((path, reason),) = [(s.path, s.reason) for s in dataset.skipped]
    assert path.endswith("bad.png") and reason == "damaged image: Truncated IHDR chunk"
