"""Atomic publication of a finished model folder: stage beside the output, fsync, rename into place.

The staging folder lives in the output's parent, so the final rename never crosses a filesystem and a reader sees
either no folder or a complete one. Replacing (`--overwrite`) moves the old folder aside first and deletes it only
once the new one is in place; if the second rename fails, the old folder is moved back. Between the two renames
the output path is briefly absent, never half-written. Only a finished qa-export folder (one with manifest.json)
or an empty folder may be replaced, so a mistyped --output cannot delete unrelated files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from spanqa.engine.core.model_folder import is_exported_model

from spanqa.export.options import ExportError

_NAME_ATTEMPTS = 100


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an output that exists (without overwrite, or that is not a qa-export folder) or cannot be written."""
    if output.exists() or output.is_symlink():
        if not output.is_dir():
            raise ExportError(f"--output {output}: exists and is not a folder")
        if not overwrite:
            raise ExportError(f"--output {output}: already exists; pass --overwrite to replace it")
        _check_replaceable(output)
    _probe_writable(output)


@contextlib.contextmanager
def staging_folder(output: Path, kind: str) -> Iterator[Path]:
    """A hidden scratch folder beside `output`, removed on exit unless it was published (renamed away).
    Made with mkdir rather than mkdtemp: mkdtemp's 0700 mode would become the published folder's mode, where
    mkdir honours the user's umask like any other new folder."""
    for _ in range(_NAME_ATTEMPTS):
        path = output.parent / f".{output.name}.{kind}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
        except OSError as error:
            raise ExportError(f"--output {output}: cannot create a folder in {output.parent}: {error.strerror}") from None
    else:
        raise ExportError(f"--output {output}: cannot find a free scratch folder name in {output.parent}")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(stage: Path, output: Path, overwrite: bool) -> None:
    _fsync_tree(stage)
    if not (output.exists() or output.is_symlink()):
        try:
            os.rename(stage, output)
        except OSError as error:  # e.g. someone created a non-empty folder there meanwhile
            raise ExportError(f"--output {output}: cannot move the finished model into place: {error.strerror}") from None
    else:
        if not overwrite:
            raise ExportError(f"--output {output}: appeared while exporting; pass --overwrite to replace it")
        _check_replaceable(output)
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
        os.rename(output, old / output.name)
        try:
            os.rename(stage, output)
        except OSError as error:
            os.rename(old / output.name, output)
            shutil.rmtree(old, ignore_errors=True)
            raise ExportError(f"--output {output}: cannot move the new model into place: {error.strerror}") from None
        shutil.rmtree(old, ignore_errors=True)
    _fsync_folder(output.parent)


def _check_replaceable(output: Path) -> None:
    if not is_exported_model(output) and any(output.iterdir()):
        raise ExportError(
            f"--output {output}: holds files but no manifest.json, so it is not a qa-export folder; "
            "refusing to replace it even with --overwrite"
        )


def _probe_writable(output: Path) -> None:
    """Create the parent folders if needed and a scratch folder in the parent: the real test of writability
    (permission bits say nothing for root or on a read-only mount)."""
    existing = next(parent for parent in output.parents if parent.exists())
    if not existing.is_dir():
        raise ExportError(f"--output {output}: not writable ({existing} is a file, not a folder)")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{output.name}.probe-", dir=output.parent)
    except OSError as error:
        where = error.filename or output.parent
        raise ExportError(f"--output {output}: not writable ({where}: {error.strerror})") from None
    os.rmdir(probe)


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
