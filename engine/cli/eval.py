"""`qa-eval`: print the official SQuAD exact-match and F1 scores of a predictions file as one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from spanqa.engine.cli.common import parse_arguments, print_error
from spanqa.engine.core.data import DataFormatError
from spanqa.engine.evaluation.scoring import PredictionsError, ScoringError, evaluate_files

PROGRAM = "qa-eval"
EXIT_BAD_INPUT = 2  # argparse's code for bad usage; bad files are bad usage too
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
        epilog="Exit status: 0 on success, 2 on bad arguments or bad input (the message names the file and line).",
    )
    parser.add_argument(
        "data",
        metavar="DATA",
        help="questions with gold answers: official nested SQuAD JSON (v1.1 or v2.0, plain or .gz), "
        "JSONL records with answers, or a Hugging Face dataset name",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parse_arguments(parser, argv)
    if isinstance(arguments, int):
        return arguments
    try:
        result = evaluate_files(arguments.data, arguments.predictions, arguments.na_probs, split=arguments.split)
    except (DataFormatError, PredictionsError, ScoringError) as error:
        return _fail(str(error))
    except OSError as error:  # e.g. permission denied; the message should still name the file
        return _fail(f"{error.filename}: {error.strerror}" if error.filename else str(error))

    if result.missing_ids:
        shown = ", ".join(repr(question_id) for question_id in result.missing_ids[:_IDS_IN_WARNING])
        more = ", ..." if len(result.missing_ids) > _IDS_IN_WARNING else ""
        print(
            f"{PROGRAM}: warning: {len(result.missing_ids)} of {result.total} questions have no prediction "
            f"and score 0 (e.g. {shown}{more})",
            file=sys.stderr,
        )
    print(json.dumps(result.to_dict()))
    return 0


def _fail(message: str) -> int:
    print_error(PROGRAM, message)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
