"""One convention for sizes, in the window and on the command line alike: binary units with
their IEC names (the window said "8.7 MB" where the command line said "8.29 MiB" for one file)."""

from __future__ import annotations

import pytest

from cnnstudio.params import format_bytes


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, "0 B"), (512, "512 B"), (1536, "1.50 KiB"), (8_694_000, "8.29 MiB"),
     (3 * 2**30 // 2, "1.50 GiB"), (5 * 2**40, "5.00 TiB")],
)  # fmt: skip
def test_sizes_are_written_in_binary_units(count: int, shown: str) -> None:
    assert format_bytes(count) == shown


def test_the_command_line_writes_a_file_size_in_the_convention(tmp_path, capsys) -> None:
    from cnnstudio import new_project
    from cnnstudio.cli import main

    project = new_project()
    project.save(tmp_path / "p")
    out = tmp_path / "model.safetensors"
    assert (
        main(
            [
                "export",
                str(tmp_path / "p"),
                "--format",
                "safetensors",
                "--untrained",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"({format_bytes(out.stat().st_size)})" in printed
