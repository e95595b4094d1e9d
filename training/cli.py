"""`qa-train`: fine-tune an extractive QA model; a thin argparse layer over `spanqa.training.train`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from spanqa.engine.cli.common import EXIT_OK, CommandError, add_debug_flag, os_error_message, require_extra, run_command
from spanqa.engine.core.data import DataFormatError

from spanqa.training.options import (
    DEFAULT_DISTILL_WEIGHT,
    DEFAULT_TEMPERATURE,
    PRECISIONS,
    TrainingInputError,
    TrainOptions,
)

PROGRAM = "qa-train"
_DEFAULTS = TrainOptions(train="", output="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Fine-tune an extractive question answering model with the notebook's recipe (lr 3e-5, batch 16, "
            "2 epochs, weight decay 0.01, 384-token windows with stride 128), evaluating exact match and F1 after "
            "every epoch. Writes a Hugging Face model folder (loadable with AutoModelForQuestionAnswering) with "
            "training_report.json; checkpoints go to its checkpoints/ subfolder."
        ),
        epilog=(
            "Data-parallel: launch the same command with `torchrun --nproc_per_node N -m spanqa.training.cli ...` "
            "(or `accelerate launch`); --batch-size is per process. "
            "Exit status: 0 on success, 2 on bad arguments or bad input (one line naming the file or option), "
            "1 on an unexpected failure (one line; --debug adds the traceback), 130 when interrupted (continue with --resume)."
        ),
    )
    data = parser.add_argument_group("data")
    data.add_argument("--train", required=True, metavar="DATA",
                      help="training questions: official SQuAD JSON (v1.1/v2.0, plain or .gz), JSONL records, "
                      "or a Hugging Face dataset name (its 'train' split)")
    data.add_argument("--validation", metavar="DATA",
                      help="questions scored with EM/F1 after every epoch (a Hugging Face name loads its "
                      "'validation' split); without it (and without --seed-splits) no evaluation runs")
    data.add_argument("--seed-splits", action="store_true",
                      help="take the notebook's splits from --train shuffled with seed 42: 5000 train, 1000 "
                      "validation (scored every epoch), 2000 test (scored at the end, recorded in the report)")
    data.add_argument("--max-train-examples", type=int, metavar="N",
                      help="train on the first N training examples only (quick runs)")
    data.add_argument("--max-eval-examples", type=int, metavar="N",
                      help="score only the first N examples of each evaluated split (quick runs)")

    model = parser.add_argument_group("model and output")
    model.add_argument("--output", required=True, metavar="DIR",
                       help="folder for the trained model, tokenizer, training_report.json and checkpoints/")
    model.add_argument("--model", metavar="PATH_OR_HUB_NAME",
                       help="model to fine-tune: a local folder or a Hub name of any architecture transformers "
                       "has a question-answering head for (default: the packaged all-MiniLM-L6-v2 with a "
                       "freshly initialised QA head)")
    model.add_argument("--overwrite", action="store_true",
                       help="replace a model or an unfinished run already in DIR")
    model.add_argument("--resume", action="store_true",
                       help="continue from the newest complete checkpoint in DIR/checkpoints after a crash or kill "
                       "(starts afresh if there is none); pass the same options as the first run")
    model.add_argument("--save-steps", type=int, metavar="N",
                       help="checkpoint every N optimizer steps (default: at the end of every epoch)")
    model.add_argument("--save-total-limit", type=int, default=_DEFAULTS.save_total_limit, metavar="K",
                       help="checkpoints to keep, oldest deleted first (default: %(default)s)")

    recipe = parser.add_argument_group("recipe (defaults: the notebook's)")
    recipe.add_argument("--epochs", type=int, default=_DEFAULTS.epochs, metavar="E",
                        help="passes over the training windows (default: %(default)s)")
    recipe.add_argument("--learning-rate", type=float, default=_DEFAULTS.learning_rate, metavar="LR",
                        help="peak AdamW learning rate, decayed linearly to 0 (default: %(default)s)")
    recipe.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, metavar="B",
                        help="training windows per step and process (default: %(default)s)")
    recipe.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay, metavar="WD",
                        help="AdamW weight decay (default: %(default)s)")
    recipe.add_argument("--warmup-ratio", type=float, default=_DEFAULTS.warmup_ratio, metavar="RATIO",
                        help="fraction of the steps spent warming the learning rate up from 0 (default: %(default)s)")
    recipe.add_argument("--max-length", type=int, default=_DEFAULTS.max_length, metavar="TOKENS",
                        help="tokens per window, question included (default: %(default)s)")
    recipe.add_argument("--stride", type=int, default=_DEFAULTS.stride, metavar="TOKENS",
                        help="tokens shared by consecutive windows of a long context (default: %(default)s)")
    recipe.add_argument("--max-question-tokens", type=int, default=_DEFAULTS.max_question_tokens, metavar="TOKENS",
                        help="questions longer than this are cut, with a warning, so the context keeps room in the "
                        "window (default: %(default)s)")
    recipe.add_argument("--seed", type=int, default=_DEFAULTS.seed, metavar="N",
                        help="seeds the new QA head, shuffling and dropout (default: %(default)s)")

    speed = parser.add_argument_group("speed and evaluation")
    speed.add_argument("--precision", choices=PRECISIONS, default=_DEFAULTS.precision,
                       help="bf16 autocast or plain fp32; auto picks bf16 when the hardware computes it natively "
                       "(AVX512-BF16/AMX CPUs, Ampere+ GPUs) and fp32 otherwise (default: %(default)s)")
    speed.add_argument("--no-group-by-length", dest="group_by_length", action="store_false",
                       help="draw batches at random instead of grouping windows of similar length (grouping pads "
                       "less, so steps are faster)")
    speed.add_argument("--eval-batch-size", type=int, default=_DEFAULTS.eval_batch_size, metavar="B",
                       help="windows per evaluation batch and process (default: %(default)s)")
    speed.add_argument("--n-best", type=int, default=_DEFAULTS.n_best, metavar="K",
                       help="decoding: top start and end positions tried per window (default: %(default)s)")
    speed.add_argument("--max-answer-length", type=int, default=_DEFAULTS.max_answer_length, metavar="TOKENS",
                       help="decoding: longest answer in tokens (default: %(default)s)")
    speed.add_argument("--logging-steps", type=int, default=_DEFAULTS.logging_steps, metavar="N",
                       help="log the training loss every N steps, and at every epoch end (default: %(default)s)")
    distill = parser.add_argument_group("distillation")
    distill.add_argument("--teacher", metavar="CHECKPOINT",
                         help="a fine-tuned QA model folder (any tokenizer: positions are matched through character "
                         "offsets) whose start/end distributions the student learns as well as the labels")
    distill.add_argument("--distill-weight", type=float, metavar="A",
                         help="loss = A x KL(teacher || student) + (1 - A) x cross-entropy, A in [0, 1] "
                         f"(default with --teacher: {DEFAULT_DISTILL_WEIGHT})")
    distill.add_argument("--temperature", type=float, metavar="T",
                         help=f"softens both distributions in the KL term, T > 0 (default with --teacher: "
                         f"{DEFAULT_TEMPERATURE})")
    return add_debug_flag(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(
        PROGRAM, build_parser(), _train, argv, interrupted="interrupted; continue with the same command plus --resume"
    )


def _train(arguments: argparse.Namespace) -> int:
    require_extra("train")
    _configure_logging()
    settings = {name: value for name, value in vars(arguments).items() if name != "debug"}
    try:
        options = TrainOptions(**settings)
        from spanqa.training.run import train  # here: --help and usage errors should not wait for torch

        report = train(options)
    except (TrainingInputError, DataFormatError) as error:
        raise CommandError(str(error)) from None
    except OSError as error:  # e.g. permission denied on the output folder; still one line naming the file
        raise CommandError(os_error_message(error)) from None
    final = ", ".join(f"{name} EM {scores.exact_match:.2f} F1 {scores.f1:.2f}" for name, scores in report.final.items())
    logging.getLogger(PROGRAM).info(
        "done: %s in %.0f s at %.1f windows/s%s", report.output, report.wall_seconds, report.features_per_second,
        f"; {final}" if final else "",
    )  # fmt: skip
    return EXIT_OK


def _configure_logging() -> None:
    # Under torchrun every process runs this; only the first one narrates.
    first_process = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(
        level=logging.INFO if first_process else logging.WARNING, format=f"{PROGRAM}: %(message)s", stream=sys.stderr
    )


if __name__ == "__main__":
    sys.exit(main())
