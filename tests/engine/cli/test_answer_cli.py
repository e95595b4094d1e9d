"""`qa-answer` and `answer_file` on the real QAEngine (a tiny random BERT checkpoint, torch backend): order,
pass-through fields, the errors file, strict mode, stdin/stdout, resume after crashes at many points (byte-identical
to an uninterrupted run), refusals, single-question mode, the EM/F1 summary, bounded look-ahead, a full disk."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from spanqa.engine.cli.answer import main
from spanqa.engine.jobs.answer_file import (
    AnswerFileError,
    AnswerFileOptions,
    OutputWriteError,
    StrictModeStop,
    answer_file,
    read_output_progress,
)
from spanqa.engine.jobs.run_settings import check_settings, write_settings
from spanqa.engine.jobs.targets import SETTINGS_SUFFIX
from spanqa.engine.runtime.engine import QAEngine, answer_settings
from spanqa.engine.core.metrics import squad_v2_scores
from spanqa.engine.runtime.options import EngineOptions
from spanqa.engine.evaluation.scoring import evaluate_files

# Invented passages (no SQuAD text in the repository).
PLACES = ["Vell Point", "Harrow Quay", "Mossbank", "Ternwick", "Oldcastle Ridge", "Fennow", "Brightwater", "Calder"]
YEARS = [1871, 1902, 1888, 1925, 1866, 1910, 1899, 1934]


def _context(index: int) -> str:
    place, year = PLACES[index % len(PLACES)], YEARS[index % len(YEARS)]
    filler = " The keepers logged the weather every evening." * (index % 4)
    return f"The lighthouse at {place} was first lit in {year} and was automated {index + 40} years later.{filler}"


def _record(index: int, **extra: object) -> dict:
    return {"id": f"q{index:02d}", "title": PLACES[index % len(PLACES)], "question": "When was it first lit?",
            "context": _context(index), **extra}  # fmt: skip


def _encode(record: object) -> bytes:
    return (json.dumps(record) + "\n").encode("utf-8")


# line number -> (bad line, a phrase its reason must contain); every other line of MIXED_LINES is valid.
BAD_LINES = {
    3: (b'{"id": "bad-json", "question": \n', "invalid JSON"),
    6: (b'{"id": "bad-utf8", "question": "Wh\xe9n?", "context": "c"}\n', "invalid UTF-8 at byte 34"),
    8: (b'{"id": "no-question", "context": "c"}\n', 'missing field "question"'),
    10: (_encode(_record(1)), "duplicate id 'q01' (first at line 2)"),
    12: (b'{"id": "number-context", "question": "q", "context": 5}\n', 'field "context" must be a string'),
    13: (b'[1, 2, 3]\n', "expected a JSON object, got a JSON array"),
    15: (b'{"id": "empty-question", "question": "  ", "context": "c"}\n', 'field "question" is empty'),
}


def _mixed_lines(valid: int = 14) -> list[bytes]:
    lines: list[bytes] = []
    index = 0
    while index < valid or len(lines) + 1 in BAD_LINES:
        if len(lines) + 1 in BAD_LINES:
            lines.append(BAD_LINES[len(lines) + 1][0])
        else:
            year = str(YEARS[index % 8])
            lines.append(_encode(_record(index, answers={"text": [year], "answer_start": [_context(index).index(year)]},
                                         meta={"n": index, "tags": ["a", "é"]})))  # fmt: skip
            index += 1
    return lines


MIXED_LINES = _mixed_lines()
VALID_IDS = [f"q{index:02d}" for index in range(14)]


def _write(path: Path, lines: Iterable[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def _output_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _settings_file(output: Path) -> Path:
    return output.with_name(output.name + SETTINGS_SUFFIX)


def _resumable(output: Path, data: bytes, engine) -> Path:
    """An output as `engine`'s run would have left it: the bytes, and the settings file beside them."""
    output.write_bytes(data)
    write_settings(_settings_file(output), engine.answer_settings())
    return output


@pytest.fixture(scope="module")
def engine(tiny_model) -> QAEngine:
    # Groups of 3 records, so that resumes land on and between group boundaries.
    return QAEngine(tiny_model, options=EngineOptions(lookahead=3, prefetch=1))


@pytest.fixture
def mixed_input(tmp_path) -> Path:
    return _write(tmp_path / "in.jsonl", MIXED_LINES)


