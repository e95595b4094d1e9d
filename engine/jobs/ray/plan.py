"""Plan a distributed `qa-answer` run: validate the input once, cut its valid records into the engine's groups.

Ray-free on purpose (the planner runs on the driver, and its tests need no cluster).

Why groups: `QAEngine.answer_many` batches `lookahead` consecutive records at a time and an answer depends only on its
group (see its docstring). So if each engine actor answers whole groups, cut exactly where a single process cuts them,
every answer is computed from the same batches as in `qa-answer` on one machine, and the output is byte-identical to
it, whatever the number of actors and the order in which they finish.

The input is one JSONL file or several shards, read as their concatenation (the shards' lines, in order): the same
reader as `qa-answer` (`jsonl_records.read_records`) validates every line, so bad lines are reported with the same
reasons and skipped; duplicate ids are refused across all shards. Each group is handed over as `Piece`s: runs of
adjacent valid lines of one shard, either carried as bytes (`ship=True`: the driver's object store delivers them, any
input works, stdin and .gz included) or as a byte range that the actor reads itself (`ship=False`: plain files on a
filesystem every Ray node mounts; only offsets travel, so the driver never holds the contexts). A range carries a
digest of its bytes, so an input changed between planning and answering is an error, not wrong answers.

Resume: the complete lines of an existing output are checked against the valid records, in order, while planning;
groups already written are left out, and the group a crash cut is answered again whole (so its batches match), its
lines already written are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from spanqa.engine.jobs.answer_file import AnswerFileError, StrictModeStop, error_reason, open_input
from spanqa.engine.core.records import MAX_LINE_BYTES, InputRecord, LineError, read_records

STDIO = "-"
_DIGEST_BYTES = 16
# qa-answer's own bound for an output line: the longest input line plus a margin for n-best lists.
_MAX_OUTPUT_LINE_BYTES = MAX_LINE_BYTES + 1024 * 1024


@dataclass(frozen=True)
class Piece:
    """Adjacent valid lines of one input: `count` lines from line `first_line`, bytes [start, end) of the file."""

    source: int  # index into the inputs
    first_line: int
    count: int
    start: int
    end: int
    data: bytes | None = None  # the lines themselves (ship mode); None: the actor reads the range
    digest: bytes = b""  # blake2b of the lines (range mode), checked by the reader


@dataclass(frozen=True)
class GroupTask:
    """One engine group: at most `lookahead` consecutive valid records, in pieces."""

    index: int
    pieces: tuple[Piece, ...]
    size: int  # records in the group
    written: int = 0  # leading records whose lines an earlier run wrote (resume); they are answered, not written


@dataclass(frozen=True)
class ExistingOutput:
    """What a resume keeps of an output file."""

    complete_lines: int
    complete_bytes: int
    torn_bytes: int
    kept_lines: tuple[bytes, ...]  # the lines already written for the group the crash cut (to count mismatches)


@dataclass
class Plan:
    groups: list[GroupTask] = field(default_factory=list)  # only those with lines left to write
    records: int = 0  # valid records in the whole input
    errors: int = 0  # bad lines skipped
    existing: ExistingOutput | None = None
    stop_error: AnswerFileError | None = None  # strict mode or an unreadable input: raise after answering the rest


def plan_groups(
    inputs: Sequence[str | os.PathLike],
    lookahead: int,
    ship: bool,
    on_error: Callable[[LineError, int], None],
    strict: bool = False,
    existing_output: str | os.PathLike | None = None,
) -> Plan:
    """Read every input once and cut its valid records into groups of `lookahead` (see the module docstring).

    `on_error(error, source_index)` receives each bad line. `existing_output` is the output of an earlier run to be
    resumed; its ids must be the input's valid ids, in order (else `AnswerFileError`, naming the output line)."""
    if lookahead < 1:
        raise ValueError(f"lookahead must be >= 1, got {lookahead}")
    names = [_display_name(path) for path in inputs]
    if not ship:
        for path, name in zip(inputs, names, strict=True):
            if str(path) == STDIO or name.endswith(".gz"):
                raise AnswerFileError(
                    f"{name}: actors can read only plain files themselves; send the lines through Ray instead "
                    "(ship the input) for stdin or .gz"
                )
    plan = Plan()
    builder = _GroupBuilder(lookahead, ship)
    checker = _ExistingChecker(Path(existing_output)) if existing_output is not None else None
    # The reader refuses repeated ids within one input; across shards, this map does (the output is one file).
    first_seen: dict[str, tuple[int, int]] | None = {} if len(inputs) > 1 else None
    for source, (path, name) in enumerate(zip(inputs, names, strict=True)):
        with open_input(None if str(path) == STDIO else Path(path)) as stream:
            tracked = _TrackedStream(stream)
            results = read_records(tracked)
            while True:
                try:
                    result = next(results, None)
                except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
                    reason = error_reason(error)
                    plan.stop_error = AnswerFileError(f"{name}: cannot be read after line {tracked.lines} ({reason})")
                    break
                if result is None:
                    break
                if first_seen is not None and isinstance(result, InputRecord):
                    first = first_seen.setdefault(result.id, (source, result.line))
                    if first[0] != source:
                        where = f"{names[first[0]]}:{first[1]}"
                        result = LineError(result.line, f"duplicate id {result.id!r} (first at {where})", result.id)
                if isinstance(result, LineError):
                    if strict:
                        plan.stop_error = StrictModeStop(f"{result.describe(name)} (--strict stops at a bad line)")
                        break
                    plan.errors += 1
                    on_error(result, source)
                    continue
                tracked.check_last_line_is(result)
                if checker is not None:
                    checker.match(result, name)
                builder.add(source, result.line, tracked.last_start, tracked.last_line)
                plan.records += 1
            if plan.stop_error is not None:
                break
    if checker is not None:
        # After a stop (strict mode, a read error) the input's rest is unknown, so extra lines are no evidence.
        plan.existing = checker.finish(expect_end=plan.stop_error is None)
    written = plan.existing.complete_lines if plan.existing else 0
    plan.groups = builder.finish(written)
    if plan.existing is not None and plan.groups and plan.groups[0].written:
        kept = plan.existing.kept_lines[-plan.groups[0].written :]
        plan.existing = ExistingOutput(
            plan.existing.complete_lines, plan.existing.complete_bytes, plan.existing.torn_bytes, tuple(kept)
        )
    return plan


