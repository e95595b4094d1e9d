"""Reading a job's input: opening it (plain, .gz or stdin), and the feed of its valid records.

The feed is the bad-line loop of every file job, local or on Ray: bad lines are handed to the caller (for the errors
file) and skipped, or, in strict mode, the first one ends the feed; so does an input that cannot be read. Either way
`stop_error` then says why, and the caller raises it after answering the records handed out before: no answerable
line before a bad one is lost. The records are read in the thread that iterates the feed (the caller's: see `QAEngine.answer_pairs`).
"""

from __future__ import annotations

import gzip
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from spanqa.engine.core.records import InputRecord, LineError, read_records
from spanqa.engine.jobs.failures import AnswerFileError, StrictModeStop, error_reason


def open_input(path: Path | None) -> Any:
    """A binary stream over the input, for a `with` block; None is stdin (which the block leaves open)."""
    if path is None:
        return _NonClosing(sys.stdin.buffer)
    try:
        # gzip.open checks nothing until the first read; a corrupt file surfaces there, as a read error.
        return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    except OSError as error:
        raise AnswerFileError(f"{path}: cannot be read ({error_reason(error)})") from None


class RecordFeed:
    """The valid records of a job's input: one file, or shards read as one (their lines, in order).

    Ids must be unique across the whole input: the reader checks each shard, and the feed checks across shards
    (the output is one file). `on_error(error, source)` receives each bad line skipped (`ErrorsFile.write`); None
    only counts them."""

    def __init__(
        self, input_names: Sequence[str], on_error: Callable[[LineError, int], None] | None, strict: bool
    ) -> None:
        self.names = list(input_names)
        self._on_error = on_error
        self._strict = strict
        self.stop_error: AnswerFileError | None = None
        self.error_count = 0
        self.record_count = 0
        self._first_seen: dict[Any, tuple[int, int]] | None = {} if len(self.names) > 1 else None

    def records(self, stream: BinaryIO, source: int = 0) -> Iterator[InputRecord]:
        """The valid records of input `source`, read from `stream`; ends early after a stop (see `stop_error`)."""
        name = self.names[source]
        results = read_records(stream)
        last_line = 0
        while self.stop_error is None:
            try:
                result = next(results, None)
            except (OSError, EOFError, zlib.error) as error:  # includes gzip.BadGzipFile
                self.stop_error = AnswerFileError(
                    f"{name}: cannot be read after line {last_line} ({error_reason(error)})"
                )
                return
            if result is None:
                return
            last_line = result.line
            if isinstance(result, InputRecord):
                result = self._unique_across_shards(result, source)
            if isinstance(result, InputRecord):
                self.record_count += 1
                yield result
            elif self._strict:
                self.stop_error = StrictModeStop(f"{result.describe(name)} (--strict stops at a bad line)")
            else:
                self.error_count += 1
                if self._on_error is not None:
                    self._on_error(result, source)

    def _unique_across_shards(self, record: InputRecord, source: int) -> InputRecord | LineError:
        if self._first_seen is None:
            return record
        first = self._first_seen.setdefault(record.id, (source, record.line))
        if first[0] == source:  # within one shard the reader has checked already
            return record
        where = f"{self.names[first[0]]}:{first[1]}"
        return LineError(record.line, f"duplicate id {record.id!r} (first at {where})", record.id)


class _NonClosing:
    """Lends a stream (stdin) to a `with` block without closing it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def __enter__(self) -> BinaryIO:
        return self.stream

    def __exit__(self, *exc_info: object) -> None:
        return None
