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

from spanqa.engine.core.strict_json import InvalidJSON, decode, json_type

RecordId = str | int
REQUIRED_FIELDS = ("id", "question", "context")
CONTEXTS_FIELD = "contexts"  # rule 6: several passages instead of one context
# The model's inputs: not copied to the output line, where the context would be most of each line's bytes.
INPUT_ONLY_FIELDS = ("question", "context", CONTEXTS_FIELD)
GOLD_FIELD = "answers"
# A line longer than this is reported and skipped (read in chunks, never held whole): without a bound, one
# newline-free file would be read into memory as a single line.
MAX_LINE_BYTES = 64 * 1024 * 1024
_SKIP_CHUNK_BYTES = 1024 * 1024
# Only a line holding a \uD800-\uDFFF escape can decode to an unpaired surrogate; the full check runs on those alone.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_ANSWERS_SHAPE = (
    f'field "{GOLD_FIELD}" must be {{"text": [...], "answer_start": [...]}}, a list of {{"text", "answer_start"}} '
    "objects or a list of strings"
)


@dataclass(frozen=True)
class Passage:
    """One passage of a multi-passage record (rule 6)."""

    text: str
    name: RecordId  # its "id" as given, else its 0-based index in the record's list


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


class DataFormatError(ValueError):
    """Bad input data. The message names the file and the line or record."""


class AnswerSpanError(DataFormatError):
    """A gold answer that the context does not hold (rule 5). A subclass so that lenient callers (training) can skip
    these records and still stop on other errors."""


