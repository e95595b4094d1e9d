"""Readers for nested SQuAD JSON, JSONL and the notebook's splits: happy paths and every validation error."""

from __future__ import annotations

import gzip
import json

import pytest

from spanqa.engine.core.data import (
    DataFormatError,
    QAExample,
    iter_jsonl_examples,
    load_examples,
    notebook_splits,
    read_squad_json,
)

CONTEXT = "Paris is the capital of France. It hosts the Louvre."


def squad_document(qas, version="1.1", context=CONTEXT):
    return {"version": version, "data": [{"title": "France", "paragraphs": [{"context": context, "qas": qas}]}]}


def write_json(path, document, compress=False):
    text = json.dumps(document)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD_QA = {"id": "q1", "question": "What is the capital?", "answers": [{"text": "Paris", "answer_start": 0}]}


@pytest.mark.parametrize("compress", [False, True])
def test_nested_json_plain_and_gzip(tmp_path, compress):
    qas = [GOOD_QA, {"id": "q2", "question": "What museum?", "answers": [{"text": "Louvre", "answer_start": 45}]}]
    path = write_json(tmp_path / ("d.json.gz" if compress else "d.json"), squad_document(qas), compress)
    examples = load_examples(path)
    assert examples == [
        QAExample("q1", "What is the capital?", CONTEXT, ("Paris",), (0,), "France"),
        QAExample("q2", "What museum?", CONTEXT, ("Louvre",), (45,), "France"),
    ]


def test_v2_unanswerable_questions(tmp_path):
    qas = [GOOD_QA, {"id": "q2", "question": "What river?", "answers": [], "is_impossible": True}]
    examples = read_squad_json(write_json(tmp_path / "v2.json", squad_document(qas, version="v2.0")))
    assert [example.is_impossible for example in examples] == [False, True]
    assert examples[1].answer_texts == ()


def test_empty_answers_are_an_error_in_v1(tmp_path):
    path = write_json(tmp_path / "v1.json", squad_document([{"id": "q", "question": "?", "answers": []}]))
    with pytest.raises(DataFormatError, match=r"v1.json: data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id 'q'\): empty answer"):
        read_squad_json(path)


@pytest.mark.parametrize(
    "qa, message",
    [
        ({"id": "q", "answers": []}, r'qas\[1\] \(id \'q\'\): missing field "question"'),
        ({"id": True, "question": "?", "answers": []}, r'qas\[1\]: field "id" must be a string or an integer, got a JSON boolean'),
        ({"id": "", "question": "?", "answers": []}, r'qas\[1\]: field "id" is empty'),
        ({"id": "q", "question": "?", "answers": [{"text": "Paris", "answer_start": "0"}]}, "must be an integer, got a JSON string"),
        ({"id": "q", "question": "?", "answers": [{"text": "Paris", "answer_start": 3}]}, "does not index the answer"),
        ({"id": "q", "question": "?", "answers": [{"text": "Paris", "answer_start": -1}]}, "is negative"),
        ({"id": "q", "question": "?", "answers": ["Rome"]}, "the context does not contain the answer text 'Rome'"),
        ({"id": "q", "question": "?", "answers": "Paris"}, r'field "answers" must be .* got a JSON string'),
        ({"id": "q1", "question": "?", "answers": []}, r"duplicate id 'q1' \(first seen at .*qas\[0\]\)"),
        ({"id": "q", "question": "?"}, 'missing field "answers"'),
    ],
)
def test_nested_json_validation_names_the_record(tmp_path, qa, message):
    path = write_json(tmp_path / "bad.json", squad_document([GOOD_QA, qa], version="v2.0"))
    with pytest.raises(DataFormatError, match=r"bad\.json: data\[0\]\.paragraphs\[0\]\.qas\[1\]") as caught:
        read_squad_json(path)
    assert caught.match(message)


