"""`qa-eval`: print the official SQuAD exact-match and F1 scores of a predictions file as one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from spanqa.engine.cli.common import EXIT_OK, CommandError, add_debug_flag, os_error_message, run_command
from spanqa.engine.core.data import DataFormatError
from spanqa.engine.evaluation.scoring import PredictionsError, ScoringError, evaluate_files

PROGRAM = "qa-eval"
_IDS_IN_WARNING = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Score extractive QA predictions with the official SQuAD metrics and print one JSON object: "
            "exact_match, f1 (percentages, 0-100), total (questions in DATA) and missing (questions without "
            "a prediction; each scores 0). When DATA has unanswerable questions (SQuAD v2.0) or --na-probs "
            "is given, the v2.0 rules apply and the HasAns_*/NoAns_* breakdown is added, plus best_exact, "
            "best_f1 and their thresholds with --na-probs. v1.1 data is scored by the official v1.1 script's rules, "
            "v2.0 data by v2.0's. Predictions are matched to DATA's questions by the string form of their ids "
            "(7 and \"7\" are one id)."
        ),
        epilog="Exit status: 0 on success, 2 on bad arguments or bad input (the message names the file and line), 1 on an "
        "unexpected failure (one line; --debug adds the traceback).",
    )
    parser.add_argument(
        "data",
        metavar="DATA",
        help="questions with gold answers: official nested SQuAD JSON (v1.1 or v2.0, plain or .gz), "
        "JSONL records with answers (multi-passage \"contexts\" records included), or a Hugging Face dataset name",
    )
    parser.add_argument(
        "predictions",
        metavar="PREDICTIONS",
        help='predicted answers, either the official {"question id": "answer text"} JSON object or '
        'qa-answer\'s JSON Lines (one {"id": ..., "answer": ...} object per line; other fields are ignored); '
        "the format is detected from the content, and .gz files are read too. "
        "Every id must be a question in DATA",
    )
    parser.add_argument(
        "--na-probs",
        metavar="FILE",
        help='official no-answer probabilities, a JSON object {"question id": probability}, covering every '
        "question in DATA; adds the best scores over no-answer thresholds (SQuAD v2.0 rules)",
    )
    parser.add_argument(
        "--split",
        default="validation",
        help="split to load when DATA is a Hugging Face dataset name (default: %(default)s)",
    )
    return add_debug_flag(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROGRAM, build_parser(), _evaluate, argv)


def _evaluate(arguments: argparse.Namespace) -> int:
    try:
        result = evaluate_files(arguments.data, arguments.predictions, arguments.na_probs, split=arguments.split)
    except (DataFormatError, PredictionsError, ScoringError) as error:
        raise CommandError(str(error)) from None
    except OSError as error:  # e.g. permission denied; the message should still name the file
        raise CommandError(os_error_message(error)) from None

    if result.missing_ids:
        shown = ", ".join(repr(question_id) for question_id in result.missing_ids[:_IDS_IN_WARNING])
        more = ", ..." if len(result.missing_ids) > _IDS_IN_WARNING else ""
        print(
            f"{PROGRAM}: warning: {len(result.missing_ids)} of {result.total} questions have no prediction "
            f"and score 0 (e.g. {shown}{more})",
            file=sys.stderr,
        )
    print(json.dumps(result.to_dict()))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
