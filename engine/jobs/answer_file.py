"""Answer a JSONL file of questions: streamed, in order, resumable, with bad lines set aside.

`answer_file(engine, INPUT, OUTPUT, options)` is the library behind `qa-answer INPUT -o OUTPUT`.

Output: one line per valid input line, in input order: the answer's fields (`Answer.to_dict()`: id, answer, score,
start, end, ...) followed by the input line's other fields, except "question" and "context" (they would make up most
of the output's bytes, and the input has them). An input field named like an answer field is replaced by the new
answer's value, so a previous run's output can be answered again. A gold "answers" field passes through, so the
output still carries what it is scored against. Each line is one write (`output`): a crash leaves complete lines.

Resume (`resume=True`) finishes the run so that the file is byte-identical to an uninterrupted run (`resume`), after
checking that the model and the options that decide the answers are those of the run that wrote it (`run_settings`:
OUTPUT.run.json). The input file is only ever read.

Bad lines (see `spanqa.engine.core.records`) go to the errors file and are skipped (`errors_file`, `input`); with
`strict=True` the first one stops the run after the lines before it are answered (and no errors file is written: the
error is the message).

Threads: the input is read and validated, the errors file and the output written, in the caller's thread; the
engine's background thread only tokenizes (`QAEngine.answer_pairs`), and each record travels with its answer.

Memory: records are read one line at a time and at most the engine's look-ahead groups of them are held, plus the id
of every record seen (to reject duplicates). Gold answers are scored as they stream past.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing
from functools import partial
from typing import Any, Protocol

from spanqa.engine.jobs.errors_file import ErrorsFile
from spanqa.engine.jobs.failures import AnswerFileError, OutputWriteError, StrictModeStop
from spanqa.engine.jobs.gold import GoldScorer, GoldScores
from spanqa.engine.jobs.input import RecordFeed, open_input
from spanqa.engine.jobs.options import AnswerFileOptions
from spanqa.engine.jobs.output import JobOutput, output_line
from spanqa.engine.jobs.result import AnswerFileResult, PaddingMeter
from spanqa.engine.jobs.resume import ExistingOutputCheck, OutputProgress, match_existing, read_output_progress
from spanqa.engine.jobs.run_settings import settings_to_write, write_settings
from spanqa.engine.jobs.targets import ERRORS_SUFFIX, STDIO, FileTargets, check_targets


class AnsweringEngine(Protocol):
    """What `answer_file` needs from `spanqa.engine.runtime.engine.QAEngine`."""

    options: Any  # .lookahead: the number of consecutive records batched together
    stats: Any  # .tokens and .padded_tokens, cumulative

    def answer_pairs(self, items: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]: ...

    def answer_settings(self) -> dict[str, Any]: ...


def answer_file(
    engine: AnsweringEngine,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: AnswerFileOptions = AnswerFileOptions(),
    on_skipped: Callable[[str], None] | None = None,
) -> AnswerFileResult:
    """Answer every valid line of INPUT into OUTPUT ("-" is stdin/stdout); see the module docstring.

    `on_skipped` receives a "skipped FILE:LINE: reason" message per bad line when the errors go to stderr (None:
    printed as is). Raises `AnswerFileError` for bad usage or input (`StrictModeStop` in strict mode),
    `OutputWriteError` when a write fails. Either way, OUTPUT holds every answer written before, on complete lines."""
    started = time.perf_counter()
    targets = check_targets(input_path, output_path, options)
    lookahead = _lookahead(engine)
    new_settings = settings_to_write(targets, options, engine.answer_settings() if targets.output else None)
    padding = PaddingMeter(engine)
    scorer = GoldScorer()
    with ExitStack() as stack:
        stream = stack.enter_context(open_input(targets.input))
        errors = stack.enter_context(ErrorsFile(targets.errors, [targets.input_name()], on_skipped))
        feed = RecordFeed([targets.input_name()], errors.write, options.strict)
        records = feed.records(stream)
        existing, replay = None, ()
        if options.resume and targets.output is not None and targets.output.exists():
            check = ExistingOutputCheck(targets.output, lookahead)
            stack.callback(check.close)
            existing, first_left = match_existing(check, records, feed, scorer.add_written)
            replay = existing.replay
            records = itertools.chain([first_left] if first_left else [], records)
        errors.commit()
        output = stack.enter_context(JobOutput(
            targets.output, existing.progress.complete_bytes if existing else None,
            partial(write_settings, targets.settings, new_settings) if new_settings else None,
        ))  # fmt: skip

        mismatches = 0
        progress = _progress_bar(options.progress, stack)
        to_answer = itertools.chain((record for record, _ in replay), records)
        pairs = ((record, record.to_example()) for record in to_answer)
        answers = stack.enter_context(closing(engine.answer_pairs(pairs)))
        for index, (record, answer) in enumerate(answers):
            line = output_line(answer, record)
            if index < len(replay):
                mismatches += line != replay[index][1]  # the line already written stays
                continue
            output.write(line)
            scorer.add(record.gold, answer.answer)
            progress.update()
        output.finish()
    if feed.stop_error is not None:
        raise feed.stop_error
    return AnswerFileResult(
        answered=output.lines,
        already_answered=existing.progress.complete_lines if existing else 0,
        errors=feed.error_count,
        seconds=time.perf_counter() - started,
        padding_fraction=padding.fraction(),
        gold=scorer.result(),
        errors_file=errors.name if feed.error_count else None,
        replay_mismatches=mismatches,
    )


def _lookahead(engine: AnsweringEngine) -> int:
    lookahead = getattr(getattr(engine, "options", None), "lookahead", None)
    if not isinstance(lookahead, int) or lookahead < 1:
        raise TypeError(f"the engine must have options.lookahead, a positive int (got {lookahead!r})")
    return lookahead


def _progress_bar(enabled: bool, stack: ExitStack) -> Any:
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return stack.enter_context(tqdm(desc="answering", unit=" examples", file=sys.stderr, dynamic_ncols=True))


class _NoProgress:
    def update(self, count: int = 1) -> None:
        return None


__all__ = [
    "ERRORS_SUFFIX", "STDIO", "AnswerFileError", "AnswerFileOptions", "AnswerFileResult", "AnsweringEngine",
    "FileTargets", "GoldScores", "OutputProgress", "OutputWriteError", "StrictModeStop", "answer_file",
    "check_targets", "read_output_progress",
]  # fmt: skip
