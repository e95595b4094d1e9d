"""Dynamic batching: records from many requests wait in one queue and go to the model together.

Threads, not the event loop: each of the engine's workers (`QAEngine.worker_backends`) has a thread of its own that
takes a batch from the queue, runs it, decodes it and comes back for the next, so the model runs one batch at a
time per worker; decoding (`QAEngine.finish`) is serialised by a lock, since it updates the engine's stats.
onnxruntime releases the GIL while it runs, so the event loop stays free.

Flush rule: a batch is formed (by `packing.choose_batch`) only when a worker is free, so that under load the queue
fills while the workers run and the batch taken is as full as the budget allows. That worker takes it at once if
1. a queued record was left out for want of room (the batch is full), or the oldest record runs alone (packing
   rule 4),
2. no admitted request is still being read and tokenized (`expect`/`submit`): nothing more is coming to wait for,
3. or the oldest record has waited `max_queue_delay` since it was queued;
otherwise the former waits for the next record, up to that deadline. A record whose request gave up (`cancel`,
timeout) before its batch formed leaves the queue and costs no model time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from spanqa.engine.runtime.backends.loading import pad_token_id
from spanqa.engine.runtime.engine import QAEngine, run_batch
from spanqa.engine.serve.packing import Shape, choose_batch, fits, split, stack


class ShuttingDown(RuntimeError):
    """Records submitted after `close`: their futures fail with this (the service answers 503)."""


@dataclass
class Unit:
    """One record waiting for its answer: its preparation by the engine, and the future its request awaits."""

    prepared: Any  # QAEngine.prepare([example])
    top_k: int | None
    shape: Shape
    # Its one batch (rows, padded), or None when its own preparation cut it into several (packing rule 4).
    batch: tuple[Any, Any] | None
    queued: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)


@dataclass(frozen=True)
class BatchReport:
    """What one model batch held, for the metrics."""

    records: int
    rows: int
    tokens: int
    padded_tokens: int
    waited: list[float]  # each record's seconds in the queue
    model_seconds: float


def make_unit(engine: QAEngine, example: Any, top_k: int | None) -> Unit:
    """A record prepared for the queue: tokenized, and its batch padded when it has one (call it off the event loop).
    Its width is that batch's padded width, which is its longest window unless the engine pads to width buckets."""
    prepared = engine.prepare([example])
    group = prepared.group
    if len(group.batches) != 1:
        lengths = group.windows.lengths
        return Unit(prepared, top_k, Shape(len(lengths), int(lengths.max(initial=0)), group.tokens), None)
    rows, padded = group.batches[0]
    return Unit(prepared, top_k, Shape(len(rows), padded.input_ids.shape[1], group.tokens), (rows, padded))


