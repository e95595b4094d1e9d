"""One question record, one set of rules: what qa-answer, qa-eval, `load_examples` and `QAEngine` accept.

A record is a JSON object (a JSONL line, a question of the nested SQuAD format, a Hugging Face row, a mapping given
to `QAEngine`). Record rules:
1. "question" and "context" are required non-blank strings. "title" is an optional string, "is_impossible" an
   optional boolean (null counts as absent for both).
2. "id" is a non-blank string or an integer (not a boolean), kept as given: an integer id is written back as an
   integer. A record without an id (no key, or null) gets its 1-based position as an integer id: its line number
   in a JSONL file (blank lines count), its row number in a dataset or in the records given to `QAEngine`, its
   ordinal among the questions of a nested SQuAD file. An empty or blank string is refused, not taken as missing:
   it is more likely a bug upstream than an id left out on purpose.
3. Ids are compared by their string form: 7 and "7" are the same question, so in one input the second is a
   duplicate, and qa-eval matches a prediction to a gold record whenever their ids' string forms are equal.
4. "answers" (gold, optional) may be Hugging Face columns `{"text": [...], "answer_start": [...]}`, official
   objects `[{"text", "answer_start"}, ...]` or plain strings `["Paris", ...]`, mixed freely in a list; all mean
   the same. An empty list marks an unanswerable question (SQuAD v2), as does "is_impossible": true without answers.
5. Every gold answer is a span of its context: at its answer_start when one is given (a non-negative integer), else
   at its first occurrence, which is what training then learns (give answer_start to choose another). An answer
   the context does not hold there is an `AnswerNotInContext` (`AnswerSpanError` in `load_examples`), which
   training skips and counts; QAExample.answer_starts therefore always holds one integer per answer text.
6. Instead of "context", a record may give "contexts": the passages a retriever found for one question, a non-empty
   list whose items are non-blank strings or objects {"text": str, "id"?: id}. A passage's name is its "id" when it
   has one (rule 2's id shapes; unique within the record by string form), else its 0-based index in the list. A
   record gives "context" or "contexts", not both. Such a record is answered over all its passages at once (one
   answer, or top_k, with the passage each comes from: `spanqa.engine.core.ranking`). Its gold answers are texts
   only: a retriever's passages need not hold them, so they are not located (rule 5), and an answer_start, which
   could index any passage, is refused. `example_from_record` accepts such records only when asked (`passages=True`:
   answering and scoring), since training needs one context whose answer spans it labels.
The JSON itself is read by `strict_json` (its rules: repeated keys, NaN, huge numbers, deep nesting...).

qa-answer's reader (`read_records`) reads a binary stream one line at a time, so a file larger than memory is never
held whole; the only state that grows with the file is the set of ids already seen (about 100 bytes a record). A bad
line never stops it: it becomes a `LineError` (line number, reason, id when one was readable) and the caller decides.
A line is bad when it is not UTF-8, not strict JSON, not an object, breaks a record rule, repeats an earlier line's id
(rule 3), holds half of a surrogate pair as a \\u escape (it could not be written back out as UTF-8), or is longer than
the line limit. Blank lines are skipped (and counted in line numbers); a byte-order mark may start the first line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from spanqa.engine.core.record_fields import (
    CONTEXTS_FIELD,
    GOLD_FIELD,
    AnswerNotInContext,
    AnswerSpanError,
    DataFormatError,
    InvalidRecord,
    Passage,
    RecordId,
    checked_id,
    gold_answers,
    id_key,
    optional_field,
    passage_list,
    text_field,
)
from spanqa.engine.core.strict_json import InvalidJSON, decode, json_type

__all__ = [
    "CONTEXTS_FIELD", "GOLD_FIELD", "AnswerNotInContext", "AnswerSpanError", "DataFormatError", "InputRecord",
    "InvalidRecord", "LineError", "Passage", "QAExample", "RecordId", "checked_id", "decode_line",
    "example_from_record", "id_key", "numbered_lines", "parse_line", "read_records", "to_example",
]  # fmt: skip

REQUIRED_FIELDS = ("id", "question", "context")
# The model's inputs: not copied to the output line, where the context would be most of each line's bytes.
INPUT_ONLY_FIELDS = ("question", "context", CONTEXTS_FIELD)
# A line longer than this is reported and skipped (read in chunks, never held whole): without a bound, one
# newline-free file would be read into memory as a single line.
MAX_LINE_BYTES = 64 * 1024 * 1024
_SKIP_CHUNK_BYTES = 1024 * 1024
# Only a line holding a \uD800-\uDFFF escape can decode to an unpaired surrogate; the full check runs on those alone.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class QAExample:
    id: RecordId
    question: str
    context: str  # "" when `passages` is given
    answer_texts: tuple[str, ...] = ()
    answer_starts: tuple[int, ...] = ()  # one per answer text; empty for a multi-passage record (rule 6)
    title: str = ""
    is_impossible: bool = False  # SQuAD v2: the context holds no answer
    passages: tuple[Passage, ...] = ()  # rule 6: the question is asked of every one of these passages

    def passage_examples(self) -> list[QAExample]:
        """What the model reads: this example itself, or one example per passage (same id and question)."""
        if not self.passages:
            return [self]
        return [QAExample(self.id, self.question, passage.text) for passage in self.passages]


def example_from_record(
    record: Mapping[str, Any],
    position: int,
    *,
    answers_required: bool = False,
    allow_impossible: bool = True,
    passages: bool = False,
) -> QAExample:
    """Validate one record (rules 1-6); `position` is its id when it has none. Raises `InvalidRecord`.

    `answers_required`: a record must have answers or be marked unanswerable (the nested SQuAD format).
    `allow_impossible`: False for SQuAD v1.1 files, where an empty answer list is an error.
    `passages`: accept multi-passage records (rule 6); without it a "contexts" field is refused."""
    record_id = _record_id(record, position)
    given_id = record_id if record.get("id") is not None else None
    question = text_field(record, "question", given_id)
    if passages and record.get(CONTEXTS_FIELD) is not None:
        if "context" in record:
            raise InvalidRecord(f'give "context" or "{CONTEXTS_FIELD}", not both', given_id)
        context, given = "", passage_list(record[CONTEXTS_FIELD], given_id)
    else:
        if CONTEXTS_FIELD in record and "context" not in record:
            raise InvalidRecord(
                f'field "{CONTEXTS_FIELD}" (several passages) is for answering and scoring only; this reader needs '
                'one "context"', given_id,
            )  # fmt: skip
        context, given = text_field(record, "context", given_id), ()
    title = optional_field(record, "title", str, "a string", given_id, "")
    is_impossible = optional_field(record, "is_impossible", bool, "true or false", given_id, False)
    if GOLD_FIELD not in record:
        if answers_required and not is_impossible:
            raise InvalidRecord(f'missing field "{GOLD_FIELD}"', given_id)
        return QAExample(record_id, question, context, title=title, is_impossible=is_impossible, passages=given)
    texts, starts = gold_answers(record[GOLD_FIELD], None if given else context, given_id)
    if not texts:
        if not allow_impossible:
            raise InvalidRecord("empty answer list in a SQuAD v1.1 file", given_id)
        is_impossible = True
    elif is_impossible:
        raise InvalidRecord("is_impossible is true but answers are given", given_id)
    return QAExample(record_id, question, context, texts, starts, title, is_impossible, given)


def to_example(record: QAExample | Mapping[str, Any] | Sequence[str], index: int) -> QAExample:
    """A QAExample from any record shape `QAEngine` accepts: a QAExample (taken as it is), a mapping (the record
    rules, multi-passage records included), or a (question, context) pair (a list of passages as the context: a
    multi-passage record). `index` counts from 0, so the record's position (its id when it has
    none) is index + 1. Raises `DataFormatError` naming the record."""
    if isinstance(record, QAExample):
        return record
    position = index + 1
    if isinstance(record, (tuple, list)) and len(record) == 2:
        field = CONTEXTS_FIELD if isinstance(record[1], (list, tuple)) else "context"
        record = {"question": record[0], field: list(record[1]) if field == CONTEXTS_FIELD else record[1]}
    if not isinstance(record, Mapping):
        raise DataFormatError(
            f"record {position}: expected a QAExample, a mapping with 'question' and 'context' (or 'contexts'), or a "
            f"(question, context) pair; got {type(record).__name__}"
        )
    try:
        return example_from_record(record, position, passages=True)
    except InvalidRecord as error:
        raise error.located(f"record {position}") from None


# --- qa-answer's reader -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputRecord:
    """A valid input line."""

    line: int  # 1-based line number in the input
    id: RecordId
    question: str
    context: str
    passthrough: dict[str, Any]  # the line's other fields, in input order, for the output line
    gold: tuple[str, ...] | None  # gold answer texts when the line has "answers"; () = unanswerable
    passages: tuple[Passage, ...] = ()  # rule 6 (then `context` is "")

    def to_example(self) -> QAExample:
        return QAExample(self.id, self.question, self.context, passages=self.passages)


@dataclass(frozen=True)
class LineError:
    """A bad input line: why, and the id when the line had a readable one."""

    line: int
    reason: str
    id: RecordId | None = None

    def describe(self, source: str) -> str:
        """`source:line: reason`, the form error messages take across the project."""
        return f"{source}:{self.line}: {self.reason}"

    def to_json_line(self) -> bytes:
        """One line of the errors file: `{"line", "error"[, "id"]}`."""
        entry: dict[str, Any] = {"line": self.line, "error": self.reason}
        if self.id is not None:
            entry["id"] = self.id
        return (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")


def read_records(stream: BinaryIO, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[InputRecord | LineError]:
    """Yield each non-blank line of `stream` as an `InputRecord` or a `LineError`, in order.

    Duplicate ids (rule 3) are checked across the whole stream: the second and later lines with an id are errors.
    Read errors of the stream itself (an OSError, a corrupt gzip member) propagate: there is no line to skip.
    """
    first_line_of: dict[str, int] = {}
    for line_number, raw in numbered_lines(stream, max_line_bytes):
        if raw is None:
            yield LineError(line_number, f"line longer than {max_line_bytes} bytes")
            continue
        try:
            record = parse_line(raw, line_number, first_line=line_number == 1)
        except InvalidRecord as error:
            yield LineError(line_number, error.reason, error.record_id)
            continue
        if record is None:
            continue
        first = first_line_of.setdefault(id_key(record.id), line_number)
        if first != line_number:
            yield LineError(line_number, f"duplicate id {record.id!r} (first at line {first})", record.id)
            continue
        yield record


def parse_line(raw: bytes, line_number: int, first_line: bool = False) -> InputRecord | None:
    """Validate one line (bytes, newline included or not). Returns None for a blank line, raises `InvalidRecord`."""
    record = decode_line(raw, first_line)
    if record is None:
        return None
    example = example_from_record(record, line_number, passages=True)
    if GOLD_FIELD in record or example.is_impossible:
        gold: tuple[str, ...] | None = example.answer_texts
    else:
        gold = None
    passthrough = {key: value for key, value in record.items() if key not in _NOT_PASSED_THROUGH}
    return InputRecord(line_number, example.id, example.question, example.context, passthrough, gold, example.passages)


_NOT_PASSED_THROUGH = frozenset((*REQUIRED_FIELDS, CONTEXTS_FIELD))


def decode_line(raw: bytes, first_line: bool = False) -> dict[str, Any] | None:
    """One JSON Lines line as an object, or None when it is blank; raises `InvalidRecord`. Shared by every JSONL
    reader (qa-answer's input, `load_examples`, qa-eval's predictions)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidRecord(f"invalid UTF-8 at byte {error.start}") from None
    if first_line and text.startswith("\ufeff"):  # a byte-order mark some editors put at the start of a file
        text = text[1:]
    if not text.strip():
        return None
    try:
        record = decode(text)
    except InvalidJSON as error:
        raise InvalidRecord(error.reason) from None
    if not isinstance(record, dict):
        raise InvalidRecord(f"expected a JSON object, got a JSON {json_type(record)}")
    if _SURROGATE_ESCAPE.search(raw):
        _reject_lone_surrogates(record)
    return record


def numbered_lines(stream: BinaryIO, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
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


# --- the rules' pieces --------------------------------------------------------------------------------------------


def _record_id(record: Mapping[str, Any], position: int) -> RecordId:
    value = record.get("id")
    return position if value is None else checked_id(value)


def _reject_lone_surrogates(record: dict[str, Any]) -> None:
    # json decodes "\ud800" to a str that cannot be encoded as UTF-8, so the output line could not be written.
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        value = record.get("id")
        record_id = value if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        raise InvalidRecord("invalid JSON (a \\u escape is half of a surrogate pair)", record_id) from None
