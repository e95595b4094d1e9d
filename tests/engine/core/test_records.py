"""qa-answer's input reader and the record rules it shares (records.py): valid lines, every kind of bad line (with
its line number and reason), ids, gold answers, and QAEngine's records."""

from __future__ import annotations

import io
import json

import pytest

from spanqa.engine.core.data import DataFormatError, QAExample
from spanqa.engine.core.records import InputRecord, LineError, parse_line, read_records, to_example
from spanqa.engine.core.strict_json import MAX_NESTING

CONTEXT = "The lighthouse on Vell Point was lit in 1871 and automated in 1964."


def _line(**fields: object) -> bytes:
    return (json.dumps(fields) + "\n").encode("utf-8")


def _good(record_id: str = "q1", **extra: object) -> bytes:
    return _line(id=record_id, question="When was it lit?", context=CONTEXT, **extra)


def _read(*lines: bytes, max_line_bytes: int | None = None) -> list[InputRecord | LineError]:
    stream = io.BytesIO(b"".join(lines))
    if max_line_bytes is None:
        return list(read_records(stream))
    return list(read_records(stream, max_line_bytes=max_line_bytes))


def test_valid_line_keeps_other_fields_in_order_and_leaves_question_and_context_out():
    raw = b'{"title": "Vell", "id": "q1", "question": "When?", "meta": {"k": [1, 2.5]}, "context": "In 1871."}\n'
    record = parse_line(raw, 7)
    assert record == InputRecord(7, "q1", "When?", "In 1871.", {"title": "Vell", "meta": {"k": [1, 2.5]}}, None)
    assert list(record.passthrough) == ["title", "meta"]
    assert record.to_example() == QAExample("q1", "When?", "In 1871.")


@pytest.mark.parametrize(
    ("answers", "gold"),
    [
        ({"text": ["1871", "in 1871"], "answer_start": [40, 37]}, ("1871", "in 1871")),  # Hugging Face columns
        ([{"text": "1871", "answer_start": 40}], ("1871",)),  # official objects
        (["1871", "in 1871"], ("1871", "in 1871")),  # plain strings
        (["1871", {"text": "in 1871", "answer_start": 37}], ("1871", "in 1871")),  # both, mixed
        ([], ()),  # unanswerable (SQuAD v2)
        ({"text": [], "answer_start": []}, ()),
    ],
)
def test_gold_answer_shapes(answers, gold):
    record = parse_line(_good(answers=answers), 1)
    assert record.gold == gold
    assert record.passthrough == {"answers": answers}  # passed through unchanged, whatever the shape


def test_the_three_answer_shapes_make_the_same_example():
    shapes = [
        {"text": ["1871", "in 1871"], "answer_start": [40, 37]},
        [{"text": "1871", "answer_start": 40}, {"text": "in 1871", "answer_start": 37}],
        ["1871", "in 1871"],  # located at their first occurrence
    ]
    examples = [to_example({"id": "q", "question": "When?", "context": CONTEXT, "answers": shape}, 0) for shape in shapes]
    assert examples[0] == examples[1] == examples[2]
    assert (examples[0].answer_texts, examples[0].answer_starts) == (("1871", "in 1871"), (40, 37))


@pytest.mark.parametrize(
    ("line", "line_id"),
    [
        (b'{"id": 7, "question": "q", "context": "c"}', 7),
        (b'{"id": -12, "question": "q", "context": "c"}', -12),
        (b'{"id": "7", "question": "q", "context": "c"}', "7"),
        (b'{"question": "q", "context": "c"}', 3),  # no id: its 1-based line number
        (b'{"id": null, "question": "q", "context": "c"}', 3),
    ],
)
def test_ids_are_kept_as_given_and_a_missing_id_is_the_line_number(line, line_id):
    results = _read(b"\n", _good("first"), line + b"\n")
    assert isinstance(results[1], InputRecord) and results[1].line == 3
    assert results[1].id == line_id and type(results[1].id) is type(line_id)
    assert "id" not in results[1].passthrough


def test_an_id_and_its_string_form_are_one_id():
    results = _read(_line(id=7, question="q", context="c"), _line(id="7", question="q", context="c"))
    assert results[1] == LineError(2, "duplicate id '7' (first at line 1)", "7")
    # A record without an id takes its line number, which an explicit id may already hold.
    results = _read(_line(id="2", question="q", context="c"), _line(question="q", context="c"))
    assert results[1] == LineError(2, "duplicate id 2 (first at line 1)", 2)


