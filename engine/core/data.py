"""Read SQuAD-format question answering data into validated `QAExample`s.

Three sources share one record validator, so every source gets the same checks and the same error style:
- the official nested JSON (v1.1 and v2.0), plain or gzip-compressed;
- flat JSONL, one `{"id", "question", "context", "answers"?}` object per line, streamed line by line;
- a Hugging Face dataset name, through `datasets.load_dataset` (needs the Hub, so not used offline).

Every validation error is a `DataFormatError` whose message starts with the file and the line or record.
Each reader takes an optional `on_error` callback: without it the first bad record raises; with it, each bad record
is passed to the callback and skipped (the callback may itself raise to stop). File-level problems (unreadable file,
invalid JSON in the nested format, a wrong top-level shape) always raise: there is no record to skip.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
NOTEBOOK_SPLIT_SEED = 42
NOTEBOOK_SPLIT_SIZES = {"train": 5000, "validation": 1000, "test": 2000}


@dataclass(frozen=True)
class QAExample:
    id: str
    question: str
    context: str
    answer_texts: tuple[str, ...] = ()
    answer_starts: tuple[int, ...] = ()
    title: str = ""
    is_impossible: bool = False  # SQuAD v2: the context holds no answer


class DataFormatError(ValueError):
    """Bad input data. The message names the file and the line or record."""


class AnswerSpanError(DataFormatError):
    """An answer that the context does not hold at its `answer_start` (for instance one running past the end of
    the context). A subclass so that lenient callers can skip these records and still stop on other errors."""


ErrorCallback = Callable[[DataFormatError], None]


def load_examples(
    source: str | os.PathLike, split: str = "validation", on_error: ErrorCallback | None = None
) -> list[QAExample]:
    """Load every example from a SQuAD JSON file, a JSONL file or a Hugging Face dataset name.

    With `on_error`, bad records are reported to it and skipped instead of raising (see the module docstring)."""
    path = Path(source)
    if path.is_file():
        if _is_jsonl(path):
            return list(iter_jsonl_examples(path, on_error=on_error))
        return read_squad_json(path, on_error=on_error)
    if path.exists():
        raise DataFormatError(f"{path}: is not a file")
    if _looks_like_path(str(source)):
        raise DataFormatError(f"{path}: no such file")
    return load_hf_examples(str(source), split=split, on_error=on_error)


def read_squad_json(path: str | os.PathLike, on_error: ErrorCallback | None = None) -> list[QAExample]:
    """Read the official nested format: {"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}.

    With `on_error`, a bad question, paragraph or article is reported to it and skipped (with its questions)."""
    path = Path(path)
    try:
        with _open_text(path) as handle:
            document = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{path}:{error.lineno}: invalid JSON ({error.msg}, column {error.colno})") from None
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as error:
        raise DataFormatError(f"{path}: cannot be read as UTF-8 JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataFormatError(f'{path}: not SQuAD format: the top level must be an object with a "data" list')
    is_v2 = str(document.get("version", "")).startswith("v2")

    examples: list[QAExample] = []
    seen_ids: dict[str, str] = {}
    for a, article in enumerate(document["data"]):
        where = f"{path}: data[{a}]"
        try:
            _require_type(article, dict, where)
            title = _field(article, "title", str, where, default="")
            paragraphs = _field(article, "paragraphs", list, where)
        except DataFormatError as error:
            _report_or_raise(error, on_error)
            continue
        for p, paragraph in enumerate(paragraphs):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            try:
                _require_type(paragraph, dict, where)
                context = _field(paragraph, "context", str, where)
                questions = _field(paragraph, "qas", list, where)
            except DataFormatError as error:
                _report_or_raise(error, on_error)
                continue
            for q, qa in enumerate(questions):
                record_where = f"{path}: data[{a}].paragraphs[{p}].qas[{q}]"
                try:
                    _require_type(qa, dict, record_where)
                    record = {**qa, "context": context, "title": title}
                    example = example_from_record(record, record_where, answers_required=True, allow_impossible=is_v2)
                    _check_unique(example.id, record_where, seen_ids)
                except DataFormatError as error:
                    _report_or_raise(error, on_error)
                    continue
                examples.append(example)
    return examples


def iter_jsonl_examples(path: str | os.PathLike, on_error: ErrorCallback | None = None) -> Iterator[QAExample]:
    """Stream examples from a JSONL file without loading it whole.

    Without `on_error` the first bad line raises. With it, each bad line is passed to `on_error` and skipped,
    so one malformed record never costs the rest of the file. Blank lines are skipped.
    """
    path = Path(path)
    seen_ids: dict[str, str] = {}
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            where = f"{path}:{line_number}"
            try:
                example = _parse_jsonl_line(raw_line, where)
                if example is None:
                    continue
                _check_unique(example.id, where, seen_ids)
            except DataFormatError as error:
                if on_error is None:
                    raise
                on_error(error)
                continue
            yield example


def load_hf_examples(
    name: str, split: str = "validation", config: str | None = None, on_error: ErrorCallback | None = None
) -> list[QAExample]:
    """Load a SQuAD-style dataset from the Hugging Face Hub (columns id/title/context/question/answers)."""
    import datasets  # imported here: it is slow to import and only this source needs it

    try:
        rows = datasets.load_dataset(name, config, split=split)
    except Exception as error:  # datasets raises many unrelated types (connection, missing file, bad name)
        raise DataFormatError(f"{name}: not a local file, and loading it as a Hugging Face dataset failed: {error}") from None
    return list(examples_from_records(rows, source=f"{name}[{split}]", allow_impossible=True, on_error=on_error))


def examples_from_records(
    records: Iterable[Mapping[str, Any]],
    source: str,
    allow_impossible: bool = True,
    on_error: ErrorCallback | None = None,
) -> Iterator[QAExample]:
    """Validate flat records (JSONL-style or Hugging Face rows); `source` names them in errors."""
    seen_ids: dict[str, str] = {}
    for index, record in enumerate(records):
        where = f"{source}: record {index}"
        try:
            example = example_from_record(record, where, answers_required=False, allow_impossible=allow_impossible)
            _check_unique(example.id, where, seen_ids)
        except DataFormatError as error:
            _report_or_raise(error, on_error)
            continue
        yield example


def example_from_record(
    record: Mapping[str, Any], where: str, *, answers_required: bool, allow_impossible: bool
) -> QAExample:
    """Validate one flat record. Answers may be official-style `[{"text", "answer_start"}]` or
    Hugging Face-style `{"text": [...], "answer_start": [...]}`."""
    example_id = _field(record, "id", str, where)
    question = _field(record, "question", str, where)
    context = _field(record, "context", str, where)
    title = _field(record, "title", str, where, default="")
    is_impossible = _field(record, "is_impossible", bool, where, default=False)
    if "answers" not in record:
        if answers_required and not is_impossible:
            raise DataFormatError(f'{where} (id {example_id!r}): missing field "answers"')
        return QAExample(example_id, question, context, title=title, is_impossible=is_impossible)

    texts, starts = _parse_answers(record["answers"], f"{where} (id {example_id!r})")
    for text, start in zip(texts, starts):
        if context[start : start + len(text)] != text:
            raise AnswerSpanError(
                f"{where} (id {example_id!r}): answer_start {start} does not index the answer text {text!r} "
                f"(the context there reads {context[start:start + len(text)]!r})"
            )
    if not texts:
        if not allow_impossible:
            raise DataFormatError(f"{where} (id {example_id!r}): empty answer list in a SQuAD v1.1 file")
        is_impossible = True
    elif is_impossible:
        raise DataFormatError(f"{where} (id {example_id!r}): is_impossible is true but answers are given")
    return QAExample(example_id, question, context, texts, starts, title, is_impossible)


def notebook_splits(
    examples: Sequence[QAExample],
    seed: int = NOTEBOOK_SPLIT_SEED,
    sizes: Mapping[str, int] = NOTEBOOK_SPLIT_SIZES,
) -> dict[str, list[QAExample]]:
    """The notebook's splits: shuffle the train set with `datasets` (seed 42), then cut consecutive slices.

    `Dataset.shuffle` draws its permutation from the seed and the length alone, so shuffling row indices
    reproduces the notebook's examples exactly when `examples` is SQuAD v1.1 train in file order.
    """
    import datasets

    needed = sum(sizes.values())
    if needed > len(examples):
        raise DataFormatError(f"notebook splits need {needed} examples, the train set has {len(examples)}")
    order = datasets.Dataset.from_dict({"row": list(range(len(examples)))}).shuffle(seed=seed)["row"]
    splits, offset = {}, 0
    for name, size in sizes.items():
        splits[name] = [examples[row] for row in order[offset : offset + size]]
        offset += size
    return splits


def _parse_jsonl_line(raw_line: bytes, where: str) -> QAExample | None:
    try:
        line = raw_line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{where}: invalid UTF-8 at byte {error.start}") from None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{where}: invalid JSON ({error.msg}, column {error.colno})") from None
    _require_type(record, dict, where)
    return example_from_record(record, where, answers_required=False, allow_impossible=True)


def _parse_answers(answers: Any, where: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if isinstance(answers, Mapping):  # Hugging Face columns
        texts = _field(answers, "text", list, f"{where} answers")
        starts = _field(answers, "answer_start", list, f"{where} answers")
        if len(texts) != len(starts):
            raise DataFormatError(f"{where}: answers has {len(texts)} texts but {len(starts)} answer_start values")
        pairs = list(zip(texts, starts))
    elif isinstance(answers, list):  # official SQuAD objects
        pairs = []
        for i, answer in enumerate(answers):
            _require_type(answer, dict, f"{where} answers[{i}]")
            pairs.append((answer.get("text"), answer.get("answer_start")))
            for key in ("text", "answer_start"):
                if key not in answer:
                    raise DataFormatError(f'{where} answers[{i}]: missing field "{key}"')
    else:
        raise DataFormatError(f"{where}: answers must be a list or an object, got {type(answers).__name__}")

    for i, (text, start) in enumerate(pairs):
        if not isinstance(text, str):
            raise DataFormatError(f"{where} answers[{i}]: text must be a string, got {type(text).__name__}")
        if isinstance(start, bool) or not isinstance(start, int):
            raise DataFormatError(f"{where} answers[{i}]: answer_start must be an integer, got {type(start).__name__}")
        if start < 0:
            raise DataFormatError(f"{where} answers[{i}]: answer_start {start} is negative")
    return tuple(text for text, _ in pairs), tuple(start for _, start in pairs)


def _report_or_raise(error: DataFormatError, on_error: ErrorCallback | None) -> None:
    """Called from an `except` block: re-raise in strict mode, hand the error over in lenient mode."""
    if on_error is None:
        raise error
    on_error(error)


_MISSING = object()


def _field(record: Mapping[str, Any], key: str, kind: type, where: str, default: Any = _MISSING) -> Any:
    value = record.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise DataFormatError(f'{where}: missing field "{key}"')
        return default
    # bool is an int subclass; an integer where a flag belongs (or the reverse) is a type error too.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataFormatError(f'{where}: field "{key}" must be {kind.__name__}, got {type(value).__name__}')
    return value


def _require_type(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        raise DataFormatError(f"{where}: expected a JSON {_json_name(kind)}, got {_json_name(type(value))}")


def _json_name(kind: type) -> str:
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(kind, "null" if kind is type(None) else kind.__name__)


def _check_unique(example_id: str, where: str, seen: dict[str, str]) -> None:
    if example_id in seen:
        raise DataFormatError(f"{where}: duplicate id {example_id!r} (first seen at {seen[example_id]})")
    seen[example_id] = where


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _is_jsonl(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return True
    if name.endswith((".json", ".json.gz")):
        return False
    # Unknown suffix: one JSON object per line starts with a record, the nested format with {"data": ...}.
    with (gzip.open(path, "rb") if name.endswith(".gz") else open(path, "rb")) as handle:
        first_line = handle.readline()
    try:
        first = json.loads(first_line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(first, dict) and "data" not in first


def _looks_like_path(source: str) -> bool:
    return source.endswith((".json", ".gz", ".jsonl", ".ndjson")) or source.startswith((".", "/", "~"))


def sample_questions_path() -> Path:
    """The project's own sample: questions, contexts and answers written for spanqa (no SQuAD text), shipped with
    the package. It serves the README's end-to-end command and the export parity gate's default validation set."""
    return Path(__file__).resolve().parents[1] / "sample_data" / "questions.jsonl"
