"""The seed notebook's answer post-processing, in plain Python, as a reference and a baseline.

It walks example by example and window by window, ranks each window's logits
with a stable argsort, collects every valid (start, end) pair in a list and
picks the best with ``max``, as the notebook does. Two things differ from the
notebook on purpose, so that it follows the tie rule written down in
``spanqa.engine.core.decoder`` and can be compared with the decoder exactly:

* the ranking is stable (``np.argsort(-logits, kind="stable")``; the notebook's
  default quicksort orders equal logits arbitrarily), and it only looks at the
  window's first ``length`` positions;
* it also produces the n-best list, the SQuAD v2 null score, the
  no-answer decision and the answer's probability (``Answer.score``), which
  the notebook does not.

It takes the same padded arrays as ``spanqa.engine.core.decoder.decode_predictions``
and returns the same result types.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from spanqa.engine.core.answers import Answer, NBestSpan
from spanqa.engine.core.decoder import DecodeOptions

__all__ = ["notebook_as_written", "notebook_predictions", "same_prediction"]


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    total = sum(weights)
    return [weight / total for weight in weights]


def _valid_answers(start_logits, end_logits, offsets, n_best: int, max_answer_length: int) -> list[dict]:
    """All valid pairs of one window, in the decoder's visit order (start rank, then end rank)."""
    start_indexes = np.argsort(-start_logits, kind="stable")[:n_best].tolist()
    end_indexes = np.argsort(-end_logits, kind="stable")[:n_best].tolist()
    answers = []
    for start_index in start_indexes:
        for end_index in end_indexes:
            if offsets[start_index][0] < 0 or offsets[end_index][0] < 0:
                continue  # not part of the context
            if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                continue
            start_char = offsets[start_index][0]
            end_char = offsets[end_index][1]
            if end_char - start_char <= 0:
                continue
            answers.append(
                {"score": start_logits[start_index] + end_logits[end_index], "start": start_char, "end": end_char}
            )
    return answers


def notebook_predictions(
    contexts: Sequence[str],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    cls_index: np.ndarray,
    example_index: np.ndarray,
    options: DecodeOptions = DecodeOptions(),
    ids: Sequence[str] | None = None,
) -> list[Answer]:
    ids = [str(position) for position in range(len(contexts))] if ids is None else ids
    windows_of_example = defaultdict(list)
    for window, example in enumerate(np.asarray(example_index).tolist()):
        windows_of_example[example].append(window)

    predictions = []
    for example, (id, context) in enumerate(zip(ids, contexts, strict=True)):
        valid_answers = []
        null_score = math.inf
        for window in windows_of_example[example]:
            length = int(lengths[window])
            if length == 0:
                continue
            window_start_logits = start_logits[window, :length]
            window_end_logits = end_logits[window, :length]
            if not (np.isfinite(window_start_logits).all() and np.isfinite(window_end_logits).all()):
                raise ValueError(f"window {window} has a non-finite logit within its length {length}")
            cls = int(cls_index[window])
            null_score = min(null_score, float(window_start_logits[cls] + window_end_logits[cls]))
            # The notebook's features hold offsets as Python lists; so does this baseline.
            window_offsets = offsets[window, :length].tolist()
            valid_answers.extend(
                _valid_answers(
                    window_start_logits, window_end_logits, window_offsets, options.n_best, options.max_answer_length
                )
            )

        # sorted() is stable with reverse=True as well: equal scores keep their visit order.
        ranked = sorted(valid_answers, key=lambda answer: answer["score"], reverse=True)[: options.n_best]
        ranked_scores = [float(answer["score"]) for answer in ranked]
        n_best = None
        if options.return_n_best:
            probabilities = _softmax(ranked_scores) if ranked else []
            n_best = tuple(
                NBestSpan(context[answer["start"] : answer["end"]], score, probability, answer["start"], answer["end"])
                for answer, score, probability in zip(ranked, ranked_scores, probabilities)
            )  # fmt: skip
        # The probability is taken among the n-best spans, plus the null answer in SQuAD v2 mode.
        null_weighs = options.null_threshold is not None and math.isfinite(null_score)
        candidates = ranked_scores + [null_score] if null_weighs else ranked_scores

        if not valid_answers:
            predictions.append(Answer(id, "", _softmax(candidates)[-1] if null_weighs else 0.0, 0, 0, True, n_best))
            continue
        best = max(valid_answers, key=lambda answer: answer["score"])  # first of equal scores wins
        span_score = float(best["score"])
        threshold = options.null_threshold
        if threshold is not None and null_score - span_score > threshold:
            predictions.append(Answer(id, "", _softmax(candidates)[-1], 0, 0, True, n_best))
        else:
            predictions.append(
                Answer(id, context[best["start"] : best["end"]], _softmax(candidates)[0], best["start"], best["end"],
                       False, n_best)
            )  # fmt: skip
    return predictions


def same_prediction(ours: Answer, reference: Answer, rel_tol: float = 1e-9) -> bool:
    """Equal in every field, except that probabilities (the score and the n-best ones) may differ by rounding: the
    softmaxes sum differently."""
    if not math.isclose(ours.score, reference.score, rel_tol=rel_tol):
        return False
    ours, reference = replace(ours, score=0.0), replace(reference, score=0.0)
    if ours.n_best is None or reference.n_best is None or len(ours.n_best) != len(reference.n_best):
        return ours == reference

    def without_probabilities(prediction: Answer) -> Answer:
        return replace(prediction, n_best=tuple(replace(span, probability=0.0) for span in prediction.n_best))

    return without_probabilities(ours) == without_probabilities(reference) and all(
        math.isclose(a.probability, b.probability, rel_tol=rel_tol) for a, b in zip(ours.n_best, reference.n_best)
    )


def notebook_as_written(
    contexts: Sequence[str],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offset_lists: Sequence[Sequence[tuple[int, int] | None]],
    example_index: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> list[str]:
    """The notebook's post-processing as it stands, for timing only: a default (unstable) argsort over every
    padded position, a dict with the answer text for every valid pair, and `max` over them. Offsets are
    per-window lists with None outside the context, the masking the notebook's labelling implies.
    Its tie-breaking is arbitrary, so `notebook_predictions` is the one to compare answers with."""
    features_per_example = defaultdict(list)
    for feature, example in enumerate(np.asarray(example_index).tolist()):
        features_per_example[example].append(feature)
    predictions = []
    for example, context in enumerate(contexts):
        valid_answers = []
        for feature in features_per_example[example]:
            feature_start_logits = start_logits[feature]
            feature_end_logits = end_logits[feature]
            offsets = offset_lists[feature]
            start_indexes = np.argsort(feature_start_logits)[-1 : -n_best_size - 1 : -1].tolist()
            end_indexes = np.argsort(feature_end_logits)[-1 : -n_best_size - 1 : -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if start_index >= len(offsets) or end_index >= len(offsets):
                        continue
                    if offsets[start_index] is None or offsets[end_index] is None:
                        continue
                    if end_index < start_index:
                        continue
                    length = offsets[end_index][1] - offsets[start_index][0]
                    if length <= 0 or (end_index - start_index + 1) > max_answer_length:
                        continue
                    start_char = offsets[start_index][0]
                    end_char = offsets[end_index][1]
                    valid_answers.append(
                        {"score": feature_start_logits[start_index] + feature_end_logits[end_index],
                         "text": context[start_char:end_char]}
                    )  # fmt: skip
        predictions.append(max(valid_answers, key=lambda answer: answer["score"])["text"] if valid_answers else "")
    return predictions
