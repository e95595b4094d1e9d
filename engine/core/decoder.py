"""Answer-span decoding for a whole batch of windows in one compiled pass.

A window's candidates are the pairs (start, end) drawn from its top-``n_best``
start positions and top-``n_best`` end positions. A pair is valid when both
tokens lie in the context (offset start >= 0; the features mark other tokens
with -1), ``start <= end``, ``end - start + 1 <= max_answer_length`` and the
character span ``offsets[end][1] - offsets[start][0]`` is positive. Its score
is ``start_logit + end_logit`` computed in the logits' own dtype, so float32
logits give float32 sums. An example's answer is its best valid pair over all
its windows; its null score is the smallest ``start_logit[cls] + end_logit[cls]``
over its windows (SQuAD v2). Positions at or beyond a window's length are
ignored everywhere, top-k included.

Tie rule (``benchmarks/notebook_postprocess.py`` follows it identically):

* top-k ranks positions by logit, highest first; equal logits rank the lower
  token index first;
* candidate pairs are visited window by window (ascending position in the
  batch), then by start rank, then by end rank;
* among equal scores the first visited pair wins, and the n-best list is the
  visit order stably sorted by descending score;
* a multi-passage question's passages are visited in the record's order, each
  passage's windows as above (``spanqa.engine.core.ranking`` merges them).

Logits must be float32 or float64 (both arrays alike); non-finite logits inside
a window's length raise ``ValueError``. ``decode_spans`` returns the raw
scores as arrays; ``decode_predictions`` turns them into one
``spanqa.engine.core.answers.Answer`` per example, whose ``score`` is a
probability, by the ranking rules of ``spanqa.engine.core.ranking`` (the score
rule, top_k without duplicates, word alignment).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spanqa.engine.core.answers import Answer
from spanqa.engine.core.ranking import QuestionPassages, candidates_kept, rank_answers
from spanqa.engine.core.span_kernel import decode_kernel
from spanqa.engine.core.word_align import WordAligner

__all__ = [
    "DecodeOptions",
    "SpanArrays",
    "SpanCollector",
    "decode_predictions",
    "decode_spans",
    "spans_to_answers",
]


@dataclass(frozen=True)
class DecodeOptions:
    n_best: int = 20
    max_answer_length: int = 30
    return_n_best: bool = False
    # Predict "no answer" when null_score - best_span_score > null_threshold;
    # None never predicts it (SQuAD v1 behaviour).
    null_threshold: float | None = None
    # Answers per question beyond the best: with top_k > 1 an Answer carries the top_k best, without duplicates or
    # overlaps (`spanqa.engine.core.ranking` rule 5), as `top_answers`.
    top_k: int = 1
    # Widen spans to whole words (`spanqa.engine.core.word_align`; not in text written without spaces). Applied
    # where a tokenizer is at hand: by `QAEngine`, and by `decode_predictions` only when given an aligner.
    align_to_words: bool = True

    def __post_init__(self) -> None:
        if self.n_best < 1:
            raise ValueError(f"n_best must be >= 1, got {self.n_best}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {self.top_k!r}")
        if self.max_answer_length < 1:
            raise ValueError(f"max_answer_length must be >= 1, got {self.max_answer_length}")
        if self.null_threshold is not None and not math.isfinite(self.null_threshold):
            raise ValueError(f"null_threshold must be finite or None, got {self.null_threshold}")


@dataclass(frozen=True, eq=False)
class SpanArrays:
    """Per example, the best ``keep`` candidates, best first (rows past ``counts`` are unused)."""

    scores: np.ndarray  # logits dtype [num_examples, keep]
    starts: np.ndarray  # int64 [num_examples, keep], character offsets
    ends: np.ndarray  # int64 [num_examples, keep], exclusive
    counts: np.ndarray  # int64 [num_examples]
    null_scores: np.ndarray  # logits dtype [num_examples]


# A pre-filter stops narrowing once this many extra positions survive it; more narrowing passes cost more
# than inserting the few extra candidates.
def _as_logits(name: str, logits: np.ndarray) -> np.ndarray:
    array = np.asarray(logits)
    if array.dtype not in (np.float32, np.float64):
        # Scores keep the logits' dtype; the kernel has no float16 arithmetic, so say so instead of guessing.
        raise TypeError(f"{name} must be float32 or float64 (convert with .astype(np.float32)), got {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [windows, length], got shape {array.shape}")
    return np.ascontiguousarray(array)


def _as_index(name: str, values: np.ndarray, num_windows: int) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (num_windows,):
        raise ValueError(f"{name} must have shape ({num_windows},), got {array.shape}")
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _first_outside(name: str, values: np.ndarray, low: np.ndarray | int, high: np.ndarray | int) -> None:
    bad = np.flatnonzero((values < low) | (values >= high))
    if bad.size:
        window = int(bad[0])
        bound_low = low if np.isscalar(low) else low[window]
        bound_high = high if np.isscalar(high) else high[window]
        raise ValueError(
            f"{name}[{window}] = {values[window]} is outside [{bound_low}, {bound_high})"
            f" ({bad.size} window(s) affected)"
        )


class SpanCollector:
    """Each example's best ``keep`` spans so far, over windows given in any number of ``add`` calls.

    The kernel keeps its tables (scores, spans, null scores) between calls and visits windows one after another, so
    adding windows in several calls gives exactly what one call over all of them in the same order gives: the tie
    rule's visit order is the order of the calls, then of the windows inside each.
    """

    def __init__(self, num_examples: int, *, n_best: int = 20, max_answer_length: int = 30, keep: int = 1) -> None:
        if min(n_best, max_answer_length, keep) < 1:
            raise ValueError(
                f"n_best, max_answer_length and keep must be >= 1, got {n_best}, {max_answer_length}, {keep}"
            )
        self.num_examples, self.keep = num_examples, keep
        self.n_best, self.max_answer_length = n_best, max_answer_length
        self._tables: tuple[np.ndarray, ...] | None = None  # made by the first add, in the logits' dtype

    def add(
        self,
        start_logits: np.ndarray,
        end_logits: np.ndarray,
        offsets: np.ndarray,
        lengths: np.ndarray,
        cls_index: np.ndarray,
        example_index: np.ndarray,
    ) -> None:
        start_logits = _as_logits("start_logits", start_logits)
        end_logits = _as_logits("end_logits", end_logits)
        if start_logits.shape != end_logits.shape:
            raise ValueError(f"start_logits {start_logits.shape} and end_logits {end_logits.shape} differ in shape")
        if start_logits.dtype != end_logits.dtype:
            raise TypeError(f"start_logits ({start_logits.dtype}) and end_logits ({end_logits.dtype}) differ in dtype")
        num_windows, width = start_logits.shape
        offsets = np.asarray(offsets)
        if offsets.shape != (num_windows, width, 2):
            raise ValueError(f"offsets must have shape {(num_windows, width, 2)}, got {offsets.shape}")
        if offsets.dtype.kind != "i":
            raise TypeError(f"offsets must hold signed integers (-1 outside the context), got dtype {offsets.dtype}")
        offsets = np.ascontiguousarray(offsets)
        lengths = _as_index("lengths", lengths, num_windows)
        cls_index = _as_index("cls_index", cls_index, num_windows)
        example_index = _as_index("example_index", example_index, num_windows)
        _first_outside("lengths", lengths, 0, width + 1)
        _first_outside("example_index", example_index, 0, self.num_examples)
        non_empty = lengths > 0
        _first_outside("cls_index", np.where(non_empty, cls_index, 0), 0, np.where(non_empty, lengths, 1))
        tables = self._tables_for(start_logits.dtype)
        bad_window = decode_kernel(
            start_logits, end_logits, offsets, lengths, cls_index, example_index,
            self.n_best, self.max_answer_length, *tables,
        )  # fmt: skip
        if bad_window >= 0:
            length = lengths[bad_window]
            for name, logits in (("start_logits", start_logits), ("end_logits", end_logits)):
                bad = np.flatnonzero(~np.isfinite(logits[bad_window, :length]))
                if bad.size:
                    position = int(bad[0])
                    raise ValueError(
                        f"{name}[{bad_window}, {position}] = {logits[bad_window, position]} is not finite"
                        f" (window {bad_window} has length {length})"
                    )

    def spans(self) -> SpanArrays:
        return SpanArrays(*self._tables_for(np.dtype(np.float32) if self._tables is None else self._tables[0].dtype))

    def _tables_for(self, dtype: np.dtype) -> tuple[np.ndarray, ...]:
        if self._tables is None:
            shape = (self.num_examples, self.keep)
            self._tables = (
                np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64),
                np.zeros(self.num_examples, dtype=np.int64), np.full(self.num_examples, np.inf, dtype=dtype),
            )  # fmt: skip
        elif self._tables[0].dtype != dtype:
            raise TypeError(f"logits of dtype {dtype} after logits of dtype {self._tables[0].dtype}")
        return self._tables


def decode_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    cls_index: np.ndarray,
    example_index: np.ndarray,
    num_examples: int,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    keep: int = 1,
) -> SpanArrays:
    """Score every window of the batch and keep each example's best ``keep`` spans.

    ``start_logits``/``end_logits`` are [windows, length] (padded); ``offsets`` is
    [windows, length, 2] signed ints; ``lengths``, ``cls_index`` and ``example_index``
    are [windows]. An example's windows need not be adjacent: visit order is batch order.
    """
    collector = SpanCollector(num_examples, n_best=n_best, max_answer_length=max_answer_length, keep=keep)
    collector.add(start_logits, end_logits, offsets, lengths, cls_index, example_index)
    return collector.spans()


def decode_predictions(
    contexts: Sequence[str],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    cls_index: np.ndarray,
    example_index: np.ndarray,
    options: DecodeOptions = DecodeOptions(),
    ids: Sequence[str | int] | None = None,
    aligner: WordAligner | None = None,
) -> list[Answer]:
    """One Answer per context; ``example_index`` maps each window to its context.

    ``ids`` name the answers; without them an answer's id is its context's position, as a string. The n-best
    candidates are always kept, because ``Answer.score`` is the answer's probability among them. Spans are widened
    to words only with an ``aligner`` (and ``options.align_to_words``).
    """
    if ids is not None and len(ids) != len(contexts):
        raise ValueError(f"got {len(ids)} ids for {len(contexts)} contexts")
    spans = decode_spans(
        start_logits, end_logits, offsets, lengths, cls_index, example_index, len(contexts),
        n_best=options.n_best, max_answer_length=options.max_answer_length, keep=candidates_kept(options),
    )  # fmt: skip
    return spans_to_answers(contexts, spans, options, ids, aligner)


def spans_to_answers(
    contexts: Sequence[str],
    spans: SpanArrays,
    options: DecodeOptions = DecodeOptions(),
    ids: Sequence[str | int] | None = None,
    aligner: WordAligner | None = None,
) -> list[Answer]:
    """One Answer per context from its best spans (kept with ``keep=candidates_kept(options)``): each context is a
    question of its own (``rank_answers`` ranks multi-passage questions); see ``decode_predictions``."""
    if ids is None:
        ids = [str(position) for position in range(len(contexts))]
    elif len(ids) != len(contexts):
        raise ValueError(f"got {len(ids)} ids for {len(contexts)} contexts")
    questions = [QuestionPassages(id, position) for position, id in enumerate(ids)]
    return rank_answers(contexts, spans, questions, options, aligner)
