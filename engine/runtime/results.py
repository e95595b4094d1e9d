"""What the engine returns: one `Answer` per question, and cumulative `EngineStats`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from spanqa.engine.core.decoder import NBestSpan, SpanPrediction


@dataclass
class Answer:
    """One question's answer, with the transformers QA-pipeline field names.

    `score` is a probability: the softmax weight of the returned answer among the candidates the decoder kept for
    this question, i.e. its `DecodeOptions.n_best` best valid spans over all the question's windows (each scored
    start logit + end logit), plus the null answer when `DecodeOptions.null_threshold` is set (SQuAD v2 mode).
    It is therefore relative to those candidates, not calibrated against the whole context, and a larger `n_best`
    spreads it thinner. A question with no valid span at all (v1 mode) gets `answer == ""`, `is_impossible` and
    score 0.0.
    """

    id: str
    answer: str
    score: float
    start: int  # character offsets into the context, end exclusive; 0, 0 for no answer
    end: int
    is_impossible: bool = False  # SQuAD v2 no-answer decision (DecodeOptions.null_threshold)
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


def answer_from_prediction(id: str, prediction: SpanPrediction, with_null: bool, keep_n_best: bool) -> Answer:
    """Turn a decoder prediction (decoded with return_n_best=True) into an Answer with a probability score."""
    n_best = prediction.n_best or ()
    candidates = [span.score for span in n_best]
    null_is_candidate = with_null and math.isfinite(prediction.null_score)
    if null_is_candidate:
        candidates.append(prediction.null_score)
    if prediction.is_impossible:
        chosen = prediction.null_score if null_is_candidate else None
    else:
        chosen = n_best[0].score
    probability = 0.0 if chosen is None else _softmax_weight(chosen, candidates)
    return Answer(
        id=id,
        answer=prediction.answer,
        score=probability,
        start=prediction.start,
        end=prediction.end,
        is_impossible=prediction.is_impossible,
        n_best=n_best if keep_n_best else None,
    )


def _softmax_weight(chosen: float, scores: list[float]) -> float:
    """exp(chosen) / sum(exp(scores)), shifted by the maximum so that no exp overflows. The decoder's own n-best
    probabilities leave the null answer out, so with it in the weights are computed here."""
    top = max(scores)
    return math.exp(chosen - top) / math.fsum(math.exp(score - top) for score in scores)


@dataclass
class EngineStats:
    """Cumulative counts since the engine was made or `QAEngine.reset_stats()` was called."""

    examples: int = 0
    windows: int = 0
    batches: int = 0
    tokens: int = 0  # real tokens fed to the model
    padded_tokens: int = 0  # batch rows x batch width, summed over batches: what the model computed on
    tokenize_seconds: float = 0.0  # windowing and batch assembly (in the background thread, overlapped)
    infer_seconds: float = 0.0  # backend.run, including host/device copies
    decode_seconds: float = 0.0  # span decoding and building Answers

    @property
    def padding_fraction(self) -> float:
        """Share of the computed positions that were padding: 1 - tokens / padded_tokens."""
        return 1.0 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0
