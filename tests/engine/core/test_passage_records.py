"""Records rule 6: multi-passage records ("contexts") in qa-answer's reader, `to_example` and `load_examples`: the
passage shapes, their names, every refusal with its line, and what training's readers refuse."""

from __future__ import annotations

import io
import json

import pytest

from spanqa.engine.core.data import DataFormatError, QAExample, load_examples
from spanqa.engine.core.records import (
    InputRecord,
    LineError,
    Passage,
    example_from_record,
    InvalidRecord,
    parse_line,
    read_records,
    to_example,
)


def _line(**fields: object) -> bytes:
    return (json.dumps(fields) + "\n").encode("utf-8")


def test_passages_as_strings_and_objects_are_named_by_id_else_index():
    raw = _line(id="q1", question="Who?", contexts=["First one.", {"id": "doc-7", "text": "Second."}, {"text": "3rd"}],
                meta=1)  # fmt: skip
    record = parse_line(raw, 4)
    assert isinstance(record, InputRecord)
    assert record.context == "" and record.passthrough == {"meta": 1}  # the passages are not passed through
    assert record.passages == (Passage("First one.", 0), Passage("Second.", "doc-7"), Passage("3rd", 2))
    example = record.to_example()
    assert example.passages == record.passages
    assert [(e.id, e.question, e.context) for e in example.passage_examples()] == [
        ("q1", "Who?", "First one."), ("q1", "Who?", "Second."), ("q1", "Who?", "3rd"),
    ]  # fmt: skip
    assert QAExample("q", "Q?", "C.").passage_examples() == [QAExample("q", "Q?", "C.")]


@pytest.mark.parametrize(
    ("contexts", "reason"),
    [
        ([], 'field "contexts" is an empty list; give at least one passage'),
        (["fine", 7], 'field "contexts" item 1 must be a string or a {"text", "id"} object, got a JSON number'),
        (["fine", None], 'field "contexts" item 1 must be a string or a {"text", "id"} object, got a JSON null'),
        (["fine", ["nested"]], 'field "contexts" item 1 must be a string or a {"text", "id"} object, got a JSON array'),
        ("one string", 'field "contexts" must be a list of passages, got a JSON string'),
        (["fine", "  "], 'field "contexts" item 1 is an empty passage'),
        ([{"id": "a"}], 'field "contexts" item 0: "text" must be a string, got missing'),
        ([{"text": 5}], 'field "contexts" item 0: "text" must be a string, got a JSON number'),
        ([{"text": "x", "id": True}], 'field "contexts" item 0: field "id" must be a string or an integer, got a JSON boolean'),
        ([{"text": "x", "id": 3}, {"text": "y", "id": "3"}], "field \"contexts\" item 1: passage id '3' repeats item 0's"),
    ],
)
def test_bad_passage_lists_are_line_errors_naming_the_line_and_the_good_lines_stay(contexts, reason):
    lines = [_line(id="good1", question="Q?", context="C."), _line(id="bad", question="Q?", contexts=contexts),
             _line(id="good2", question="Q?", contexts=["A.", "B."])]  # fmt: skip
    results = list(read_records(io.BytesIO(b"".join(lines))))
    assert isinstance(results[0], InputRecord) and isinstance(results[2], InputRecord)
    assert results[1] == LineError(2, reason, "bad")
    assert results[1].describe("in.jsonl") == f"in.jsonl:2: {reason}"
    assert [passage.text for passage in results[2].passages] == ["A.", "B."]


def test_context_and_contexts_together_are_refused():
    with pytest.raises(InvalidRecord, match='give "context" or "contexts", not both'):
        parse_line(_line(question="Q?", context="C.", contexts=["C."]), 1)


def test_gold_answers_are_texts_that_need_not_be_in_a_passage_and_answer_start_is_refused():
    record = parse_line(_line(question="Q?", contexts=["A.", "B."], answers=["Paris", {"text": "Lyon"}]), 1)
    assert record.gold == ("Paris", "Lyon")
    example = example_from_record({"question": "Q?", "contexts": ["A."], "answers": ["Paris"]}, 1, passages=True)
    assert example.answer_texts == ("Paris",) and example.answer_starts == ()
    with pytest.raises(InvalidRecord, match="answer_start cannot be given with \"contexts\""):
        parse_line(_line(question="Q?", contexts=["A."], answers={"text": ["A"], "answer_start": [0]}), 1)


def test_engine_records_take_passages_as_mappings_and_pairs():
    assert to_example({"question": "Q?", "contexts": ["A.", {"text": "B.", "id": 9}]}, 0).passages == (
        Passage("A.", 0), Passage("B.", 9),
    )  # fmt: skip
    assert to_example(("Q?", ["A.", "B."]), 0).passages == (Passage("A.", 0), Passage("B.", 1))
    with pytest.raises(DataFormatError, match=r"record 3: field \"contexts\" is an empty list"):
        to_example({"question": "Q?", "contexts": []}, 2)


def test_training_readers_refuse_passages_and_qa_eval_reads_them(tmp_path):
    path = tmp_path / "multi.jsonl"
    path.write_bytes(_line(id="m1", question="Q?", contexts=["A.", "B."], answers=["A"]))
    with pytest.raises(DataFormatError, match=r"multi.jsonl:1 \(id 'm1'\): field \"contexts\" \(several passages\) is "
                                              "for answering and scoring only"):  # fmt: skip
        load_examples(path)
    (example,) = load_examples(path, passages=True)
    assert (example.id, example.answer_texts, len(example.passages)) == ("m1", ("A",), 2)
