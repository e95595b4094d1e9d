"""A Trainer whose evaluation is the real task metric: windows -> logits -> the engine's span decoder -> EM/F1.

The stock Trainer only reports a loss. Here every evaluation runs the model over all windows of a split, decodes
answers with `spanqa.engine.core.decoder.decode_predictions` and scores them with `spanqa.engine.evaluation.scoring.evaluate`, so the
numbers logged during training are the ones `qa-eval` would print for the same predictions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from torch.utils.data import Sampler, SequentialSampler
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from spanqa.engine.core.data import QAExample
from spanqa.engine.core.decoder import DecodeOptions, decode_predictions
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, Windows, make_windows
from spanqa.engine.evaluation.scoring import EvaluationResult, evaluate

from spanqa.training.compat import groups_by_length
from spanqa.training.dataset import LENGTH_COLUMN, windows_dataset


@dataclass(frozen=True)
class EvalSet:
    """A split ready for evaluation. Dataset rows are sorted by length, so batches pad little: row i is window
    order[i]."""

    name: str
    examples: list[QAExample]
    windows: Windows  # in example order, with labels (for the evaluation loss)
    order: np.ndarray
    dataset: datasets.Dataset

    @classmethod
    def build(
        cls, name: str, examples: list[QAExample], tokenizer: PreTrainedTokenizerBase, options: WindowOptions
    ) -> EvalSet:
        windows = make_windows(QATokenizer.from_transformers(tokenizer), examples, options, with_labels=True)
        order = np.argsort(windows.lengths, kind="stable")
        return cls(name, examples, windows, order, windows_dataset(windows, order))


def score_logits(
    eval_set: EvalSet,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    pad_token_id: int,
    options: DecodeOptions,
) -> EvaluationResult:
    """Decode the answers of a split from its logits (rows in dataset order) and score them."""
    padded = eval_set.windows.padded(np.arange(len(eval_set.windows)), pad_token_id)
    width = padded.input_ids.shape[1]
    in_window_order = []
    for logits in (start_logits, end_logits):
        restored = np.zeros((len(eval_set.windows), width), dtype=np.float32)
        # The loop pads every batch to the longest window seen (with -100); nothing past a window's length is read.
        used = min(width, logits.shape[1])
        restored[eval_set.order, :used] = logits[:, :used]
        in_window_order.append(restored)
    predictions = decode_predictions(
        [example.context for example in eval_set.examples], *in_window_order,
        padded.offsets, padded.lengths, padded.cls_index, padded.example_index, options,
    )  # fmt: skip
    answers = {example.id: prediction.answer for example, prediction in zip(eval_set.examples, predictions)}
    return evaluate(eval_set.examples, answers, data_name=eval_set.name)


class QATrainer(Trainer):
    """`evaluate()` scores `eval_set` with EM/F1; `evaluate_set()` scores any other split (the test split)."""

    def __init__(self, *args, eval_set: EvalSet | None, decode_options: DecodeOptions, **kwargs) -> None:
        super().__init__(*args, eval_dataset=eval_set.dataset if eval_set else None, **kwargs)
        self.eval_set = eval_set
        self.decode_options = decode_options
        self.evaluation_seconds = 0.0  # spent evaluating, so training throughput can leave it out

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        if eval_dataset is not None:
            raise TypeError("QATrainer.evaluate scores its own eval_set; call evaluate_set(EvalSet) for another split")
        if self.eval_set is None:
            raise ValueError("this run has no validation split to evaluate")
        return self.evaluate_set(self.eval_set, metric_key_prefix, ignore_keys)

    def evaluate_set(self, eval_set: EvalSet, prefix: str, ignore_keys: list[str] | None = None) -> dict[str, float]:
        """Loss, EM and F1 of `eval_set`, logged and returned as `{prefix}_loss`, `{prefix}_exact_match`, ..."""
        started = time.perf_counter()
        output = self.evaluation_loop(
            self.get_eval_dataloader(eval_set.dataset),
            description=f"Evaluating {eval_set.name}",
            prediction_loss_only=False,
            ignore_keys=ignore_keys,
            metric_key_prefix=prefix,
        )
        start_logits, end_logits = output.predictions
        pad_token_id = self.processing_class.pad_token_id
        scores = score_logits(eval_set, start_logits, end_logits, pad_token_id, self.decode_options)
        seconds = time.perf_counter() - started
        self.evaluation_seconds += seconds
        metrics = {key: value for key, value in output.metrics.items() if key == f"{prefix}_loss"}
        metrics.update({
            f"{prefix}_exact_match": scores.exact_match,
            f"{prefix}_f1": scores.f1,
            f"{prefix}_examples": scores.total,
            f"{prefix}_runtime": round(seconds, 3),
            f"{prefix}_windows_per_second": round(len(eval_set.windows) / seconds, 3),
        })  # fmt: skip
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _get_eval_sampler(self, eval_dataset) -> Sampler:
        # Predictions are matched back to windows by position, so evaluation must never shuffle
        # (the stock Trainer length-groups evaluation batches too when group_by_length is set).
        return SequentialSampler(eval_dataset)

    def _get_train_sampler(self, train_dataset=None) -> Sampler | None:
        train_dataset = self.train_dataset if train_dataset is None else train_dataset
        if not groups_by_length(self.args) or LENGTH_COLUMN not in train_dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        # The stock lookup hands the sampler a lazy column whose per-item reads cost seconds per epoch on big sets;
        # one bulk read of the precomputed lengths is enough.
        lengths = train_dataset.data.column(LENGTH_COLUMN).to_pylist()
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochSeededLengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths, seed
        )


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """Length-grouped batches in an order drawn from (seed, epoch) alone.

    The stock sampler draws from the global generator, whose state by then depends on every dropout mask drawn so
    far; after --resume it would deal the interrupted epoch differently, and the Trainer's skip of the batches
    already trained would skip other windows. Seeding per epoch makes a resumed epoch replay the same batches.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:  # the Trainer calls this (through accelerate) before every epoch
        self.generator.manual_seed(self.seed + epoch)


class LogAtEpochEnd(TrainerCallback):
    """Close a loss-logging interval at every epoch boundary, so each epoch's mean training loss can be recovered
    exactly from the log history whatever `logging_steps` is."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_log = True
        return control

