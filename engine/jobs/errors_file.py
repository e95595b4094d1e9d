"""The errors file: the input lines a run skipped, one `{"line", "error"[, "id"]}` JSON object each (with "file"
first when the input is several shards, whose lines count from each shard's start). No bad lines, no file.

The file is rebuilt by every run, resumed ones included, so it never lists a line twice. Entries are staged in
ERRORS.partial until `commit()`, which puts them in the errors file's place (or removes a previous run's file when
there are none yet): a run whose checks fail before the commit (a resume of another input's output) leaves the
previous errors file as it was. After the commit, entries go straight to the errors file, one write each.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from spanqa.engine.core.records import LineError
from spanqa.engine.jobs.failures import OutputWriteError, error_reason
from spanqa.engine.jobs.targets import STAGING_SUFFIX


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class ErrorsFile:
    """`path` None sends each entry to `on_skipped` as a "skipped FILE:LINE: reason" message instead (the program
    decides how stderr shows it; by default it is printed as is)."""

    def __init__(
        self, path: Path | None, input_names: Sequence[str], on_skipped: Callable[[str], None] | None = None
    ) -> None:
        self._path = path
        self._names = list(input_names)
        self._on_skipped = on_skipped or print_to_stderr
        self._handle: BinaryIO | None = None
        self._committed = path is None
        self.name = "<stderr>" if path is None else str(path)

    def write(self, error: LineError, source: int = 0) -> None:
        if self._path is None:
            self._on_skipped(f"skipped {error.describe(self._names[source])}")
            return
        line = error.to_json_line()
        if len(self._names) > 1:  # name the shard first: line numbers count from each shard's start
            line = b'{"file": %s, %s' % (_json_string(self._names[source]), line[1:])
        try:
            if self._handle is None:
                self._handle = open(self._path if self._committed else self._staging(), "wb", buffering=0)
            self._handle.write(line)
        except OSError as error_writing:
            raise OutputWriteError(f"{self.name}: cannot be written ({error_reason(error_writing)})") from None

    def commit(self) -> None:
        if self._committed:
            return
        self._committed = True
        assert self._path is not None
        try:
            if self._handle is not None:
                os.replace(self._staging(), self._path)  # the open handle follows the file to its new name
            elif self._path.is_file():
                self._path.unlink()  # a previous run's list
        except OSError as error:
            raise OutputWriteError(f"{self.name}: cannot be replaced ({error_reason(error)})") from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if not self._committed:  # the run's checks failed: its staged entries are not wanted
            self._staging().unlink(missing_ok=True)

    def __enter__(self) -> ErrorsFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _staging(self) -> Path:
        assert self._path is not None
        return self._path.with_name(self._path.name + STAGING_SUFFIX)


def _json_string(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "backslashreplace")


__all__ = ["ErrorsFile", "print_to_stderr"]
