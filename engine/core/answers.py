"""What a question gets back: an `Answer`, optionally with its n-best list of `NBestSpan`s.

The decoder builds these directly; the runtime and the jobs pass them on. This module imports nothing heavy, so
both `core` and `runtime` can use it without a cycle. The classes are plain (not frozen) slotted dataclasses:
one is built per question on the hot path, and frozen ones cost several times more to construct.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Answer", "NBestSpan", "softmax"]


@dataclass(slots=True)
class NBestSpan:
    answer: str
    score: float  # start logit + end logit
    probability: float  # softmax over the question's n-best span scores
    start: int  # character offsets into the context, end exclusive
    end: int


@dataclass(slots=True)
class Answer:
    """One question's answer, with the transformers QA-pipeline field names.

    `score` is a probability: the softmax weight of the returned answer among the candidates the decoder kept for
    this question, i.e. its `DecodeOptions.n_best` best valid spans over all the question's windows (each scored
    start logit + end logit), plus the null answer when `DecodeOptions.null_threshold` is set (SQuAD v2 mode).
    It is therefore relative to those candidates, not calibrated against the whole context, and a larger `n_best`
    spreads it thinner. A question with no valid span at all (v1 mode) gets `answer == ""`, `is_impossible` and
    score 0.0.
    """

    id: str | int  # the question's id as its record gave it
    answer: str
    score: float
    start: int  # character offsets into the context, end exclusive; 0, 0 for no answer
    end: int
    is_impossible: bool = False  # no valid span, or the SQuAD v2 no-answer decision (DecodeOptions.null_threshold)
    n_best: tuple[NBestSpan, ...] | None = None  # with DecodeOptions(return_n_best=True), probabilities included

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "answer": self.answer,
            "score": self.score,
            "start": self.start,
            "end": self.end,
            "is_impossible": self.is_impossible,
        }
        if self.n_best is not None:
            record["n_best"] = [asdict(span) for span in self.n_best]
        return record


def softmax(scores: list[float]) -> list[float]:
    """exp(score - max) / sum, the sum exactly rounded (math.fsum), so a weight does not depend on the order of
    `scores`. The one softmax behind both `Answer.score` and the n-best probabilities."""
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    total = math.fsum(weights)
    return [weight / total for weight in weights]
