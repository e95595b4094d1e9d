"""What a question gets back: an `Answer`, optionally with its n-best list of `NBestSpan`s.

The decoder builds these directly; the runtime and the jobs pass them on. This module imports nothing heavy, so
both `core` and `runtime` can use it without a cycle. The classes are plain (not frozen) slotted dataclasses:
one is built per question on the hot path, and frozen ones cost several times more to construct.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Answer", "NBestSpan", "RankedAnswer", "softmax"]

PassageName = str | int  # a passage's "id", else its 0-based index (records rule 6)


@dataclass(slots=True)
class NBestSpan:
    answer: str
    score: float  # start logit + end logit
    probability: float  # softmax over the question's n-best span scores
    start: int  # character offsets into the context (its passage's text), end exclusive
    end: int
    passage: PassageName | None = None  # multi-passage records only

    def to_dict(self) -> dict[str, Any]:
        return _without_passage(asdict(self), self.passage)


@dataclass(slots=True)
class RankedAnswer:
    """One of the top_k answers (`DecodeOptions.top_k`), pipeline field names plus the passage it comes from."""

    answer: str
    score: float  # as `Answer.score`: its softmax weight among the question's candidates
    start: int
    end: int
    passage: PassageName | None = None  # multi-passage records only

    def to_dict(self) -> dict[str, Any]:
        return _without_passage(asdict(self), self.passage)


@dataclass(slots=True)
class Answer:
    """One question's answer, with the transformers QA-pipeline field names.

    `score` is a probability: the softmax weight of the returned answer among the candidates the decoder kept for
    this question, i.e. its `DecodeOptions.n_best` best valid spans over all the question's windows (each scored
    start logit + end logit), plus the null answer when `DecodeOptions.null_threshold` is set (SQuAD v2 mode).
    It is therefore relative to those candidates, not calibrated against the whole context, and a larger `n_best`
    spreads it thinner. A question with no valid span at all (v1 mode) gets `answer == ""`, `is_impossible` and
    score 0.0. The rule that ranks candidates, across the passages of a multi-passage record too, is
    `spanqa.engine.core.ranking`'s.
    """

    id: str | int  # the question's id as its record gave it
    answer: str
    score: float
    start: int  # character offsets into the context (its passage's text), end exclusive; 0, 0 for no answer
    end: int
    is_impossible: bool = False  # no valid span, or the SQuAD v2 no-answer decision (DecodeOptions.null_threshold)
    n_best: tuple[NBestSpan, ...] | None = None  # with DecodeOptions(return_n_best=True), probabilities included
    # Multi-passage records: the passage `start` and `end` index (None for no answer, and for a single context).
    passage: PassageName | None = None
    # DecodeOptions.top_k > 1: the top_k best answers without duplicates or overlaps, best first (fewer only when
    # the candidates hold fewer); the first is this answer unless the no-answer decision won. None for top_k 1.
    top_answers: tuple[RankedAnswer, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (qa-answer's output line): "passage" only when there is one, "top_answers" only for
        top_k > 1, so a single-context answer is written as before either field existed."""
        record: dict[str, Any] = {
            "id": self.id,
            "answer": self.answer,
            "score": self.score,
            "start": self.start,
            "end": self.end,
            "is_impossible": self.is_impossible,
        }
        if self.passage is not None:
            record["passage"] = self.passage
        if self.top_answers is not None:
            record["top_answers"] = [answer.to_dict() for answer in self.top_answers]
        if self.n_best is not None:
            record["n_best"] = [span.to_dict() for span in self.n_best]
        return record


def _without_passage(fields: dict[str, Any], passage: PassageName | None) -> dict[str, Any]:
    if passage is None:
        del fields["passage"]
    return fields


def softmax(scores: list[float]) -> list[float]:
    """exp(score - max) / sum, the sum exactly rounded (math.fsum), so a weight does not depend on the order of
    `scores`. The one softmax behind both `Answer.score` and the n-best probabilities."""
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    total = math.fsum(weights)
    return [weight / total for weight in weights]