def read_piece(piece: Piece, inputs: Sequence[str | os.PathLike]) -> bytes:
    """The piece's lines: carried, or read from its input's byte range and checked against the planner's digest."""
    if piece.data is not None:
        return piece.data
    path = Path(inputs[piece.source])
    try:
        with open(path, "rb") as handle:
            handle.seek(piece.start)
            data = handle.read(piece.end - piece.start)
    except OSError as error:
        raise AnswerFileError(f"{path}: cannot be read on this Ray node ({error_reason(error)})") from None
    if hashlib.blake2b(data, digest_size=_DIGEST_BYTES).digest() != piece.digest:
        raise AnswerFileError(
            f"{path}: lines {piece.first_line}-{piece.first_line + piece.count - 1} differ from what was planned: "
            "the file changed during the run, or this node sees another file at that path"
        )
    return data


def piece_lines(piece: Piece, data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each line of a piece. Split at b"\\n" only, as the reader does (JSON allows a bare
    \\r between tokens, which bytes.splitlines would also split at)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != piece.count:
        raise RuntimeError(f"piece at line {piece.first_line}: expected {piece.count} lines, found {len(lines)}")
    for offset, line in enumerate(lines):
        yield piece.first_line + offset, line


class _GroupBuilder:
    def __init__(self, lookahead: int, ship: bool) -> None:
        self._lookahead = lookahead
        self._ship = ship
        self._groups: list[tuple[Piece, ...]] = []
        self._pieces: list[Piece] = []
        self._size = 0
        self._open: dict[str, Any] | None = None  # the piece being extended

    def add(self, source: int, line: int, start: int, raw: bytes) -> None:
        run = self._open
        if run is not None and run["source"] == source and run["end"] == start and run["next_line"] == line:
            run["parts"].append(raw)
            run["end"] += len(raw)
            run["next_line"] += 1
            run["hash"].update(raw)
        else:
            self._close_piece()
            self._open = run = {
                "source": source, "first_line": line, "start": start, "end": start + len(raw), "next_line": line + 1,
                "parts": [raw], "hash": hashlib.blake2b(raw, digest_size=_DIGEST_BYTES),
            }  # fmt: skip
        if not raw.endswith(b"\n"):  # a last line without a newline: give it one, so pieces split alike
            run["parts"][-1] = raw + b"\n"
        self._size += 1
        if self._size == self._lookahead:
            self._close_group()

    def finish(self, written: int) -> list[GroupTask]:
        self._close_group()
        tasks = []
        for index, pieces in enumerate(self._groups):
            size = sum(piece.count for piece in pieces)
            first = index * self._lookahead
            already = min(max(written - first, 0), size)
            if already < size:
                tasks.append(GroupTask(index, pieces, size, already))
        return tasks

    def _close_piece(self) -> None:
        run = self._open
        if run is None:
            return
        count = run["next_line"] - run["first_line"]
        data = b"".join(run["parts"]) if self._ship else None
        digest = b"" if self._ship else run["hash"].digest()
        self._pieces.append(Piece(run["source"], run["first_line"], count, run["start"], run["end"], data, digest))
        self._open = None

    def _close_group(self) -> None:
        self._close_piece()
        if self._pieces:
            self._groups.append(tuple(self._pieces))
        self._pieces = []
        self._size = 0


class _TrackedStream:
    """A binary stream that remembers where the last line it returned began, so that the planner knows each valid
    record's bytes without reading the input twice."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.position = 0
        self.lines = 0  # lines begun so far
        self.last_start = 0
        self.last_line = b""
        self._at_line_start = True

    def readline(self, size: int = -1) -> bytes:
        line = self._stream.readline(size)
        if line and self._at_line_start:
            self.lines += 1
            self.last_start = self.position
            self.last_line = line
        elif line:
            self.last_line += line  # the rest of a long line (the reader skips those, but stay exact)
        self._at_line_start = line.endswith(b"\n")
        self.position += len(line)
        return line

    def check_last_line_is(self, record: InputRecord) -> None:
        # The reader yields a record right after reading its line; if that ever changes, stop rather than misfile.
        if record.line != self.lines:
            raise RuntimeError(f"planner out of step with the reader: line {record.line} vs {self.lines}")


class _ExistingChecker:
    """Streams an existing output's complete lines and matches their ids to the valid records as they are planned."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._handle = open(path, "rb")
        except OSError as error:
            raise AnswerFileError(f"{path}: cannot be read ({error_reason(error)})") from None
        self._lines = 0
        self._bytes = 0
        self._torn = 0
        self._done = False
        self._recent: list[bytes] = []

    def match(self, record: InputRecord, source_name: str) -> None:
        written = self._next()
        if written is None:
            return
        written_id, raw = written
        where = f"{self._path}:{self._lines + 1}"
        if written_id != record.id:
            raise AnswerFileError(
                f"{where}: answers id {written_id!r}, but the next valid input line ({source_name}:{record.line}) has "
                f"id {record.id!r}: the output belongs to another input (pass --overwrite to start over, or write "
                "elsewhere)"
            )
        self._lines += 1
        self._bytes += len(raw)
        self._recent.append(raw)
        if len(self._recent) > _MAX_KEPT:
            del self._recent[: len(self._recent) - _MAX_KEPT]

    def finish(self, expect_end: bool) -> ExistingOutput:
        extra = self._next() if expect_end else None
        self._handle.close()
        if extra is not None:
            raise AnswerFileError(
                f"{self._path}:{self._lines + 1}: the output has more answers than the input has valid lines; it "
                "belongs to another input (pass --overwrite to start over, or write elsewhere)"
            )
        return ExistingOutput(self._lines, self._bytes, self._torn, tuple(self._recent))

    def _next(self) -> tuple[str, bytes] | None:
        if self._done:
            return None
        raw = self._handle.readline(_MAX_OUTPUT_LINE_BYTES + 1)
        if not raw.endswith(b"\n"):
            if len(raw) > _MAX_OUTPUT_LINE_BYTES:
                raise AnswerFileError(f"{self._path}:{self._lines + 1}: not a qa-answer output line (too long)")
            self._torn = len(raw)  # the last line, cut short by a crash (or nothing at the end)
            self._done = True
            return None
        try:
            written = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise AnswerFileError(f"{self._path}:{self._lines + 1}: not a qa-answer output line ({error})") from None
        if not isinstance(written, dict) or not isinstance(written.get("id"), str):
            raise AnswerFileError(f'{self._path}:{self._lines + 1}: not a qa-answer output line (no string "id")')
        return written["id"], raw


# Lines kept from the end of an existing output: enough for any group the crash cut (groups are rarely this large;
# a larger one only loses the mismatch count, never an answer).
_MAX_KEPT = 4096


def _display_name(path: str | os.PathLike) -> str:
    return "<stdin>" if str(path) == STDIO else str(path)


