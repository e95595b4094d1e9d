"""The official SQuAD metrics: exact match (EM) and token F1, for v1.1 and for v2.0.

Pure functions over strings and mappings; reading files is `scoring.py`'s job.

Per question, a prediction scores the best EM and the best F1 over the question's gold answers, after
both sides are normalised the way the official scripts do. Aggregates are percentages (0-100), as the
official scripts print them. A question without a prediction scores 0 for EM and F1.

The versions differ in two corner cases, and each version's numbers follow its own official script:
- v2.0 drops gold answers that normalise to nothing (three SQuAD dev questions have a "." gold), falling
  back to [""] when none are left; an unanswerable question has the gold [""], so only a prediction that
  normalises to nothing matches it. v1.1 keeps every gold, as its official script does.
- F1 when a side has no tokens: v2.0 says 1 if both have none, else 0. v1.1 says 0 whenever no token is
  shared, so also when both are empty (a "." gold against an empty prediction: EM 1, F1 0).

Deliberate differences from the official v2.0 script (evaluate-v2.0.py), each for a reason given where it is
implemented: a question without a prediction scores 0 and counts in every total (the script would divide by
the predicted questions only, or stop with a KeyError); in the best-threshold search, questions with the same
no-answer probability switch together, and answering an unanswerable question costs what its score says, not
one point whenever the prediction is a non-empty string (`best_threshold`).
"""

from __future__ import annotations

import itertools
import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

# str.translate deletes every character mapped to None; the official scripts strip exactly string.punctuation
# (ASCII only), so typographic dashes and quotes survive normalisation on purpose.
_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, delete ASCII punctuation, drop the articles a/an/the, collapse whitespace.

    The order matters and matches the official scripts: punctuation goes before articles are looked for,
    so "the-end" becomes the single word "theend" and keeps its "the".
    """
    without_punctuation = text.lower().translate(_DELETE_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", without_punctuation).split())


def answer_tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


Rules = Literal["v1.1", "v2.0"]


def exact_match(prediction: str, ground_truth: str) -> float:
    """1.0 when both normalise to the same string, else 0.0 (the same under both versions)."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str, rules: Rules = "v2.0") -> float:
    """Harmonic mean of token precision and recall, counting repeated tokens with multiplicity."""
    return _token_f1(Counter(answer_tokens(prediction)), answer_tokens(ground_truth), rules)


def question_scores(prediction: str, ground_truths: Sequence[str], rules: Rules = "v2.0") -> tuple[float, float]:
    """(EM, F1) of one prediction: the best of each over the gold answers, since matching any gold is right.
    `ground_truths` are taken as given: for v2.0, pass them through `v2_ground_truths` first."""
    if not ground_truths:
        raise ValueError("a question needs at least one gold answer to be scored")
    # Normalising and counting are most of the cost, so the prediction's are done once, not once per gold.
    normalized_prediction = normalize_answer(prediction)
    predicted_counts = Counter(normalized_prediction.split())
    best_exact = best_f1 = 0.0
    for truth in ground_truths:
        normalized_truth = normalize_answer(truth)
        best_exact = max(best_exact, float(normalized_prediction == normalized_truth))
        best_f1 = max(best_f1, _token_f1(predicted_counts, normalized_truth.split(), rules))
    return best_exact, best_f1


def _token_f1(predicted_counts: Counter[str], gold: list[str], rules: Rules) -> float:
    if rules == "v2.0" and (not predicted_counts or not gold):
        # No tokens to overlap: agreeing on "nothing" is a perfect answer, anything else scores nothing.
        return float(not predicted_counts and not gold)
    overlap = sum((predicted_counts & Counter(gold)).values())
    if overlap == 0:  # v1.1 returns here for an empty side too, both empty included
        return 0.0
    precision = overlap / predicted_counts.total()
    recall = overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def v2_ground_truths(answer_texts: Sequence[str]) -> tuple[str, ...]:
    """The gold list the v2.0 script scores against: unanswerable (no answers) becomes [""], and golds
    that normalise to nothing are dropped, since matching them would reward an empty prediction."""
    kept = tuple(text for text in answer_texts if normalize_answer(text))
    return kept or ("",)


