"""`train(options)`: fine-tune an extractive QA model with the Trainer and write a loadable model plus a report.
The module is not called train.py: importing that submodule would replace the package attribute `train` (the lazy
wrapper in __init__.py) with the module object.

The steps, in the order a failure should surface: output folder and model checks (seconds), data loading and
validation, tokenizing into engine windows, the Trainer run with an EM/F1 evaluation after every epoch, the test
split (with --seed-splits), and finally publishing model, tokenizer and `training_report.json` from one process.

With a teacher (--teacher), the training loss also pulls the student's start/end distributions towards the teacher's
(`distill.py`, `teacher.py`, `distill_trainer.py`); evaluation is unchanged.

Launched by `torchrun` (or `accelerate launch`), the same code trains data-parallel: the Trainer sets up DDP from the
launcher's environment, each process reads and tokenizes the data itself, and only the first process writes files.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback, TrainingArguments, set_seed

from spanqa.engine.core.decoder import DecodeOptions
from spanqa.engine.core.data import QAExample
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, Windows, make_windows

from spanqa.training.compat import renamed_arguments
from spanqa.training.dataset import LENGTH_COLUMN, WindowCollator, answers_in_no_window, windows_dataset
from spanqa.training.distill_trainer import DistillCollator, DistillingTrainer
from spanqa.training.model import check_model, default_model_path, load_model, resolve_precision
from spanqa.training.options import TrainingInputError, TrainOptions
from spanqa.training.output import (
    REPORT_NAME,
    OutputPlan,
    checkpoint_step,
    new_staging_folder,
    plan_output,
    prepare_output,
    publish,
)
from spanqa.training.report import (
    ModelInfo,
    Scores,
    SplitInfo,
    TrainingReport,
    epoch_results,
    library_versions,
    scores_from_metrics,
)
from spanqa.training.splits import RunData, load_run_data
from spanqa.training.teacher import check_teacher, load_teacher, with_teacher_columns
from spanqa.training.trainer import EvalSet, LogAtEpochEnd, QATrainer

logger = logging.getLogger(__name__)


def train(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainingReport:
    """Run one training job. Raises `TrainingInputError` or `DataFormatError` on bad input, before training starts.

    `callbacks` are extra Trainer callbacks (progress hooks, early stopping, ...)."""
    started = time.perf_counter()
    plan = plan_output(options)
    model_source = options.model or default_model_path()
    check_model(model_source, options.max_length)
    check_teacher(options)
    data = load_run_data(options)

    cuda = torch.cuda.is_available()
    precision = resolve_precision(options.precision, cuda)
    set_seed(options.seed)  # before loading: a fresh QA head is drawn from the global generator
    loaded = load_model(model_source)
    train_windows, eval_sets = _windows(loaded.tokenizer, data, options)
    validation = eval_sets.get("validation")

    # Creating the arguments joins the launcher's process group (a rendezvous), so every process has planned from
    # the folder as it was before the first process changes it.
    args = training_arguments(options, plan, precision, cuda, has_validation=validation is not None)
    if args.process_index == 0:
        prepare_output(plan)
    args.distributed_state.wait_for_everyone()  # nobody reads the folder while the first process tidies it
    trainer_class, train_dataset, collator, extra = QATrainer, windows_dataset(train_windows), None, {}
    if options.teacher is not None:
        # Loaded after the student, so the student's fresh head is drawn exactly as in a run without a teacher.
        teacher = load_teacher(options, args.device, precision)
        train_dataset = with_teacher_columns(train_dataset, train_windows, data.train.examples, teacher, options)
        collator = DistillCollator(loaded.tokenizer, teacher.tokenizer)
        trainer_class = DistillingTrainer
        extra = {"teacher": teacher, "distill_weight": options.distill_weight, "temperature": options.temperature}
    trainer = trainer_class(
        model=loaded.model,
        args=args,
        train_dataset=train_dataset,
        eval_set=validation,
        decode_options=_decode_options(options, eval_sets),
        data_collator=collator or WindowCollator(loaded.tokenizer),
        processing_class=loaded.tokenizer,
        callbacks=[LogAtEpochEnd(), *callbacks],
        **extra,
    )
    if plan.resume_from is not None:
        logger.info("resuming from %s", plan.resume_from)
    trained = trainer.train(resume_from_checkpoint=str(plan.resume_from) if plan.resume_from else None)
    # The Trainer's runtime includes the per-epoch evaluations; throughput should measure training alone.
    train_seconds = trained.metrics["train_runtime"] - trainer.evaluation_seconds
    steps_per_epoch = math.ceil(trainer.state.max_steps / options.epochs)
    steps_this_session = trainer.state.global_step - (checkpoint_step(plan.resume_from) if plan.resume_from else 0)
    windows_trained = steps_this_session / steps_per_epoch * len(train_windows)

    final = {}
    if validation is not None:
        final["validation"] = _final_validation(trainer)
    if "test" in eval_sets:
        final["test"] = scores_from_metrics(trainer.evaluate_set(eval_sets["test"], "test"), "test")

    report = TrainingReport(
        output=str(plan.folder.resolve()),
        model=ModelInfo(loaded.source, loaded.model_type, loaded.fresh_weights),
        hyperparameters=asdict(options),
        precision=precision,
        device=str(args.device),
        world_size=args.world_size,
        total_batch_size=args.train_batch_size * args.gradient_accumulation_steps * args.world_size,
        data={name: asdict(source) for name, source in data.sources.items()},
        skipped_examples={name: source.records_skipped for name, source in data.sources.items()},
        splits={
            "train": _split_info(data.train.examples, train_windows),
            **{name: _split_info(eval_set.examples, eval_set.windows) for name, eval_set in eval_sets.items()},
        },
        epochs=epoch_results(trainer.state.log_history, steps_per_epoch),
        final=final,
        global_step=trainer.state.global_step,
        resumed_from=str(plan.resume_from) if plan.resume_from else None,
        train_loss=trained.training_loss,
        wall_seconds=round(time.perf_counter() - started, 3),
        train_seconds=round(train_seconds, 3),
        evaluation_seconds=round(trainer.evaluation_seconds, 3),
        features_per_second=round(windows_trained / train_seconds, 3) if train_seconds > 0 else 0.0,
        versions=library_versions(),
    )
    if trainer.is_world_process_zero():
        _write_model(trainer, loaded.tokenizer, report, plan)
    args.distributed_state.wait_for_everyone()  # the model is in place before any process returns
    return report


def training_arguments(
    options: TrainOptions, plan: OutputPlan, precision: str, cuda: bool, has_validation: bool
) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(plan.checkpoints),
        learning_rate=options.learning_rate,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.eval_batch_size,
        num_train_epochs=options.epochs,
        weight_decay=options.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy="epoch" if has_validation else "no",
        save_strategy="steps" if options.save_steps else "epoch",
        save_steps=options.save_steps or 500,  # ignored unless saving by steps
        save_total_limit=options.save_total_limit,
        logging_strategy="steps",
        logging_steps=options.logging_steps,
        length_column_name=LENGTH_COLUMN,
        # The collator drops the length column itself; the stock column pruning would drop it before the sampler
        # could read it.
        remove_unused_columns=False,
        bf16=precision == "bf16",
        use_cpu=not cuda,  # also what lets bf16 autocast run on a CPU (the Trainer refuses bf16 without it)
        # CPU processes talk over gloo. Naming a backend outside a launcher makes accelerate expect a process group.
        ddp_backend="gloo" if not cuda and _launched_processes() > 1 else None,
        dataloader_num_workers=0,
        seed=options.seed,
        data_seed=options.seed,
        report_to="none",
        **renamed_arguments(options.warmup_ratio, options.group_by_length),
    )


def _launched_processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun and accelerate launch


def _windows(
    tokenizer: PreTrainedTokenizerBase, data: RunData, options: TrainOptions
) -> tuple[Windows, dict[str, EvalSet]]:
    window_options = WindowOptions(options.max_length, options.stride, options.max_question_tokens)
    try:
        train_windows = make_windows(
            QATokenizer.from_transformers(tokenizer), data.train.examples, window_options, with_labels=True
        )
    except ValueError as error:  # window options that leave no room for context
        raise TrainingInputError(f"--max-length/--stride/--max-question-tokens: {error}") from None
    eval_sets = {
        split.name: EvalSet.build(split.name, split.examples, tokenizer, window_options)
        for split in data.evaluated_splits()
    }
    return train_windows, eval_sets


def _decode_options(options: TrainOptions, eval_sets: dict[str, EvalSet]) -> DecodeOptions:
    has_unanswerable = any(example.is_impossible for eval_set in eval_sets.values() for example in eval_set.examples)
    return DecodeOptions(
        n_best=options.n_best,
        max_answer_length=options.max_answer_length,
        # SQuAD v2 data: answer "" when the CLS (null) score beats the best span, the usual zero threshold.
        null_threshold=0.0 if has_unanswerable else None,
    )


def _final_validation(trainer: QATrainer) -> Scores:
    """The last epoch's evaluation when it scored the final weights (it always does unless a run stopped
    mid-epoch), otherwise a fresh one."""
    for entry in reversed(trainer.state.log_history):
        if "eval_f1" in entry:
            if entry.get("step") == trainer.state.global_step:
                return scores_from_metrics(entry, "eval")
            break
    return scores_from_metrics(trainer.evaluate(), "eval")


def _split_info(examples: list[QAExample], windows: Windows) -> SplitInfo:
    has_answer = np.array([bool(example.answer_texts) for example in examples])
    return SplitInfo(len(examples), len(windows), answers_in_no_window(windows, has_answer))


def _write_model(
    trainer: QATrainer, tokenizer: PreTrainedTokenizerBase, report: TrainingReport, plan: OutputPlan
) -> None:
    staging = new_staging_folder(plan.folder)
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    (staging / REPORT_NAME).write_text(report.to_json(), encoding="utf-8")
    publish(staging, plan.folder)
    logger.info("model and %s written to %s", REPORT_NAME, plan.folder)
