"""Official SQuAD EM/F1 over the gold answers that a job's input carries, scored as the answers stream past."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spanqa.engine.core.metrics import question_scores, v2_ground_truths


@dataclass(frozen=True)
class GoldScores:
    """Official SQuAD EM/F1 (percent) over the valid records that carry gold answers."""

    rules: str  # "v1.1", or "v2.0" when some question is unanswerable
    exact_match: float
    f1: float
    scored: int


class GoldScorer:
    """Streaming official EM/F1. Both rule sets are summed, since whether a v2.0 (unanswerable) question is coming
    is only known at the end; v1.1 is reported when none came, as `scoring.evaluate` decides."""

    def __init__(self) -> None:
        self.count = 0
        self.unanswerable = 0
        self._v1 = [0.0, 0.0]
        self._v2 = [0.0, 0.0]

    def add(self, gold: tuple[str, ...] | None, prediction: str) -> None:
        if gold is None:
            return
        self.count += 1
        v2_gold = v2_ground_truths(gold)
        exact, f1 = question_scores(prediction, v2_gold)
        self._v2[0] += exact
        self._v2[1] += f1
        if not gold:
            self.unanswerable += 1
            return
        # Usually every gold has words in it, v2.0 drops none, and both rules score alike: score once then.
        if v2_gold != gold:
            exact, f1 = question_scores(prediction, gold, "v1.1")
        self._v1[0] += exact
        self._v1[1] += f1

    def add_written(self, record: Any, line: dict[str, Any]) -> None:
        """Score an answer an earlier run wrote (a resume): `line` is its parsed output line."""
        self.add(record.gold, line["answer"])

    def result(self) -> GoldScores | None:
        if not self.count:
            return None
        rules, (exact, f1) = ("v2.0", self._v2) if self.unanswerable else ("v1.1", self._v1)
        return GoldScores(rules, 100 * exact / self.count, 100 * f1 / self.count, self.count)