OFFICIAL_NA_PROB_THRESH = 1.0  # evaluate-v2.0.py's --na-prob-thresh default


@dataclass(frozen=True)
class QuestionScores:
    """Per-question scores in [0, 1], keyed by question id; questions without a prediction score 0."""

    exact: dict[str, float]
    f1: dict[str, float]
    missing: tuple[str, ...]  # ids with no prediction, in ground-truth order


@dataclass(frozen=True)
class SquadV1Scores:
    exact_match: float  # percent
    f1: float  # percent
    total: int
    missing: tuple[str, ...]


@dataclass(frozen=True)
class SubsetScores:
    """EM and F1 (percent) over one part of a v2.0 set: the answerable or the unanswerable questions."""

    exact: float
    f1: float
    total: int


@dataclass(frozen=True)
class ThresholdScores:
    """The best EM and F1 reachable by abstaining whenever a question's no-answer probability exceeds a
    threshold, and the threshold that reaches each."""

    best_exact: float  # percent
    best_exact_thresh: float
    best_f1: float  # percent
    best_f1_thresh: float


@dataclass(frozen=True)
class SquadV2Scores:
    exact_match: float  # percent
    f1: float  # percent
    total: int
    missing: tuple[str, ...]
    has_ans: SubsetScores | None  # None when the set has no answerable question
    no_ans: SubsetScores | None  # None when the set has no unanswerable question
    thresholds: ThresholdScores | None  # only when no-answer probabilities were given


def score_questions(
    ground_truths: Mapping[str, Sequence[str]], predictions: Mapping[str, str], rules: Rules
) -> QuestionScores:
    """Score each ground-truth question; predictions for ids not in `ground_truths` are ignored (as the
    official scripts do; `scoring.py` rejects them before they get here)."""
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    missing: list[str] = []
    for question_id, golds in ground_truths.items():
        prediction = predictions.get(question_id)
        if prediction is None:
            missing.append(question_id)
            exact[question_id] = f1[question_id] = 0.0
            continue
        exact[question_id], f1[question_id] = question_scores(prediction, golds, rules)
    return QuestionScores(exact, f1, tuple(missing))


