"""Which queued records go into the next model batch, and how their batches become one and come apart again.

Each record is prepared alone by the engine (`QAEngine.prepare`: its windows, cut into batches by the engine's
batching rule), so a record that fits the budget is one batch of its own. The service runs several such batches
as one: stacked along the rows, padded to the longest, the logits sliced back per record afterwards. Since the
model's answers do not depend on their batch mates (fp32, and the static int8 the project ships; a dynamically
quantized int8 graph is the exception, see `QAEngine.answer_many`), each record gets the answer the engine gives it
alone, which is the answer qa-answer writes for it.

Packing rule (`choose_batch`), over the oldest records waiting (`ServeOptions.packing_window` of them), oldest
first:
1. The batch starts with the oldest record, so no record waits behind younger ones for ever.
2. It grows by the records nearest to the oldest in length (each record's longest window; the queue sorted by it,
   stably, as the engine sorts windows), taking at each step the cheaper of the next shorter and the next longer
   record in padding added, while the batch fits the engine's budget: rows <= max_batch_windows and rows x its
   longest row <= max_batch_tokens. A record of several windows that does not fit is stepped over, so one of
   fewer windows behind it still may; a single-window record that does not fit ends the search on its side.
3. With width buckets (a backend whose `width_multiple` > 1, `runtime.batching`), records share a batch only when
   their batches have the same padded width, so that no row is padded further than alone.
4. A record that alone does not fit is never a batch mate; it runs by itself, in the batches its own preparation
   cut (`batcher.Unit.batch` is None then), so an input longer than the budget is answered, never left waiting for room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spanqa.engine.core.context_slices import OUTSIDE_CONTEXT
from spanqa.engine.core.windows import PaddedWindows

@dataclass(frozen=True)
class Shape:
    """What the packing rule knows of a record: its windows, its longest window, its real tokens."""

    rows: int
    width: int
    tokens: int


def choose_batch(
    shapes: Sequence[Shape], max_tokens: int, max_windows: int, same_width: bool = False
) -> list[int]:
    """Positions in `shapes` (oldest first) of the next batch, the oldest first (rules 1-4)."""
    if not shapes:
        return []
    first = shapes[0]
    if not fits(first.rows, first.width, max_tokens, max_windows):
        return [0]
    order = sorted(range(len(shapes)), key=lambda position: shapes[position].width)
    at = order.index(0)
    rows, width = first.rows, first.width
    chosen = [0]
    sides = {-1: at - 1, 1: at + 1}  # the next place in `order` to look at, below and above the oldest
    while True:
        best: tuple[int, int] | None = None  # (padding added, side)
        for side in (-1, 1):
            place = _next_fitting(shapes, order, sides[side], side, rows, width, max_tokens, max_windows, same_width)
            sides[side] = place
            if 0 <= place < len(order):
                shape = shapes[order[place]]
                new_rows, new_width = rows + shape.rows, max(width, shape.width)
                waste = new_rows * new_width - rows * width - shape.tokens
                if best is None or waste < best[0]:
                    best = (waste, side)
        if best is None:
            return chosen
        side = best[1]
        shape = shapes[order[sides[side]]]
        rows, width = rows + shape.rows, max(width, shape.width)
        chosen.append(order[sides[side]])
        sides[side] += side


def _next_fitting(
    shapes: Sequence[Shape], order: list[int], place: int, step: int, rows: int, width: int, max_tokens: int,
    max_windows: int, same_width: bool,
) -> int:  # fmt: skip
    """From `place` on in direction `step`, the first record that fits beside the batch, else a place outside.
    A record of several windows that does not fit is stepped over (one of fewer may); one of a single window that
    does not fit ends the search: beyond it records are as wide or wider and no smaller."""
    while 0 <= place < len(order):
        shape = shapes[order[place]]
        if same_width and shape.width != width:  # sorted by width: none further on is of this width either
            return -1 if step < 0 else len(order)
        if fits(rows + shape.rows, max(width, shape.width), max_tokens, max_windows):
            return place
        if shape.rows == 1:
            return -1 if step < 0 else len(order)
        place += step
    return place


def fits(rows: int, width: int, max_tokens: int, max_windows: int) -> bool:
    """Whether `rows` windows padded to `width` make one batch under the budget (the engine's `pack_batches` test)."""
    return rows <= max_windows and rows * width <= max_tokens


def stack(parts: Sequence[PaddedWindows], pad_token_id: int) -> PaddedWindows:
    """The batches of `parts` as one, rows in order, padded to the longest (padding as `Windows.padded` lays it)."""
    if len(parts) == 1:
        return parts[0]
    rows = sum(len(part.lengths) for part in parts)
    width = max(part.input_ids.shape[1] for part in parts)
    input_ids = np.full((rows, width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((rows, width), dtype=np.int64)
    token_type_ids = np.zeros((rows, width), dtype=np.int64)
    offsets = np.full((rows, width, 2), OUTSIDE_CONTEXT, dtype=np.int32)
    start = 0
    for part in parts:
        end = start + len(part.lengths)
        part_width = part.input_ids.shape[1]
        input_ids[start:end, :part_width] = part.input_ids
        attention_mask[start:end, :part_width] = part.attention_mask
        token_type_ids[start:end, :part_width] = part.token_type_ids
        offsets[start:end, :part_width] = part.offsets
        start = end
    return PaddedWindows(
        input_ids, attention_mask, token_type_ids, offsets,
        *(np.concatenate([getattr(part, name) for part in parts]) for name in ("lengths", "cls_index",
                                                                               "example_index")),
    )  # fmt: skip


def split(
    parts: Sequence[PaddedWindows], start_logits: np.ndarray, end_logits: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each part's rows of the stacked batch's logits, cut back to the part's own width (views, no copy)."""
    pieces, start = [], 0
    for part in parts:
        end = start + len(part.lengths)
        part_width = part.input_ids.shape[1]
        pieces.append((start_logits[start:end, :part_width], end_logits[start:end, :part_width]))
        start = end
    return pieces
