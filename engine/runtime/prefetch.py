"""Run an iterator in a background thread a bounded number of items ahead of its consumer.

The engine tokenizes the next groups here while the current one is in the model. That overlap is real parallelism
only because the heavy parts release the GIL: the Rust tokenizer's batch encoding, onnxruntime's `run`, torch
kernels and the Numba decoder (`nogil=True`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")

_ITEM, _END, _ERROR = "item", "end", "error"
# A worker waiting to hand over an item re-checks the stop flag this often; only a full queue waits at all.
_STOP_POLL_SECONDS = 0.05


class Prefetcher(Generic[Item]):
    """Iterate `source` in a daemon thread, at most `depth` items ahead; use as a context manager or call close().

    - An exception raised by `source` is re-raised in the consumer, after the items produced before it.
    - close() (also on leaving the `with` block, e.g. when the consumer breaks out of its loop) tells the worker to
      stop, which it does at its next item, and waits up to `join_seconds` for it. Only a source that blocks
      longer than that inside one `next()` call (a pipe with no writer, say) outlives close(); the thread is a
      daemon, so it still cannot keep the process alive, and it stops as soon as that read returns.
    - Memory is bounded: at most `depth` items wait in the queue, plus the one the worker is building.
    """

    def __init__(self, source: Iterable[Item], depth: int, name: str = "spanqa-prefetch", join_seconds: float = 30.0):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._join_seconds = join_seconds
        self._thread = threading.Thread(target=self._work, args=(iter(source),), name=name, daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == _ITEM:
            return value
        self._finished = True
        self._thread.join()
        if kind == _ERROR:
            raise value
        raise StopIteration

    def close(self) -> None:
        self._finished = True
        self._stop.set()
        self._thread.join(self._join_seconds)
        if self._thread.is_alive():
            logger.warning(
                "the input iterator has been blocked for over %.0f s; its reader thread will stop when it returns",
                self._join_seconds,
            )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Prefetcher[Item]:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _work(self, iterator: Iterator[Item]) -> None:
        try:
            for item in iterator:
                if not self._hand_over((_ITEM, item)):
                    return
            self._hand_over((_END, None))
        except BaseException as error:  # noqa: BLE001 - every failure must reach the consumer, not die with the thread
            self._hand_over((_ERROR, error))
        finally:
            # Run the source's own cleanup (a generator's finally blocks) here, in the thread that iterated it.
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _hand_over(self, message: tuple[str, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=_STOP_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False