def squad_v1_scores(ground_truths: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> SquadV1Scores:
    """SQuAD v1.1 EM and F1: `ground_truths` maps each question id to its gold answer texts."""
    _require_questions(ground_truths)
    scores = score_questions(ground_truths, predictions, "v1.1")
    total = len(ground_truths)
    return SquadV1Scores(
        exact_match=_percent(scores.exact.values(), total),
        f1=_percent(scores.f1.values(), total),
        total=total,
        missing=scores.missing,
    )


def squad_v2_scores(
    answer_texts: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
) -> SquadV2Scores:
    """SQuAD v2.0 scores. `answer_texts` maps each question id to its gold answers; an empty list marks the
    question unanswerable. `na_probs` (question id -> probability that there is no answer), when given,
    must cover every question and adds the best-threshold scores."""
    _require_questions(answer_texts)
    ground_truths = {question_id: v2_ground_truths(texts) for question_id, texts in answer_texts.items()}
    scores = score_questions(ground_truths, predictions, "v2.0")
    total = len(answer_texts)
    answerable = [question_id for question_id, texts in answer_texts.items() if texts]
    unanswerable = [question_id for question_id, texts in answer_texts.items() if not texts]
    thresholds = None
    if na_probs is not None:
        _check_na_probs(scores, na_probs)
        abstained = _abstention_scores(scores, unanswerable)
        thresholds = _best_thresholds(scores, abstained, na_probs, total)
        scores = _abstain_above(scores, abstained, na_probs, OFFICIAL_NA_PROB_THRESH)
    return SquadV2Scores(
        exact_match=_percent(scores.exact.values(), total),
        f1=_percent(scores.f1.values(), total),
        total=total,
        missing=scores.missing,
        has_ans=_subset_scores(scores, answerable),
        no_ans=_subset_scores(scores, unanswerable),
        thresholds=thresholds,
    )


def best_threshold(
    answered: Mapping[str, float], abstained: Mapping[str, float], na_probs: Mapping[str, float], total: int
) -> tuple[float, float]:
    """Best percentage over thresholds t, where a question is abstained on when na_probs[id] > t.

    `answered[id]` and `abstained[id]` are the question's score either way. Questions are switched from
    abstained to answered in increasing probability; questions that share a probability switch together,
    because no threshold can separate them. Abstaining on everything is reported with threshold 0.0, as in
    the official script. Two deliberate differences from the official find_best_thresh, which can each report
    a score that no threshold reaches:
    1. it switches tied questions one at a time, in the file's order, keeping the best running total;
    2. it charges one point for answering an unanswerable question whenever the prediction is a non-empty
       string, where a prediction such as "." normalises to nothing and still scores 1 (so here it costs 0).
    With distinct probabilities and predictions that are empty or have words, the two give the same numbers.
    """
    current = sum(abstained.values())
    best_total, best_thresh = current, 0.0
    by_probability = sorted(answered, key=lambda question_id: na_probs[question_id])
    for probability, group in itertools.groupby(by_probability, key=lambda question_id: na_probs[question_id]):
        current += sum(answered[question_id] - abstained[question_id] for question_id in group)
        if current > best_total:
            best_total, best_thresh = current, float(probability)
    return 100.0 * best_total / total, best_thresh


def _check_na_probs(scores: QuestionScores, na_probs: Mapping[str, float]) -> None:
    lacking = [question_id for question_id in scores.exact if question_id not in na_probs]
    if lacking:
        raise ValueError(
            f"no-answer probabilities are missing for {len(lacking)} questions (e.g. {', '.join(lacking[:3])})"
        )
    not_finite = [question_id for question_id in scores.exact if not math.isfinite(na_probs[question_id])]
    if not_finite:
        raise ValueError(f"no-answer probabilities must be finite numbers (not for {', '.join(not_finite[:3])})")


def _abstention_scores(scores: QuestionScores, unanswerable: Sequence[str]) -> dict[str, float]:
    # Abstaining is right on an unanswerable question and worth nothing on an answerable one. A question
    # without a prediction scores 0 either way: its system never answered, so it cannot have abstained.
    missing = set(scores.missing)
    unanswerable_ids = set(unanswerable)
    return {
        question_id: float(question_id in unanswerable_ids and question_id not in missing)
        for question_id in scores.exact
    }


def _abstain_above(
    scores: QuestionScores, abstained: Mapping[str, float], na_probs: Mapping[str, float], threshold: float
) -> QuestionScores:
    """The scores once every question with na_probs[id] > threshold abstains (the official script's
    apply_no_ans_threshold, which it applies at 1.0 to its main numbers: a no-op for true probabilities)."""
    above = {question_id for question_id in scores.exact if na_probs[question_id] > threshold}
    if not above:
        return scores
    def pick(table: dict[str, float]) -> dict[str, float]:
        return {question_id: abstained[question_id] if question_id in above else value for question_id, value in table.items()}

    return QuestionScores(pick(scores.exact), pick(scores.f1), scores.missing)


def _best_thresholds(
    scores: QuestionScores, abstained: Mapping[str, float], na_probs: Mapping[str, float], total: int
) -> ThresholdScores:
    best_exact, exact_thresh = best_threshold(scores.exact, abstained, na_probs, total)
    best_f1, f1_thresh = best_threshold(scores.f1, abstained, na_probs, total)
    return ThresholdScores(best_exact, exact_thresh, best_f1, f1_thresh)


def _subset_scores(scores: QuestionScores, question_ids: Sequence[str]) -> SubsetScores | None:
    if not question_ids:
        return None
    count = len(question_ids)
    return SubsetScores(
        exact=_percent((scores.exact[question_id] for question_id in question_ids), count),
        f1=_percent((scores.f1[question_id] for question_id in question_ids), count),
        total=count,
    )


def _percent(values: Iterable[float], count: int) -> float:
    return 100.0 * sum(values) / count


def _require_questions(ground_truths: Mapping[str, Sequence[str]]) -> None:
    if not ground_truths:
        raise ValueError("there are no questions to score")
