"""A test hook for the kill trials (tests/engine/jobs/test_fault_tolerance.py): one output file whose writes stall at a byte count.

qa-answer writes each output line with one write() to an unbuffered file, and SIGKILL cannot interrupt a small write
to a regular file halfway, so a kill alone never leaves a torn line. A slow or hung disk (or network file system) can:
its writes come back short and the next one blocks. This hook makes the named file behave so: writes are passed
through until the file holds SPANQA_TEST_STALL_AT bytes, the write that crosses it is cut there (a short write, which
the writer must finish with further writes), and any further write blocks until the process is killed.

Installed by putting this folder first on PYTHONPATH (Python imports `sitecustomize` at start-up) with
SPANQA_TEST_STALL_PATH and SPANQA_TEST_STALL_AT set, or by calling `install` in a process already running. Only the
file opened unbuffered in binary mode at exactly that path is affected; nothing in spanqa knows about the hook.
"""

from __future__ import annotations

import builtins
import io
import os
import time

PATH_VARIABLE = "SPANQA_TEST_STALL_PATH"
BYTES_VARIABLE = "SPANQA_TEST_STALL_AT"


class StallingFile(io.FileIO):
    def __init__(self, path: str, mode: str, stall_at: int) -> None:
        super().__init__(path, mode)
        self._stall_at = stall_at

    def write(self, data) -> int:
        room = self._stall_at - self.tell()
        if room <= 0:
            while True:  # the hung disk: this process waits here for its SIGKILL
                time.sleep(3600)
        return super().write(memoryview(data).cast("B")[:room])


def install(path: str | os.PathLike, stall_at: int) -> None:
    target = os.path.realpath(path)
    original_open = builtins.open

    def open_stalling(file, mode="r", buffering=-1, *args, **kwargs):
        if (
            isinstance(file, (str, os.PathLike)) and "b" in mode and buffering == 0 and not args and not kwargs
            and os.path.realpath(file) == target
        ):  # fmt: skip
            return StallingFile(os.fspath(file), mode.replace("b", ""), stall_at)
        return original_open(file, mode, buffering, *args, **kwargs)

    builtins.open = open_stalling


if os.environ.get(PATH_VARIABLE):
    install(os.environ[PATH_VARIABLE], int(os.environ[BYTES_VARIABLE]))
