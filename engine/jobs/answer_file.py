"""Answer a JSONL file of questions: streamed, in order, resumable, with bad lines set aside.

`answer_file(engine, INPUT, OUTPUT, options)` is the library behind `qa-answer INPUT -o OUTPUT`.

Output: one line per valid input line, in input order: the answer's fields (`Answer.to_dict()`: id, answer, score,
start, end, ...) followed by the input line's other fields, except "question" and "context" (they would make up most
of the output's bytes, and the input has them). An input field named like an answer field is replaced by the new
answer's value, so a previous run's output can be answered again. A gold "answers" field passes through, so the
output still carries what it is scored against.

Crash safety: every output line is written with a single write of the whole line, straight to the file (no buffer
that a crash could cut anywhere), so an interrupted run leaves complete lines and at most one torn last line. A write
per line costs microseconds against the milliseconds a model takes per question, and it keeps the work lost to a crash
to the answers not yet written. `resume=True` then finishes the run so that the file is byte-identical to an
uninterrupted run: it checks the complete lines' ids against the input's valid records in order, drops the torn line,
and restarts the engine at the last group boundary (the engine batches `options.lookahead` consecutive records at a
time and an answer depends only on its group), answering the records of that group again and keeping the lines
already written. The input file is only ever read.

Bad lines (see `jsonl_records`) go to the errors file, one `{"line", "error"[, "id"]}` object per line, and are
skipped; with `strict=True` the first one stops the run after the lines before it are answered (and no errors file
is written: the error is the message). The errors file is
rebuilt by every run, resumed ones included, so it never holds an entry twice. While a resume checks the existing
output, the rebuilt entries are staged in `ERRORS.partial`, so a resume that finds the output belongs to another input
leaves the old errors file as it was.

Memory: records are read one line at a time and at most the engine's look-ahead of them is held, plus the id of every
record seen (to reject duplicates). Gold answers are scored as they stream past.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from spanqa.engine.core.data import QAExample
from spanqa.engine.core.records import MAX_LINE_BYTES, InputRecord, LineError, read_records
from spanqa.engine.core.metrics import question_scores, v2_ground_truths

STDIO = "-"
ERRORS_SUFFIX = ".errors.jsonl"
STAGING_SUFFIX = ".partial"
# Output lines carry no context, but pass-through fields and n-best lists can make them long. A line longer than
# the longest input line plus this margin cannot be one qa-answer wrote.
_MAX_OUTPUT_LINE_BYTES = MAX_LINE_BYTES + 1024 * 1024


class AnswerFileError(ValueError):
    """Bad usage or bad input: the message names the file, and the line where there is one."""


class StrictModeStop(AnswerFileError):
    """`strict=True` met a bad input line; the lines before it were answered."""


class OutputWriteError(RuntimeError):
    """Writing the output or the errors file failed (disk full, permissions, a closed pipe); the output holds every
    line written before, complete."""


class AnsweringEngine(Protocol):
    """What `answer_file` needs from `spanqa.engine.runtime.engine.QAEngine`."""

    options: Any  # .lookahead: the number of consecutive records batched together
    stats: Any  # .tokens and .padded_tokens, cumulative

    def answer_many(self, records: Iterable[QAExample]) -> Iterator[Any]: ...


@dataclass(frozen=True)
class AnswerFileOptions:
    errors: str | os.PathLike | None = None  # None: OUTPUT + ".errors.jsonl" (stderr when OUTPUT is "-"); "-": stderr
    resume: bool = False  # finish the run that wrote OUTPUT
    overwrite: bool = False  # replace a non-empty OUTPUT (and errors file) instead of refusing
    strict: bool = False  # stop at the first bad line instead of skipping it
    progress: bool = False  # a tqdm bar on stderr


@dataclass(frozen=True)
class FileTargets:
    """Where a run reads and writes; None stands for stdin, stdout, stderr."""

    input: Path | None
    output: Path | None
    errors: Path | None

    def input_name(self) -> str:
        return "<stdin>" if self.input is None else str(self.input)

    def output_name(self) -> str:
        return "<stdout>" if self.output is None else str(self.output)


@dataclass(frozen=True)
class GoldScores:
    """Official SQuAD EM/F1 (percent) over the valid records that carry gold answers."""

    rules: str  # "v1.1", or "v2.0" when some question is unanswerable
    exact_match: float
    f1: float
    scored: int


@dataclass(frozen=True)
class AnswerFileResult:
    answered: int  # output lines this call wrote
    already_answered: int  # complete lines an earlier run had written (resume)
    errors: int  # bad input lines skipped, over the whole input
    seconds: float  # wall time of this call
    padding_fraction: float | None  # the engine's, over the batches this call ran
    gold: GoldScores | None  # None when no valid record had gold answers
    errors_file: str | None  # where the skipped lines are listed; None when there were none
    replay_mismatches: int  # resume: re-answered lines that differ from those already written (other options?)

    @property
    def examples_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    def summary_line(self) -> str:
        parts = [f"answered {self.answered}"]
        if self.already_answered:
            parts[0] += f" (+{self.already_answered} already in the output)"
        parts.append(f"{self.errors} bad lines skipped" + (f" (see {self.errors_file})" if self.errors_file else ""))
        parts.append(f"{self.seconds:.2f} s, {self.examples_per_second:.1f} examples/s")
        if self.padding_fraction is not None:
            parts.append(f"padding {100 * self.padding_fraction:.1f}%")
        if self.gold is not None:
            parts.append(
                f"EM {self.gold.exact_match:.2f} F1 {self.gold.f1:.2f} on {self.gold.scored} questions with gold "
                f"answers (SQuAD {self.gold.rules} rules)"
            )
        return "; ".join(parts)


@dataclass(frozen=True)
class OutputProgress:
    """How far an output file got: its complete lines (checked against the input) and a torn tail, if any."""

    complete_lines: int
    complete_bytes: int
    torn_bytes: int  # bytes after the last newline, dropped by a resume
    last_input_line: int  # input line of the last complete answer; 0 when there is none


def check_targets(
    input_path: str | os.PathLike, output_path: str | os.PathLike, options: AnswerFileOptions = AnswerFileOptions()
) -> FileTargets:
    """Validate the paths of a run before any work (and before loading a model): raises `AnswerFileError`."""
    source = None if str(input_path) == STDIO else Path(input_path)
    target = None if str(output_path) == STDIO else Path(output_path)
    if options.resume and options.overwrite:
        raise AnswerFileError("--resume and --overwrite contradict each other; pass one")
    if source is not None:
        if not source.exists():
            raise AnswerFileError(f"{source}: no such file")
        if source.is_dir():
            raise AnswerFileError(f"{source}: is a directory, not a JSONL file")
    if target is None:
        if options.resume:
            raise AnswerFileError("--resume needs an output file to finish; stdout cannot be read back")
    else:
        _check_output_path(target, source, options)
    errors = _errors_path(target, options.errors)
    if errors is not None:
        for other, role in ((source, "input"), (target, "output")):
            if other is not None and _same_file(errors, other):
                raise AnswerFileError(f"{errors}: the errors file cannot be the {role} file")
        if errors.is_dir():
            raise AnswerFileError(f"{errors}: is a directory, not an errors file")
        if not errors.parent.is_dir():
            raise AnswerFileError(f"{errors}: the folder {errors.parent} does not exist")
        if _is_nonempty_file(errors) and not (options.resume or options.overwrite):
            raise AnswerFileError(
                f"{errors}: the errors file already has entries; pass --resume to finish that run, --overwrite to "
                "start over, or --errors to write elsewhere"
            )
    return FileTargets(source, target, errors)


def answer_file(
    engine: AnsweringEngine,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: AnswerFileOptions = AnswerFileOptions(),
) -> AnswerFileResult:
    """Answer every valid line of INPUT into OUTPUT ("-" is stdin/stdout); see the module docstring.

    Raises `AnswerFileError` for bad usage or input (`StrictModeStop` in strict mode), `OutputWriteError` when a
    write fails. Either way, OUTPUT holds every answer written before, on complete lines."""
    started = time.perf_counter()
    targets = check_targets(input_path, output_path, options)
    lookahead = _lookahead(engine)
    tokens_before = _token_counts(engine)
    scorer = _GoldScorer()
    with ExitStack() as stack:
        stream = stack.enter_context(open_input(targets.input))
        errors = _ErrorsSink(targets.errors, staging=options.resume)
        stack.callback(errors.close)
        feed = _RecordFeed(read_records(stream), targets.input_name(), errors, options.strict)

        existing = None
        if options.resume and targets.output is not None and targets.output.exists():
            existing = _check_existing_output(targets.output, feed, lookahead, scorer)
        errors.commit()
        writer = stack.enter_context(
            LineWriter.open(targets.output, existing.progress.complete_bytes if existing else None)
        )
        replay = existing.replay if existing else []

        answered = mismatches = 0
        progress = _progress_bar(options.progress, stack)
        for index, answer in enumerate(engine.answer_many(feed.examples(record for record, _ in replay))):
            record = feed.take_handed(answer)
            line = output_line(answer, record)
            if index < len(replay):
                mismatches += line != replay[index][1]  # the line already written stays
                continue
            writer.write(line)
            scorer.add(record.gold, answer.answer)
            answered += 1
            progress.update()
        if feed.stop_error is not None:
            raise feed.stop_error
    return AnswerFileResult(
        answered=answered,
        already_answered=existing.progress.complete_lines if existing else 0,
        errors=feed.error_count,
        seconds=time.perf_counter() - started,
        padding_fraction=_padding_since(engine, tokens_before),
        gold=scorer.result(),
        errors_file=errors.name if feed.error_count else None,
        replay_mismatches=mismatches,
    )


def read_output_progress(input_path: str | os.PathLike, output_path: str | os.PathLike) -> OutputProgress:
    """How far OUTPUT got answering INPUT, reading both and changing neither: what a resume would keep.

    Raises `AnswerFileError` when OUTPUT's lines do not match INPUT's valid records in order."""
    output = Path(output_path)
    if not output.is_file():
        raise AnswerFileError(f"{output}: no such file")
    targets = FileTargets(None if str(input_path) == STDIO else Path(input_path), output, None)
    with open_input(targets.input) as stream:
        feed = _RecordFeed(read_records(stream), targets.input_name(), _ErrorsSink(None, discard=True), False)
        return _check_existing_output(output, feed, 1, _GoldScorer()).progress


def output_line(answer: Any, record: InputRecord) -> bytes:
    """One output line: the answer's fields, then the record's pass-through fields that the answer does not have."""
    fields = answer.to_dict()
    for key, value in record.passthrough.items():
        fields.setdefault(key, value)
    return (json.dumps(fields, ensure_ascii=False) + "\n").encode("utf-8")


# --- input ------------------------------------------------------------------------------------------------------


class _RecordFeed:
    """The input's valid records, for the engine and for the resume check. Bad lines go to the errors sink, or,
    in strict mode, end the feed; so does a read error. Either way `stop_error` then says why, and the records
    already handed out are still answered before the caller raises it."""

    def __init__(self, results: Iterator[InputRecord | LineError], source: str, errors: _ErrorsSink, strict: bool):
        self._results = results
        self.source = source
        self._errors = errors
        self._strict = strict
        self.stop_error: AnswerFileError | None = None
        self.error_count = 0
        self.last_line = 0
        # Records handed to the engine and not yet answered: at most its look-ahead (plus any prefetch). A deque's
        # append and popleft are thread-safe, in case the engine reads its input from a prefetch thread.
        self._handed: deque[InputRecord] = deque()

    def next_record(self) -> InputRecord | None:
        """The next valid record, or None at the end of the input or after a stop."""
        while self.stop_error is None:
            try:
                result = next(self._results, None)
            except (OSError, EOFError, zlib.error) as error:  # includes gzip.BadGzipFile
                self.stop_error = AnswerFileError(
                    f"{self.source}: cannot be read after line {self.last_line} ({error_reason(error)})"
                )
                return None
            if result is None:
                return None
            self.last_line = result.line
            if isinstance(result, InputRecord):
                return result
            if self._strict:
                self.stop_error = StrictModeStop(f"{result.describe(self.source)} (--strict stops at a bad line)")
                return None
            self.error_count += 1
            self._errors.write(result, self.source)
        return None

    def examples(self, replay: Iterable[InputRecord]) -> Iterator[QAExample]:
        """`replay` first, then the rest of the input, as the engine's examples."""
        for record in replay:
            self._handed.append(record)
            yield record.to_example()
        while (record := self.next_record()) is not None:
            self._handed.append(record)
            yield record.to_example()

    def take_handed(self, answer: Any) -> InputRecord:
        record = self._handed.popleft()
        if answer.id != record.id:  # the engine's contract is input order; a break of it would misfile answers
            raise RuntimeError(f"the engine answered id {answer.id!r} where {record.id!r} was next")
        return record


