"""Windowing: agreement with the transformers tokenizer, the notebook's labels, and hard inputs.

Windows are cut by `QATokenizer.from_folder` on the shipped model's tokenizer.json (what answering uses); the
oracles are the transformers tokenizer loaded from the same folder, the path the engine took before.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from support.windows_oracle import SHIPPED_MODEL, assert_same_windows, transformers_encode, transformers_windows

from spanqa.engine.core.data import QAExample, load_examples
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import OUTSIDE_CONTEXT, WindowOptions, make_windows


@pytest.fixture(scope="module")
def qa_tokenizer() -> QATokenizer:
    return QATokenizer.from_folder(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def tokenizer():
    """The transformers tokenizer of the same folder: the oracle (these tests skip where transformers is absent)."""
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(SHIPPED_MODEL)


def window_offsets(windows, window):
    return windows.offsets[windows.row_splits[window] : windows.row_splits[window + 1]]


def notebook_labels(tokenizer, examples, encoded):
    """The notebook's labelling loop over the transformers tokenizer's output, written out literally as an
    independent oracle."""
    starts, ends = [], []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        cls_index = encoded["input_ids"][i].index(tokenizer.cls_token_id)
        example = examples[encoded["overflow_to_sample_mapping"][i]]
        start_char = example.answer_starts[0]
        end_char = start_char + len(example.answer_texts[0])
        sequence_ids = encoded.sequence_ids(i)
        context_start = sequence_ids.index(1)
        context_end = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
        if not (offsets[context_start][0] <= start_char and offsets[context_end][1] >= end_char):
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        idx = context_start
        while idx <= context_end and offsets[idx][0] <= start_char:
            idx += 1
        starts.append(idx - 1)
        idx = context_end
        while idx >= context_start and offsets[idx][1] >= end_char:
            idx -= 1
        ends.append(idx + 1)
    return starts, ends


@pytest.fixture(scope="module")
def dev_examples(squad_dir):
    return load_examples(squad_dir / "dev-v1.1.json.gz")


@pytest.fixture(scope="module")
def dev_windows(qa_tokenizer, dev_examples):
    return make_windows(qa_tokenizer, dev_examples, with_labels=True)


@pytest.fixture(scope="module")
def dev_encoded(tokenizer, dev_examples):
    """The transformers tokenizer's windows of all dev questions (the two oracles share one tokenizer call)."""
    return transformers_encode(tokenizer, dev_examples, WindowOptions())


def test_every_window_of_all_dev_questions_matches_the_transformers_tokenizer(
    dev_windows, tokenizer, dev_examples, dev_encoded
):
    assert len(dev_examples) == 10570 and len(dev_windows) == 10784
    assert_same_windows(dev_windows, transformers_windows(tokenizer, dev_examples, WindowOptions(), dev_encoded))
    assert dev_windows.lengths.max() <= 384


def test_labels_match_the_notebook_loop(dev_windows, tokenizer, dev_examples, dev_encoded):
    windows = dev_windows
    expected_starts, expected_ends = notebook_labels(tokenizer, dev_examples, dev_encoded)
    assert windows.start_positions.tolist() == expected_starts
    assert windows.end_positions.tolist() == expected_ends
    inside = windows.start_positions != windows.cls_index
    assert 0.8 < inside.mean() < 1.0  # most windows hold their answer, the overflow windows of long contexts do not


def test_labelled_tokens_cover_exactly_the_answer(qa_tokenizer, dev_examples):
    examples = dev_examples[:300]
    windows = make_windows(qa_tokenizer, examples, with_labels=True)
    checked = 0
    for window in range(len(windows)):
        start, end = windows.start_positions[window], windows.end_positions[window]
        if start == windows.cls_index[window]:
            continue
        example = examples[windows.example_index[window]]
        offsets = window_offsets(windows, window)
        span = example.context[offsets[start, 0] : offsets[end, 1]]
        assert example.answer_texts[0] in span
        assert len(span) - len(example.answer_texts[0]) < 15  # whole tokens around the answer, nothing more
        checked += 1
    assert checked > 250


def test_offsets_are_context_only(qa_tokenizer, tokenizer, dev_examples):
    examples = dev_examples[:50]
    windows = make_windows(qa_tokenizer, examples)
    for window in range(len(windows)):
        offsets = window_offsets(windows, window)
        inside = offsets[:, 0] != OUTSIDE_CONTEXT
        # [CLS] question [SEP] context [SEP]: the question and the three specials are outside.
        question_tokens = len(tokenizer(examples[windows.example_index[window]].question.strip(), add_special_tokens=False)["input_ids"])
        assert not inside[: question_tokens + 2].any() and not inside[-1]
        assert inside[question_tokens + 2 : -1].all()
        assert (offsets[inside, 1] <= len(examples[windows.example_index[window]].context)).all()