def test_is_impossible_without_answers_is_an_unanswerable_gold():
    assert parse_line(_good(is_impossible=True), 1).gold == ()
    assert parse_line(_good(is_impossible=False), 1).gold is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"id": "q1", "question": "Wh\xff?", "context": "c"}\n', "invalid UTF-8 at byte 28"),
        (b'{"id": "q1", "question": }\n', "invalid JSON (Expecting value, column 26)"),
        (b'{"id": "q1", "question": "q", "context": "c", "x": NaN}\n', "invalid JSON (NaN is not a JSON value)"),
        (b'{"id": "q1", "question": "q", "context": "c", "x": 1e999}\n', "(the number 1e999 is too large)"),
        (b'{"id": "q1", "question": "q", "context": "c", "x": ' + b"9" * 4301 + b"}\n", "integer of 4301 digits"),
        (b'{"id": "q1", "question": "q", "context": "c", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "nested deeper"),
        (b'{"id": "q1", "question": "q", "context": "c", "x": ' + b"[" * MAX_NESTING + b"]" * MAX_NESTING + b"}\n", "nested deeper"),
        (b'{"id": "q1", "question": "q", "context": "c", "x": [{"a": [{"b": 1, "b": 2}]}]}\n', "the key 'b' appears twice"),
        (b'{"id": "q1", "id": "q2", "question": "q", "context": "c"}\n', "invalid JSON (the key 'id' appears twice"),
        (b'{"id": "q1", "question": "\\ud800", "context": "c"}\n', "half of a surrogate pair"),
        (b'["q1", "question", "context"]\n', "expected a JSON object, got a JSON array"),
        (b'"just a string"\n', "expected a JSON object, got a JSON string"),
        (b'{"id": "q1", "context": "c"}\n', 'missing field "question"'),
        (b'{"id": "q1", "question": "q"}\n', 'missing field "context"'),
        (b'{"id": "q1", "question": "", "context": "c"}\n', 'field "question" is empty'),
        (b'{"id": "q1", "question": "q", "context": " \\n\\t"}\n', 'field "context" is empty'),
        (b'{"id": "", "question": "q", "context": "c"}\n', 'field "id" is empty'),
        (b'{"id": " ", "question": "q", "context": "c"}\n', 'field "id" is empty'),
        (b'{"id": true, "question": "q", "context": "c"}\n', 'field "id" must be a string or an integer, got a JSON boolean'),
        (b'{"id": 7.5, "question": "q", "context": "c"}\n', 'field "id" must be a string or an integer, got a JSON number'),
        (b'{"id": ["q1"], "question": "q", "context": "c"}\n', 'must be a string or an integer, got a JSON array'),
        (b'{"id": "q1", "question": "q", "context": "c", "title": 5}\n', 'field "title" must be a string'),
        (b'{"id": "q1", "question": "q", "context": "c", "is_impossible": "no"}\n', 'field "is_impossible" must be true or false'),
        (b'{"id": "q1", "question": null, "context": "c"}\n', 'field "question" must be a string, got a JSON null'),
        (b'{"id": "q1", "question": "q", "context": ["c"]}\n', 'field "context" must be a string, got a JSON array'),
        (b'{"id": "q1", "question": "q", "context": "c", "answers": "c"}\n', 'field "answers" must be'),
        (b'{"id": "q1", "question": "q", "context": "c", "answers": [3]}\n', "item 0 is neither"),
        (b'{"id": "q1", "question": "q", "context": "c", "answers": {"text": "c"}}\n', '"text" is not a list'),
        (b'{"id": "q1", "question": "q", "context": "c", "answers": {"text": ["c"], "answer_start": []}}\n', "as long as"),
        (b'{"id": "q1", "question": "q", "context": "c", "answers": ["x"]}\n', "does not contain the answer text 'x'"),
        (b'{"id": "q1", "question": "q", "context": "abc", "answers": [{"text": "c", "answer_start": 0}]}\n', "does not index"),
        (b'{"id": "q1", "question": "q", "context": "c", "answers": [{"text": "c", "answer_start": "0"}]}\n', "must be an integer"),
        (b'{"id": "q1", "question": "q", "context": "c", "answers": [{"text": "c", "answer_start": -1}]}\n', "is negative"),
        (b'{"id": "q1", "question": "q", "context": "c", "answers": ["c"], "is_impossible": true}\n', "is_impossible is true"),
    ],
)
def test_each_kind_of_bad_line_is_reported_with_its_line_number_and_reason(raw, reason):
    results = _read(_good("first"), raw, _good("last"))
    assert [type(result) for result in results] == [InputRecord, LineError, InputRecord]
    error = results[1]
    assert error.line == 2
    assert reason in error.reason
    assert [result.id for result in (results[0], results[2])] == ["first", "last"]  # neighbours unaffected


