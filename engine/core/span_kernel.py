"""The Numba kernel behind `spanqa.engine.core.decoder`: top-k starts and ends per window, every valid pair offered
to its example's n-best table. Written by hand rather than with numpy because one compiled pass over the whole batch,
with no Python objects per candidate, is what makes decoding ~50x the notebook's loop (benchmarks/decoder_bench.py);
it is checked against the plain-Python reference (benchmarks/notebook_postprocess.py). The validity and tie rules are
the decoder module's docstring.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_TOP_K_SLACK = 8
_MAX_NARROWING_PASSES = 40


@njit(cache=True, nogil=True)
def _finite_range(logits, length):
    """(whether logits[:length] are all finite, their minimum, their maximum)."""
    low = high = logits[0]
    non_finite = 0
    for position in range(length):
        value = logits[position]
        non_finite += not math.isfinite(value)
        low = min(low, value)
        high = max(high, value)
    return non_finite == 0, low, high


@njit(cache=True, nogil=True)
def _count_at_least(logits, length, threshold):
    count = 0
    for position in range(length):  # branch-free so that LLVM vectorises it
        count += logits[position] >= threshold
    return count


@njit(cache=True, nogil=True)
def _top_k_floor(logits, length, k, low, high):
    """A value that at least k of logits[:length] reach, and (where ties allow) few more than k.

    Every top-k position reaches it, so only the positions that do need ranking. Bisection on
    values with cheap vectorised counts replaces most of the mispredicted insertions a plain
    one-pass top-k pays for.
    """
    if length <= k:
        return low
    if _count_at_least(logits, length, high) >= k:
        return high
    floor, ceiling = low, high  # at least k logits reach floor, fewer than k reach ceiling
    half = logits.dtype.type(0.5)
    for _ in range(_MAX_NARROWING_PASSES):
        middle = floor * half + ceiling * half
        if middle <= floor or middle >= ceiling:
            break
        reaching = _count_at_least(logits, length, middle)
        if reaching >= k:
            floor = middle
            if reaching <= k + _TOP_K_SLACK:
                break
        else:
            ceiling = middle
    return floor


@njit(cache=True, nogil=True)
def _rank_top_k(logits, length, k, ranked, candidates):
    """Fill ranked[:count] with the top-k positions of logits[:length]; -1 on a non-finite logit.

    ``candidates`` is scratch space of at least length + 1 entries.
    """
    finite, low, high = _finite_range(logits, length)
    if not finite:
        return -1
    floor = _top_k_floor(logits, length, k, low, high)
    num_candidates = 0
    for position in range(length):
        candidates[num_candidates] = position  # kept only when the position reaches the floor
        num_candidates += logits[position] >= floor
    count = 0
    for candidate in range(num_candidates):
        position = candidates[candidate]
        value = logits[position]
        if count == k:
            # Positions arrive in ascending order, so an equal logit ranks behind what is kept.
            if value <= logits[ranked[k - 1]]:
                continue
            slot = k - 1
        else:
            slot = count
            count += 1
        while slot > 0 and logits[ranked[slot - 1]] < value:
            ranked[slot] = ranked[slot - 1]
            slot -= 1
        ranked[slot] = position
    return count


@njit(cache=True, nogil=True)
def _offer(scores, starts, ends, counts, example, score, start_char, end_char):
    """Insert a candidate behind every kept candidate with a score >= its own (stable order)."""
    keep = scores.shape[1]
    slot = counts[example]
    if slot == keep:
        slot = keep - 1  # the caller checked that it beats the current worst
    else:
        counts[example] = slot + 1
    while slot > 0 and scores[example, slot - 1] < score:
        scores[example, slot] = scores[example, slot - 1]
        starts[example, slot] = starts[example, slot - 1]
        ends[example, slot] = ends[example, slot - 1]
        slot -= 1
    scores[example, slot] = score
    starts[example, slot] = start_char
    ends[example, slot] = end_char


@njit(cache=True, nogil=True)
def decode_kernel(
    start_logits,
    end_logits,
    offsets,
    lengths,
    cls_index,
    example_index,
    n_best,
    max_answer_length,
    scores,
    starts,
    ends,
    counts,
    null_scores,
):
    """Fill the output arrays in place; return the first window with a non-finite logit, or -1."""
    keep = scores.shape[1]
    start_ranked = np.empty(n_best, np.int64)
    end_ranked = np.empty(n_best, np.int64)
    candidates = np.empty(start_logits.shape[1] + 1, np.int64)
    for window in range(start_logits.shape[0]):
        length = lengths[window]
        if length == 0:
            continue
        start_logit_row = start_logits[window]
        end_logit_row = end_logits[window]
        start_count = _rank_top_k(start_logit_row, length, n_best, start_ranked, candidates)
        end_count = _rank_top_k(end_logit_row, length, n_best, end_ranked, candidates)
        if start_count < 0 or end_count < 0:
            return window
        example = example_index[window]
        cls = cls_index[window]
        null_score = start_logit_row[cls] + end_logit_row[cls]
        if null_score < null_scores[example]:
            null_scores[example] = null_score
        top_end_logit = end_logit_row[end_ranked[0]]
        for start_rank in range(start_count):
            start = start_ranked[start_rank]
            start_logit = start_logit_row[start]
            # Rounding is monotonic, so once a full list's worst beats this bound it beats every
            # later pair of this window: later starts and ends have logits no higher.
            if counts[example] == keep and start_logit + top_end_logit <= scores[example, keep - 1]:
                break
            start_char = offsets[window, start, 0]
            if start_char < 0:
                continue
            for end_rank in range(end_count):
                end = end_ranked[end_rank]
                score = start_logit + end_logit_row[end]
                if counts[example] == keep and score <= scores[example, keep - 1]:
                    break
                if end < start or end - start >= max_answer_length:
                    continue
                if offsets[window, end, 0] < 0:
                    continue
                end_char = offsets[window, end, 1]
                if end_char - start_char <= 0:
                    continue
                _offer(scores, starts, ends, counts, example, score, start_char, end_char)
    return -1
