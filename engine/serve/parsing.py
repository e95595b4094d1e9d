"""A request body to the records it asks about, by qa-answer's rules: the same strict JSON (`strict_json`) and the
same record parser (`records.example_from_record`), so the service accepts exactly the records qa-answer accepts,
and refuses the others with the same reason, naming the item and the field.

Request rules:
1. The body is one record (a JSON object) or a non-empty JSON array of them. An object is answered by an object, an
   array by an array in the same order.
2. A record without an id gets its 1-based position in the request (1 for a lone object); ids repeat nowhere in
   one request (records rule 3), as in one input file.
3. Fields other than id, question and context (or contexts) come back on the answer, after the answer's own
   fields, as qa-answer passes them through to its output line.
4. A bad body or record is a `RequestError` with status 422 (its detail lists each fault with its place: `body`,
   the item, the field); a context longer than the limit (over all passages of a record), or too many records,
   is 413.
5. A record may carry "top_k" (an integer >= 1): its answer then lists that many best answers (`top_answers`), as
   `qa-answer --top-k` would; the field also passes through, as qa-answer passes it, so the bytes stay the same.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from spanqa.engine.core.records import (
    INPUT_ONLY_FIELDS,
    REQUIRED_FIELDS,
    InputRecord,
    InvalidRecord,
    example_from_record,
    id_key,
)
from spanqa.engine.core.strict_json import InvalidJSON, decode, json_type
from spanqa.engine.jobs.output import output_line

_FIELD_NAME = re.compile(r'field "([^"]+)"')
TOP_K_FIELD = "top_k"
# As qa-answer's reader (`records.decode_line`) refuses a line holding half a surrogate pair as a \u escape: it could
# not be written back out as UTF-8. Only a body holding such an escape is checked further.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# What qa-answer leaves off its output line: the id (the answer has its own) and the model's inputs.
_NOT_PASSED_THROUGH = frozenset((*REQUIRED_FIELDS, *INPUT_ONLY_FIELDS))


class RequestError(Exception):
    """A request refused for what it holds: an HTTP status and FastAPI-style `detail` items ({loc, msg, type})."""

    def __init__(self, status: int, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail[0]["msg"] if detail else str(status))
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ParsedRequest:
    records: list[InputRecord]  # `line` is the record's 1-based position in the request
    single: bool  # the body was one object (answered by one object)


def parse_body(body: bytes, max_questions: int, max_context_chars: int) -> ParsedRequest:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid(["body"], f"invalid UTF-8 at byte {error.start}", "unicode") from None
    try:
        value = decode(text)
    except InvalidJSON as error:
        raise _invalid(["body"], error.reason, "json") from None
    if _SURROGATE_ESCAPE.search(body):
        _reject_lone_surrogates(value)
    single = isinstance(value, dict)
    if not single and not isinstance(value, list):
        raise _invalid(["body"], f"expected a record (a JSON object) or a list of them, got a JSON {json_type(value)}")
    items = [value] if single else value
    if not items:
        raise _invalid(["body"], "the list of records is empty")
    if len(items) > max_questions:
        raise RequestError(413, [_item(["body"], f"{len(items)} records in one request; at most {max_questions}",
                                       "too_many_records")])  # fmt: skip
    records, faults, first_of = [], [], {}
    for index, item in enumerate(items):
        where = ["body"] if single else ["body", index]
        try:
            record = _input_record(item, index + 1)
        except InvalidRecord as error:
            faults.append(_record_fault(where, error))
            continue
        first = first_of.setdefault(id_key(record.id), index)
        if first != index:
            faults.append(_item([*where, "id"], f"duplicate id {record.id!r} (first at item {first})", "duplicate_id"))
            continue
        if context_chars(record) > max_context_chars:
            field = "contexts" if record.passages else "context"
            raise RequestError(413, [_item([*where, field], f"{field} of {context_chars(record)} characters; at most "
                                            f"{max_context_chars}", "context_too_long")])  # fmt: skip
        records.append(record)
    if faults:
        raise RequestError(422, faults)
    return ParsedRequest(records, single)


def encode_answers(answers: list[Any], records: list[InputRecord], single: bool) -> bytes:
    """The response body: each answer as qa-answer writes its output line (`jobs.output.output_line`: the answer's
    fields, then the record's pass-through fields), so a service answer and a file answer are the same bytes."""
    lines = [output_line(answer, record).rstrip(b"\n") for answer, record in zip(answers, records, strict=True)]
    return lines[0] if single else b"[" + b",".join(lines) + b"]"


def _input_record(item: Any, position: int) -> InputRecord:
    if not isinstance(item, dict):
        raise InvalidRecord(f"expected a JSON object, got a JSON {json_type(item)}")
    example = example_from_record(item, position, passages=True)
    top_k = item.get(TOP_K_FIELD)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidRecord(f'field "{TOP_K_FIELD}" must be an integer >= 1, got {top_k!r}', example.id)
    passthrough = {key: value for key, value in item.items() if key not in _NOT_PASSED_THROUGH}
    return InputRecord(position, example.id, example.question, example.context, passthrough, None, example.passages)


def top_k_of(record: InputRecord) -> int | None:
    """The record's own "top_k" (rule 5), None for the service's default."""
    return record.passthrough.get(TOP_K_FIELD)


def context_chars(record: InputRecord) -> int:
    return len(record.context) + sum(len(passage.text) for passage in record.passages)


def _reject_lone_surrogates(value: Any) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(["body"], "invalid JSON (a \\u escape is half of a surrogate pair)", "json") from None


def _record_fault(where: list[Any], error: InvalidRecord) -> dict[str, Any]:
    found = _FIELD_NAME.search(error.reason)
    location = [*where, found.group(1)] if found else where
    named = "" if error.record_id is None else f" (id {error.record_id!r})"
    return _item(location, f"{error.reason}{named}", "invalid_record")


def _item(location: list[Any], message: str, kind: str = "invalid_body") -> dict[str, Any]:
    return {"loc": location, "msg": message, "type": kind}


def _invalid(location: list[Any], message: str, kind: str = "invalid_body") -> RequestError:
    return RequestError(422, [_item(location, message, kind)])