def test_error_keeps_the_id_when_the_line_has_one():
    [error] = _read(b'{"id": "q9", "question": "", "context": "c"}\n')
    assert error.id == "q9"
    [error] = _read(b'{"id": 9, "question": "", "context": "c"}\n')
    assert error.id == 9
    [error] = _read(b'{"id": true, "question": "q", "context": "c"}\n')
    assert error.id is None
    [error] = _read(b'{"question": "", "context": "c"}\n')
    assert error.id is None  # the line number stands in for a missing id; the error has the line already


def test_duplicate_ids_are_errors_after_the_first():
    results = _read(_good("a"), _good("b"), _good("a"), _good("a"))
    assert [type(result) for result in results] == [InputRecord, InputRecord, LineError, LineError]
    assert [result.reason for result in results[2:]] == ["duplicate id 'a' (first at line 1)"] * 2
    assert [result.line for result in results[2:]] == [3, 4]


def test_a_bad_first_occurrence_does_not_claim_the_id():
    results = _read(b'{"id": "a", "question": "", "context": "c"}\n', _good("a"))
    assert isinstance(results[0], LineError) and isinstance(results[1], InputRecord)


def test_blank_lines_are_skipped_but_counted_in_line_numbers():
    results = _read(b"\n", _good("a"), b"   \r\n", b"\n", _good("b"))
    assert [(result.line, result.id) for result in results] == [(2, "a"), (5, "b")]


def test_crlf_bom_and_a_last_line_without_newline():
    results = _read(b"\xef\xbb\xbf" + _good("a").replace(b"\n", b"\r\n"), _good("b").rstrip(b"\n"))
    assert [result.id for result in results] == ["a", "b"]


def test_a_bom_after_the_first_line_is_invalid_json():
    results = _read(_good("a"), b"\xef\xbb\xbf" + _good("b"))
    assert isinstance(results[1], LineError) and "invalid JSON" in results[1].reason


def test_surrogate_pairs_and_non_ascii_text_are_fine():
    record = parse_line(b'{"id": "\\ud83d\\ude00", "question": "Qu\xc3\xa9?", "context": "caf\\u00e9"}', 1)
    assert (record.id, record.question, record.context) == ("\U0001f600", "Qué?", "café")


def test_an_over_long_line_is_skipped_without_reading_it_whole():
    long_line = _good("long", title="x" * 5000)
    results = _read(_good("a"), long_line, _good("b"), max_line_bytes=1000)
    assert [type(result) for result in results] == [InputRecord, LineError, InputRecord]
    assert results[1].line == 2 and results[1].reason == "line longer than 1000 bytes"
    assert results[2].line == 3


def test_a_line_of_exactly_the_limit_is_accepted():
    line = _good("a")
    results = _read(line, max_line_bytes=len(line) - 1)  # the newline is not part of the limit
    assert isinstance(results[0], InputRecord)
    assert isinstance(_read(line.rstrip(b"\n") + b" \n", max_line_bytes=len(line) - 1)[0], LineError)


def test_error_serialisation():
    error = LineError(3, 'missing field "question"', "q\u00e9")
    assert json.loads(error.to_json_line()) == {"line": 3, "error": 'missing field "question"', "id": "q\u00e9"}
    assert error.to_json_line().endswith(b"\n") and error.to_json_line().count(b"\n") == 1
    without_id = LineError(4, "invalid UTF-8 at byte 0").to_json_line()
    assert json.loads(without_id) == {"line": 4, "error": "invalid UTF-8 at byte 0"}
    assert error.describe("in.jsonl") == 'in.jsonl:3: missing field "question"'


def test_records_at_the_nesting_limit_are_read_and_written_back():
    nested: object = "leaf"
    for _ in range(MAX_NESTING - 1):  # the record itself is the outermost level
        nested = [nested]
    [record] = _read(_good("deep", meta=nested))
    assert record.passthrough["meta"] == nested
    json.dumps(record.passthrough)  # what the output line needs


def test_qaengine_records_follow_the_same_rules():
    assert to_example(("When?", CONTEXT), 4) == QAExample(5, "When?", CONTEXT)  # a pair: its 1-based position
    assert to_example({"question": "When?", "context": CONTEXT}, 0).id == 1
    assert to_example({"id": 42, "question": "When?", "context": CONTEXT}, 0).id == 42
    example = QAExample("kept", "", "")
    assert to_example(example, 0) is example  # taken as it is
    with pytest.raises(DataFormatError, match=r'^record 7: missing field "context"$'):
        to_example({"question": "When?"}, 6)
    with pytest.raises(DataFormatError, match=r'^record 1: field "context" must be a string, got a JSON number$'):
        to_example(("When?", 3), 0)
    with pytest.raises(DataFormatError, match=r"^record 2: expected a QAExample"):
        to_example(3, 1)
