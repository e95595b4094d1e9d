"""Score predictions against a question answering dataset with the official SQuAD metrics.

The library behind `qa-eval`: `evaluate_files` reads a dataset (anything `load_examples` accepts), a
predictions file and optionally a no-answer probabilities file; `evaluate` does the same for objects
already in memory. SQuAD v2.0 rules apply when the data has an unanswerable question or no-answer
probabilities are given, v1.1 rules otherwise.

Predictions come in either of two shapes, told apart by content rather than by file name:
- the official `{"question id": "answer text", ...}` JSON object;
- qa-answer's JSON Lines: one `{"id": ..., "answer": ..., ...}` object per line (other fields ignored).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from spanqa.engine.core.data import QAExample, load_examples
from spanqa.engine.core.metrics import SubsetScores, ThresholdScores, squad_v1_scores, squad_v2_scores

_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_EXAMPLES_IN_MESSAGES = 3


class PredictionsError(ValueError):
    """A predictions or no-answer probabilities file that cannot be used. The message names the file and,
    where there is one, the line."""


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
    examples = load_examples(data, split=split)
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
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    *,
    data_name: str = "the data",
    predictions_name: str = "predictions",
    na_probs_name: str = "no-answer probabilities",
) -> EvaluationResult:
    """Score in-memory predictions (question id -> answer text). The `*_name`s only label error messages."""
    if not examples:
        raise ScoringError(f"{data_name}: has no questions to score")
    question_ids = [example.id for example in examples]
    _reject_duplicates(question_ids, data_name)
    known = set(question_ids)
    _reject_unknown_ids(predictions, known, predictions_name, data_name)
    unscorable = [example.id for example in examples if not example.is_impossible and not example.answer_texts]
    if unscorable:
        raise ScoringError(
            f"{data_name}: {len(unscorable)} of {len(examples)} questions have no gold answers and are not marked "
            f"unanswerable, "
            f"so they cannot be scored (e.g. {_some(unscorable)})"
        )
    if na_probs is not None:
        _reject_unknown_ids(na_probs, known, na_probs_name, data_name)
        lacking = [question_id for question_id in question_ids if question_id not in na_probs]
        if lacking:
            raise ScoringError(
                f"{na_probs_name}: no probability for {len(lacking)} of {len(question_ids)} questions "
                f"(e.g. {_some(lacking)})"
            )

    if na_probs is None and not any(example.is_impossible for example in examples):
        v1 = squad_v1_scores({example.id: example.answer_texts for example in examples}, predictions)
        return EvaluationResult(v1.exact_match, v1.f1, v1.total, v1.missing, "v1.1")
    v2 = squad_v2_scores(
        {example.id: () if example.is_impossible else example.answer_texts for example in examples},
        predictions,
        na_probs,
    )
    return EvaluationResult(v2.exact_match, v2.f1, v2.total, v2.missing, "v2.0", v2.has_ans, v2.no_ans, v2.thresholds)


def read_predictions(path: str | os.PathLike) -> dict[str, str]:
    """Read official `{id: answer}` JSON or qa-answer JSONL (`{"id", "answer", ...}` per line), plain or .gz."""
    path = Path(path)
    text = _read_text(path)
    start = _skip_whitespace(text, 0)
    if start == len(text):
        raise PredictionsError(f'{path}: is empty; expected an {{"id": "answer"}} JSON object or JSON Lines')
    try:
        first, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise _malformed(path, error) from None
    # Several JSON values, or a lone object shaped like a record, can only be JSON Lines: the official
    # format is a single object whose keys are question ids, and no SQuAD question is called "id".
    if _skip_whitespace(text, end) < len(text) or (isinstance(first, dict) and "id" in first):
        predictions = _read_jsonl_predictions(text, path)
    elif isinstance(first, dict):
        predictions = _read_official_predictions(text, path)
    else:
        raise PredictionsError(
            f'{path}:{_line_of(text, start)}: expected an {{"id": "answer"}} JSON object or JSON Lines records, '
            f"got a JSON {_json_type(first)}"
        )
    if not predictions:
        raise PredictionsError(f"{path}: contains no predictions")
    return predictions


def read_na_probs(path: str | os.PathLike) -> dict[str, float]:
    """Read the official no-answer probabilities file: one JSON object `{id: probability}`."""
    path = Path(path)
    text = _read_text(path)
    if _skip_whitespace(text, 0) == len(text):
        raise PredictionsError(f'{path}: is empty; expected an {{"id": probability}} JSON object')
    probabilities: dict[str, float] = {}
    positions: dict[str, int] = {}
    for question_id, value, position in _members_or_error(text, path):
        _reject_repeat(question_id, position, positions, text, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PredictionsError(
                f"{path}:{_line_of(text, position)}: the probability for id {question_id!r} must be a finite "
                f"number, got {value!r}"
            )
        probabilities[question_id] = float(value)
    if not probabilities:
        raise PredictionsError(f"{path}: contains no probabilities")
    return probabilities


def _read_official_predictions(text: str, path: Path) -> dict[str, str]:
    predictions: dict[str, str] = {}
    positions: dict[str, int] = {}
    for question_id, answer, position in _members_or_error(text, path):
        _reject_repeat(question_id, position, positions, text, path)
        if not isinstance(answer, str):
            raise PredictionsError(
                f"{path}:{_line_of(text, position)}: the answer for id {question_id!r} must be a string, "
                f"got a JSON {_json_type(answer)}"
            )
        predictions[question_id] = answer
    return predictions


def _read_jsonl_predictions(text: str, path: Path) -> dict[str, str]:
    predictions: dict[str, str] = {}
    first_lines: dict[str, int] = {}
    # Split on "\n" only: str.splitlines would also break at U+2028 and friends, which may sit unescaped
    # inside JSON strings.
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise PredictionsError(f"{where}: malformed JSON ({error.msg}, column {error.colno})") from None
        if not isinstance(record, dict):
            raise PredictionsError(f"{where}: expected a JSON object, got a JSON {_json_type(record)}")
        for field in ("id", "answer"):
            if field not in record:
                raise PredictionsError(f'{where}: missing field "{field}"')
            if not isinstance(record[field], str):
                raise PredictionsError(
                    f'{where}: field "{field}" must be a string, got a JSON {_json_type(record[field])}'
                )
        question_id = record["id"]
        if question_id in first_lines:
            raise PredictionsError(
                f"{where}: duplicate id {question_id!r} (first seen at line {first_lines[question_id]})"
            )
        first_lines[question_id] = line_number
        predictions[question_id] = record["answer"]
    return predictions


def _members_or_error(text: str, path: Path) -> Iterator[tuple[str, Any, int]]:
    try:
        yield from _object_members(text)
    except json.JSONDecodeError as error:
        raise _malformed(path, error) from None


def _object_members(text: str) -> Iterator[tuple[str, Any, int]]:
    """Yield (key, value, offset of the key) for each member of the top-level JSON object in `text`.

    `json.load` keeps the last of repeated keys without a word and forgets where each key was; walking
    the top level here keeps both, so a repeated id can be reported with its line.
    """
    position = _skip_whitespace(text, 0)
    if not text.startswith("{", position):
        raise json.JSONDecodeError("Expecting '{'", text, position)
    position = _skip_whitespace(text, position + 1)
    if text.startswith("}", position):
        position += 1
    else:
        while True:
            if not text.startswith('"', position):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, position)
            key_position = position
            key, position = json.decoder.scanstring(text, position + 1)
            position = _skip_whitespace(text, position)
            if not text.startswith(":", position):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, position)
            position = _skip_whitespace(text, position + 1)
            value, position = _DECODER.raw_decode(text, position)
            yield key, value, key_position
            position = _skip_whitespace(text, position)
            if text.startswith(",", position):
                position = _skip_whitespace(text, position + 1)
            elif text.startswith("}", position):
                position += 1
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
    position = _skip_whitespace(text, position)
    if position != len(text):
        raise json.JSONDecodeError("Extra data", text, position)


def _reject_repeat(question_id: str, position: int, positions: dict[str, int], text: str, path: Path) -> None:
    if question_id in positions:
        raise PredictionsError(
            f"{path}:{_line_of(text, position)}: duplicate id {question_id!r} "
            f"(first seen at line {_line_of(text, positions[question_id])})"
        )
    positions[question_id] = position


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


def _read_text(path: Path) -> str:
    if not path.exists():
        raise PredictionsError(f"{path}: no such file")
    if not path.is_file():
        raise PredictionsError(f"{path}: is not a file")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        return raw.decode("utf-8-sig")
    except (gzip.BadGzipFile, EOFError) as error:
        raise PredictionsError(f"{path}: is not a readable gzip file ({error})") from None
    except UnicodeDecodeError as error:
        raise PredictionsError(f"{path}: is not UTF-8 text (bad byte at offset {error.start})") from None


def _malformed(path: Path, error: json.JSONDecodeError) -> PredictionsError:
    return PredictionsError(f"{path}:{error.lineno}: malformed JSON ({error.msg}, column {error.colno})")


def _skip_whitespace(text: str, position: int) -> int:
    return _JSON_WHITESPACE.match(text, position).end()


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _some(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(question_id) for question_id in ids[:_EXAMPLES_IN_MESSAGES])
    return shown + (", ..." if len(ids) > _EXAMPLES_IN_MESSAGES else "")
