"""Read and validate `qa-answer` input: one `{"id", "question", "context", ...}` JSON object per line.

Lines are read one at a time from a binary stream, so a file larger than memory is never held whole; the only state
that grows with the file is the map of ids already seen (needed to reject duplicates: roughly 100 bytes per record,
against the kilobytes of context each record carries).

A bad line never stops the reader: it becomes a `LineError` (line number, reason, id when one could be read) in the
stream of results, and the caller decides whether to skip it or stop. Blank lines are not records and are skipped.
A line is bad when it is not UTF-8, not JSON (including NaN/Infinity, numbers too large for a double, an object with
a repeated key, or a string escape that is half a surrogate pair, none of which can be written back out as JSON
unchanged), not an object, or lacks a non-empty string "id", "question" or "context"; when its id repeats an
earlier line's; when its optional gold "answers" field has an unknown shape; or when it is longer than the line limit.

Gold answers, when a line has an "answers" field, are read in any of the shapes SQuAD tools write:
`{"text": [...], "answer_start": [...]}` (Hugging Face), `[{"text", "answer_start"}, ...]` (official), or a plain list
of strings. An empty list marks an unanswerable question (SQuAD v2). Only the texts matter here: they are for scoring.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from spanqa.engine.core.data import QAExample

REQUIRED_FIELDS = ("id", "question", "context")
# The model's inputs: not copied to the output line, where the context would be most of each line's bytes.
INPUT_ONLY_FIELDS = ("question", "context")
GOLD_FIELD = "answers"
# A line longer than this is reported and skipped (read in chunks, never held whole): without a bound, one
# newline-free file would be read into memory as a single line.
MAX_LINE_BYTES = 64 * 1024 * 1024
_SKIP_CHUNK_BYTES = 1024 * 1024
# Only a line holding a \uD800-\uDFFF escape can decode to an unpaired surrogate; the full check runs on those alone.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class InputRecord:
    """A valid input line."""

    line: int  # 1-based line number in the input
    id: str
    question: str
    context: str
    passthrough: dict[str, Any]  # the line's other fields, in input order, for the output line
    gold: tuple[str, ...] | None  # gold answer texts when the line has "answers"; () = unanswerable

    def to_example(self) -> QAExample:
        return QAExample(self.id, self.question, self.context)


@dataclass(frozen=True)
class LineError:
    """A bad input line: why, and the id when the line had a readable one."""

    line: int
    reason: str
    id: str | None = None

    def describe(self, source: str) -> str:
        """`source:line: reason`, the form error messages take across the project."""
        return f"{source}:{self.line}: {self.reason}"

    def to_json_line(self) -> bytes:
        """One line of the errors file: `{"line", "error"[, "id"]}`."""
        entry: dict[str, Any] = {"line": self.line, "error": self.reason}
        if self.id is not None:
            entry["id"] = self.id
        return (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")


class InvalidLine(ValueError):
    """Raised by `parse_line` for a bad line; carries the reason and the id when one was readable."""

    def __init__(self, reason: str, record_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record_id = record_id


def read_records(stream: BinaryIO, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[InputRecord | LineError]:
    """Yield each non-blank line of `stream` as an `InputRecord` or a `LineError`, in order.

    Duplicate ids are checked across the whole stream: the second and later lines with an id are errors.
    Read errors of the stream itself (an OSError, a corrupt gzip member) propagate: there is no line to skip.
    """
    first_line_of: dict[str, int] = {}
    for line_number, raw in _numbered_lines(stream, max_line_bytes):
        if raw is None:
            yield LineError(line_number, f"line longer than {max_line_bytes} bytes")
            continue
        try:
            record = parse_line(raw, line_number, first_line=line_number == 1)
        except InvalidLine as error:
            yield LineError(line_number, error.reason, error.record_id)
            continue
        if record is None:
            continue
        first = first_line_of.setdefault(record.id, line_number)
        if first != line_number:
            yield LineError(line_number, f"duplicate id {record.id!r} (first at line {first})", record.id)
            continue
        yield record


def parse_line(raw: bytes, line_number: int, first_line: bool = False) -> InputRecord | None:
    """Validate one line (bytes, newline included or not). Returns None for a blank line, raises `InvalidLine`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidLine(f"invalid UTF-8 at byte {error.start}") from None
    if first_line and text.startswith("\ufeff"):  # a byte-order mark some editors put at the start of a file
        text = text[1:]
    if not text.strip():
        return None
    record = _parse_json_object(text)
    if _SURROGATE_ESCAPE.search(raw):
        _reject_lone_surrogates(record)

    record_id = record.get("id") if isinstance(record.get("id"), str) and record.get("id") else None
    values = {}
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise InvalidLine(f'missing field "{name}"', record_id)
        value = record[name]
        if not isinstance(value, str):
            raise InvalidLine(f'field "{name}" must be a string, got a JSON {_json_type(value)}', record_id)
        if not value.strip():
            raise InvalidLine(f'field "{name}" is empty', record_id)
        values[name] = value
    gold = _gold_answers(record[GOLD_FIELD], record_id) if GOLD_FIELD in record else None
    if gold is None and record.get("is_impossible") is True:  # SQuAD v2 marks some unanswerable questions so
        gold = ()
    passthrough = {key: value for key, value in record.items() if key not in REQUIRED_FIELDS}
    return InputRecord(line_number, values["id"], values["question"], values["context"], passthrough, gold)


