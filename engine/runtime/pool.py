"""Run batches on several model sessions at once, in worker threads, and hand the results back in order.

The engine's workers (`EngineOptions.workers`) are threads, each running one batch at a time on a backend of its own
(or all on one shared session). Threads are enough: onnxruntime releases the GIL inside `run`, so N threads keep N
sessions busy while the caller's thread reads records and decodes, and the prefetch thread tokenizes.

Ordering rule: results come back in the order the batches were given, whichever worker finished first, so that the
decoder sees the same batches in the same order as with one worker, and the answers are the same.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

Worker = TypeVar("Worker")
Batch = TypeVar("Batch")
Result = TypeVar("Result")
Group = TypeVar("Group")

_GROUP_START, _BATCH, _GROUP_END = "start", "batch", "end"


class BatchPool(Generic[Worker, Batch, Result]):
    """`function(worker, batch)` for batches, run by one thread per worker object.

    - `run_groups` and `run` take their input lazily, in the caller's thread, and keep at most `depth` batches
      (default twice the workers) submitted and not yet handed back: enough that a worker that finishes finds the
      next batch waiting, while memory stays a few batches.
    - A batch's failure is raised by the iterator at that batch's turn, after the results before it; a failure in
      reading the input is raised after the results of every batch read before it.
    - close() (also on leaving the `with` block, or on Ctrl-C in the caller) drops the batches not yet started and
      waits for the running ones: each ends when its `run` returns.
    """

    def __init__(
        self,
        workers: Sequence[Worker],
        function: Callable[[Worker, Batch], Result],
        depth: int | None = None,
        name: str = "spanqa-worker",
    ):
        if not workers:
            raise ValueError("a pool needs at least one worker")
        self._function = function
        self._depth = depth if depth is not None else 2 * len(workers)
        if self._depth < 1:
            raise ValueError(f"depth must be >= 1, got {self._depth}")
        # As many threads as workers, and a worker is taken per batch and given back after it, so a thread always
        # finds one idle: each worker object runs one batch at a time (the same object may be listed several times).
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        for worker in workers:
            self._idle.put(worker)
        self._executor = ThreadPoolExecutor(max_workers=len(workers), thread_name_prefix=name)
        self.size = len(workers)

    def run(self, batches: Iterable[Batch]) -> Iterator[Result]:
        """The result of each batch, in input order."""
        for _, (_, _, result) in self._ordered((_BATCH, (None, batch)) for batch in batches):
            yield result

    def run_groups(
        self, groups: Iterable[Group], batches_of: Callable[[Group], Iterable[tuple[Any, Batch]]]
    ) -> Iterator[tuple[Group, Iterator[tuple[Any, Batch, Result]]]]:
        """Each group with an iterator over `(key, batch, function(worker, batch))` for the `(key, batch)` pairs of
        `batches_of(group)`, in order.

        Consume a group's iterator before taking the next group (what is left of it is skipped then). The next
        group is read once every batch of the one before is submitted, so the workers stay busy across groups;
        at most one group beyond the one being consumed is held.
        """
        events = self._ordered(self._flatten(groups, batches_of))
        for kind, group in events:
            assert kind == _GROUP_START, kind
            results = _until_group_end(events)
            yield group, results
            for _ in results:  # a consumer that stopped early
                pass

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchPool[Worker, Batch, Result]:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, batch: Batch) -> Result:
        worker = self._idle.get()
        try:
            return self._function(worker, batch)
        finally:
            self._idle.put(worker)

    def _flatten(
        self, groups: Iterable[Group], batches_of: Callable[[Group], Iterable[tuple[Any, Batch]]]
    ) -> Iterator[tuple[str, Any]]:
        for group in groups:
            yield _GROUP_START, group
            for item in batches_of(group):
                yield _BATCH, item
            yield _GROUP_END, None

    def _ordered(self, events: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
        """Events in input order, a batch's `(key, batch)` coming back as `(key, batch, result)`; batches run
        ahead of the consumer."""
        events = iter(events)
        pending: deque[tuple[str, Any, Future | None]] = deque()
        submitted = ended = 0  # batches, and ends of groups, in `pending`
        read_error: Exception | None = None
        exhausted = False
        while True:
            # Two group ends pending: the group being consumed and the next one are read whole. Reading on would
            # start a third group, holding more of the input than keeping the workers busy needs.
            while not exhausted and submitted < self._depth and ended < 2:
                try:
                    kind, item = next(events)
                except StopIteration:
                    exhausted = True
                    break
                except Exception as error:  # noqa: BLE001 - raised after the results of the batches read before it
                    exhausted, read_error = True, error
                    break
                future = None
                if kind == _BATCH:
                    future = self._executor.submit(self._call, item[1])
                    submitted += 1
                ended += kind == _GROUP_END
                pending.append((kind, item, future))
            if not pending:
                break
            kind, item, future = pending.popleft()
            if future is not None:
                submitted -= 1
                item = (*item, future.result())
            ended -= kind == _GROUP_END
            yield kind, item
        if read_error is not None:
            raise read_error


def _until_group_end(events: Iterator[tuple[str, Any]]) -> Iterator[tuple[Any, Any, Any]]:
    for kind, value in events:
        if kind == _GROUP_END:
            return
        yield value
