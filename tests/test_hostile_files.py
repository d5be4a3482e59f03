"""Hostile files and folders (issue 15): each ends in one clear message naming the place and
what to do, never a traceback, and nothing already saved is lost."""

from __future__ import annotations

import os
import stat
import struct
import zlib
from pathlib import Path

import pytest

from cnnstudio import cli, new_project
from cnnstudio.data import DataSettings, load_dataset
from cnnstudio.errors import DataError
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
