"""Decode a group's windows batch by batch, as their logits come back, with the answers of one decode over them all.

The engine runs a group's windows in length-sorted batches, so an example's last (shorter) window usually comes
back before its other windows. The decoder's tie rule visits an example's windows in window order (see
`spanqa.engine.core.decoder`), so a window that comes back early waits, as one row of logits, until the windows before
it of its example have been decoded. Memory is then the n-best tables and those few waiting rows, never a logits
array for every window of the group: what bounds the engine's memory on a context of millions of tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spanqa.engine.core.answers import Answer
from spanqa.engine.core.decoder import DecodeOptions, SpanArrays, SpanCollector, spans_to_answers
from spanqa.engine.core.ranking import candidates_kept
from spanqa.engine.core.windows import PaddedWindows

__all__ = ["OrderedDecoder"]


class OrderedDecoder:
    """Running n-best spans of each example of a group whose windows are numbered 0..W-1 in window order
    (`example_index[w]` is window w's example; an example's windows are consecutive)."""

    def __init__(self, example_index: np.ndarray, num_examples: int, options: DecodeOptions) -> None:
        self.options = options
        self._example_index = np.asarray(example_index, dtype=np.int64)
        self._collector = SpanCollector(
            num_examples, n_best=options.n_best, max_answer_length=options.max_answer_length,
            keep=candidates_kept(options),
        )  # fmt: skip
        # The next window to decode of each example: its first window until that one is decoded, and so on.
        self._next = np.full(num_examples, -1, dtype=np.int64)
        windows = np.arange(len(self._example_index))
        self._next[self._example_index[::-1]] = windows[::-1]
        self._waiting: dict[int, tuple[np.ndarray, ...]] = {}  # window -> its arguments to SpanCollector.add
        self._decoded = 0

    def add(self, rows: np.ndarray, start_logits: np.ndarray, end_logits: np.ndarray, batch: PaddedWindows) -> None:
        """The logits of `batch`, the group's windows `rows` (in the batch's order)."""
        ready: list[int] = []  # batch positions to decode now, in batch order

        def decode_ready() -> None:
            if ready:
                self._collector.add(
                    start_logits[ready], end_logits[ready], batch.offsets[ready], batch.lengths[ready],
                    batch.cls_index[ready], batch.example_index[ready],
                )  # fmt: skip
                self._decoded += len(ready)
                ready.clear()

        for position, window in enumerate(np.asarray(rows).tolist()):
            example = self._example_index[window]
            if window != self._next[example]:
                length = batch.lengths[position]
                self._waiting[window] = (
                    start_logits[position : position + 1, :length].copy(),
                    end_logits[position : position + 1, :length].copy(),
                    batch.offsets[position : position + 1, :length].copy(),
                    batch.lengths[position : position + 1].copy(),
                    batch.cls_index[position : position + 1].copy(),
                    batch.example_index[position : position + 1].copy(),
                )  # fmt: skip
                continue
            ready.append(position)
            self._next[example] += 1
            if self._next[example] in self._waiting:
                decode_ready()  # the windows before the waiting ones go first
                while self._next[example] in self._waiting:
                    self._collector.add(*self._waiting.pop(int(self._next[example])))
                    self._decoded += 1
                    self._next[example] += 1
        decode_ready()

    def spans(self) -> SpanArrays:
        """Every example's kept spans, once every window has been added (`ranking.rank_answers` ranks them)."""
        if self._decoded != len(self._example_index):
            raise RuntimeError(
                f"{len(self._example_index) - self._decoded} of the group's {len(self._example_index)} windows "
                "never came back from the model"
            )
        return self._collector.spans()

    def answers(self, contexts: Sequence[str], ids: Sequence[str | int] | None = None) -> list[Answer]:
        """One Answer per example (each a question of its own, spans as decoded), once every window has been added."""
        return spans_to_answers(contexts, self.spans(), self.options, ids)
