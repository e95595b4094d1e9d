"""Multi-passage records through the file jobs: qa-answer's output and errors file (bad passage lists named by file
and line, the good lines answered), exactly-once --resume at every cut, --top-k, and qa-eval on the records
(a tiny random BERT checkpoint, torch backend; Ray's run is in test_ray_answer.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spanqa.engine.cli.answer import main
from spanqa.engine.cli.eval import main as eval_main
from spanqa.engine.core.decoder import DecodeOptions
from spanqa.engine.evaluation.scoring import evaluate_files
from spanqa.engine.jobs.answer_file import AnswerFileOptions, answer_file
from spanqa.engine.jobs.run_settings import write_settings
from spanqa.engine.runtime.engine import QAEngine
from spanqa.engine.runtime.options import EngineOptions

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Invented passages (no SQuAD text in the repository).
TOWNS = ["Vell Point", "Harrow Quay", "Mossbank", "Ternwick", "Fennow", "Calder"]


def multi_passage_lines() -> list[bytes]:
    """Single-context and multi-passage records, with gold answers, and two bad passage lists (lines 4 and 9)."""
    lines = []
    for index in range(14):
        town = TOWNS[index % len(TOWNS)]
        passages = [f"The mill at {TOWNS[(index + k) % len(TOWNS)]} opened in {1850 + index + k}." for k in range(3)]
        if index % 3 == 0:
            record = {"id": f"s{index}", "question": f"When did the mill at {town} open?", "context": passages[0]}
        else:
            record = {"id": f"m{index}", "question": f"When did the mill at {town} open?",
                      "contexts": [passages[1], {"id": "main", "text": passages[0]}, passages[2]]}  # fmt: skip
        record["answers"] = [str(1850 + index)]
        record["note"] = index
        lines.append((json.dumps(record) + "\n").encode())
    lines[3] = b'{"id": "empty", "question": "When?", "contexts": []}\n'
    lines[8] = b'{"id": "number", "question": "When?", "contexts": ["The mill opened in 1850.", 1850]}\n'
    return lines


@pytest.fixture(scope="module")
def engine(tiny_model) -> QAEngine:
    # Groups of 3 records, so that resumes land on and between group boundaries.
    options = EngineOptions(lookahead=3, prefetch=1, decode=DecodeOptions(top_k=2, max_answer_length=4))
    return QAEngine(tiny_model, options=options)


@pytest.fixture(scope="module")
def uninterrupted(engine, tmp_path_factory) -> tuple[Path, bytes]:
    folder = tmp_path_factory.mktemp("multi")
    source = folder / "in.jsonl"
    source.write_bytes(b"".join(multi_passage_lines()))
    answer_file(engine, source, folder / "out.jsonl")
    return source, (folder / "out.jsonl").read_bytes()


def test_output_lines_carry_the_passage_and_bad_passage_lists_are_listed_with_their_line(uninterrupted):
    source, output = uninterrupted
    records = [json.loads(line) for line in output.splitlines()]
    assert [record["id"] for record in records] == [f"{'s' if i % 3 == 0 else 'm'}{i}" for i in range(14) if i not in (3, 8)]
    inputs = {json.loads(line)["id"]: json.loads(line) for line in multi_passage_lines() if b'"answers"' in line}
    for record in records:
        given = inputs[record["id"]]
        assert "contexts" not in record and "context" not in record and record["note"] == given["note"]
        assert record["answers"] == given["answers"]  # gold passes through
        assert len(record["top_answers"]) == 2
        if "contexts" in given:
            texts = {0: given["contexts"][0], "main": given["contexts"][1]["text"], 2: given["contexts"][2]}
            assert record["passage"] in texts
            assert texts[record["passage"]][record["start"] : record["end"]] == record["answer"]
        else:
            assert "passage" not in record
            assert given["context"][record["start"] : record["end"]] == record["answer"]
    errors = [json.loads(line) for line in (source.parent / "out.jsonl.errors.jsonl").read_bytes().splitlines()]
    assert [(e["line"], e["id"], e["error"]) for e in errors] == [
        (4, "empty", 'field "contexts" is an empty list; give at least one passage'),
        (9, "number", 'field "contexts" item 1 must be a string or a {"text", "id"} object, got a JSON number'),
    ]


@pytest.mark.parametrize("lines_kept", [0, 1, 3, 5, 11])
def test_resume_finishes_a_torn_output_byte_for_byte(engine, uninterrupted, tmp_path, lines_kept):
    source, full = uninterrupted
    lines = full.splitlines(keepends=True)
    output = tmp_path / "out.jsonl"
    output.write_bytes(b"".join(lines[:lines_kept]) + lines[lines_kept][:17])  # a crash in the middle of a line
    write_settings(output.with_name("out.jsonl.run.json"), engine.answer_settings())
    result = answer_file(engine, source, output, AnswerFileOptions(resume=True, overwrite=False, errors=tmp_path / "e"))
    assert output.read_bytes() == full
    assert (result.already_answered, result.answered, result.replay_mismatches) == (lines_kept, 12 - lines_kept, 0)


def test_qa_answer_cli_and_qa_eval_on_multi_passage_records(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    good = [line for line in multi_passage_lines() if b'"answers"' in line]
    source.write_bytes(b"".join(good))
    output = tmp_path / "out.jsonl"
    arguments = [str(source), "-o", str(output), "--model", str(tiny_model), "--top-k", "3", "--no-align-to-words"]
    assert main(arguments) == 0
    summary = capsys.readouterr().err
    assert "answered 12" in summary and "EM " in summary
    records = [json.loads(line) for line in output.read_bytes().splitlines()]
    assert all(len(record["top_answers"]) <= 3 for record in records)
    settings = json.loads((tmp_path / "out.jsonl.run.json").read_text())["settings"]["decode"]
    assert (settings["top_k"], settings["align_to_words"]) == (3, False)

    # qa-eval scores them against the records' own gold answers, as qa-answer's summary did.
    result = evaluate_files(source, output)
    assert (result.total, result.missing_ids, result.rules) == (12, (), "v1.1")
    correct = [record for record in records if record["answer"] in record["answers"]]
    assert result.exact_match == pytest.approx(100 * len(correct) / 12)
    assert eval_main([str(source), str(output)]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 12


def test_one_question_over_several_context_flags(tiny_model, capsys):
    passages = ["The mill at Fennow opened in 1851.", "The mill at Calder opened in 1852."]
    arguments = ["--question", "When did the mill at Calder open?", "--model", str(tiny_model), "--top-k", "2"]
    assert main([*arguments, "--context", passages[0], "--context", passages[1]]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["passage"] in (0, 1) and passages[answer["passage"]][answer["start"] : answer["end"]] == answer["answer"]
    assert len(answer["top_answers"]) == 2
    assert main([*arguments, "--context", passages[0]]) == 0  # one --context: a single context, no "passage"
    assert "passage" not in json.loads(capsys.readouterr().out)
