"""Plan a distributed `qa-answer` run: validate the input once, cut its valid records into the engine's groups.

Ray-free on purpose (the planner runs on the driver, and its tests need no cluster).

Why groups: `QAEngine.answer_many` batches `lookahead` consecutive records at a time and an answer depends only on its
group (see its docstring). So if each engine actor answers whole groups, cut exactly where a single process cuts them,
every answer is computed from the same batches as in `qa-answer` on one machine, and the output is byte-identical to
it, whatever the number of actors and the order in which they finish.

The input is one JSONL file or several shards, read as their concatenation (the shards' lines, in order): the same
feed as `qa-answer` (`spanqa.engine.jobs.input.RecordFeed`) validates every line, so bad lines are reported with the
same reasons and skipped; duplicate ids are refused across all shards. Each group is handed over as `Piece`s: runs of
adjacent valid lines of one shard, either carried as bytes (`ship=True`: the driver's object store delivers them, any
input works, stdin and .gz included) or as a byte range that the actor reads itself (`ship=False`: plain files on a
filesystem every Ray node mounts; only offsets travel, so the driver never holds the contexts). A range carries a
digest of its bytes, so an input changed between planning and answering is an error, not wrong answers.

Resume: the complete lines of an existing output are checked against the valid records, in order, while planning,
by the same check as `qa-answer` (`spanqa.engine.jobs.resume`); groups already written are left out, and the group a
crash cut is answered again whole (so its batches match), its lines already written are kept.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from spanqa.engine.core.records import InputRecord, LineError
from spanqa.engine.jobs.failures import AnswerFileError, error_reason
from spanqa.engine.jobs.input import RecordFeed, open_input
from spanqa.engine.jobs.resume import ExistingOutput, ExistingOutputCheck
from spanqa.engine.jobs.targets import STDIO, display_name

_DIGEST_BYTES = 16


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
    names = [display_name(path) for path in inputs]
    if not ship:
        for path, name in zip(inputs, names, strict=True):
            if str(path) == STDIO or name.endswith(".gz"):
                raise AnswerFileError(
                    f"{name}: actors can read only plain files themselves; send the lines through Ray instead "
                    "(ship the input) for stdin or .gz"
                )
    plan = Plan()
    builder = _GroupBuilder(lookahead, ship)
    feed = RecordFeed(names, on_error, strict)
    check = ExistingOutputCheck(Path(existing_output), lookahead) if existing_output is not None else None
    whole_input = names[0] if len(names) == 1 else "the input"
    try:
        for source, path in enumerate(inputs):
            with open_input(None if str(path) == STDIO else Path(path)) as stream:
                tracked = _TrackedStream(stream)
                for record in feed.records(tracked, source):
                    tracked.check_last_line_is(record)
                    if check is not None and check.match(record, names[source]) is None:
                        plan.existing, check = check.finish(whole_input, None), None  # the rest is new
                    builder.add(source, record.line, tracked.last_start, tracked.last_line)
            if feed.stop_error is not None:
                break
        if check is not None:
            plan.existing = check.finish(whole_input, feed.stop_error)
    finally:
        if check is not None:
            check.close()
    plan.records, plan.errors, plan.stop_error = feed.record_count, feed.error_count, feed.stop_error
    written = plan.existing.progress.complete_lines if plan.existing else 0
    plan.groups = builder.finish(written)
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
