"""Writing a job's output: one JSON line per answer, each line one write straight to the file.

Crash safety: no buffer that a crash could cut anywhere, so an interrupted run leaves complete lines and at most one
torn last line, which a resume drops. A write per line costs microseconds against the milliseconds a model takes per
question, and it keeps the work lost to a crash to the answers not yet written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from spanqa.engine.core.records import InputRecord
from spanqa.engine.jobs.failures import AnswerFileError, OutputWriteError, error_reason


def output_line(answer: Any, record: InputRecord) -> bytes:
    """One output line: the answer's fields, then the record's pass-through fields that the answer does not have."""
    fields = answer.to_dict()
    for key, value in record.passthrough.items():
        fields.setdefault(key, value)
    return (json.dumps(fields, ensure_ascii=False) + "\n").encode("utf-8")


class LineWriter:
    """Writes whole lines, one write each, straight to the file; on a failed write, cuts the file back to its last
    complete line so that a half-written line never stays behind."""

    def __init__(self, handle: BinaryIO, name: str, size: int | None, owns_handle: bool = True) -> None:
        self._handle = handle
        self._name = name
        self._owns_handle = owns_handle
        self._size = size  # bytes of complete lines; None for a stream that cannot be cut back (stdout, a pipe)
        self.lines = 0

    @classmethod
    def open(cls, path: Path | None, keep_bytes: int | None) -> LineWriter:
        """`path` None is stdout; `keep_bytes` (resume) is how much of the existing file holds complete lines."""
        if path is None:
            return cls(sys.stdout.buffer, "<stdout>", None, owns_handle=False)
        try:
            if keep_bytes is not None:
                handle = open(path, "r+b", buffering=0)
                handle.truncate(keep_bytes)  # drops the torn last line
                handle.seek(keep_bytes)
            else:
                handle = open(path, "wb", buffering=0)
        except OSError as error:
            raise AnswerFileError(f"{path}: cannot be written ({error_reason(error)})") from None
        return cls(handle, str(path), (keep_bytes or 0) if path.is_file() else None)

    def write(self, line: bytes) -> None:
        try:
            view = memoryview(line)
            while view:  # a raw write may take part of the buffer (e.g. when the disk fills); the rest follows
                written = self._handle.write(view)
                view = view[written:]
            self._handle.flush()
        except BrokenPipeError:  # the pipe's reader went away (`| head`): it wanted no more; the caller decides
            raise
        except OSError as error:
            self._cut_back()
            raise OutputWriteError(
                f"{self._name}: cannot be written ({error_reason(error)}); it holds {self.lines} complete lines from "
                "this run" + (" and can be finished with --resume" if self._size is not None else "")
            ) from None
        self.lines += 1
        if self._size is not None:
            self._size += len(line)

    def _cut_back(self) -> None:
        if self._size is None:
            return
        try:
            self._handle.truncate(self._size)
        except OSError:
            pass  # the torn line stays; a resume drops it

    def close(self) -> None:
        if self._owns_handle:
            self._handle.close()


class JobOutput:
    """A job's output, opened at its first line (or by `finish`): a run that fails before answering anything (a
    model that cannot be loaded on a Ray actor, say) leaves an existing output as it was and creates none.

    `on_open` runs right after the file is opened (and so emptied, for a fresh run) and before the first line: the
    job writes its settings file there, so that no answer is ever on disk without the settings that made it."""

    def __init__(self, path: Path | None, keep_bytes: int | None, on_open: Callable[[], None] | None = None) -> None:
        self._path = path
        self._keep = keep_bytes  # resume: bytes of complete lines; None: a fresh output
        self._on_open = on_open
        self._writer: LineWriter | None = None

    @property
    def lines(self) -> int:
        return self._writer.lines if self._writer is not None else 0

    def write(self, line: bytes) -> None:
        (self._writer or self._open()).write(line)

    def finish(self) -> None:
        """A run with nothing (left) to write still leaves its output: empty, or cut back to its complete lines."""
        if self._writer is None:
            self._open()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> JobOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self) -> LineWriter:
        self._writer = LineWriter.open(self._path, self._keep)
        if self._on_open is not None:
            self._on_open()
        return self._writer
