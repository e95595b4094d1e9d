"""The packing rule (which queued records share a batch) and the stacking of their batches, without a server."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spanqa.engine.core.windows import Windows
from spanqa.engine.serve.packing import Shape, choose_batch, fits, split, stack

def shape(width: int, rows: int = 1) -> Shape:
    return Shape(rows, width, rows * width - 1)


def test_the_oldest_comes_first_with_its_nearest_lengths_under_the_budget():
    shapes = [shape(100), shape(300), shape(90), shape(110), shape(20), shape(105)]
    chosen = choose_batch(shapes, max_tokens=440, max_windows=64)
    assert chosen[0] == 0
    assert sorted(chosen) == [0, 2, 3, 5]  # 90, 100, 105, 110: 4 x 110 = 440; 20 and 300 are too far
    # Each step takes the cheaper neighbour in padding added: 105 (+6) before 90 (+11), then 110 (+11) before 90 (+16).
    assert choose_batch(shapes, max_tokens=10_000, max_windows=3) == [0, 5, 3]


def test_a_record_that_alone_passes_the_budget_runs_alone_and_is_nobodys_mate():
    assert choose_batch([shape(384, rows=4), shape(50)], max_tokens=1024, max_windows=64) == [0]
    assert choose_batch([shape(50), shape(384, rows=4), shape(60)], max_tokens=1024, max_windows=64) == [0, 2]
    assert choose_batch([], 1024, 64) == []


def test_mates_step_over_a_record_of_several_windows_that_does_not_fit_and_keep_to_one_width_bucket():
    shapes = [shape(100), shape(100, rows=3), shape(100)]
    assert choose_batch(shapes, max_tokens=10_000, max_windows=2) == [0, 2]
    buckets = [Shape(1, 128, 100), Shape(1, 96, 90), Shape(1, 128, 120), Shape(1, 160, 150)]
    assert choose_batch(buckets, max_tokens=10_000, max_windows=64, same_width=True) == [0, 2]
    assert sorted(choose_batch(buckets, max_tokens=10_000, max_windows=64)) == [0, 1, 2, 3]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 400), st.integers(1, 5)), min_size=1, max_size=40),
    st.integers(64, 4096),
    st.integers(1, 64),
)
def test_a_chosen_batch_always_fits_and_holds_the_oldest_once(items, max_tokens, max_windows):
    shapes = [Shape(rows, width, rows * width) for width, rows in items]
    chosen = choose_batch(shapes, max_tokens, max_windows)
    assert chosen[0] == 0 and len(set(chosen)) == len(chosen)
    if len(chosen) > 1 or fits(shapes[0].rows, shapes[0].width, max_tokens, max_windows):
        rows = sum(shapes[i].rows for i in chosen)
        assert fits(rows, max(shapes[i].width for i in chosen), max_tokens, max_windows)
    # No single-window record left out, as narrow as the batch, would still have fitted beside it.
    width = max(shapes[i].width for i in chosen)
    rows = sum(shapes[i].rows for i in chosen)
    if fits(rows, width, max_tokens, max_windows):
        for position, other in enumerate(shapes):
            if position not in chosen and other.rows == 1 and other.width <= width:
                assert not fits(rows + 1, width, max_tokens, max_windows)


def windows_of(lengths: list[int], first_token: int) -> Windows:
    splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = np.arange(first_token, first_token + splits[-1], dtype=np.int32)
    offsets = np.stack([tokens, tokens + 1], axis=1).astype(np.int32)
    zeros = np.zeros(len(lengths), np.int64)
    return Windows(tokens, tokens % 2, offsets, splits, zeros, zeros)


def test_stacked_batches_pad_as_one_batch_and_split_back_to_each_own_batch():
    parts = [windows_of([5, 3], 100).padded([0, 1], 0), windows_of([7], 200).padded([0], 0)]
    stacked = stack(parts, pad_token_id=0)
    whole = windows_of([5, 3, 7], 100)
    assert stacked.input_ids.shape == (3, 7)
    assert np.array_equal(stacked.attention_mask, whole.padded([0, 1, 2], 0).attention_mask)
    assert np.array_equal(stacked.input_ids[2], parts[1].input_ids[0])
    assert np.array_equal(stacked.input_ids[0, :5], parts[0].input_ids[0]) and not stacked.input_ids[0, 5:].any()
    assert (stacked.offsets[1, 3:] == -1).all()
    logits = np.arange(21, dtype=np.float32).reshape(3, 7)
    pieces = split(parts, logits, -logits)
    assert [piece[0].shape for piece in pieces] == [(2, 5), (1, 7)]
    assert np.array_equal(pieces[1][1], -logits[2:])
    assert stack(parts[:1], 0) is parts[0]
