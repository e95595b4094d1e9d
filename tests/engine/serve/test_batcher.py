"""The dynamic batcher's flush rule on the tiny model, without HTTP: it waits for a request on its way (up to the
delay), not for one that is not coming; a cancelled record costs no model time; closing answers what is queued."""

from __future__ import annotations

import time

import pytest

from spanqa.engine import EngineOptions, QAEngine
from spanqa.engine.core.data import QAExample
from spanqa.engine.serve.batcher import DynamicBatcher, ShuttingDown, make_unit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine(tiny_onnx):
    return QAEngine(tiny_onnx, options=EngineOptions(workers=1))


def unit(engine, number: int):
    return make_unit(engine, QAExample(f"b{number}", "which tower?", f"the tower number {number} by the river"), None)


def test_a_batch_waits_for_a_request_on_its_way_but_not_past_the_delay(engine):
    batches = []
    batcher = DynamicBatcher(engine, max_queue_delay_s=0.4, on_batch=batches.append)
    try:
        batcher.expect()
        batcher.expect()  # two requests admitted, one of them submits
        started = time.monotonic()
        first = unit(engine, 1)
        batcher.submit([first])
        answer = first.future.result(timeout=30)
        waited = time.monotonic() - started
        assert 0.35 <= waited < 5, waited  # it waited for the other, up to the delay
        assert answer.id == "b1"
        batcher.withdraw()  # the other one will not come
        started = time.monotonic()
        batcher.expect()
        second = unit(engine, 2)
        batcher.submit([second])
        second.future.result(timeout=30)
        assert time.monotonic() - started < 0.3  # nothing else on its way: no wait
        assert [report.records for report in batches] == [1, 1]
    finally:
        batcher.close()


def test_records_queued_together_share_a_batch_and_each_gets_its_own_answer(engine):
    batches = []
    batcher = DynamicBatcher(engine, max_queue_delay_s=0.2, on_batch=batches.append)
    try:
        batcher.expect()
        units = [unit(engine, number) for number in range(5)]
        batcher.submit(units)
        answers = [queued.future.result(timeout=30) for queued in units]
    finally:
        batcher.close()
    assert [report.records for report in batches] == [5]
    alone = [engine.answer(queued.prepared.group.examples[0].question, queued.prepared.group.examples[0].context,
                           id=f"b{number}") for number, queued in enumerate(units)]  # fmt: skip
    assert [answer.to_dict() for answer in answers] == [answer.to_dict() for answer in alone]


def test_a_cancelled_record_leaves_the_queue_and_closing_answers_the_rest(engine):
    batches = []
    batcher = DynamicBatcher(engine, max_queue_delay_s=30, on_batch=batches.append)
    batcher.expect()
    batcher.expect()  # one stays expected: the batch would wait the 30 s
    units = [unit(engine, number) for number in range(3)]
    batcher.submit(units)
    batcher.cancel(units[:1])
    assert batcher.queued == 2 and units[0].future.cancelled()
    started = time.monotonic()
    batcher.close()  # flushes at once, without waiting for the expected request
    assert time.monotonic() - started < 10
    assert [queued.future.result(timeout=0).id for queued in units[1:]] == ["b1", "b2"]
    assert [report.records for report in batches] == [2]
    late = unit(engine, 9)
    batcher.submit([late], expected=False)
    with pytest.raises(ShuttingDown):
        late.future.result(timeout=0)