def _numbered_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) for each line; bytes is None for a line over the limit, whose rest is read and dropped."""
    line_number = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            return
        line_number += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):  # readline returned max + 1 bytes, no newline
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(_SKIP_CHUNK_BYTES)
            yield line_number, None
            continue
        yield line_number, raw


class _RepeatedKey(ValueError):
    pass


def _unique_keys_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of repeated keys without a word; {"id": "a", "id": "b"} has no single meaning.
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return record


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf, which JSON cannot write back
        raise OverflowError(text)
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(name)


# One decoder for every line: json.loads with hooks would build a new one per call, a measurable share of the time.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys_object, parse_float=_finite_float, parse_constant=_reject_constant
)


def _parse_json_object(text: str) -> dict[str, Any]:
    try:
        record = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise InvalidLine(f"invalid JSON ({error.msg}, column {error.colno})") from None
    except _RepeatedKey as error:
        raise InvalidLine(f"invalid JSON (the key {str(error)!r} appears twice in one object)") from None
    except OverflowError as error:
        raise InvalidLine(f"invalid JSON (the number {error} is too large)") from None
    except ValueError as error:  # parse_constant: NaN, Infinity, -Infinity
        raise InvalidLine(f"invalid JSON ({error} is not a JSON value)") from None
    if not isinstance(record, dict):
        raise InvalidLine(f"expected a JSON object, got a JSON {_json_type(record)}")
    return record


def _reject_lone_surrogates(record: dict[str, Any]) -> None:
    # json decodes "\ud800" to a str that cannot be encoded as UTF-8, so the output line could not be written.
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        record_id = record.get("id") if isinstance(record.get("id"), str) else None
        raise InvalidLine("invalid JSON (a \\u escape is half of a surrogate pair)", record_id) from None


def _gold_answers(answers: Any, record_id: str | None) -> tuple[str, ...]:
    shape = (
        f'field "{GOLD_FIELD}" must be {{"text": [...], "answer_start": [...]}}, a list of {{"text", "answer_start"}} '
        "objects or a list of strings"
    )
    if isinstance(answers, Mapping):
        texts = answers.get("text")
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise InvalidLine(f'{shape}; its "text" is not a list of strings', record_id)
        return tuple(texts)
    if not isinstance(answers, list):
        raise InvalidLine(f"{shape}, got a JSON {_json_type(answers)}", record_id)
    texts = []
    for index, answer in enumerate(answers):
        if isinstance(answer, str):
            texts.append(answer)
        elif isinstance(answer, Mapping) and isinstance(answer.get("text"), str):
            texts.append(answer["text"])
        else:
            raise InvalidLine(f"{shape}; item {index} is neither", record_id)
    return tuple(texts)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)
