"""The record rules' pieces (`spanqa.engine.core.records` states the rules): the errors a broken rule raises, and the
readers of each field (ids, text fields, optional fields, the passage list of rule 6, gold answers of rules 4-5).
`records` re-exports the public names; import them from there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spanqa.engine.core.strict_json import json_type

RecordId = str | int
CONTEXTS_FIELD = "contexts"  # rule 6: several passages instead of one context
GOLD_FIELD = "answers"
_ANSWERS_SHAPE = (
    f'field "{GOLD_FIELD}" must be {{"text": [...], "answer_start": [...]}}, a list of {{"text", "answer_start"}} '
    "objects or a list of strings"
)


@dataclass(frozen=True)
class Passage:
    """One passage of a multi-passage record (rule 6)."""

    text: str
    name: RecordId  # its "id" as given, else its 0-based index in the record's list


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


def checked_id(value: Any) -> RecordId:
    """`value` if it is a valid id (rule 2: a non-blank string or an integer), else raises `InvalidRecord`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise InvalidRecord(f'field "id" must be a string or an integer, got a JSON {json_type(value)}')
    if not value.strip():
        raise InvalidRecord('field "id" is empty')
    return value


def text_field(record: Mapping[str, Any], name: str, record_id: RecordId | None) -> str:
    if name not in record:
        raise InvalidRecord(f'missing field "{name}"', record_id)
    value = record[name]
    if not isinstance(value, str):
        raise InvalidRecord(f'field "{name}" must be a string, got a JSON {json_type(value)}', record_id)
    if not value.strip():
        raise InvalidRecord(f'field "{name}" is empty', record_id)
    return value


def optional_field(record: Mapping[str, Any], name: str, kind: type, what: str, record_id: RecordId | None, default: Any):
    value = record.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise InvalidRecord(f'field "{name}" must be {what}, got a JSON {json_type(value)}', record_id)
    return value


def passage_list(value: Any, record_id: RecordId | None) -> tuple[Passage, ...]:
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


def gold_answers(
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
