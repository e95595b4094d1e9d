"""Cut a stream of records into groups, and a group's windows into length-sorted batches under a token budget.

The rule that makes results reproducible and resumable: records are taken in consecutive groups of `size`
counted from the first record; batches never mix two groups; inside a group windows are sorted by length (stable)
and packed greedily, so that a batch holds at most `max_windows` windows and at most `max_tokens` padded tokens
(rows x its width). A batch's composition therefore depends only on its group and the options.

Width buckets (`width_multiple` m > 1, asked for by a backend whose results depend on how far a row is padded, as
OpenVINO's bf16 kernels do): a window is padded to its length rounded up to a multiple of m (at most the window
length), and a batch holds windows of one such width only. Each window is then computed at a width of its own, so
its answer does not depend on its batch mates; the price is the padding up to the bucket. m = 1: each batch is
padded to its own longest row, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from spanqa.engine.core.data import QAExample
from spanqa.engine.core.windows import PaddedBatches, WindowOptions, Windows, make_windows

Record = TypeVar("Record")


def iter_groups(
    records: Iterable[Record], size: int, convert: Callable[[Record, int], QAExample]
) -> Iterator[list[QAExample]]:
    """Yield consecutive groups of `size` converted records (the last one may be shorter), reading lazily.

    `convert(record, index)` gets the record's position counted from the first record. When reading or converting
    a record fails, the records before it in the same group are yielded first as a short group and the error is
    raised after it, so no answerable record before a bad one is lost.
    """
    if size < 1:
        raise ValueError(f"group size must be >= 1, got {size}")
    group: list[QAExample] = []
    try:
        for index, record in enumerate(records):
            group.append(convert(record, index))
            if len(group) == size:
                yield group
                group = []
    except Exception:
        if group:
            yield group
        raise
    if group:
        yield group


def pack_batches(
    lengths: np.ndarray, max_tokens: int, max_windows: int, width_multiple: int = 1, max_width: int | None = None
) -> list[np.ndarray]:
    """Rows of each batch: windows sorted by length (stable, shortest first), then packed greedily; with width
    buckets (m > 1), a new batch also starts where the bucket changes.

    A window longer than `max_tokens` on its own still gets a batch (of one): the budget bounds batching, it
    never refuses input.
    """
    if max_tokens < 1 or max_windows < 1 or width_multiple < 1:
        raise ValueError(
            f"max_tokens, max_windows and width_multiple must be >= 1, got {max_tokens}, {max_windows}, {width_multiple}"
        )
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    widths = bucket_widths(sorted_lengths, width_multiple, max_width).tolist()
    batches = []
    first = 0
    for position, width in enumerate(widths):
        rows = position - first + 1
        # Sorted ascending, so the window being added sets the batch's width.
        new_bucket = width_multiple > 1 and width != widths[first]
        if position > first and (new_bucket or rows > max_windows or rows * width > max_tokens):
            batches.append(order[first:position])
            first = position
    if widths:
        batches.append(order[first:])
    return batches


def bucket_widths(lengths: np.ndarray, width_multiple: int, max_width: int | None) -> np.ndarray:
    """The width each window is padded to: its length rounded up to a multiple of `width_multiple`, at most
    `max_width` (never below the length itself)."""
    widths = -(-np.asarray(lengths, dtype=np.int64) // width_multiple) * width_multiple
    if max_width is not None:
        widths = np.maximum(np.minimum(widths, max_width), lengths)
    return widths


@dataclass(frozen=True)
class PreparedGroup:
    """A group tokenized and cut into batches, ready for inference and decoding."""

    examples: list[QAExample]
    windows: Windows  # every window of the group in window order, unpadded
    batches: PaddedBatches  # (rows into `windows`, the batch padded to its own longest), padded when read
    tokens: int  # real tokens over all batches
    padded_tokens: int  # sum of rows x width over all batches
    seconds: float  # time spent tokenizing and cutting


def cut_batches(
    windows: Windows, pad_token_id: int, max_tokens: int, max_windows: int, width_multiple: int = 1,
    max_width: int | None = None,
) -> PaddedBatches:
    """The group's batches, each padded from the flat windows when it is read, so that a group with a very long
    context holds only its unpadded windows and the batch in use (not every window padded, twice)."""
    rows = pack_batches(windows.lengths, max_tokens, max_windows, width_multiple, max_width)
    if width_multiple == 1:
        return PaddedBatches(windows, rows, pad_token_id)
    widths = [int(bucket_widths(windows.lengths[batch].max(keepdims=True), width_multiple, max_width)[0])
              for batch in rows]  # fmt: skip
    return PaddedBatches(windows, rows, pad_token_id, widths)


def prepare_group(
    tokenizer, examples: list[QAExample], window: WindowOptions, pad_token_id: int, max_tokens: int, max_windows: int,
    width_multiple: int = 1,
) -> PreparedGroup:
    started = time.perf_counter()
    windows = make_windows(tokenizer, examples, window)
    batches = cut_batches(windows, pad_token_id, max_tokens, max_windows, width_multiple, window.max_length)
    tokens = int(windows.lengths.sum())
    return PreparedGroup(examples, windows, batches, tokens, batches.padded_tokens, time.perf_counter() - started)