def test_nested_json_ids_integers_and_missing_ids(tmp_path):
    qas = [
        {"id": 7, "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}]},
        {"question": "Capital again?", "answers": ["Paris"]},  # no id: its ordinal among the file's questions
        {"id": None, "question": "Museum?", "answers": [{"text": "Louvre"}]},  # located: answer_start 45
    ]
    examples = read_squad_json(write_json(tmp_path / "ids.json", squad_document(qas)))
    assert [(e.id, e.answer_starts) for e in examples] == [(7, (0,)), (2, (0,)), (3, (45,))]
    clash = squad_document([{**qas[0], "id": "7"}, qas[0]])
    with pytest.raises(DataFormatError, match=r"qas\[1\]: duplicate id 7 \(first seen at"):  # 7 and "7" are one id
        read_squad_json(write_json(tmp_path / "clash.json", clash))


def test_nested_json_duplicate_id_names_both_records(tmp_path):
    path = write_json(tmp_path / "dup.json", squad_document([GOOD_QA, GOOD_QA]))
    with pytest.raises(DataFormatError, match=r"qas\[1\]: duplicate id 'q1' \(first seen at .*qas\[0\]\)"):
        read_squad_json(path)


def test_nested_json_structure_errors(tmp_path):
    (tmp_path / "broken.json").write_text('{"data": [\n  {"title": "x",\n  }\n]}', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"broken\.json:3: invalid JSON"):
        load_examples(tmp_path / "broken.json")
    write_json(tmp_path / "list.json", [1, 2])
    with pytest.raises(DataFormatError, match='top level must be an object with a "data" list'):
        load_examples(tmp_path / "list.json")
    write_json(tmp_path / "noctx.json", {"data": [{"title": "t", "paragraphs": [{"qas": []}]}]})
    with pytest.raises(DataFormatError, match=r'data\[0\]\.paragraphs\[0\]: missing field "context"'):
        load_examples(tmp_path / "noctx.json")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        load_examples(tmp_path / "absent.json")


def test_jsonl_official_and_hf_answer_styles(tmp_path):
    path = write_lines(
        tmp_path / "d.jsonl",
        [
            json.dumps({"id": "a", "question": "Capital?", "context": CONTEXT, "answers": [{"text": "Paris", "answer_start": 0}]}),
            "",
            json.dumps({"id": "b", "question": "Museum?", "context": CONTEXT, "answers": {"text": ["Louvre"], "answer_start": [45]}}),
            json.dumps({"id": "c", "question": "No gold?", "context": CONTEXT}),
        ],
    )
    examples = load_examples(path)
    assert [(e.id, e.answer_texts, e.answer_starts) for e in examples] == [
        ("a", ("Paris",), (0,)),
        ("b", ("Louvre",), (45,)),
        ("c", (), ()),
    ]
    assert not examples[2].is_impossible  # no answers field: unknown, not unanswerable


BAD_JSONL_LINES = [
    ('{"id": "x", "question": "q"', "invalid JSON"),
    ('["not", "an", "object"]', "expected a JSON object, got a JSON array"),
    ('{"id": "x", "context": "c"}', 'missing field "question"'),
    ('{"id": "x", "question": 5, "context": "c"}', 'field "question" must be a string, got a JSON number'),
    ('{"id": "x", "question": "q", "context": "c", "n": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than"),
    ('{"id": "x", "question": "q", "context": "c", "n": ' + "1" * 5000 + "}", "an integer of 5000 digits"),
    ('{"id": "x", "question": "q", "context": "c", "n": {"a": {"a": 1, "a": 2}}}', "the key 'a' appears twice"),
    ('{"id": "h", "question": "q", "context": "c"}', "duplicate id 'h'"),
    ('{"id": "g ", "question": "q", "context": "c", "answers": ["Paris"]}', "does not contain the answer text"),
    ('{"id": "x", "question": "q", "context": "abc", "answers": [{"text": "zz", "answer_start": 0}]}', "does not index"),
]


@pytest.mark.parametrize("bad_line, message", BAD_JSONL_LINES)
def test_jsonl_errors_name_the_line(tmp_path, bad_line, message):
    good = json.dumps({"id": "g", "question": "q", "context": "c"})
    path = write_lines(tmp_path / "in.jsonl", [good, good.replace('"g"', '"h"'), bad_line])
    with pytest.raises(DataFormatError, match=r"in\.jsonl:3[: ]") as caught:
        list(iter_jsonl_examples(path))
    assert caught.match(message)


def test_jsonl_plain_string_answers_and_integer_ids(tmp_path):
    # The same line qa-answer accepts (records.py): ids kept as given, plain-string answers located in the context.
    lines = [
        json.dumps({"id": 1, "question": "Capital?", "context": CONTEXT, "answers": ["Paris"]}),
        json.dumps({"question": "Museum?", "context": CONTEXT, "answers": ["Louvre", {"text": "the Louvre"}]}),
    ]
    examples = load_examples(write_lines(tmp_path / "plain.jsonl", lines))
    assert [(e.id, e.answer_texts, e.answer_starts) for e in examples] == [
        (1, ("Paris",), (0,)),
        (2, ("Louvre", "the Louvre"), (45, 41)),  # no id: the line number
    ]


def test_jsonl_deep_line_is_reported_and_the_rest_is_read(tmp_path):
    good = [json.dumps({"id": f"g{i}", "question": "q", "context": "c"}) for i in range(2)]
    deep = '{"id": "deep", "question": "q", "context": "c", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    errors = []
    examples = list(iter_jsonl_examples(write_lines(tmp_path / "deep.jsonl", [good[0], deep, good[1]]), errors.append))
    assert [e.id for e in examples] == ["g0", "g1"]
    assert [str(error) for error in errors] == [f"{tmp_path / 'deep.jsonl'}:2: invalid JSON (nested deeper than 100 levels)"]


def test_nested_json_too_deep_is_a_clear_error(tmp_path):
    (tmp_path / "deep.json").write_text('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"deep\.json: invalid JSON \(nested deeper than 100 levels\)"):
        load_examples(tmp_path / "deep.json")


def test_jsonl_invalid_utf8_and_duplicates(tmp_path):
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(b'{"id": "a", "question": "q", "context": "c"}\n{"id": "b", "question": "\xff", "context": "c"}\n')
    with pytest.raises(DataFormatError, match=r"bytes\.jsonl:2: invalid UTF-8"):
        list(iter_jsonl_examples(path))
    line = json.dumps({"id": "a", "question": "q", "context": "c"})
    with pytest.raises(DataFormatError, match=r"dup\.jsonl:2: duplicate id 'a' \(first seen at .*dup\.jsonl:1\)"):
        list(iter_jsonl_examples(write_lines(tmp_path / "dup.jsonl", [line, line])))


def test_jsonl_on_error_reports_and_keeps_going(tmp_path):
    lines = [json.dumps({"id": f"id{i}", "question": "q", "context": "c"}) for i in range(4)]
    lines.insert(2, "{broken")
    errors = []
    examples = list(iter_jsonl_examples(write_lines(tmp_path / "mixed.jsonl", lines), on_error=errors.append))
    assert [e.id for e in examples] == ["id0", "id1", "id2", "id3"]
    assert len(errors) == 1 and str(errors[0]).startswith(f"{tmp_path / 'mixed.jsonl'}:3: invalid JSON")


def test_jsonl_is_streamed_not_loaded_whole(tmp_path):
    # The first record comes out before the reader reaches a broken line further down the file.
    lines = [json.dumps({"id": "first", "question": "q", "context": "c"})] + ["{broken"] * 3
    stream = iter_jsonl_examples(write_lines(tmp_path / "big.jsonl", lines))
    assert next(stream).id == "first"
    with pytest.raises(DataFormatError, match=":2:"):
        next(stream)


def test_jsonl_gzip_and_suffix_sniffing(tmp_path):
    record = {"id": "a", "question": "q", "context": "c"}
    with gzip.open(tmp_path / "d.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    assert [e.id for e in load_examples(tmp_path / "d.jsonl.gz")] == ["a"]
    write_lines(tmp_path / "records.txt", [json.dumps(record)])
    assert [e.id for e in load_examples(tmp_path / "records.txt")] == ["a"]
    write_json(tmp_path / "nested.txt", squad_document([GOOD_QA]))
    assert [e.id for e in load_examples(tmp_path / "nested.txt")] == ["q1"]


def test_notebook_splits_are_datasets_shuffle_seed_42():
    import datasets

    examples = [QAExample(f"id{i}", "q", "c") for i in range(8100)]
    splits = notebook_splits(examples)
    assert {name: len(rows) for name, rows in splits.items()} == {"train": 5000, "validation": 1000, "test": 2000}
    shuffled = datasets.Dataset.from_dict({"id": [e.id for e in examples]}).shuffle(seed=42)
    assert [e.id for e in splits["train"]] == shuffled.select(range(5000))["id"]
    assert [e.id for e in splits["test"]] == shuffled.select(range(6000, 8000))["id"]
    assert len({e.id for rows in splits.values() for e in rows}) == 8000
    with pytest.raises(DataFormatError, match="need 8000 examples"):
        notebook_splits(examples[:100])


def test_official_dev_and_v2_files_load(squad_dir):
    dev = load_examples(squad_dir / "dev-v1.1.json.gz")
    assert len(dev) == 10570 and sum(len(e.answer_texts) for e in dev) == 34726
    v2 = load_examples(squad_dir / "dev-v2.0.reconstructed.json.gz")
    assert len(v2) == 11873 and sum(e.is_impossible for e in v2) == 5945


def test_hub_dataset_names_go_through_datasets_load_dataset(monkeypatch):
    import datasets

    calls = []
    rows = [
        {"id": "h1", "title": "T", "context": CONTEXT, "question": "Capital?", "answers": {"text": ["Paris"], "answer_start": [0]}},
        {"id": "h2", "title": "T", "context": CONTEXT, "question": "River?", "answers": {"text": [], "answer_start": []}},
    ]

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_examples("rajpurkar/squad_v2", split="validation")
    assert calls == [("rajpurkar/squad_v2", None, "validation")]
    assert [(e.id, e.answer_texts, e.is_impossible) for e in examples] == [("h1", ("Paris",), False), ("h2", (), True)]


def test_hub_loading_failure_is_a_clear_error(monkeypatch):
    import datasets

    def offline(name, config, split):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataFormatError, match="squad: not a local file, and loading it as a Hugging Face dataset failed: Couldn't reach"):
        load_examples("squad")
