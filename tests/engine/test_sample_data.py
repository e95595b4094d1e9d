"""The shipped sample question set: it loads, its offsets are right, it covers the hard cases it promises, and the
committed file is exactly what tools/build_sample.py builds."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from spanqa.engine.core.data import QAExample, load_examples, sample_questions_path
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, make_windows
from support import REPO_ROOT

BUILDER_PATH = REPO_ROOT / "tools" / "build_sample.py"


@pytest.fixture(scope="module")
def builder():
    """tools/ is not a package, so the build script is loaded from its file."""
    spec = importlib.util.spec_from_file_location("spanqa_tools_build_sample", BUILDER_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.fixture(scope="module")
def examples() -> list[QAExample]:
    return load_examples(sample_questions_path())


def test_sample_loads_with_enough_questions_and_unique_ids(examples):
    assert len(examples) >= 100
    ids = [example.id for example in examples]
    assert len(set(ids)) == len(ids)
    assert all(example.answer_texts and not example.is_impossible for example in examples)


def test_every_answer_is_the_context_slice_at_its_start(examples):
    for example in examples:
        for text, start in zip(example.answer_texts, example.answer_starts, strict=True):
            assert example.context[start : start + len(text)] == text, example.id


def test_each_paragraph_has_two_to_four_questions(examples):
    per_context = Counter(example.context for example in examples)
    assert len(per_context) >= 40
    assert all(2 <= count <= 4 for count in per_context.values()), per_context.values()


def test_sample_covers_the_hard_cases(examples):
    assert any(not example.context.isascii() for example in examples)
    assert any(not text.isascii() for example in examples for text in example.answer_texts)
    # Answers whose text occurs earlier in the paragraph: the question is about a later occurrence.
    later_occurrences = [
        example.id for example in examples if example.context.find(example.answer_texts[0]) < example.answer_starts[0]
    ]
    assert len(later_occurrences) >= 2, later_occurrences


def test_a_long_context_needs_several_windows_and_an_answer_lies_beyond_the_first(tokenizer, examples):
    options = WindowOptions()
    assert any(len(tokenizer(example.context)["input_ids"]) > options.max_length for example in examples)

    windows = make_windows(QATokenizer.from_transformers(tokenizer), examples, options)
    padded = windows.padded(np.arange(len(windows)), tokenizer.pad_token_id)
    first_window_end: dict[int, int] = {}  # example index -> end of the context its first window covers
    for row in range(len(windows)):
        example_index = int(padded.example_index[row])
        if example_index not in first_window_end:
            first_window_end[example_index] = int(padded.offsets[row, :, 1].max())
    assert max(Counter(padded.example_index.tolist()).values()) >= 2
    beyond_first = [
        examples[index].id
        for index, end in first_window_end.items()
        if examples[index].answer_starts[0] + len(examples[index].answer_texts[0]) > end
    ]
    assert beyond_first, "no answer lies beyond its example's first window"


def test_builder_reproduces_the_committed_file_exactly(builder):
    assert builder.build_sample_text().encode("utf-8") == sample_questions_path().read_bytes()


def test_check_mode_reports_a_stale_file(builder, tmp_path, capsys):
    target = tmp_path / "questions.jsonl"
    assert builder.main(["--output", str(target)]) == 0
    assert builder.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace("s001-q1", "s001-qX"), encoding="utf-8")
    assert builder.main(["--check", "--output", str(target)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["questions.jsonl"]  # no temporary file left


def _build_one(builder, context: str, question):
    return builder.build_records([builder.P("Test", context, question)])


def test_builder_picks_the_requested_occurrence(builder):
    question = builder.Q("Which colour came last?", "red", nth=2)
    (record,) = _build_one(builder, "red, then blue, then red again.", question)
    assert record["answers"] == {"text": ["red"], "answer_start": [21]}
    assert record["id"] == "s001-q1"


@pytest.mark.parametrize(
    ("context", "question", "message"),
    [
        ("The cat sat.", ("Who sat?", "dog"), "does not occur"),
        ("One fish, one fish.", ("What?", "fish"), "occurs 2 times"),
        ("One fish, one fish.", ("What?", "fish", 3), "nth=3"),
        ("It happens often.", ("How many?", "ten"), "cuts a word"),
        ("The cat sat.", ("Who sat", "cat"), "must end with '?'"),
        ("The cat sat.", ("Who sat?", " cat"), "surrounding whitespace"),
    ],
)
def test_builder_rejects_bad_source_data_naming_the_question(builder, context, question, message):
    with pytest.raises(builder.SampleSourceError, match="paragraph 1 .*question 1") as raised:
        _build_one(builder, context, builder.Q(*question))
    assert message in str(raised.value)


def test_builder_rejects_an_ambiguous_alternative_answer(builder):
    question = builder.Q("Who?", "Ann Lee", also=("Lee",))
    with pytest.raises(builder.SampleSourceError, match="occurs 2 times"):
        _build_one(builder, "Ann Lee met Lee.", question)