@pytest.fixture(scope="module")
def uninterrupted(engine, tmp_path_factory, tiny_model) -> tuple[bytes, bytes]:
    """The output and errors file of an uninterrupted run over MIXED_LINES."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    source = _write(folder / "in.jsonl", MIXED_LINES)
    output = folder / "out.jsonl"
    answer_file(engine, source, output)
    return output.read_bytes(), (folder / "out.jsonl.errors.jsonl").read_bytes()


# --- output: order, fields ----------------------------------------------------------------------------------------


def test_one_line_per_valid_input_in_order_with_answer_fields_then_passthrough(engine, mixed_input, tmp_path):
    output = tmp_path / "out.jsonl"
    result = answer_file(engine, mixed_input, output)

    records = _output_records(output)
    assert [record["id"] for record in records] == VALID_IDS
    assert (result.answered, result.errors, result.already_answered) == (14, len(BAD_LINES), 0)
    for index, record in enumerate(records):
        assert list(record) == ["id", "answer", "score", "start", "end", "is_impossible", "title", "answers", "meta"]
        assert record["answer"] == _context(index)[record["start"] : record["end"]]
        assert record["title"] == PLACES[index % len(PLACES)] and record["meta"] == {"n": index, "tags": ["a", "é"]}
        assert 0.0 <= record["score"] <= 1.0
    assert output.read_bytes().endswith(b"\n") and "é" in output.read_text(encoding="utf-8")


def test_input_fields_named_like_answer_fields_are_replaced_by_the_new_answer(engine, tmp_path):
    source = _write(tmp_path / "in.jsonl", [_encode(_record(0, answer="old", score=7, extra=True))])
    output = tmp_path / "out.jsonl"
    answer_file(engine, source, output)
    [record] = _output_records(output)
    assert record["answer"] == _context(0)[record["start"] : record["end"]] and record["score"] != 7
    assert list(record)[-2:] == ["title", "extra"]


def test_gzip_input_gives_the_same_output(engine, tmp_path, uninterrupted):
    source = tmp_path / "in.jsonl.gz"
    source.write_bytes(gzip.compress(b"".join(MIXED_LINES)))
    answer_file(engine, source, tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_bytes() == uninterrupted[0]


# --- the errors file and strict mode ------------------------------------------------------------------------------


def test_errors_file_lists_each_bad_line_with_its_number_and_reason(engine, mixed_input, tmp_path):
    result = answer_file(engine, mixed_input, tmp_path / "out.jsonl")
    errors_file = tmp_path / "out.jsonl.errors.jsonl"
    assert result.errors_file == str(errors_file)
    entries = [json.loads(line) for line in errors_file.read_bytes().splitlines()]
    assert [entry["line"] for entry in entries] == sorted(BAD_LINES)
    for entry in entries:
        assert BAD_LINES[entry["line"]][1] in entry["error"], entry
    assert {entry["line"]: entry.get("id") for entry in entries} == {
        3: None, 6: None, 8: "no-question", 10: "q01", 12: "number-context", 13: None, 15: "empty-question",
    }  # fmt: skip


def test_no_bad_lines_no_errors_file(engine, tmp_path):
    source = _write(tmp_path / "in.jsonl", [_encode(_record(0))])
    result = answer_file(engine, source, tmp_path / "out.jsonl", AnswerFileOptions(errors=tmp_path / "err.jsonl"))
    assert result.errors == 0 and result.errors_file is None
    assert not (tmp_path / "err.jsonl").exists()


def test_strict_stops_at_the_first_bad_line_after_answering_the_lines_before(engine, mixed_input, tmp_path):
    output = tmp_path / "out.jsonl"
    with pytest.raises(StrictModeStop, match=re.escape(f"{mixed_input}:3: invalid JSON")):
        answer_file(engine, mixed_input, output, AnswerFileOptions(strict=True))
    assert [record["id"] for record in _output_records(output)] == ["q00", "q01"]
    assert not (tmp_path / "out.jsonl.errors.jsonl").exists()


def test_cli_strict_exit_code_and_message(tiny_model, mixed_input, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    code = main([str(mixed_input), "-o", str(output), "--model", str(tiny_model), "--strict", "--quiet"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"qa-answer: error: {mixed_input}:3: invalid JSON") and "\n" not in error
    assert len(_output_records(output)) == 2


def test_unreadable_gzip_stops_with_the_answers_before_it_kept(engine, tmp_path):
    compressed = gzip.compress(b"".join(_encode({**_record(index % 8), "id": f"g{index:03d}"}) for index in range(300)))
    source = tmp_path / "in.jsonl.gz"
    source.write_bytes(compressed[: len(compressed) // 2])
    output = tmp_path / "out.jsonl"
    with pytest.raises(AnswerFileError, match=r"in\.jsonl\.gz: cannot be read after line \d+"):
        answer_file(engine, source, output)
    ids = [record["id"] for record in _output_records(output)]  # every line complete
    assert len(ids) > 3 and ids == [f"g{index:03d}" for index in range(len(ids))]


# --- resume -------------------------------------------------------------------------------------------------------


def _cut_points(full: bytes) -> list[int]:
    line_ends = [index + 1 for index, byte in enumerate(full) if byte == ord("\n")]
    points = {0, 1, line_ends[0] - 1, len(full) - 1, len(full)}
    for lines in (1, 2, 3, 4, 6, 7, 9, 13):  # on and around the 3-record group boundaries
        points.add(line_ends[lines - 1])  # after a complete line
        points.add(line_ends[lines - 1] + 5)  # inside the next line
    return sorted(point for point in points if point <= len(full))


def test_resume_after_a_crash_at_any_point_is_byte_identical(engine, mixed_input, tmp_path, uninterrupted):
    full, full_errors = uninterrupted
    for cut in _cut_points(full):
        output = _resumable(tmp_path / f"cut{cut}.jsonl", full[:cut], engine)
        errors_file = tmp_path / f"cut{cut}.jsonl.errors.jsonl"
        errors_file.write_bytes(full_errors[: (cut * len(full_errors)) // len(full)])  # some entries, maybe torn

        result = answer_file(engine, mixed_input, output, AnswerFileOptions(resume=True))

        assert output.read_bytes() == full, f"cut at byte {cut}"
        assert errors_file.read_bytes() == full_errors, f"cut at byte {cut}"
        complete = full[:cut].count(b"\n")
        assert (result.already_answered, result.answered) == (complete, 14 - complete)
        assert result.errors == len(BAD_LINES) and result.replay_mismatches == 0
        assert not (tmp_path / f"cut{cut}.jsonl.errors.jsonl.partial").exists()


def test_resume_of_a_finished_run_changes_nothing(engine, mixed_input, tmp_path, uninterrupted):
    output = _resumable(tmp_path / "out.jsonl", uninterrupted[0], engine)
    result = answer_file(engine, mixed_input, output, AnswerFileOptions(resume=True))
    assert output.read_bytes() == uninterrupted[0] and result.answered == 0 and result.already_answered == 14


def test_resume_without_an_output_starts_fresh(engine, mixed_input, tmp_path, uninterrupted):
    output = tmp_path / "out.jsonl"
    answer_file(engine, mixed_input, output, AnswerFileOptions(resume=True))
    assert output.read_bytes() == uninterrupted[0]


def test_cli_resume_after_a_torn_line(tiny_model, mixed_input, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    arguments = [str(mixed_input), "-o", str(output), "--model", str(tiny_model)]
    assert main(arguments) == 0
    full = output.read_bytes()
    cut = full.index(b"\n", len(full) // 2) + 9
    output.write_bytes(full[:cut])
    capsys.readouterr()
    assert main([*arguments, "--resume"]) == 0
    assert output.read_bytes() == full
    kept = full[:cut].count(b"\n")
    assert f"(+{kept} already in the output)" in capsys.readouterr().err


def test_read_output_progress_reports_complete_lines_and_the_torn_tail(mixed_input, tmp_path, uninterrupted):
    full = uninterrupted[0]
    output = tmp_path / "out.jsonl"
    third_line_end = [index for index, byte in enumerate(full) if byte == ord("\n")][2] + 1
    output.write_bytes(full[: third_line_end + 10])
    progress = read_output_progress(mixed_input, output)
    assert (progress.complete_lines, progress.complete_bytes, progress.torn_bytes) == (3, third_line_end, 10)
    assert progress.last_input_line == 4  # q02 comes after the bad line 3
    assert output.read_bytes() == full[: third_line_end + 10]  # only read


def test_resume_refuses_an_output_of_another_input(engine, mixed_input, tmp_path, uninterrupted):
    output = _resumable(tmp_path / "out.jsonl", uninterrupted[0][:-20], engine)
    errors_file = tmp_path / "out.jsonl.errors.jsonl"
    errors_file.write_bytes(uninterrupted[1])
    other = _write(tmp_path / "other.jsonl", [_encode(_record(0)), _encode({**_record(5), "id": "zz"})])
    with pytest.raises(AnswerFileError, match=r"out\.jsonl:2: answers id 'q01', but the next valid input line "
                                              r"\(.*other\.jsonl:2\) has id 'zz'"):  # fmt: skip
        answer_file(engine, other, output, AnswerFileOptions(resume=True))
    assert output.read_bytes() == uninterrupted[0][:-20]  # untouched, torn line included
    assert errors_file.read_bytes() == uninterrupted[1]
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == ["in.jsonl", "other.jsonl", "out.jsonl", "out.jsonl.errors.jsonl", "out.jsonl.run.json"]  # none staged


def test_resume_refuses_an_output_longer_than_the_input(engine, tmp_path, uninterrupted):
    output = _resumable(tmp_path / "out.jsonl", uninterrupted[0], engine)
    short = _write(tmp_path / "short.jsonl", MIXED_LINES[:4])
    with pytest.raises(AnswerFileError, match="more answers than .*short.jsonl has valid lines"):
        answer_file(engine, short, output, AnswerFileOptions(resume=True))
    assert output.read_bytes() == uninterrupted[0]


def test_resume_refuses_a_file_that_is_not_qa_answer_output(engine, mixed_input, tmp_path):
    output = _resumable(tmp_path / "notes.txt", b"shopping list\n", engine)
    with pytest.raises(AnswerFileError, match=r"notes\.txt:1: not a qa-answer output line"):
        answer_file(engine, mixed_input, output, AnswerFileOptions(resume=True))
    assert output.read_bytes() == b"shopping list\n"


def test_cli_mismatched_resume_exits_2_naming_the_line(tiny_model, mixed_input, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    output.write_bytes(b'{"id": "elsewhere", "answer": "x"}\n')
    write_settings(_settings_file(output), answer_settings(tiny_model, EngineOptions()))  # the CLI's defaults
    code = main([str(mixed_input), "-o", str(output), "--model", str(tiny_model), "--resume"])
    assert code == 2
    assert f"{output}:1: answers id 'elsewhere'" in capsys.readouterr().err


def test_resume_refuses_other_settings_naming_each_one_and_accepts_the_same(tiny_model, mixed_input, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    arguments = [str(mixed_input), "-o", str(output), "--model", str(tiny_model), "--quiet"]
    assert main(arguments) == 0
    full = output.read_bytes()
    kept = full[: full.index(b"\n") + 1]
    output.write_bytes(kept)
    capsys.readouterr()
    assert main([*arguments, "--resume", "--batch-tokens", "256", "--n-best", "4"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith(f"qa-answer: error: {output}: --resume refused")
    assert f"max_batch_tokens was {EngineOptions().max_batch_tokens}, now 256" in error
    assert f"decode.n_best was {EngineOptions().decode.n_best}, now 4" in error
    assert "decode.return_n_best was false, now true" in error and "lookahead" not in error
    assert output.read_bytes() == kept  # untouched
    assert main([*arguments, "--resume"]) == 0  # the same settings
    assert output.read_bytes() == full


def test_resume_refuses_an_output_without_a_settings_file_unless_it_is_empty(engine, mixed_input, tmp_path, uninterrupted):
    output = tmp_path / "out.jsonl"
    output.write_bytes(uninterrupted[0][:100])
    with pytest.raises(AnswerFileError, match=r"out\.jsonl: --resume refused: no out\.jsonl\.run\.json beside it"):
        answer_file(engine, mixed_input, output, AnswerFileOptions(resume=True))
    assert output.read_bytes() == uninterrupted[0][:100] and not _settings_file(output).exists()
    output.write_bytes(b"")  # nothing kept, so nothing to check: the run starts over and records its settings
    answer_file(engine, mixed_input, output, AnswerFileOptions(resume=True))
    assert output.read_bytes() == uninterrupted[0]
    check_settings(output, _settings_file(output), engine.answer_settings())


def test_settings_name_the_model_by_its_files_wherever_it_lies(tiny_model, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    options = EngineOptions(lookahead=3)
    assert answer_settings(copy, options) == answer_settings(tiny_model, options)  # a copy is the same model
    config = copy / "config.json"
    config.write_text(config.read_text() + " ")
    output = tmp_path / "out.jsonl"
    write_settings(_settings_file(output), answer_settings(tiny_model, options))
    with pytest.raises(AnswerFileError, match=r'model\.files_sha256 was "[0-9a-f]{16}…", now "[0-9a-f]{16}…"; rerun'):
        check_settings(output, _settings_file(output), answer_settings(copy, options))


class _ThreadNotingInput(io.RawIOBase):
    """An input stream that notes which threads read it."""

    def __init__(self, data: bytes) -> None:
        self._lines = io.BytesIO(data)
        self.threads: set[int] = set()

    def readline(self, size: int = -1) -> bytes:
        self.threads.add(threading.get_ident())
        return self._lines.readline(size)


def test_the_input_is_read_and_bad_lines_reported_in_the_callers_thread(engine, tmp_path, monkeypatch, uninterrupted):
    watched = _ThreadNotingInput(b"".join(MIXED_LINES))
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": watched})())
    reported: list[tuple[int, str]] = []
    output = tmp_path / "out.jsonl"
    options = AnswerFileOptions(errors="-")
    answer_file(engine, "-", output, options, on_skipped=lambda message: reported.append((threading.get_ident(), message)))
    assert output.read_bytes() == uninterrupted[0]
    assert watched.threads == {threading.get_ident()}
    assert len(reported) == len(BAD_LINES) and {thread for thread, _ in reported} == {threading.get_ident()}
    assert reported[0][1].startswith("skipped <stdin>:3: invalid JSON")  # the program adds its own name


@dataclass
class _GroupOptions:
    lookahead: int


class GroupSensitiveEngine:
    """Follows QAEngine's batching contract, and makes each answer's score depend on its whole group, so that a
    resume that restarted anywhere but at a group boundary would write different bytes."""

    def __init__(self, lookahead: int) -> None:
        self.options = _GroupOptions(lookahead)

    def answer_settings(self) -> dict:
        return {"engine": "group-sensitive", "lookahead": self.options.lookahead}

    def answer_pairs(self, items: Iterable) -> Iterator:
        from spanqa.engine.runtime.results import Answer

        group: list = []
        for item in [*items, None]:
            if item is not None:
                group.append(item)
            if group and (item is None or len(group) == self.options.lookahead):
                first = float(group[0][1].id[1:])  # the group's first record: which records share a group shows
                for payload, example in group:
                    yield payload, Answer(example.id, example.context[:5], first, 0, 5)
                group = []

    def answer_many(self, records: Iterable) -> Iterator:
        return (answer for _, answer in self.answer_pairs((None, record) for record in records))


def test_group_boundaries_are_what_makes_resume_byte_identical(mixed_input, tmp_path):
    engine = GroupSensitiveEngine(lookahead=4)
    full_output = tmp_path / "full.jsonl"
    answer_file(engine, mixed_input, full_output)
    full = full_output.read_bytes()
    lines = full.splitlines(keepends=True)
    for kept in range(len(lines) + 1):
        output = tmp_path / f"kept{kept}.jsonl"
        _resumable(output, b"".join(lines[:kept]) + b'{"id": "torn', engine)
        answer_file(engine, mixed_input, output, AnswerFileOptions(resume=True, errors=tmp_path / "e.jsonl"))
        assert output.read_bytes() == full, f"resumed after {kept} lines"
    # The check has teeth: a restart right after the last written line (not at a boundary) batches differently.
    restarted = [json.loads(line)["score"] for line in lines[:5]] + [
        answer.score for answer in engine.answer_many(_examples_after(mixed_input, 5))
    ]
    assert restarted != [json.loads(line)["score"] for line in lines]


def _examples_after(source: Path, skip: int) -> list:
    from spanqa.engine.core.records import InputRecord, read_records

    with open(source, "rb") as stream:
        records = [result.to_example() for result in read_records(stream) if isinstance(result, InputRecord)]
    return records[skip:]


# --- refusals and bad usage ---------------------------------------------------------------------------------------


def test_existing_output_is_refused_without_resume_or_overwrite(tiny_model, mixed_input, tmp_path, capsys):
    output = _write(tmp_path / "out.jsonl", [b"precious\n"])
    code = main([str(mixed_input), "-o", str(output), "--model", str(tiny_model)])
    assert code == 2
    message = capsys.readouterr().err
    assert f"{output}: already holds answers" in message and "--resume" in message and "--overwrite" in message
    assert output.read_bytes() == b"precious\n"


def test_existing_errors_file_is_refused_too(engine, mixed_input, tmp_path):
    errors_file = _write(tmp_path / "out.jsonl.errors.jsonl", [b"precious\n"])
    with pytest.raises(AnswerFileError, match="the errors file already has entries"):
        answer_file(engine, mixed_input, tmp_path / "out.jsonl")
    assert errors_file.read_bytes() == b"precious\n" and not (tmp_path / "out.jsonl").exists()


def test_overwrite_replaces_the_output_and_drops_a_stale_errors_file(engine, tmp_path):
    output = _write(tmp_path / "out.jsonl", [b"old\n"])
    stale = _write(tmp_path / "out.jsonl.errors.jsonl", [b'{"line": 1, "error": "old"}\n'])
    source = _write(tmp_path / "in.jsonl", [_encode(_record(0))])
    answer_file(engine, source, output, AnswerFileOptions(overwrite=True))
    assert [record["id"] for record in _output_records(output)] == ["q00"]
    assert not stale.exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{input}", "-o", "{input}"], "the output cannot be the input file"),
        (["{input}", "-o", "{output}", "--errors", "{input}"], "the errors file cannot be the input file"),
        (["{input}", "-o", "{output}", "--errors", "{output}"], "the errors file cannot be the output file"),
        (["{input}", "--resume"], "--resume needs an output file"),
        (["{input}", "-o", "{output}", "--resume", "--overwrite"], "contradict each other"),
        (["{input}", "-o", "{output}.gz"], "written uncompressed"),
        (["{missing}", "-o", "{output}"], "{missing}: no such file"),
        (["{input}", "-o", "{missing}/out.jsonl"], "the folder {missing} does not exist"),
        (["{input}", "-o", "{output}", "--errors", "{missing}/errors.jsonl"], "the folder {missing} does not exist"),
        (["{input}", "--question", "q", "--context", "c"], "not both"),
        (["--question", "q"], "--question and --context go together"),
        ([], "no INPUT given"),
    ],
)
def test_bad_usage_exits_2_with_one_line(arguments, message, tmp_path, capsys):
    paths = {"input": tmp_path / "in.jsonl", "output": tmp_path / "out.jsonl", "missing": tmp_path / "missing"}
    _write(paths["input"], [_encode(_record(0))])
    _write(paths["output"], [])
    code = main([argument.format(**paths) for argument in arguments] + ["--model", str(tmp_path / "never-loaded")])
    assert code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qa-answer: error:")]
    assert len(error_lines) == 1 and message.format(**paths) in error_lines[0]
    assert paths["input"].read_bytes() == _encode(_record(0))


@pytest.mark.parametrize("folder", ["missing-model", "empty-model"])
def test_unloadable_model_exits_2_naming_it(folder, mixed_input, tmp_path, capsys):
    (tmp_path / "empty-model").mkdir()
    code = main([str(mixed_input), "-o", str(tmp_path / "out.jsonl"), "--model", str(tmp_path / folder)])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("qa-answer: error: ") and str(tmp_path / folder) in error and "\n" not in error


# --- stdin / stdout, single question, summary ---------------------------------------------------------------------


def test_stdin_to_stdout(tiny_model, monkeypatch, capsysbinary, uninterrupted):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"".join(MIXED_LINES))))
    assert main(["-", "--model", str(tiny_model)]) == 0
    captured = capsysbinary.readouterr()
    ids = [json.loads(line)["id"] for line in captured.out.splitlines()]
    assert ids == VALID_IDS
    errors = captured.err.decode().splitlines()
    skipped = [line for line in errors if line.startswith("qa-answer: skipped")]
    assert [re.search(r"<stdin>:(\d+):", line).group(1) for line in skipped] == [str(n) for n in sorted(BAD_LINES)]
    assert "answered 14; 7 bad lines skipped (see <stderr>)" in errors[-1]


def test_single_question_prints_the_answer_as_json(tiny_model, capsys):
    context = _context(2)
    arguments = ["--question", "When was it first lit?", "--context", context, "--model", str(tiny_model)]
    code = main([*arguments, "--n-best", "3"])
    assert code == 0
    answer = json.loads(capsys.readouterr().out)
    assert list(answer) == ["id", "answer", "score", "start", "end", "is_impossible", "n_best"]
    assert answer["answer"] == context[answer["start"] : answer["end"]] and len(answer["n_best"]) <= 3


def test_single_question_rejects_an_empty_context(tiny_model, capsys):
    assert main(["--question", "Why?", "--context", " ", "--model", str(tiny_model)]) == 2
    assert "--context is empty" in capsys.readouterr().err


def test_summary_reports_official_em_f1_over_the_gold_answers(tiny_model, tmp_path, capsys):
    # Gold answers chosen after seeing the tiny model's answers: even lines get exactly its answer, odd lines other
    # spans, so the scores are known apart from the streaming scorer; qa-eval's library scores the same files.
    def run(source: Path, output: Path) -> list[dict]:
        assert main([str(source), "-o", str(output), "--model", str(tiny_model)]) == 0
        return _output_records(output)

    first = run(_write(tmp_path / "plain.jsonl", [_encode(_record(index)) for index in range(8)]), tmp_path / "a.jsonl")
    lines = []
    for index, answered in enumerate(first):
        context = _context(index)
        spans = [answered["answer"]] if index % 2 == 0 else ["keepers logged", "weather"]
        if index == 3:
            spans.append(".")  # normalises to nothing: kept by the v1.1 rules, dropped by v2.0's
        starts = [answered["start"]] if index % 2 == 0 else [context.index(span) for span in spans]
        lines.append(_encode(_record(index, answers={"text": spans, "answer_start": starts})))
    source = _write(tmp_path / "gold.jsonl", lines)
    capsys.readouterr()

    second = run(source, tmp_path / "b.jsonl")

    assert [record["answer"] for record in second] == [record["answer"] for record in first]
    expected = evaluate_files(source, tmp_path / "b.jsonl")  # what qa-eval prints for these files
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"EM {expected.exact_match:.2f} F1 {expected.f1:.2f} on 8 questions with gold answers (SQuAD v1.1" in summary
    assert expected.exact_match >= 50.0 and expected.total == 8  # the even half at least
    assert re.search(r"answered 8; 0 bad lines skipped; [\d.]+ s, [\d.]+ examples/s; padding [\d.]+%", summary)


def test_engine_flags_reach_the_engine_options():
    from spanqa.engine.cli.answer import build_parser, engine_options

    defaults = engine_options(build_parser().parse_args(["in.jsonl"]))
    assert defaults == EngineOptions()
    options = engine_options(build_parser().parse_args(
        ["in.jsonl", "--device", "cpu", "--batch-tokens", "512", "--threads", "3", "--n-best", "--null-threshold",
         "-1.5", "--max-answer-length", "12"]
    ))  # fmt: skip
    assert (options.device, options.max_batch_tokens, options.session.intra_op_threads) == ("cpu", 512, 3)
    assert (options.decode.n_best, options.decode.return_n_best) == (EngineOptions().decode.n_best, True)
    assert (options.decode.null_threshold, options.decode.max_answer_length) == (-1.5, 12)
    assert engine_options(build_parser().parse_args(["in.jsonl", "--n-best", "4"])).decode.n_best == 4


def test_decode_flags_change_the_answers(tiny_model, capsys):
    context = _context(3)
    arguments = ["--question", "When was it first lit?", "--context", context, "--model", str(tiny_model)]
    assert main([*arguments, "--null-threshold=-1e9"]) == 0  # the no-answer always wins
    answer = json.loads(capsys.readouterr().out)
    assert (answer["answer"], answer["is_impossible"]) == ("", True)
    assert main([*arguments, "--max-answer-length", "1"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["answer"] and " " not in answer["answer"]  # one token


def test_padding_is_measured_over_this_call_only(engine, tmp_path):
    source = _write(tmp_path / "in.jsonl", [_encode(_record(index)) for index in range(6)])
    first = answer_file(engine, source, tmp_path / "first.jsonl")
    second = answer_file(engine, source, tmp_path / "second.jsonl")
    assert first.padding_fraction == second.padding_fraction  # same batches, so the same share, not a running one
    assert 0.0 < first.padding_fraction < 1.0  # contexts of 4 lengths share batches


def test_unanswerable_gold_switches_to_v2_rules(engine, tmp_path):
    golds = {"q00": ["1871"], "q01": []}
    source = _write(tmp_path / "in.jsonl", [_encode(_record(0, answers=golds["q00"])), _encode(_record(1, answers=[]))])
    result = answer_file(engine, source, tmp_path / "out.jsonl")
    predictions = {record["id"]: record["answer"] for record in _output_records(tmp_path / "out.jsonl")}
    expected = squad_v2_scores(golds, predictions)
    assert result.gold.rules == "v2.0" and result.gold.scored == 2
    assert result.gold.exact_match == pytest.approx(expected.exact_match)
    assert result.gold.f1 == pytest.approx(expected.f1)


def test_progress_bar_goes_to_stderr(engine, mixed_input, tmp_path, capsys):
    answer_file(engine, mixed_input, tmp_path / "out.jsonl", AnswerFileOptions(progress=True))
    assert "14 examples" in capsys.readouterr().err


# --- streaming and failures ---------------------------------------------------------------------------------------


class _WatchedInput(io.RawIOBase):
    """An input stream that notes, at every line read, how many output lines exist: the look-ahead in lines."""

    def __init__(self, data: bytes, output: Path) -> None:
        self._lines = io.BytesIO(data)
        self._output = output
        self.read_ahead: list[int] = []

    def readline(self, size: int = -1) -> bytes:
        line = self._lines.readline(size)
        if line:
            written = self._output.read_bytes().count(b"\n") if self._output.exists() else 0
            self.read_ahead.append(len(self.read_ahead) + 1 - written)
        return line


def test_input_is_streamed_with_bounded_look_ahead(engine, tmp_path, monkeypatch):
    output = tmp_path / "out.jsonl"
    watched = _WatchedInput(b"".join(_encode(_record(index)) for index in range(60)), output)
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": watched})())
    answer_file(engine, "-", output)
    assert len(_output_records(output)) == 60
    # The group being answered, the prefetched ones, and the one being filled: (prefetch + 2) groups at most.
    bound = (engine.options.prefetch + 2) * engine.options.lookahead
    assert max(watched.read_ahead) <= bound
    assert max(watched.read_ahead) > engine.options.lookahead  # it does read ahead (the bound is not vacuous)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="relies on Linux's RLIMIT_FSIZE and SIGXFSZ")
def test_full_disk_keeps_complete_lines_and_resume_finishes(engine, mixed_input, tmp_path, uninterrupted):
    full, full_errors = uninterrupted
    limit = full.index(b"\n", len(full) // 2) + 30  # the size limit falls inside a line
    output = tmp_path / "out.jsonl"
    before = mixed_input.read_bytes()
    resource = pytest.importorskip("resource")
    engine.answer("Warm up?", "So that nothing but the answers is written while the limit holds.")
    # A file-size limit makes the kernel refuse writes past it (EFBIG) as a full disk does (ENOSPC), without
    # filling a disk. It binds every file this process writes, so it is lifted right after the run.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel's signal kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        with pytest.raises(OutputWriteError, match=re.escape(f"{output}: cannot be written (File too large)")):
            answer_file(engine, mixed_input, output)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert output.read_bytes() == full[: full.rindex(b"\n", 0, limit) + 1]  # every complete line that fit, no torn one
    assert mixed_input.read_bytes() == before

    answer_file(engine, mixed_input, output, AnswerFileOptions(resume=True))
    assert output.read_bytes() == full
    assert (tmp_path / "out.jsonl.errors.jsonl").read_bytes() == full_errors


def test_unwritable_output_device_is_a_clear_error(tiny_model, mixed_input, capsys):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    before = mixed_input.read_bytes()
    code = main([str(mixed_input), "-o", "/dev/full", "--model", str(tiny_model), "--errors", "-", "--quiet"])
    assert code == 1
    assert "qa-answer: error: /dev/full: cannot be written (No space left on device)" in capsys.readouterr().err
    assert mixed_input.read_bytes() == before