def open_input(path: Path | None) -> Any:
    if path is None:
        return _NonClosing(sys.stdin.buffer)
    try:
        # gzip.open checks nothing until the first read; a corrupt file surfaces there, as a read error.
        return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    except OSError as error:
        raise AnswerFileError(f"{path}: cannot be read ({error_reason(error)})") from None


class _NonClosing:
    """Lends a stream (stdin, stdout) to a `with` block without closing it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def __enter__(self) -> BinaryIO:
        return self.stream

    def __exit__(self, *exc_info: object) -> None:
        return None


# --- resume -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ExistingOutput:
    progress: OutputProgress
    # The records since the last look-ahead group boundary, with the lines already written for them: the engine
    # restarts at that boundary so that their group, and so every later answer, is batched as in one run.
    replay: list[tuple[InputRecord, bytes]]


def _check_existing_output(path: Path, feed: _RecordFeed, lookahead: int, scorer: _GoldScorer) -> _ExistingOutput:
    replay: list[tuple[InputRecord, bytes]] = []
    complete_lines = complete_bytes = torn_bytes = last_input_line = 0
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise AnswerFileError(f"{path}: cannot be read ({error_reason(error)})") from None
    with handle:
        while raw := handle.readline(_MAX_OUTPUT_LINE_BYTES + 1):
            if not raw.endswith(b"\n"):
                if len(raw) > _MAX_OUTPUT_LINE_BYTES:
                    raise AnswerFileError(f"{path}:{complete_lines + 1}: not a qa-answer output line (too long)")
                torn_bytes = len(raw)  # the last line, cut short by a crash
                break
            where = f"{path}:{complete_lines + 1}"
            written = _parse_output_line(raw, where)
            record = feed.next_record()
            if record is None:
                if feed.stop_error is not None:
                    raise feed.stop_error
                raise AnswerFileError(
                    f"{where}: the output has more answers than {feed.source} has valid lines; it belongs to "
                    "another input (pass --overwrite to start over, or write elsewhere)"
                )
            if record.id != written["id"]:
                raise AnswerFileError(
                    f"{where}: answers id {written['id']!r}, but the next valid input line ({feed.source}:"
                    f"{record.line}) has id {record.id!r}: the output belongs to another input (pass --overwrite to "
                    "start over, or write elsewhere)"
                )
            scorer.add(record.gold, written["answer"])
            if complete_lines % lookahead == 0:
                replay.clear()
            replay.append((record, raw))
            complete_lines += 1
            complete_bytes += len(raw)
            last_input_line = record.line
    if complete_lines % lookahead == 0:
        replay.clear()
    return _ExistingOutput(OutputProgress(complete_lines, complete_bytes, torn_bytes, last_input_line), replay)


def _parse_output_line(raw: bytes, where: str) -> dict[str, Any]:
    try:
        written = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnswerFileError(f"{where}: not a qa-answer output line ({error})") from None
    if not isinstance(written, dict) or not all(isinstance(written.get(key), str) for key in ("id", "answer")):
        raise AnswerFileError(f'{where}: not a qa-answer output line (no string "id" and "answer")')
    return written


# --- output -----------------------------------------------------------------------------------------------------


class LineWriter:
    """Writes whole lines, one write each, straight to the file; on a failed write, cuts the file back to its last
    complete line so that a half-written line never stays behind. Shared by `answer_file` and the Ray driver."""

    def __init__(self, handle: BinaryIO, name: str, size: int | None, owns_handle: bool = True) -> None:
        self._handle = handle
        self._name = name
        self._owns_handle = owns_handle
        self._size = size  # bytes of complete lines; None for a stream that cannot be cut back (stdout, a pipe)
        self.lines = 0

    @classmethod
    def open(cls, path: Path | None, keep_bytes: int | None) -> LineWriter:
        """`path` None is stdout; `keep_bytes` (resume) is how much of the existing file holds complete lines."""
        if path is None:
            return cls(sys.stdout.buffer, "<stdout>", None, owns_handle=False)
        try:
            if keep_bytes is not None:
                handle = open(path, "r+b", buffering=0)
                handle.truncate(keep_bytes)  # drops the torn last line
                handle.seek(keep_bytes)
            else:
                handle = open(path, "wb", buffering=0)
        except OSError as error:
            raise AnswerFileError(f"{path}: cannot be written ({error_reason(error)})") from None
        return cls(handle, str(path), (keep_bytes or 0) if path.is_file() else None)

    def write(self, line: bytes) -> None:
        try:
            view = memoryview(line)
            while view:  # a raw write may take part of the buffer (e.g. when the disk fills); the rest follows
                written = self._handle.write(view)
                view = view[written:]
            self._handle.flush()
        except BrokenPipeError:  # the pipe's reader went away (`| head`): it wanted no more; the caller decides
            raise
        except OSError as error:
            self._cut_back()
            raise OutputWriteError(
                f"{self._name}: cannot be written ({error_reason(error)}); it holds {self.lines} complete lines from "
                "this run" + (" and can be finished with --resume" if self._size is not None else "")
            ) from None
        self.lines += 1
        if self._size is not None:
            self._size += len(line)

    def _cut_back(self) -> None:
        if self._size is None:
            return
        try:
            self._handle.truncate(self._size)
        except OSError:
            pass  # the torn line stays; a resume drops it

    def __enter__(self) -> LineWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_handle:
            self._handle.close()


class _ErrorsSink:
    """The errors file: one JSON object per skipped line, created on the first one (no errors, no file).

    `staging=True` (a resume) writes to ERRORS.partial until `commit()`, which puts it in the errors file's place; a
    resume that fails its check never reaches the commit, so the previous errors file survives it.
    None writes human-readable lines to stderr instead."""

    def __init__(self, path: Path | None, staging: bool = False, discard: bool = False) -> None:
        self._path = path
        self._discard = discard
        self._staging = staging and path is not None
        self._handle: BinaryIO | None = None
        self.name = "<stderr>" if path is None else str(path)
        if path is not None and not self._staging and path.is_file():
            self._remove(path)  # a fresh run: the previous errors file describes another run

    def write(self, error: LineError, source: str) -> None:
        if self._discard:
            return
        if self._path is None:
            print(f"qa-answer: skipped {error.describe(source)}", file=sys.stderr)
            return
        try:
            if self._handle is None:
                self._handle = open(self._staging_path() if self._staging else self._path, "wb", buffering=0)
            self._handle.write(error.to_json_line())
        except OSError as error_writing:
            raise OutputWriteError(f"{self.name}: cannot be written ({error_reason(error_writing)})") from None

    def commit(self) -> None:
        if not self._staging:
            return
        self._staging = False
        staged = self._staging_path()
        try:
            if self._handle is not None:
                os.replace(staged, self._path)  # the open handle follows the file to its new name
            elif self._path.is_file():
                self._remove(self._path)
        except OSError as error:
            raise OutputWriteError(f"{self.name}: cannot be replaced ({error_reason(error)})") from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._staging:  # never committed: the check failed, so the staged entries are not wanted
            self._staging_path().unlink(missing_ok=True)

    def _staging_path(self) -> Path:
        return self._path.with_name(self._path.name + STAGING_SUFFIX)

    def _remove(self, path: Path) -> None:
        try:
            path.unlink()
        except OSError as error:
            raise AnswerFileError(f"{path}: the previous errors file cannot be removed ({error_reason(error)})") from None


# --- scoring ----------------------------------------------------------------------------------------------------


class _GoldScorer:
    """Streaming official EM/F1. Both rule sets are summed, since whether a v2.0 (unanswerable) question is coming
    is only known at the end; v1.1 is reported when none came, as `scoring.evaluate` decides."""

    def __init__(self) -> None:
        self.count = 0
        self.unanswerable = 0
        self._v1 = [0.0, 0.0]
        self._v2 = [0.0, 0.0]

    def add(self, gold: tuple[str, ...] | None, prediction: str) -> None:
        if gold is None:
            return
        self.count += 1
        v2_gold = v2_ground_truths(gold)
        exact, f1 = question_scores(prediction, v2_gold)
        self._v2[0] += exact
        self._v2[1] += f1
        if not gold:
            self.unanswerable += 1
            return
        # Usually every gold has words in it, v2.0 drops none, and both rules score alike: score once then.
        if v2_gold != gold:
            exact, f1 = question_scores(prediction, gold)
        self._v1[0] += exact
        self._v1[1] += f1

    def result(self) -> GoldScores | None:
        if not self.count:
            return None
        rules, (exact, f1) = ("v2.0", self._v2) if self.unanswerable else ("v1.1", self._v1)
        return GoldScores(rules, 100 * exact / self.count, 100 * f1 / self.count, self.count)


# --- helpers ----------------------------------------------------------------------------------------------------


def _check_output_path(target: Path, source: Path | None, options: AnswerFileOptions) -> None:
    if target.name.endswith(".gz"):
        raise AnswerFileError(f"{target}: the output is written uncompressed (a resume appends to it); drop the .gz")
    if target.is_dir():
        raise AnswerFileError(f"{target}: is a directory; -o takes a file name")
    if not target.parent.is_dir():
        raise AnswerFileError(f"{target}: the folder {target.parent} does not exist")
    if source is not None and _same_file(target, source):
        raise AnswerFileError(f"{target}: the output cannot be the input file")
    if options.resume and target.exists() and not target.is_file():
        raise AnswerFileError(f"{target}: --resume needs a regular output file")
    if _is_nonempty_file(target) and not (options.resume or options.overwrite):
        raise AnswerFileError(
            f"{target}: already holds answers; pass --resume to finish that run, or --overwrite to start over"
        )


def _errors_path(output: Path | None, errors: str | os.PathLike | None) -> Path | None:
    if errors is None:
        return None if output is None else output.with_name(output.name + ERRORS_SUFFIX)
    return None if str(errors) == STDIO else Path(errors)


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first.exists() and second.exists() and os.path.samefile(first, second)
    except OSError:
        return False


def _is_nonempty_file(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _lookahead(engine: AnsweringEngine) -> int:
    lookahead = getattr(getattr(engine, "options", None), "lookahead", None)
    if not isinstance(lookahead, int) or lookahead < 1:
        raise TypeError(f"the engine must have options.lookahead, a positive int (got {lookahead!r})")
    return lookahead


def _token_counts(engine: AnsweringEngine) -> tuple[int, int] | None:
    stats = getattr(engine, "stats", None)
    if stats is None or not hasattr(stats, "tokens") or not hasattr(stats, "padded_tokens"):
        return None
    return stats.tokens, stats.padded_tokens


def _padding_since(engine: AnsweringEngine, before: tuple[int, int] | None) -> float | None:
    """The padding share of the batches run since `before`: the engine's stats count from its creation, and one
    engine may answer several files."""
    after = _token_counts(engine)
    if before is None or after is None or after[1] < before[1]:  # counts reset meanwhile (reset_stats)
        return None
    tokens, padded = after[0] - before[0], after[1] - before[1]
    return 1.0 - tokens / padded if padded else None


def _progress_bar(enabled: bool, stack: ExitStack) -> Any:
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return stack.enter_context(tqdm(desc="qa-answer", unit=" examples", file=sys.stderr, dynamic_ncols=True))


class _NoProgress:
    def update(self, count: int = 1) -> None:
        return None


def error_reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__