class InvalidRecord(ValueError):
    """A record that breaks a rule: the reason, without a location, and the record's id when it had a valid one."""

    def __init__(self, reason: str, record_id: RecordId | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record_id = record_id

    def located(self, where: str) -> DataFormatError:
        """The error as `load_examples` and `QAEngine` raise it: `where (id ...): reason`."""
        kind = AnswerSpanError if isinstance(self, AnswerNotInContext) else DataFormatError
        named = "" if self.record_id is None else f" (id {self.record_id!r})"
        return kind(f"{where}{named}: {self.reason}")


class AnswerNotInContext(InvalidRecord):
    """Rule 5 broken."""


def id_key(record_id: RecordId) -> str:
    """A record's identity (rule 3): the string form of its id."""
    return str(record_id)


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
    question = _text_field(record, "question", given_id)
    if passages and record.get(CONTEXTS_FIELD) is not None:
        if "context" in record:
            raise InvalidRecord(f'give "context" or "{CONTEXTS_FIELD}", not both', given_id)
        context, passage_list = "", _passages(record[CONTEXTS_FIELD], given_id)
    else:
        if CONTEXTS_FIELD in record and "context" not in record:
            raise InvalidRecord(
                f'field "{CONTEXTS_FIELD}" (several passages) is for answering and scoring only; this reader needs '
                'one "context"', given_id,
            )  # fmt: skip
        context, passage_list = _text_field(record, "context", given_id), ()
    title = _optional(record, "title", str, "a string", given_id, "")
    is_impossible = _optional(record, "is_impossible", bool, "true or false", given_id, False)
    if GOLD_FIELD not in record:
        if answers_required and not is_impossible:
            raise InvalidRecord(f'missing field "{GOLD_FIELD}"', given_id)
        return QAExample(record_id, question, context, title=title, is_impossible=is_impossible, passages=passage_list)
    texts, starts = _gold_answers(record[GOLD_FIELD], None if passage_list else context, given_id)
    if not texts:
        if not allow_impossible:
            raise InvalidRecord("empty answer list in a SQuAD v1.1 file", given_id)
        is_impossible = True
    elif is_impossible:
        raise InvalidRecord("is_impossible is true but answers are given", given_id)
    return QAExample(record_id, question, context, texts, starts, title, is_impossible, passage_list)


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


def checked_id(value: Any) -> RecordId:
    """`value` if it is a valid id (rule 2: a non-blank string or an integer), else raises `InvalidRecord`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise InvalidRecord(f'field "id" must be a string or an integer, got a JSON {json_type(value)}')
    if not value.strip():
        raise InvalidRecord('field "id" is empty')
    return value


def _text_field(record: Mapping[str, Any], name: str, record_id: RecordId | None) -> str:
    if name not in record:
        raise InvalidRecord(f'missing field "{name}"', record_id)
    value = record[name]
    if not isinstance(value, str):
        raise InvalidRecord(f'field "{name}" must be a string, got a JSON {json_type(value)}', record_id)
    if not value.strip():
        raise InvalidRecord(f'field "{name}" is empty', record_id)
    return value


def _optional(record: Mapping[str, Any], name: str, kind: type, what: str, record_id: RecordId | None, default: Any):
    value = record.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise InvalidRecord(f'field "{name}" must be {what}, got a JSON {json_type(value)}', record_id)
    return value


def _passages(value: Any, record_id: RecordId | None) -> tuple[Passage, ...]:
    """Rule 6's passage list."""
    where = f'field "{CONTEXTS_FIELD}"'
    if not isinstance(value, list):
        raise InvalidRecord(f"{where} must be a list of passages, got a JSON {json_type(value)}", record_id)
    if not value:
        raise InvalidRecord(f"{where} is an empty list; give at least one passage", record_id)
    passages, first_index = [], {}
    for index, item in enumerate(value):
        if isinstance(item, str):
            text, name = item, index
        elif isinstance(item, Mapping):
            text = item.get("text")
            if not isinstance(text, str):
                shown = "missing" if text is None else f"a JSON {json_type(text)}"
                raise InvalidRecord(f'{where} item {index}: "text" must be a string, got {shown}', record_id)
            try:
                name = index if item.get("id") is None else checked_id(item["id"])
            except InvalidRecord as error:
                raise InvalidRecord(f"{where} item {index}: {error.reason}", record_id) from None
        else:
            raise InvalidRecord(
                f'{where} item {index} must be a string or a {{"text", "id"}} object, got a JSON {json_type(item)}',
                record_id,
            )
        if not text.strip():
            raise InvalidRecord(f"{where} item {index} is an empty passage", record_id)
        first = first_index.setdefault(id_key(name), index)
        if first != index:
            raise InvalidRecord(f"{where} item {index}: passage id {name!r} repeats item {first}'s", record_id)
        passages.append(Passage(text, name))
    return tuple(passages)


def _gold_answers(
    answers: Any, context: str | None, record_id: RecordId | None
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The answer texts and their starts in `context`; None for a multi-passage record, whose texts are not located
    (rule 6: no starts, and a given answer_start is refused)."""
    if isinstance(answers, Mapping):  # Hugging Face columns
        texts, starts = answers.get("text"), answers.get("answer_start")
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise InvalidRecord(f'{_ANSWERS_SHAPE}; its "text" is not a list of strings', record_id)
        if starts is None:
            starts = [None] * len(texts)
        elif not isinstance(starts, list) or len(starts) != len(texts):
            raise InvalidRecord(
                f'field "{GOLD_FIELD}": "answer_start" must be a list as long as "text" ({len(texts)})', record_id
            )
        pairs = list(zip(texts, starts))
    elif isinstance(answers, list):  # official objects, plain strings, or both
        pairs = []
        for index, answer in enumerate(answers):
            if isinstance(answer, str):
                pairs.append((answer, None))
            elif isinstance(answer, Mapping) and isinstance(answer.get("text"), str):
                pairs.append((answer["text"], answer.get("answer_start")))
            else:
                raise InvalidRecord(f"{_ANSWERS_SHAPE}; item {index} is neither", record_id)
    else:
        raise InvalidRecord(f"{_ANSWERS_SHAPE}, got a JSON {json_type(answers)}", record_id)
    if context is None:
        given = next((index for index, (_, start) in enumerate(pairs) if start is not None), None)
        if given is not None:
            raise InvalidRecord(
                f'field "{GOLD_FIELD}" item {given}: answer_start cannot be given with "{CONTEXTS_FIELD}" (which '
                "passage would it index?); give the answer texts",
                record_id,
            )
        return tuple(text for text, _ in pairs), ()
    located = tuple(_answer_start(text, start, context, index, record_id) for index, (text, start) in enumerate(pairs))
    return tuple(text for text, _ in pairs), located


def _answer_start(text: str, start: Any, context: str, index: int, record_id: RecordId | None) -> int:
    where = f'field "{GOLD_FIELD}" item {index}'
    if start is None:
        start = context.find(text)
        if start < 0:
            raise AnswerNotInContext(f"{where}: the context does not contain the answer text {text!r}", record_id)
        return start
    if isinstance(start, bool) or not isinstance(start, int):
        raise InvalidRecord(f"{where}: answer_start must be an integer, got a JSON {json_type(start)}", record_id)
    if start < 0:
        raise InvalidRecord(f"{where}: answer_start {start} is negative", record_id)
    if context[start : start + len(text)] != text:
        raise AnswerNotInContext(
            f"answer_start {start} does not index the answer text {text!r} "
            f"({where}; the context there reads {context[start:start + len(text)]!r})",
            record_id,
        )
    return start


def _reject_lone_surrogates(record: dict[str, Any]) -> None:
    # json decodes "\ud800" to a str that cannot be encoded as UTF-8, so the output line could not be written.
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        value = record.get("id")
        record_id = value if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        raise InvalidRecord("invalid JSON (a \\u escape is half of a surrogate pair)", record_id) from None
