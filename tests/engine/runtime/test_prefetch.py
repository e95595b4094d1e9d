"""The tokenize-ahead thread (engine/runtime/prefetch.py): order, errors, bounded read-ahead, and which thread
reads the input (the caller's) and which computes (its own)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from spanqa.engine.runtime.prefetch import Prefetcher


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
