"""Grouping into look-ahead groups and length-sorted packing under a token budget (engine/runtime/batching.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spanqa.engine.runtime.batching import bucket_widths, cut_batches, iter_groups, pack_batches
from spanqa.engine.core.data import QAExample
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, make_windows


def _as_example(record, index):
    if record == "bad":
        raise ValueError(f"record {index} is bad")
    return QAExample(id=str(index), question="q", context=record)


@given(
    lengths=st.lists(st.integers(1, 400), min_size=0, max_size=200),
    max_tokens=st.integers(1, 5000),
    max_windows=st.integers(1, 70),
)
@settings(max_examples=300, deadline=None)
def test_pack_batches_covers_every_window_once_within_the_budget(lengths, max_tokens, max_windows):
    lengths = np.asarray(lengths, dtype=np.int64)
    batches = pack_batches(lengths, max_tokens, max_windows)
    rows = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    # The concatenation is the stable length order: sorting happens once, before packing.
    assert rows.tolist() == np.argsort(lengths, kind="stable").tolist()
    for batch in batches:
        assert 1 <= len(batch) <= max_windows
        if len(batch) > 1:
            assert len(batch) * lengths[batch].max() <= max_tokens
    # Greedy: a batch closes only when the next window would break a limit.
    for batch, following in zip(batches, batches[1:]):
        grown = np.append(batch, following[0])
        assert len(grown) > max_windows or len(grown) * lengths[grown].max() > max_tokens


@given(
    lengths=st.lists(st.integers(1, 384), min_size=1, max_size=150),
    max_tokens=st.integers(1, 5000),
    max_windows=st.integers(1, 70),
    multiple=st.sampled_from([2, 8, 32, 100]),
)
@settings(max_examples=200, deadline=None)
def test_width_buckets_give_each_window_a_width_of_its_own(lengths, max_tokens, max_windows, multiple):
    """Rule: with width_multiple m, every batch holds one bucket, padded to it, within the budget; so a window's
    padded width is a function of its own length, whoever its batch mates are."""
    lengths = np.asarray(lengths, dtype=np.int64)
    batches = pack_batches(lengths, max_tokens, max_windows, multiple, max_width=384)
    own = bucket_widths(lengths, multiple, 384)
    assert np.all(own >= lengths) and np.all(own <= np.maximum(384, lengths))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for batch in batches:
        assert len(set(own[batch].tolist())) == 1 and 1 <= len(batch) <= max_windows
        if len(batch) > 1:
            assert len(batch) * own[batch][0] <= max_tokens


def test_cut_batches_pads_to_the_bucket_and_counts_that_padding(tokenizer):
    examples = [QAExample(str(i), "who?", "word " * (5 + 13 * i)) for i in range(6)]
    windows = make_windows(
        QATokenizer.from_transformers(tokenizer), examples, WindowOptions(max_length=64, stride=16, max_question_tokens=8)
    )
    batches = cut_batches(windows, tokenizer.pad_token_id, max_tokens=4096, max_windows=64, width_multiple=16,
                          max_width=64)  # fmt: skip
    for rows, batch in batches:
        width = batch.input_ids.shape[1]
        assert width % 16 == 0 or width == 64
        assert np.all(bucket_widths(windows.lengths[rows], 16, 64) == width)
        np.testing.assert_array_equal(batch.attention_mask.sum(axis=1), windows.lengths[rows])
    assert batches.padded_tokens == sum(batch.input_ids.size for _, batch in batches)


def test_pack_batches_gives_an_oversized_window_a_batch_of_its_own():
    batches = pack_batches(np.array([10, 500, 20]), max_tokens=100, max_windows=8)
    assert [batch.tolist() for batch in batches] == [[0, 2], [1]]


def test_pack_batches_rejects_empty_limits():
    with pytest.raises(ValueError, match="max_tokens"):
        pack_batches(np.array([3]), 0, 4)


def test_cut_batches_pads_each_batch_as_the_windows_pad_it(tokenizer):
    examples = [QAExample(str(i), "who?", "word " * (5 + 40 * i)) for i in range(5)]
    windows = make_windows(
        QATokenizer.from_transformers(tokenizer), examples, WindowOptions(max_length=64, stride=16, max_question_tokens=8)
    )
    batches = cut_batches(windows, tokenizer.pad_token_id, max_tokens=128, max_windows=3)
    assert batches.padded_tokens == sum(batch.input_ids.size for _, batch in batches)
    assert sorted(np.concatenate([rows for rows, _ in batches]).tolist()) == list(range(len(windows)))
    for rows, batch in batches:
        reference = windows.padded(rows, tokenizer.pad_token_id)
        for name in ("input_ids", "attention_mask", "token_type_ids", "offsets", "lengths", "cls_index", "example_index"):
            np.testing.assert_array_equal(getattr(batch, name), getattr(reference, name), err_msg=name)


def test_iter_groups_cuts_consecutive_groups_and_counts_from_the_first_record():
    groups = list(iter_groups(["a", "b", "c", "d", "e"], 2, _as_example))
    assert [[example.context for example in group] for group in groups] == [["a", "b"], ["c", "d"], ["e"]]
    assert [example.id for group in groups for example in group] == ["0", "1", "2", "3", "4"]


def test_iter_groups_reads_lazily():
    consumed = []

    def source():
        for index in itertools.count():
            consumed.append(index)
            yield "x"

    groups = iter_groups(source(), 3, _as_example)
    next(groups)
    assert len(consumed) == 3


def test_iter_groups_yields_the_records_before_a_bad_one_then_raises():
    groups = iter_groups(["a", "b", "c", "bad", "e"], 2, _as_example)
    assert [e.context for e in next(groups)] == ["a", "b"]
    assert [e.context for e in next(groups)] == ["c"]
    with pytest.raises(ValueError, match="record 3 is bad"):
        next(groups)
