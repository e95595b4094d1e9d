"""What a training run is asked to do: data, model, output and the recipe's hyperparameters.

The defaults are the notebook's recipe (lr 3e-5, batch 16, 2 epochs, weight decay 0.01, windows of 384 tokens with
stride 128), so `qa-train --train FILE --output DIR` reproduces it; only the speed settings differ (dynamic padding,
length-grouped batches, bf16 where the CPU has it), and those do not change what is learned, only how fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "bf16")
# DistilBERT's SQuAD recipe weighs the soft and hard targets about equally and softens at T = 2.
DEFAULT_DISTILL_WEIGHT = 0.5
DEFAULT_TEMPERATURE = 2.0


class TrainingInputError(ValueError):
    """Bad input for a run (a file, the model, the output folder or an option); one line that names the culprit."""


@dataclass(frozen=True)
class TrainOptions:
    train: str  # a SQuAD JSON / JSONL file, or a Hugging Face dataset name
    output: str
    validation: str | None = None
    model: str | None = None  # None: the packaged all-MiniLM-L6-v2 with a fresh QA head
    # Take the notebook's 5000/1000/2000 train/validation/test splits from a shuffled `train`.
    seed_splits: bool = False

    learning_rate: float = 3e-5
    batch_size: int = 16  # per device; torchrun multiplies it by the number of processes
    eval_batch_size: int = 64  # evaluation only; it does not change results, and sorted windows pad little
    epochs: int = 2
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    max_length: int = 384
    stride: int = 128
    max_question_tokens: int = 64  # longer questions are cut (with a warning) so the context keeps room
    n_best: int = 20  # decoding: top starts x top ends per window, as in the notebook
    max_answer_length: int = 30

    max_train_examples: int | None = None
    max_eval_examples: int | None = None  # per evaluated split (validation, test)

    precision: Precision = "auto"
    group_by_length: bool = True
    seed: int = 42
    logging_steps: int = 50
    save_steps: int | None = None  # None: a checkpoint at the end of every epoch
    save_total_limit: int | None = 2  # checkpoints kept; None keeps all
    resume: bool = False
    overwrite: bool = False

    # Distillation (training/distill.py): a fine-tuned QA checkpoint whose start/end distributions the student learns
    # too. The weight and temperature default to DEFAULT_DISTILL_WEIGHT / DEFAULT_TEMPERATURE once a teacher is set.
    teacher: str | None = None
    distill_weight: float | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        positive = {
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
            "epochs": self.epochs,
            "max_length": self.max_length,
            "max_question_tokens": self.max_question_tokens,
            "n_best": self.n_best,
            "max_answer_length": self.max_answer_length,
            "logging_steps": self.logging_steps,
            "max_train_examples": self.max_train_examples,
            "max_eval_examples": self.max_eval_examples,
            "save_steps": self.save_steps,
            "save_total_limit": self.save_total_limit,
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                raise TrainingInputError(f"{name} must be at least 1, got {value}")
        if not self.learning_rate > 0:
            raise TrainingInputError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise TrainingInputError(f"weight_decay must not be negative, got {self.weight_decay}")
        if not 0 <= self.warmup_ratio < 1:
            raise TrainingInputError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.stride < 0:
            raise TrainingInputError(f"stride must not be negative, got {self.stride}")
        if self.precision not in PRECISIONS:
            raise TrainingInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.seed_splits and self.validation is not None:
            raise TrainingInputError("--seed-splits takes the validation split from --train; drop --validation")
        if self.resume and self.overwrite:
            raise TrainingInputError(
                "--resume continues the run in the output folder and --overwrite discards it; pick one"
            )
        self._check_distillation()

    def _check_distillation(self) -> None:
        if self.teacher is None:
            for flag, value in (("--distill-weight", self.distill_weight), ("--temperature", self.temperature)):
                if value is not None:
                    raise TrainingInputError(f"{flag} needs --teacher")
            return
        if self.distill_weight is None:
            object.__setattr__(self, "distill_weight", DEFAULT_DISTILL_WEIGHT)  # frozen: resolved once, here
        if self.temperature is None:
            object.__setattr__(self, "temperature", DEFAULT_TEMPERATURE)
        if not 0 <= self.distill_weight <= 1:
            raise TrainingInputError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if not self.temperature > 0:
            raise TrainingInputError(f"temperature must be positive, got {self.temperature}")
