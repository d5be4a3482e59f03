"""Size and start-up time of the standalone program built by `make bundle`.

    .venv/bin/python benchmarks/bundle_size.py [--runs 3] [--folder dist/cnnstudio]

Prints the folder's size, its five largest parts, and the wall time of `--self-test` (build the
window offscreen, analyse, read the data, train one step, exit) for the program and, for
comparison, for `python main.py --self-test` from the source tree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder``, links not followed (as `du` counts them)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def self_test_seconds(command: list[str]) -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{command[0]} --self-test failed: {done.stderr.strip()[-500:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "dist" / "cnnstudio")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    program = args.folder / ("cnnstudio.exe" if sys.platform == "win32" else "cnnstudio")
    if not program.exists():
        print(f"{program} does not exist: build it with `make bundle`", file=sys.stderr)
        return 1
    internal = args.folder / "_internal"
    parts = {
        part.name: folder_bytes(part) if part.is_dir() else part.lstat().st_size
        for part in internal.iterdir()
    }
    print(f"{args.folder}: {folder_bytes(args.folder) / 1e9:.2f} GB")
    for name, size in sorted(parts.items(), key=lambda item: -item[1])[:5]:
        print(f"  {name:<24} {size / 1e9:.2f} GB")
    bundle = [self_test_seconds([str(program), "--self-test"]) for _ in range(args.runs)]
    source = [
        self_test_seconds([sys.executable, str(ROOT / "main.py"), "--self-test"])
        for _ in range(args.runs)
    ]
    print(f"--self-test, median of {args.runs}: program {statistics.median(bundle):.2f} s, "
          f"source {statistics.median(source):.2f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
