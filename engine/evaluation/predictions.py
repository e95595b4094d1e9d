"""Read qa-eval's predictions and no-answer probabilities files.

Predictions come in either of two shapes, told apart by content rather than by file name:
- the official `{"question id": "answer text", ...}` JSON object;
- qa-answer's JSON Lines: one `{"id": ..., "answer": ..., ...}` object per line (other fields ignored), read by the
  same line reader and strict JSON rules as qa-answer's input (`records.decode_line`).
The file is JSON Lines unless its first non-blank line is a whole object without an "id" and nothing follows, or
that line opens an object that goes on past the line's end (as `json.dump(..., indent=2)` writes) and the next
non-blank line is not a JSON object on its own.

Keys are the ids' string forms (records rule 3). A prediction must carry its id: unlike an input record, it has no
line number of its own to stand in for one.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spanqa.engine.core.records import MAX_LINE_BYTES, InvalidRecord, checked_id, decode_line, id_key, numbered_lines
from spanqa.engine.core.strict_json import InvalidJSON, decode, json_type, raw_decode

_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")


class PredictionsError(ValueError):
    """A predictions or no-answer probabilities file that cannot be used. The message names the file and,
    where there is one, the line."""


ErrorCallback = Callable[[PredictionsError], None]


def read_predictions(path: str | os.PathLike, on_error: ErrorCallback | None = None) -> dict[str, str]:
    """Read official `{id: answer}` JSON or qa-answer JSONL (`{"id", "answer", ...}` per line), plain or .gz.
    Keys are the ids' string forms.

    Without `on_error` the first bad line or member raises `PredictionsError`. With it, each bad JSONL line (and
    each official member whose answer is not a string, or whose id repeats) is passed to `on_error` and skipped;
    an official object that is not valid JSON as a whole still raises: it has no line to skip."""
    path = Path(path)
    raw = _read_bytes(path)
    if not raw.strip():
        raise PredictionsError(f'{path}: is empty; expected an {{"id": "answer"}} JSON object or JSON Lines')
    if _is_json_lines(raw):
        predictions = _read_jsonl_predictions(raw, path, on_error)
    else:
        predictions = _read_official_predictions(_text(raw, path), path, on_error)
    if not predictions:
        raise PredictionsError(f"{path}: contains no predictions")
    return predictions


def read_na_probs(path: str | os.PathLike) -> dict[str, float]:
    """Read the official no-answer probabilities file: one JSON object `{id: probability}`."""
    path = Path(path)
    text = _text(_read_bytes(path), path)
    if _skip_whitespace(text, 0) == len(text):
        raise PredictionsError(f'{path}: is empty; expected an {{"id": probability}} JSON object')
    probabilities: dict[str, float] = {}
    positions: dict[str, int] = {}
    for question_id, value, position in _object_members(text, path):
        _reject_repeat(question_id, position, positions, text, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PredictionsError(
                f"{path}:{_line_of(text, position)}: the probability for id {question_id!r} must be a finite "
                f"number, got {value!r}"
            )
        probabilities[question_id] = float(value)
    if not probabilities:
        raise PredictionsError(f"{path}: contains no probabilities")
    return probabilities


def _is_json_lines(raw: bytes) -> bool:
    """The rule in the module docstring, decided from the first two non-blank lines."""
    lines = (line for line in raw.split(b"\n") if line.strip())
    first = next(lines).decode("utf-8", "replace").lstrip("\ufeff").strip()
    try:
        value = decode(first)
    except InvalidJSON as error:
        opens_an_object = first.startswith("{") and error.position is not None and error.position >= len(first)
        if not opens_an_object:
            return True  # a line that is broken on its own: JSON Lines, with a bad line to report
        second = next(lines, None)
        try:
            return second is not None and isinstance(decode(second.decode("utf-8", "replace")), dict)
        except InvalidJSON:
            return False
    return not isinstance(value, dict) or "id" in value or next(lines, None) is not None


def _read_official_predictions(text: str, path: Path, on_error: ErrorCallback | None) -> dict[str, str]:
    predictions: dict[str, str] = {}
    positions: dict[str, int] = {}
    for question_id, answer, position in _object_members(text, path):
        try:
            _reject_repeat(question_id, position, positions, text, path)
            if not isinstance(answer, str):
                raise PredictionsError(
                    f"{path}:{_line_of(text, position)}: the answer for id {question_id!r} must be a string, "
                    f"got a JSON {json_type(answer)}"
                )
        except PredictionsError as error:
            _report_or_raise(error, on_error)
            continue
        predictions[question_id] = answer
    return predictions


def _read_jsonl_predictions(raw: bytes, path: Path, on_error: ErrorCallback | None) -> dict[str, str]:
    predictions: dict[str, str] = {}
    first_lines: dict[str, int] = {}
    for line_number, line in numbered_lines(io.BytesIO(raw), MAX_LINE_BYTES):
        where = f"{path}:{line_number}"
        try:
            if line is None:
                raise PredictionsError(f"{where}: line longer than {MAX_LINE_BYTES} bytes")
            try:
                record = decode_line(line, first_line=line_number == 1)
                if record is None:
                    continue
                question_id, answer = _prediction(record)
            except InvalidRecord as error:
                raise PredictionsError(f"{where}: {error.reason}") from None
            key = id_key(question_id)
            if key in first_lines:
                raise PredictionsError(f"{where}: duplicate id {question_id!r} (first seen at line {first_lines[key]})")
        except PredictionsError as error:
            _report_or_raise(error, on_error)
            continue
        first_lines[key] = line_number
        predictions[key] = answer
    return predictions


def _prediction(record: dict[str, Any]) -> tuple[str | int, str]:
    for field in ("id", "answer"):
        if field not in record:
            raise InvalidRecord(f'missing field "{field}"')
    answer = record["answer"]
    if not isinstance(answer, str):
        raise InvalidRecord(f'field "answer" must be a string, got a JSON {json_type(answer)}')
    return checked_id(record["id"]), answer


def _report_or_raise(error: PredictionsError, on_error: ErrorCallback | None) -> None:
    if on_error is None:
        raise error
    on_error(error)


def _object_members(text: str, path: Path) -> Iterator[tuple[str, Any, int]]:
    """Yield (key, value, offset of the key) for each member of the top-level JSON object in `text`.

    `json.load` keeps the last of repeated keys without a word and forgets where each key was; walking
    the top level here keeps both, so a repeated id can be reported with its line. Each value is read by
    `strict_json`; a value it refuses is reported at its own line.
    """
    position = _skip_whitespace(text, 0)
    try:
        if not text.startswith("{", position):
            raise json.JSONDecodeError("Expecting '{'", text, position)
        position = _skip_whitespace(text, position + 1)
        if text.startswith("}", position):
            position += 1
        else:
            while True:
                if not text.startswith('"', position):
                    raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, position)
                key_position = position
                key, position = json.decoder.scanstring(text, position + 1)
                position = _skip_whitespace(text, position)
                if not text.startswith(":", position):
                    raise json.JSONDecodeError("Expecting ':' delimiter", text, position)
                position = _skip_whitespace(text, position + 1)
                try:
                    value, position = raw_decode(text, position)
                except InvalidJSON as error:
                    where = key_position if error.position is None else error.position
                    raise PredictionsError(f"{path}:{_line_of(text, where)}: {error.reason}") from None
                yield key, value, key_position
                position = _skip_whitespace(text, position)
                if text.startswith(",", position):
                    position = _skip_whitespace(text, position + 1)
                elif text.startswith("}", position):
                    position += 1
                    break
                else:
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
        position = _skip_whitespace(text, position)
        if position != len(text):
            raise json.JSONDecodeError("Extra data", text, position)
    except json.JSONDecodeError as error:
        raise PredictionsError(
            f"{path}:{error.lineno}: invalid JSON ({error.msg}, column {error.colno})"
        ) from None


def _reject_repeat(question_id: str, position: int, positions: dict[str, int], text: str, path: Path) -> None:
    if question_id in positions:
        raise PredictionsError(
            f"{path}:{_line_of(text, position)}: duplicate id {question_id!r} "
            f"(first seen at line {_line_of(text, positions[question_id])})"
        )
    positions[question_id] = position


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise PredictionsError(f"{path}: no such file")
    if not path.is_file():
        raise PredictionsError(f"{path}: is not a file")
    try:
        return gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise PredictionsError(f"{path}: is not a readable gzip file ({error})") from None


def _text(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PredictionsError(f"{path}: is not UTF-8 text (bad byte at offset {error.start})") from None


def _skip_whitespace(text: str, position: int) -> int:
    return _JSON_WHITESPACE.match(text, position).end()


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1
