"""Score predictions against a question answering dataset with the official SQuAD metrics.

The library behind `qa-eval`: `evaluate_files` reads a dataset (anything `load_examples` accepts), a
predictions file and optionally a no-answer probabilities file (`predictions.py`); `evaluate` does the same for
objects already in memory. SQuAD v2.0 rules apply when the data has an unanswerable question or no-answer
probabilities are given, v1.1 rules otherwise (`metrics.py` says what differs). Ids are matched by their string
form (records rule 3): a JSONL prediction with id 7 answers the gold question "7".
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from spanqa.engine.core.data import QAExample, load_examples
from spanqa.engine.core.metrics import SubsetScores, ThresholdScores, squad_v1_scores, squad_v2_scores
from spanqa.engine.core.records import id_key
from spanqa.engine.evaluation.predictions import PredictionsError, read_na_probs, read_predictions

__all__ = ["EvaluationResult", "PredictionsError", "ScoringError", "evaluate", "evaluate_files", "read_na_probs",
           "read_predictions"]  # fmt: skip
_EXAMPLES_IN_MESSAGES = 3


class ScoringError(ValueError):
    """Predictions and data that do not fit together, e.g. predicted ids that are not in the data."""


@dataclass(frozen=True)
class EvaluationResult:
    exact_match: float  # percent, 0-100
    f1: float  # percent, 0-100
    total: int  # questions in the data
    missing_ids: tuple[str, ...]  # questions without a prediction (each scored 0), in data order
    rules: Literal["v1.1", "v2.0"]  # which official script's rules were applied
    has_ans: SubsetScores | None = None  # v2.0 only, and only if the data has answerable questions
    no_ans: SubsetScores | None = None  # v2.0 only, and only if the data has unanswerable questions
    thresholds: ThresholdScores | None = None  # only with no-answer probabilities

    def to_dict(self) -> dict[str, float | int]:
        """Flat JSON-ready summary; the v2.0 keys are named as the official evaluate-v2.0 script names them."""
        summary: dict[str, float | int] = {
            "exact_match": self.exact_match,
            "f1": self.f1,
            "total": self.total,
            "missing": len(self.missing_ids),
        }
        for prefix, subset in (("HasAns", self.has_ans), ("NoAns", self.no_ans)):
            if subset is not None:
                summary[f"{prefix}_exact"] = subset.exact
                summary[f"{prefix}_f1"] = subset.f1
                summary[f"{prefix}_total"] = subset.total
        if self.thresholds is not None:
            summary["best_exact"] = self.thresholds.best_exact
            summary["best_exact_thresh"] = self.thresholds.best_exact_thresh
            summary["best_f1"] = self.thresholds.best_f1
            summary["best_f1_thresh"] = self.thresholds.best_f1_thresh
        return summary


def evaluate_files(
    data: str | os.PathLike,
    predictions: str | os.PathLike,
    na_probs: str | os.PathLike | None = None,
    split: str = "validation",
) -> EvaluationResult:
    """Score a predictions file against a dataset. Raises `DataFormatError` for bad data,
    `PredictionsError` for a bad predictions or probabilities file, `ScoringError` when they do not fit."""
    examples = load_examples(data, split=split, passages=True)  # multi-passage records are scored like others
    predicted = read_predictions(predictions)
    probabilities = read_na_probs(na_probs) if na_probs is not None else None
    return evaluate(
        examples,
        predicted,
        probabilities,
        data_name=str(data),
        predictions_name=str(predictions),
        na_probs_name=str(na_probs),
    )


def evaluate(
    examples: Sequence[QAExample],
    predictions: Mapping[str | int, str],
    na_probs: Mapping[str | int, float] | None = None,
    *,
    data_name: str = "the data",
    predictions_name: str = "predictions",
    na_probs_name: str = "no-answer probabilities",
) -> EvaluationResult:
    """Score in-memory predictions (question id -> answer text). Ids are matched by their string form; the
    `*_name`s only label error messages."""
    if not examples:
        raise ScoringError(f"{data_name}: has no questions to score")
    question_ids = [id_key(example.id) for example in examples]
    _reject_duplicates(question_ids, data_name)
    known = set(question_ids)
    predictions = _by_id_key(predictions, predictions_name)
    _reject_unknown_ids(predictions, known, predictions_name, data_name)
    unscorable = [key for key, e in zip(question_ids, examples) if not e.is_impossible and not e.answer_texts]
    if unscorable:
        raise ScoringError(
            f"{data_name}: {len(unscorable)} of {len(examples)} questions have no gold answers and are not marked "
            f"unanswerable, "
            f"so they cannot be scored (e.g. {_some(unscorable)})"
        )
    if na_probs is not None:
        na_probs = _by_id_key(na_probs, na_probs_name)
        _reject_unknown_ids(na_probs, known, na_probs_name, data_name)
        lacking = [question_id for question_id in question_ids if question_id not in na_probs]
        if lacking:
            raise ScoringError(
                f"{na_probs_name}: no probability for {len(lacking)} of {len(question_ids)} questions "
                f"(e.g. {_some(lacking)})"
            )

    if na_probs is None and not any(example.is_impossible for example in examples):
        v1 = squad_v1_scores({key: e.answer_texts for key, e in zip(question_ids, examples)}, predictions)
        return EvaluationResult(v1.exact_match, v1.f1, v1.total, v1.missing, "v1.1")
    v2 = squad_v2_scores(
        {key: () if e.is_impossible else e.answer_texts for key, e in zip(question_ids, examples)},
        predictions,
        na_probs,
    )
    return EvaluationResult(v2.exact_match, v2.f1, v2.total, v2.missing, "v2.0", v2.has_ans, v2.no_ans, v2.thresholds)


def _by_id_key(scored: Mapping[Any, Any], name: str) -> dict[str, Any]:
    keyed = {id_key(question_id): value for question_id, value in scored.items()}
    if len(keyed) != len(scored):
        raise ScoringError(f"{name}: two ids have the same string form (7 and \"7\" are one question)")
    return keyed


def _reject_unknown_ids(scored: Mapping[str, Any], known: set[str], scored_name: str, data_name: str) -> None:
    unknown = [question_id for question_id in scored if question_id not in known]
    if unknown:
        raise ScoringError(
            f"{scored_name}: {len(unknown)} of {len(scored)} ids are not questions in {data_name} "
            f"(e.g. {_some(unknown)})"
        )


def _reject_duplicates(question_ids: Sequence[str], data_name: str) -> None:
    repeated = [question_id for question_id, count in Counter(question_ids).items() if count > 1]
    if repeated:
        raise ScoringError(f"{data_name}: {len(repeated)} question ids occur more than once (e.g. {_some(repeated)})")


def _some(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(question_id) for question_id in ids[:_EXAMPLES_IN_MESSAGES])
    return shown + (", ..." if len(ids) > _EXAMPLES_IN_MESSAGES else "")
