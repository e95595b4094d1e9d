"""Which queued records go into the next model batch, and how their batches become one and come apart again.

Each record is prepared alone by the engine (`QAEngine.prepare`: its windows, cut into batches by the engine's
batching rule), so a record that fits the budget is one batch of its own. The service runs several such batches
as one: stacked along the rows, padded to the longest, the logits sliced back per record afterwards. Since the
model's answers do not depend on their batch mates (fp32, and the static int8 the project ships; a dynamically
quantized int8 graph is the exception, see `QAEngine.answer_many`), each record gets the answer the engine gives it
alone, which is the answer qa-answer writes for it.

Packing rule (`choose_batch`), over the records waiting, oldest first:
1. The batch starts with the oldest record, so no record waits behind younger ones for ever.
2. It grows by the records nearest to the oldest in length (each record's longest window; the queue sorted by it,
   stably, as the engine sorts windows), taking at each step the cheaper of the next shorter and the next longer
   record in padding added, while the batch fits the engine's budget: rows <= max_batch_windows and rows x its
   longest row <= max_batch_tokens.
3. A record that alone does not fit is never a batch mate; it runs by itself, in the batches its own preparation
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


def choose_batch(shapes: Sequence[Shape], max_tokens: int, max_windows: int) -> list[int]:
    """Positions in `shapes` (oldest first) of the next batch, the oldest first (rules 1-3)."""
    if not shapes:
        return []
    first = shapes[0]
    if not fits(first.rows, first.width, max_tokens, max_windows):
        return [0]
    order = sorted(range(len(shapes)), key=lambda position: shapes[position].width)
    at = order.index(0)
    below, above = at - 1, at + 1
    rows, width, padded = first.rows, first.width, first.rows * first.width
    chosen = [0]
    while True:
        best: tuple[int, int] | None = None  # (padding added, position in `order`)
        for place in (below, above):
            if 0 <= place < len(order):
                shape = shapes[order[place]]
                new_rows, new_width = rows + shape.rows, max(width, shape.width)
                if fits(new_rows, new_width, max_tokens, max_windows):
                    waste = new_rows * new_width - padded - shape.tokens
                    if best is None or waste < best[0]:
                        best = (waste, place)
        if best is None:
            return chosen
        place = best[1]
        shape = shapes[order[place]]
        rows, width = rows + shape.rows, max(width, shape.width)
        padded = rows * width
        chosen.append(order[place])
        if place == below:
            below -= 1
        else:
            above += 1


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
