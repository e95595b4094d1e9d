"""Resuming: how far an existing output got, checked line by line against the input's valid records.

A resume keeps the output's complete lines when their ids are the input's valid ids, in order, drops a torn last
line, and restarts the engine at the last look-ahead group boundary: the engine batches `lookahead` consecutive
records at a time and an answer depends only on its group, so the records of the group a crash cut are answered
again (their lines already written stay) and every later answer is batched as in one uninterrupted run. Both the
local job and the Ray planner check an output with `ExistingOutputCheck`, so either can finish the other's run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spanqa.engine.core.records import MAX_LINE_BYTES, InputRecord
from spanqa.engine.jobs.failures import AnswerFileError, error_reason
from spanqa.engine.jobs.input import RecordFeed, open_input
from spanqa.engine.jobs.targets import STDIO, display_name

# Output lines carry no context, but pass-through fields and n-best lists can make them long. A line longer than
# the longest input line plus this margin cannot be one qa-answer wrote.
MAX_OUTPUT_LINE_BYTES = MAX_LINE_BYTES + 1024 * 1024
_ANOTHER_INPUT = "the output belongs to another input (pass --overwrite to start over, or write elsewhere)"


@dataclass(frozen=True)
class OutputProgress:
    """How far an output file got: its complete lines (checked against the input) and a torn tail, if any."""

    complete_lines: int
    complete_bytes: int
    torn_bytes: int  # bytes after the last newline, dropped by a resume
    last_input_line: int  # input line of the last complete answer; 0 when there is none


@dataclass(frozen=True)
class ExistingOutput:
    progress: OutputProgress
    # The records since the last group boundary, with the lines already written for them: answered again with
    # their group, their lines kept (and compared, to count answers that came out differently).
    replay: tuple[tuple[InputRecord, bytes], ...]


class ExistingOutputCheck:
    """Streams an existing output's complete lines and matches each to the next valid record, as the caller reads
    the input: `match(record)` for each record in order until it returns None, then `finish`."""

    def __init__(self, path: Path, lookahead: int) -> None:
        self._path = path
        self._lookahead = lookahead
        try:
            self._handle = open(path, "rb")
        except OSError as error:
            raise AnswerFileError(f"{path}: cannot be read ({error_reason(error)})") from None
        self._lines = self._bytes = self._torn = self._last_input_line = 0
        self._at_end = False
        self._replay: list[tuple[InputRecord, bytes]] = []

    def match(self, record: InputRecord, input_name: str) -> dict[str, Any] | None:
        """The output line already written for `record` (parsed), or None when the output has no more complete
        lines, so that `record` is the first one left to answer."""
        line = self._next_line()
        if line is None:
            return None
        raw, written = line
        if written["id"] != record.id:
            raise AnswerFileError(
                f"{self._where()}: answers id {written['id']!r}, but the next valid input line ({input_name}:"
                f"{record.line}) has id {record.id!r}: {_ANOTHER_INPUT}"
            )
        if self._lines % self._lookahead == 0:
            self._replay.clear()  # a group boundary: the groups before it are done
        self._replay.append((record, raw))
        self._lines += 1
        self._bytes += len(raw)
        self._last_input_line = record.line
        return written

    def finish(self, input_name: str, stop_error: AnswerFileError | None) -> ExistingOutput:
        """Once the input ran out (or stopped at `stop_error`) before the output did, the output is refused: it
        answers lines this input does not have, or, after a stop, lines this run cannot vouch for."""
        if self._next_line() is not None:
            self._handle.close()
            if stop_error is not None:
                raise stop_error
            raise AnswerFileError(
                f"{self._where()}: the output has more answers than {input_name} has valid lines; {_ANOTHER_INPUT}"
            )
        self._handle.close()
        if self._lines % self._lookahead == 0:
            self._replay.clear()
        progress = OutputProgress(self._lines, self._bytes, self._torn, self._last_input_line)
        return ExistingOutput(progress, tuple(self._replay))

    def close(self) -> None:
        self._handle.close()

    def _where(self) -> str:
        return f"{self._path}:{self._lines + 1}"

    def _next_line(self) -> tuple[bytes, dict[str, Any]] | None:
        if self._at_end:
            return None
        raw = self._handle.readline(MAX_OUTPUT_LINE_BYTES + 1)
        if not raw.endswith(b"\n"):
            if len(raw) > MAX_OUTPUT_LINE_BYTES:
                raise AnswerFileError(f"{self._where()}: not a qa-answer output line (too long)")
            self._torn = len(raw)  # the last line, cut short by a crash (or nothing at the end)
            self._at_end = True
            return None
        return raw, parse_output_line(raw, self._where())


def parse_output_line(raw: bytes, where: str) -> dict[str, Any]:
    try:
        written = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnswerFileError(f"{where}: not a qa-answer output line ({error})") from None
    if not isinstance(written, dict) or not _is_id(written.get("id")) or not isinstance(written.get("answer"), str):
        raise AnswerFileError(f'{where}: not a qa-answer output line (no "id" and string "answer")')
    return written


def _is_id(value: Any) -> bool:
    # Ids are written back as the input gave them: strings or integers.
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def match_existing(
    check: ExistingOutputCheck, records: Iterator[InputRecord], feed: RecordFeed,
    on_written: Callable[[InputRecord, dict[str, Any]], None] = lambda record, written: None,
) -> tuple[ExistingOutput, InputRecord | None]:  # fmt: skip
    """Read `records` (of a one-file input) against the output until it runs out: what a resume keeps, and the
    first record left to answer (None when every record read has its line). `on_written` sees each kept line."""
    for record in records:
        written = check.match(record, feed.names[0])
        if written is None:
            return check.finish(feed.names[0], None), record
        on_written(record, written)
    return check.finish(feed.names[0], feed.stop_error), None


def read_output_progress(input_path: str | os.PathLike, output_path: str | os.PathLike) -> OutputProgress:
    """How far OUTPUT got answering INPUT, reading both and changing neither: what a resume would keep.

    Raises `AnswerFileError` when OUTPUT's lines do not match INPUT's valid records in order."""
    output = Path(output_path)
    if not output.is_file():
        raise AnswerFileError(f"{output}: no such file")
    source = None if str(input_path) == STDIO else Path(input_path)
    feed = RecordFeed([display_name(source)], None, strict=False)
    check = ExistingOutputCheck(output, lookahead=1)
    try:
        with open_input(source) as stream:
            return match_existing(check, feed.records(stream), feed)[0].progress
    finally:
        check.close()