def test_long_context_windows_overlap_by_the_stride(qa_tokenizer):
    context = " ".join(f"word{i}" for i in range(900))
    windows = make_windows(qa_tokenizer, [QAExample("long", "Which word?", context)], WindowOptions(max_length=128, stride=32))
    assert len(windows) > 3
    for window in range(len(windows) - 1):
        current = window_offsets(windows, window)
        following = window_offsets(windows, window + 1)
        current_context = current[current[:, 0] != OUTSIDE_CONTEXT]
        following_context = following[following[:, 0] != OUTSIDE_CONTEXT]
        overlap = np.intersect1d(current_context[:, 0], following_context[:, 0])
        assert len(overlap) == 32


def test_question_longer_than_the_window_is_capped_with_a_warning(qa_tokenizer, tokenizer, caplog):
    question = "why would anybody ask " * 200
    example = QAExample("huge", question, "The answer is here.", ("here",), (14,))
    with caplog.at_level(logging.WARNING, logger="spanqa.engine.core.windows"):
        windows = make_windows(qa_tokenizer, [example], WindowOptions(max_question_tokens=64), with_labels=True)
    assert "1 question(s) longer than 64 tokens" in caplog.text and "'huge'" in caplog.text
    assert len(windows) == 1
    offsets = window_offsets(windows, 0)
    assert (offsets[:, 0] != OUTSIDE_CONTEXT).sum() == len(tokenizer("The answer is here.", add_special_tokens=False)["input_ids"])
    span = offsets[windows.start_positions[0], 0], offsets[windows.end_positions[0], 1]
    assert example.context[span[0] : span[1]] == "here"


def test_options_that_leave_no_room_for_context_are_rejected(qa_tokenizer):
    with pytest.raises(ValueError, match="must exceed the stride"):
        make_windows(qa_tokenizer, [QAExample("a", "q", "c")], WindowOptions(max_length=100, stride=64, max_question_tokens=40))


@pytest.mark.parametrize("context", ["", "   \n\t  "])
def test_empty_and_whitespace_contexts(qa_tokenizer, context):
    windows = make_windows(qa_tokenizer, [QAExample("empty", "What?", context)], with_labels=True)
    assert len(windows) == 1
    assert (windows.offsets == OUTSIDE_CONTEXT).all()
    assert windows.start_positions[0] == windows.end_positions[0] == windows.cls_index[0] == 0


@pytest.mark.parametrize(
    "context, answer",
    [
        ("東京は日本の首都です。人口は多い。", "日本の首都"),
        ("We met at the café 😀 near the station 🚉 yesterday.", "😀"),
        ("The word cafe\u0301 uses a combining accent, as does nai\u0308ve.", "cafe\u0301"),
        ("Zoë and Ångström wrote ﬁne ligatures.", "Ångström"),
    ],
)
def test_cjk_emoji_and_combining_marks_map_back_to_the_exact_text(qa_tokenizer, context, answer):
    start = context.index(answer)
    example = QAExample("u", "What is it?", context, (answer,), (start,))
    windows = make_windows(qa_tokenizer, [example], with_labels=True)
    offsets = window_offsets(windows, 0)
    span = context[offsets[windows.start_positions[0], 0] : offsets[windows.end_positions[0], 1]]
    assert span == answer
    inside = offsets[offsets[:, 0] != OUTSIDE_CONTEXT]
    assert (np.diff(inside[:, 0]) > 0).all()  # every context token covers its own characters
    assert all(context[begin:end].strip() for begin, end in inside)


def test_padded_batches(qa_tokenizer, tokenizer):
    examples = [QAExample("a", "Short?", "One two three."), QAExample("b", "A longer question here?", "Four five six seven eight nine ten.")]
    windows = make_windows(qa_tokenizer, examples)
    batch = windows.padded([1, 0], pad_token_id=tokenizer.pad_token_id)
    width = int(windows.lengths.max())
    assert batch.input_ids.shape == (2, width) and batch.offsets.shape == (2, width, 2)
    assert batch.example_index.tolist() == [1, 0]
    assert batch.attention_mask.sum(axis=1).tolist() == [windows.lengths[1], windows.lengths[0]]
    short = batch.lengths[1]
    assert (batch.input_ids[1, short:] == tokenizer.pad_token_id).all()
    assert (batch.offsets[1, short:] == OUTSIDE_CONTEXT).all()
    assert batch.input_ids[0].tolist() == tokenizer(examples[1].question, examples[1].context)["input_ids"]
    assert batch.token_type_ids[0].tolist() == tokenizer(examples[1].question, examples[1].context)["token_type_ids"]
