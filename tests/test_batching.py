"""Grouping, length-sorted packing under a token budget, and the background prefetch thread."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spanqa.engine.runtime.batching import cut_batches, iter_groups, pack_batches
from spanqa.engine.core.data import QAExample
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, make_windows
from spanqa.engine.runtime.prefetch import Prefetcher


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


def test_pack_batches_gives_an_oversized_window_a_batch_of_its_own():
    batches = pack_batches(np.array([10, 500, 20]), max_tokens=100, max_windows=8)
    assert [batch.tolist() for batch in batches] == [[0, 2], [1]]


def test_pack_batches_rejects_empty_limits():
    with pytest.raises(ValueError, match="max_tokens"):
        pack_batches(np.array([3]), 0, 4)


def test_cut_batches_slices_the_group_padding(tokenizer):
    examples = [QAExample(str(i), "who?", "word " * (5 + 40 * i)) for i in range(5)]
    windows = make_windows(
        QATokenizer.from_transformers(tokenizer), examples, WindowOptions(max_length=64, stride=16, max_question_tokens=8)
    )
    everything, batches = cut_batches(windows, tokenizer.pad_token_id, max_tokens=128, max_windows=3)
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


def _prefetch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "spanqa-prefetch" and thread.is_alive()]


def test_prefetcher_keeps_order_and_ends():
    with Prefetcher(lambda item: item * 2, range(100), depth=3) as results:
        assert list(results) == [item * 2 for item in range(100)]
    assert not _prefetch_threads()


def test_prefetcher_reads_items_in_the_callers_thread_and_computes_in_its_own():
    read_in, computed_in = set(), set()

    def items():
        for item in range(20):
            read_in.add(threading.get_ident())
            yield item

    def compute(item):
        computed_in.add(threading.current_thread().name)
        return item

    with Prefetcher(compute, items(), depth=2) as results:
        assert list(results) == list(range(20))
    assert read_in == {threading.get_ident()}
    assert computed_in == {"spanqa-prefetch"}


def test_prefetcher_reraises_errors_after_the_results_before_them():
    def source():
        yield 1
        yield 2
        raise KeyError("broken source")

    received = []
    with pytest.raises(KeyError, match="broken source"), Prefetcher(lambda item: item, source(), depth=2) as results:
        for item in results:
            received.append(item)
    assert received == [1, 2]

    def fails_on_three(item):
        if item == 3:
            raise ValueError("three")
        return item

    received = []
    with pytest.raises(ValueError, match="three"), Prefetcher(fails_on_three, range(10), depth=2) as results:
        for item in results:
            received.append(item)
    assert received == [0, 1, 2]


def test_prefetcher_reads_a_bounded_distance_ahead_and_stops_on_close():
    produced = []
    finalized = threading.Event()

    def endless():
        try:
            for index in itertools.count():
                produced.append(index)
                yield index
        finally:
            finalized.set()

    results = Prefetcher(lambda item: item, endless(), depth=2)
    assert next(results) == 0
    time.sleep(0.3)  # give the worker every chance to run ahead
    assert len(produced) == 3  # the one consumed and the two computed meanwhile: the worker never reads
    assert next(results) == 1 and len(produced) == 4
    results.close()
    assert not results.alive
    assert finalized.is_set(), "the source generator was not closed by close()"
    assert not _prefetch_threads()


def test_prefetcher_close_skips_the_queued_items_and_waits_only_for_the_one_in_hand():
    computed = []

    def slow(item):
        computed.append(item)
        time.sleep(0.2)
        return item

    results = Prefetcher(slow, itertools.count(), depth=5)
    assert next(results) == 0
    started = time.perf_counter()
    results.close()
    assert not results.alive
    assert time.perf_counter() - started < 2
    assert len(computed) < 6  # the worker stopped with items still queued
