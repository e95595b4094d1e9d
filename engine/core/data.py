"""Read SQuAD-format question answering data into validated `QAExample`s.

Three sources, one set of record rules (`records.py`: ids, answer shapes, answer spans), one error style:
- the official nested JSON (v1.1 and v2.0), plain or gzip-compressed;
- flat JSONL, one `{"id", "question", "context", "answers"?}` object per line, streamed line by line through the
  same line reader and strict JSON rules as qa-answer's input (`records.decode_line`);
- a Hugging Face dataset name, through `datasets.load_dataset` (needs the Hub, so not used offline).

Training reads its data here, so answer_start matters: an answer given without one is located at its first
occurrence in the context (records rule 5), and an answer the context does not hold is an `AnswerSpanError`.

Every validation error is a `DataFormatError` whose message starts with the file and the line or record.
Each reader takes an optional `on_error` callback: without it the first bad record raises; with it, each bad record
is passed to the callback and skipped (the callback may itself raise to stop). File-level problems (unreadable file,
invalid JSON in the nested format, a wrong top-level shape) always raise: there is no record to skip.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from spanqa.engine.core.records import (
    MAX_LINE_BYTES,
    AnswerSpanError,
    DataFormatError,
    InvalidRecord,
    QAExample,
    RecordId,
    decode_line,
    example_from_record,
    id_key,
    numbered_lines,
)
from spanqa.engine.core.strict_json import InvalidJSON, decode_document, json_type

__all__ = [
    "AnswerSpanError", "DataFormatError", "QAExample", "examples_from_records", "iter_jsonl_examples", "load_examples",
    "load_hf_examples", "notebook_splits", "read_squad_json", "sample_questions_path",
]  # fmt: skip
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
NOTEBOOK_SPLIT_SEED = 42
NOTEBOOK_SPLIT_SIZES = {"train": 5000, "validation": 1000, "test": 2000}

ErrorCallback = Callable[[DataFormatError], None]


def load_examples(
    source: str | os.PathLike, split: str = "validation", on_error: ErrorCallback | None = None,
    *, passages: bool = False,
) -> list[QAExample]:  # fmt: skip
    """Load every example from a SQuAD JSON file, a JSONL file or a Hugging Face dataset name.

    With `on_error`, bad records are reported to it and skipped instead of raising (see the module docstring).
    `passages`: JSONL may hold multi-passage records (records rule 6; qa-eval scores them), refused otherwise."""
    path = Path(source)
    if path.is_file():
        if _is_jsonl(path):
            return list(iter_jsonl_examples(path, on_error=on_error, passages=passages))
        return read_squad_json(path, on_error=on_error)
    if path.exists():
        raise DataFormatError(f"{path}: is not a file")
    if _looks_like_path(str(source)):
        raise DataFormatError(f"{path}: no such file")
    return load_hf_examples(str(source), split=split, on_error=on_error)


def read_squad_json(path: str | os.PathLike, on_error: ErrorCallback | None = None) -> list[QAExample]:
    """Read the official nested format: {"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}.

    A question without an id gets its 1-based ordinal among the file's questions (records rule 2).
    With `on_error`, a bad question, paragraph or article is reported to it and skipped (with its questions)."""
    path = Path(path)
    try:
        with _open_text(path) as handle:
            text = handle.read()
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as error:
        raise DataFormatError(f"{path}: cannot be read as UTF-8 JSON ({error})") from None
    try:
        document = decode_document(text)
    except InvalidJSON as error:
        line = "" if error.position is None else f":{text.count(chr(10), 0, error.position) + 1}"
        raise DataFormatError(f"{path}{line}: {error.reason}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataFormatError(f'{path}: not SQuAD format: the top level must be an object with a "data" list')
    is_v2 = str(document.get("version", "")).startswith("v2")

    examples: list[QAExample] = []
    seen_ids: dict[str, str] = {}
    ordinal = 0
    for a, article in enumerate(document["data"]):
        where = f"{path}: data[{a}]"
        try:
            title = _structure(article, where, "title", str, default="")
            paragraphs = _structure(article, where, "paragraphs", list)
        except DataFormatError as error:
            _report_or_raise(error, on_error)
            continue
        for p, paragraph in enumerate(paragraphs):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            try:
                context = _structure(paragraph, where, "context", str)
                questions = _structure(paragraph, where, "qas", list)
            except DataFormatError as error:
                _report_or_raise(error, on_error)
                continue
            for q, qa in enumerate(questions):
                ordinal += 1
                where = f"{path}: data[{a}].paragraphs[{p}].qas[{q}]"
                try:
                    if not isinstance(qa, dict):
                        raise DataFormatError(f"{where}: expected a JSON object, got a JSON {json_type(qa)}")
                    record = {**qa, "context": context, "title": title}
                    example = _example(record, ordinal, where, answers_required=True, allow_impossible=is_v2)
                    _check_unique(example.id, where, seen_ids)
                except DataFormatError as error:
                    _report_or_raise(error, on_error)
                    continue
                examples.append(example)
    return examples


def iter_jsonl_examples(
    path: str | os.PathLike, on_error: ErrorCallback | None = None, passages: bool = False
) -> Iterator[QAExample]:
    """Stream examples from a JSONL file without loading it whole (lines over `records.MAX_LINE_BYTES` are errors).

    Without `on_error` the first bad line raises. With it, each bad line is passed to `on_error` and skipped,
    so one malformed record never costs the rest of the file. Blank lines are skipped; a record without an id gets
    its line number.
    """
    path = Path(path)
    seen_ids: dict[str, str] = {}
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for line_number, raw in numbered_lines(handle, MAX_LINE_BYTES):
            where = f"{path}:{line_number}"
            try:
                if raw is None:
                    raise DataFormatError(f"{where}: line longer than {MAX_LINE_BYTES} bytes")
                try:
                    record = decode_line(raw, first_line=line_number == 1)
                except InvalidRecord as error:
                    raise error.located(where) from None
                if record is None:
                    continue
                example = _example(
                    record, line_number, where, answers_required=False, allow_impossible=True, passages=passages
                )
                _check_unique(example.id, where, seen_ids)
            except DataFormatError as error:
                _report_or_raise(error, on_error)
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
    """Validate flat records (JSONL-style or Hugging Face rows), numbered from 1; `source` names them in errors."""
    seen_ids: dict[str, str] = {}
    for position, record in enumerate(records, start=1):
        where = f"{source}: record {position}"
        try:
            if not isinstance(record, Mapping):
                raise DataFormatError(f"{where}: expected a JSON object, got a JSON {json_type(record)}")
            example = _example(record, position, where, answers_required=False, allow_impossible=allow_impossible)
            _check_unique(example.id, where, seen_ids)
        except DataFormatError as error:
            _report_or_raise(error, on_error)
            continue
        yield example


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


def _example(record: Mapping[str, Any], position: int, where: str, **rules: bool) -> QAExample:
    try:
        return example_from_record(record, position, **rules)
    except InvalidRecord as error:
        raise error.located(where) from None


def _report_or_raise(error: DataFormatError, on_error: ErrorCallback | None) -> None:
    """Called from an `except` block: re-raise in strict mode, hand the error over in lenient mode."""
    if on_error is None:
        raise error
    on_error(error)


_REQUIRED = object()


def _structure(parent: Any, where: str, key: str, kind: type, default: Any = _REQUIRED) -> Any:
    """A field of the nested format's articles and paragraphs (the records inside follow `records.py`)."""
    if not isinstance(parent, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got a JSON {json_type(parent)}")
    value = parent.get(key)
    if value is None:
        if default is _REQUIRED:
            raise DataFormatError(f'{where}: missing field "{key}"')
        return default
    if not isinstance(value, kind):
        raise DataFormatError(
            f'{where}: field "{key}" must be a JSON {json_type(kind())}, got a JSON {json_type(value)}'
        )
    return value


def _check_unique(example_id: RecordId, where: str, seen: dict[str, str]) -> None:
    key = id_key(example_id)  # records rule 3: 7 and "7" are one id
    if key in seen:
        raise DataFormatError(f"{where}: duplicate id {example_id!r} (first seen at {seen[key]})")
    seen[key] = where


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
        first_line = handle.readline(MAX_LINE_BYTES + 1)
    try:
        first = decode_line(first_line, first_line=True)
    except InvalidRecord:
        return False
    return first is not None and "data" not in first


def _looks_like_path(source: str) -> bool:
    return source.endswith((".json", ".gz", ".jsonl", ".ndjson")) or source.startswith((".", "/", "~"))


def sample_questions_path() -> Path:
    """The project's own sample: questions, contexts and answers written for spanqa (no SQuAD text), shipped with
    the package. It serves the README's end-to-end command and the export parity gate's default validation set."""
    return Path(__file__).resolve().parents[1] / "sample_data" / "questions.jsonl"
