"""Compute the next items in a background thread while the consumer works on the current one.

The engine tokenizes the next groups here while the current one is in the model. The items themselves are read in
the consumer's thread: whatever reading them involves (parsing and validating input lines, writing the errors file)
happens where the caller can see it, and the worker only runs the function. The overlap is real parallelism only
because the heavy parts release the GIL: the Rust tokenizer's batch encoding, onnxruntime's `run`, torch kernels and
the Numba decoder (`nogil=True`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

_RESULT, _ERROR = "result", "error"
_STOP = object()  # tells the worker to return


class Prefetcher(Generic[Item, Result]):
    """`function(item)` for each item of `items`, in order, computed in a daemon thread `depth` items ahead.

    Use as a context manager or call close().
    - `items` is read in the consumer's thread, inside `next()`: before waiting for an item's result, the consumer
      hands over items until `depth + 1` are in the worker's hands, so `depth` results are being computed while
      the consumer works on the one it got. Memory is bounded by those `depth + 1` items and their results.
    - An exception raised by `function` is re-raised by `next()` for that item, after the results before it; one
      raised while reading `items` is re-raised after the results of every item read before it.
    - close() (also on leaving the `with` block, e.g. when the consumer breaks out of its loop) closes `items` (a
      generator's cleanup runs then, in this thread), tells the worker to stop after the item it is computing, and
      waits up to `join_seconds` for it.
    """

    def __init__(
        self,
        function: Callable[[Item], Result],
        items: Iterable[Item],
        depth: int,
        name: str = "spanqa-prefetch",
        join_seconds: float = 30.0,
    ):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._items = iter(items)
        self._depth = depth
        self._join_seconds = join_seconds
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._in_flight = 0  # items handed to the worker whose results the consumer has not taken yet
        self._read_all = False
        self._read_error: Exception | None = None
        self._closed = False
        self._stop = threading.Event()  # set by close(): the worker skips the items still queued
        self._thread = threading.Thread(target=self._work, args=(function,), name=name, daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[Result]:
        return self

    def __next__(self) -> Result:
        if self._closed:
            raise StopIteration
        self._hand_over()
        if not self._in_flight:
            error, self._read_error = self._read_error, None
            self.close()
            if error is not None:
                raise error
            raise StopIteration
        kind, value = self._results.get()
        self._in_flight -= 1
        if kind == _ERROR:
            self.close()
            raise value
        return value

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close_items = getattr(self._items, "close", None)
        if close_items is not None:
            close_items()
        self._stop.set()
        self._tasks.put(_STOP)
        self._thread.join(self._join_seconds)
        if self._thread.is_alive():
            logger.warning("the prefetch worker is still computing after %.0f s; it stops when that returns",
                           self._join_seconds)  # fmt: skip

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Prefetcher[Item, Result]:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _hand_over(self) -> None:
        while not self._read_all and self._in_flight <= self._depth:
            try:
                item = next(self._items)
            except StopIteration:
                self._read_all = True
            except Exception as error:  # noqa: BLE001 - raised to the consumer after the results before it
                self._read_all = True
                self._read_error = error
            else:
                self._tasks.put(item)
                self._in_flight += 1

    def _work(self, function: Callable[[Item], Result]) -> None:
        while (item := self._tasks.get()) is not _STOP and not self._stop.is_set():
            try:
                message = (_RESULT, function(item))
            except BaseException as error:  # noqa: BLE001 - every failure must reach the consumer, not die here
                message = (_ERROR, error)
            self._results.put(message)