class DynamicBatcher:
    def __init__(
        self, engine: QAEngine, max_queue_delay_s: float, on_batch: Callable[[BatchReport], None] | None = None,
        packing_window: int = 16,
    ) -> None:  # fmt: skip
        self._engine = engine
        self._delay = max_queue_delay_s
        self._window = packing_window
        self._on_batch = on_batch or (lambda report: None)
        self._max_tokens = engine.options.max_batch_tokens
        self._max_windows = engine.options.max_batch_windows
        self._same_width = engine.backend.width_multiple > 1  # packing rule 3
        self._pad_token_id = pad_token_id(engine.tokenizer)
        self._queue: list[Unit] = []  # oldest first
        self._expected = 0  # requests admitted and not yet submitted (being read and tokenized)
        self._closing = False
        self._condition = threading.Condition()
        self._finish_lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._work, args=(backend,), name=f"spanqa-serve-worker-{number}", daemon=True)
            for number, backend in enumerate(engine.worker_backends)
        ]
        for worker in self._workers:
            worker.start()

    @property
    def alive(self) -> bool:
        return all(worker.is_alive() for worker in self._workers)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def expect(self, count: int = 1) -> None:
        """A request was admitted: its records are on their way (flush rule 2 waits for them, up to the delay)."""
        with self._condition:
            self._expected += count

    def submit(self, units: list[Unit], expected: bool = True) -> None:
        """Queue a request's records (and count off the `expect` made for it)."""
        with self._condition:
            if self._closing:
                error = ShuttingDown("the service is shutting down")
                for unit in units:
                    unit.future.set_exception(error)
            else:
                self._queue.extend(units)
            if expected:
                self._expected -= 1
            self._condition.notify_all()

    def withdraw(self) -> None:
        """An admitted request will submit nothing (it was refused while being read)."""
        with self._condition:
            self._expected -= 1
            self._condition.notify_all()

    def cancel(self, units: list[Unit]) -> None:
        """Drop the request's records still queued (a timed-out request); those in the model finish unseen."""
        with self._condition:
            gone = {id(unit) for unit in units}
            self._queue = [unit for unit in self._queue if id(unit) not in gone]
        for unit in units:
            unit.future.cancel()

    def close(self) -> None:
        """Answer everything queued, then stop (the drain on shutdown)."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        for worker in self._workers:
            worker.join()

    # --- a worker's thread ------------------------------------------------------------------------------------

    def _work(self, backend: Any) -> None:
        while True:
            batch = self._next_batch()  # only a free worker asks: flush rule
            if batch is None:
                return
            self._run(backend, batch)

    def _next_batch(self) -> list[Unit] | None:
        with self._condition:
            while True:
                if not self._queue:
                    if self._closing:
                        return None
                    self._condition.wait()
                    continue
                shapes = [unit.shape for unit in self._queue[: self._window]]
                oldest = self._queue[0]
                alone = oldest.batch is None or not fits(oldest.shape.rows, oldest.shape.width, self._max_tokens,
                                                         self._max_windows)  # fmt: skip
                chosen = [0] if alone else choose_batch(shapes, self._max_tokens, self._max_windows, self._same_width)
                wait = self._queue[0].queued + self._delay - time.monotonic()
                full = len(chosen) < len(self._queue) or alone  # waiting would not add to this batch
                if full or self._expected <= 0 or wait <= 0 or self._closing:
                    taken = set(chosen)
                    batch = [self._queue[position] for position in chosen]
                    self._queue = [unit for position, unit in enumerate(self._queue) if position not in taken]
                    return batch
                self._condition.wait(wait)

    def _run(self, backend: Any, units: list[Unit]) -> None:
        try:
            started = time.monotonic()
            waited = [started - unit.queued for unit in units]
            if units[0].batch is None:
                computed = [[(*item, run_batch(backend, item[1])) for item in units[0].prepared.group.batches]]
            elif len(units) == 1:
                computed = [[(*units[0].batch, run_batch(backend, units[0].batch[1]))]]
            else:
                computed = self._run_stacked(backend, units)
            model_seconds = time.monotonic() - started
        except Exception as error:  # noqa: BLE001 - the model failed: every request of the batch is told
            for unit in units:
                _settle(unit.future, error=error)
            return
        groups = [unit.prepared.group for unit in units]
        self._on_batch(BatchReport(
            len(units), sum(unit.shape.rows for unit in units), sum(group.tokens for group in groups),
            sum(group.padded_tokens for group in groups) if len(units) == 1 else _stacked_padded(units),
            waited, model_seconds,
        ))  # fmt: skip
        for unit, items in zip(units, computed):
            if unit.future.cancelled():
                continue
            try:
                with self._finish_lock:
                    answer = self._engine.finish(unit.prepared, items, unit.top_k)[0]
            except Exception as error:  # noqa: BLE001 - one record's decoding failed: its request is told
                _settle(unit.future, error=error)
                continue
            _settle(unit.future, result=answer)

    def _run_stacked(self, backend: Any, units: list[Unit]) -> list[list[tuple]]:
        """Several records' single batches run as one; each record gets its rows of the logits back."""
        own = [unit.batch for unit in units]
        parts = [batch for _, batch in own]
        start_logits, end_logits, seconds = run_batch(backend, stack(parts, self._pad_token_id))
        rows = sum(len(part.lengths) for part in parts)
        return [
            [(unit_rows, part, (start, end, seconds * len(part.lengths) / rows))]
            for (unit_rows, part), (start, end) in zip(own, split(parts, start_logits, end_logits))
        ]


def _stacked_padded(units: list[Unit]) -> int:
    rows = sum(unit.shape.rows for unit in units)
    return rows * max(unit.shape.width for unit in units)


def _settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    # A request that timed out cancelled its future; setting it then would raise InvalidStateError.
    if future.cancelled():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except Exception:  # noqa: BLE001 - cancelled in between
        pass
