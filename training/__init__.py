"""Fine-tuning extractive QA models: `train(TrainOptions(...)) -> TrainingReport`, and the `qa-train` command.

Importing the package is cheap; `train` imports torch and transformers on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from spanqa.training.options import TrainingInputError, TrainOptions
from spanqa.training.report import TrainingReport

if TYPE_CHECKING:
    from transformers import TrainerCallback

__all__ = ["TrainOptions", "TrainingInputError", "TrainingReport", "train"]


def train(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainingReport:
    """Fine-tune as `options` say and write the model and its report; see `spanqa.training.run.train`."""
    from spanqa.training.run import train as run_training

    return run_training(options, callbacks)
