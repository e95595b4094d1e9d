"""Load the examples a run trains and evaluates on, skipping (and counting) records whose answer is unusable.

A record whose answer the context does not hold at `answer_start` (typically an answer past the end of the context)
cannot be labelled, so it is skipped and counted rather than failing a long run; every other data error still stops
the run before training starts, with the file and record in the message.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from spanqa.engine.core.data import AnswerSpanError, DataFormatError, QAExample, load_examples, notebook_splits

from spanqa.training.options import TrainingInputError, TrainOptions

logger = logging.getLogger(__name__)

_IDS_IN_MESSAGES = 3


@dataclass(frozen=True)
class DataSource:
    source: str  # the path or dataset name as given
    sha256: str | None  # of the file's bytes; None for a Hugging Face dataset name
    records_skipped: int  # answer not in the context at answer_start


@dataclass(frozen=True)
class Split:
    name: str  # "train", "validation" or "test"
    examples: list[QAExample]


@dataclass(frozen=True)
class RunData:
    train: Split
    validation: Split | None
    test: Split | None  # only with --seed-splits
    sources: dict[str, DataSource]  # "train", and "validation" when it is its own file

    def evaluated_splits(self) -> list[Split]:
        return [split for split in (self.validation, self.test) if split is not None]


def load_run_data(options: TrainOptions) -> RunData:
    """Read, split, limit and validate the examples of a run; nothing is tokenized yet."""
    train_source, train_examples = _load_source(options.train, hub_split="train")
    sources = {"train": train_source}
    test = None
    if options.seed_splits:
        if train_source.records_skipped:
            logger.warning(
                "%d train records were skipped before the notebook's shuffle, so the splits are not the notebook's",
                train_source.records_skipped,
            )
        try:
            parts = notebook_splits(train_examples)
        except DataFormatError as error:
            raise TrainingInputError(f"{options.train}: --seed-splits: {error}") from None
        train = Split("train", parts["train"])
        validation = Split("validation", parts["validation"])
        test = Split("test", parts["test"])
    else:
        train = Split("train", train_examples)
        validation = None
        if options.validation is not None:
            validation_source, validation_examples = _load_source(options.validation, hub_split="validation")
            sources["validation"] = validation_source
            validation = Split("validation", validation_examples)

    train = _limit(train, options.max_train_examples)
    validation = _limit(validation, options.max_eval_examples)
    test = _limit(test, options.max_eval_examples)
    validation_source = options.validation or options.train
    for split, source in ((train, options.train), (validation, validation_source), (test, options.train)):
        if split is not None:
            _require_usable(split, source)
    return RunData(train, validation, test, sources)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_source(source: str, hub_split: str) -> tuple[DataSource, list[QAExample]]:
    skipped: list[AnswerSpanError] = []

    def skip_unusable_answers(error: DataFormatError) -> None:
        if not isinstance(error, AnswerSpanError):
            raise error  # anything else is bad input that training must not paper over
        skipped.append(error)

    examples = load_examples(source, split=hub_split, on_error=skip_unusable_answers)
    if skipped:
        logger.warning(
            "%s: skipped %d record(s) whose answer is not in the context at answer_start (first: %s)",
            source, len(skipped), skipped[0],
        )  # fmt: skip
    if not examples:
        detail = f" ({len(skipped)} skipped: answer not in the context)" if skipped else ""
        raise TrainingInputError(f"{source}: holds no usable examples{detail}")
    path = Path(source)
    sha256 = file_sha256(path) if path.is_file() else None
    return DataSource(source, sha256, len(skipped)), examples


def _limit(split: Split | None, limit: int | None) -> Split | None:
    if split is None or limit is None:
        return split
    return Split(split.name, split.examples[:limit])


def _require_usable(split: Split, source: str) -> None:
    """Every example needs a gold answer or an explicit no-answer: training labels and EM/F1 both depend on it."""
    unlabelled = [example.id for example in split.examples if not example.answer_texts and not example.is_impossible]
    if unlabelled:
        shown = ", ".join(repr(example_id) for example_id in unlabelled[:_IDS_IN_MESSAGES])
        raise TrainingInputError(
            f"{source}: {len(unlabelled)} {split.name} example(s) have no answers and are not marked unanswerable "
            f"(e.g. {shown}); training needs gold answers"
        )

