"""`training_report.json`: what was trained, on which bytes, how well and how fast, with which libraries."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    source: str  # path or Hub name the run started from
    model_type: str
    fresh_weights: tuple[str, ...]  # initialised from the seed because the checkpoint lacked them (the QA head)


@dataclass(frozen=True)
class SplitInfo:
    examples: int
    windows: int
    answers_in_no_window: int  # gold answers no window holds whole (trained as "no answer", like the notebook)


@dataclass(frozen=True)
class Scores:
    exact_match: float  # percent
    f1: float  # percent
    examples: int
    loss: float | None


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    step: int  # global step at the end of the epoch
    train_loss: float | None  # mean over the epoch's steps
    validation: Scores | None


@dataclass(frozen=True)
class TrainingReport:
    output: str
    model: ModelInfo
    hyperparameters: dict[str, Any]  # every TrainOptions field, as run
    precision: str  # resolved: "fp32" or "bf16"
    device: str
    world_size: int  # data-parallel processes
    total_batch_size: int  # windows per optimizer step, over all processes
    data: dict[str, dict[str, Any]]  # per input: source, sha256, records_skipped
    skipped_examples: dict[str, int]  # per input: records skipped (answer not in the context at answer_start)
    splits: dict[str, SplitInfo]
    epochs: list[EpochResult]
    final: dict[str, Scores]  # the finished model: "validation", and "test" with --seed-splits
    global_step: int
    resumed_from: str | None
    train_loss: float | None  # the Trainer's mean over this session's steps
    wall_seconds: float  # the whole run: loading, tokenizing, training, evaluating, saving
    train_seconds: float  # training steps of this session, evaluation excluded
    evaluation_seconds: float
    features_per_second: float  # training windows per second (all processes), evaluation excluded
    versions: dict[str, str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False) + "\n"


def epoch_results(log_history: list[dict[str, Any]], steps_per_epoch: int) -> list[EpochResult]:
    """Per-epoch losses and validation scores from the Trainer's log history (kept across --resume)."""
    losses: dict[int, list[tuple[float, int]]] = {}  # epoch -> (mean loss of an interval, steps in it)
    evaluations: dict[int, tuple[int, Scores]] = {}
    previous_step = 0
    for entry in log_history:
        step = entry.get("step", 0)
        epoch = max(1, math.ceil(step / steps_per_epoch))
        if "loss" in entry:
            losses.setdefault(epoch, []).append((entry["loss"], step - previous_step))
            previous_step = step
        if "eval_f1" in entry:
            evaluations[epoch] = (step, scores_from_metrics(entry, "eval"))
    results = []
    for epoch in sorted(set(losses) | set(evaluations)):
        intervals = losses.get(epoch, [])
        steps = sum(count for _, count in intervals)
        train_loss = sum(loss * count for loss, count in intervals) / steps if steps else None
        step, scores = evaluations.get(epoch, (min(epoch * steps_per_epoch, previous_step), None))
        results.append(EpochResult(epoch, step, train_loss, scores))
    return results


def scores_from_metrics(metrics: dict[str, Any], prefix: str) -> Scores:
    return Scores(
        exact_match=metrics[f"{prefix}_exact_match"],
        f1=metrics[f"{prefix}_f1"],
        examples=int(metrics[f"{prefix}_examples"]),
        loss=metrics.get(f"{prefix}_loss"),
    )


def library_versions() -> dict[str, str]:
    versions = {}
    for package in ("spanqa", "torch", "transformers", "tokenizers", "accelerate", "datasets", "numba", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
