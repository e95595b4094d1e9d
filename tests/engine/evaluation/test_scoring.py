"""`qa-eval` and the scoring library behind it: formats, v2.0 output, every bad-input path, and the official v1.1
script's numbers (an independent reimplementation written here) on the full dev set with mixed predictions."""

from __future__ import annotations

import gzip
import json
import random
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from spanqa.engine.core.data import QAExample, load_examples
from spanqa.engine.cli.eval import main
from spanqa.engine.core.metrics import question_scores, squad_v1_scores
from spanqa.engine.evaluation.scoring import (
    PredictionsError,
    ScoringError,
    evaluate,
    evaluate_files,
    read_predictions,
)

# Invented text (no SQuAD text in the repository).
CONTEXT = "Ada Lovelace wrote the first program in 1843 for the Analytical Engine."


def _qa(question_id: str, answers: Sequence[str], **extra: object) -> dict:
    return {
        "id": question_id,
        "question": f"Question {question_id}?",
        "answers": [{"text": text, "answer_start": CONTEXT.index(text)} for text in answers],
        **extra,
    }


def _write_squad(path: Path, qas: list[dict], version: str = "1.1") -> Path:
    document = {"version": version, "data": [{"title": "Computing", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def v1_data(tmp_path: Path) -> Path:
    return _write_squad(
        tmp_path / "v1.json",
        [
            _qa("q1", ["Ada Lovelace", "Lovelace"]),
            _qa("q2", ["1843"]),
            _qa("q3", ["the Analytical Engine"]),
            _qa("q4", ["the first program"]),
        ],
    )


# Worked by hand for v1_data: q1 exact (EM 1); q2 "in 1843" vs "1843": P 1/2, R 1, F1 2/3; q3 exact once the
# article is dropped; q4 missing (0). EM = 2/4, F1 = (1 + 2/3 + 1 + 0)/4 = 2/3.
V1_PREDICTIONS = {"q1": "ada lovelace.", "q2": "in 1843", "q3": "Analytical Engine"}
V1_EXACT = 50.0
V1_F1 = 100 * 2 / 3


@pytest.fixture
def v2_data(tmp_path: Path) -> Path:
    return _write_squad(
        tmp_path / "v2.json",
        [
            _qa("q1", ["Ada Lovelace"], is_impossible=False),
            _qa("q2", [], is_impossible=True),
            _qa("q3", [], is_impossible=True),
        ],
        version="v2.0",
    )


V2_PREDICTIONS = {"q1": "Ada Lovelace", "q2": "", "q3": "1843"}
GOOD_LINE = '{"id": "q1", "answer": "a"}\n'


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    return _write(path, "".join(json.dumps(record) + "\n" for record in records))


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _run_ok(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert out.count("\n") == 1  # one JSON object, one line
    return json.loads(out)


def _run_failing(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("qa-eval: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# --- success paths ---------------------------------------------------------------------------------------


def test_official_json_predictions(v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = _write(tmp_path / "predictions.json", json.dumps(V1_PREDICTIONS, indent=2))
    summary = _run_ok([str(v1_data), str(predictions)], capsys)
    assert summary == {"exact_match": V1_EXACT, "f1": pytest.approx(V1_F1), "total": 4, "missing": 1}


def test_jsonl_predictions_with_extra_fields(v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [{"id": qid, "answer": text, "score": 3.5, "start": 0} for qid, text in V1_PREDICTIONS.items()]
    predictions = _write(tmp_path / "answers.jsonl", "\n".join(json.dumps(record) for record in records) + "\n\n")
    summary = _run_ok([str(v1_data), str(predictions)], capsys)
    assert summary == {"exact_match": V1_EXACT, "f1": pytest.approx(V1_F1), "total": 4, "missing": 1}


def test_format_is_detected_by_content_not_name(tmp_path: Path) -> None:
    # JSON Lines under a .json name, and the official object under a .jsonl name.
    as_jsonl = _write_jsonl(tmp_path / "a.json", [{"id": "q1", "answer": "x"}, {"id": "q2", "answer": "y"}])
    assert read_predictions(as_jsonl) == {"q1": "x", "q2": "y"}
    as_object = _write(tmp_path / "b.jsonl", json.dumps({"q1": "x", "q2": "y"}))
    assert read_predictions(as_object) == {"q1": "x", "q2": "y"}
    # A single JSON Lines record is still a record, not predictions for questions named "id" and "answer".
    single = _write_jsonl(tmp_path / "c.jsonl", [{"id": "q1", "answer": "x", "score": 1.0}])
    assert read_predictions(single) == {"q1": "x"}


def test_gzip_predictions(v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = tmp_path / "predictions.json.gz"
    predictions.write_bytes(gzip.compress(json.dumps(V1_PREDICTIONS).encode()))
    assert _run_ok([str(v1_data), str(predictions)], capsys)["exact_match"] == V1_EXACT


def test_missing_predictions_warn_on_stderr(v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = _write(tmp_path / "p.json", json.dumps({"q1": "Ada Lovelace"}))
    code, out, err = _run([str(v1_data), str(predictions)], capsys)
    assert code == 0
    assert json.loads(out)["missing"] == 3
    assert err.count("\n") == 1
    assert err.startswith("qa-eval: warning: 3 of 4 questions have no prediction")
    assert "'q2'" in err


def test_complete_predictions_print_no_warning(
    v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions = _write(tmp_path / "p.json", json.dumps({**V1_PREDICTIONS, "q4": "the first program"}))
    code, out, err = _run([str(v1_data), str(predictions)], capsys)
    assert (code, err) == (0, "")
    expected_f1 = 100 * (3 + 2 / 3) / 4
    assert json.loads(out) == {"exact_match": 75.0, "f1": pytest.approx(expected_f1), "total": 4, "missing": 0}


def test_v2_breakdown(v2_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = _write(tmp_path / "p.json", json.dumps(V2_PREDICTIONS))
    summary = _run_ok([str(v2_data), str(predictions)], capsys)
    # q1 right, q2 rightly empty, q3 answers an unanswerable question.
    assert summary == {
        "exact_match": pytest.approx(200 / 3),
        "f1": pytest.approx(200 / 3),
        "total": 3,
        "missing": 0,
        "HasAns_exact": 100.0,
        "HasAns_f1": 100.0,
        "HasAns_total": 1,
        "NoAns_exact": 50.0,
        "NoAns_f1": 50.0,
        "NoAns_total": 2,
    }


def test_v2_best_threshold(v2_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = _write(tmp_path / "p.json", json.dumps(V2_PREDICTIONS))
    na_probs = _write(tmp_path / "na.json", json.dumps({"q1": 0.2, "q2": 0.9, "q3": 0.5}))
    summary = _run_ok([str(v2_data), str(predictions), "--na-probs", str(na_probs)], capsys)
    # Abstaining everywhere: 2 of 3. Answering q1 (0.2) adds 1 -> 3 of 3; answering q3 (0.5) then loses 1.
    assert (summary["best_exact"], summary["best_exact_thresh"]) == (100.0, 0.2)
    assert (summary["best_f1"], summary["best_f1_thresh"]) == (100.0, 0.2)
    assert summary["exact_match"] == pytest.approx(200 / 3)


def test_v1_data_has_no_v2_keys(v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = _write(tmp_path / "p.json", json.dumps(V1_PREDICTIONS))
    summary = _run_ok([str(v1_data), str(predictions)], capsys)
    assert not any(key.startswith(("HasAns", "NoAns", "best")) for key in summary)


def test_library_result(v2_data: Path, tmp_path: Path) -> None:
    predictions = _write(tmp_path / "p.json", json.dumps({"q1": "Ada", "q2": ""}))
    result = evaluate_files(v2_data, predictions)
    assert result.rules == "v2.0"
    assert result.missing_ids == ("q3",)
    # q1 "Ada" vs "Ada Lovelace": P 1, R 1/2, F1 2/3.
    assert result.has_ans is not None and result.has_ans.f1 == pytest.approx(100 * 2 / 3)
    assert result.no_ans is not None and result.no_ans.exact == 50.0
    assert result.thresholds is None


def test_help_explains_every_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--help"], capsys)
    assert code == 0
    for word in ("DATA", "PREDICTIONS", "--na-probs", "--split", "JSON Lines", "exact_match", "missing", "0-100"):
        assert word in out


def test_console_process_exit_codes(v1_data: Path, tmp_path: Path) -> None:
    # The real process: exit status and streams as a shell sees them.
    predictions = _write(tmp_path / "p.json", json.dumps(V1_PREDICTIONS))
    command = [sys.executable, "-m", "spanqa.engine.cli.eval"]
    ok = subprocess.run([*command, str(v1_data), str(predictions)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["exact_match"] == V1_EXACT
    absent = tmp_path / "nope.json"
    bad = subprocess.run([*command, str(v1_data), str(absent)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"qa-eval: error: {absent}: no such file"


# --- bad input -------------------------------------------------------------------------------------------


def test_missing_predictions_file(v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _run_failing([str(v1_data), str(tmp_path / "absent.json")], capsys)
    assert "absent.json: no such file" in err


def test_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = _write(tmp_path / "p.json", json.dumps(V1_PREDICTIONS))
    err = _run_failing([str(tmp_path / "absent-data.json"), str(predictions)], capsys)
    assert "absent-data.json" in err and "no such file" in err


def test_missing_na_probs_file(v2_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = _write(tmp_path / "p.json", json.dumps(V2_PREDICTIONS))
    err = _run_failing([str(v2_data), str(predictions), "--na-probs", str(tmp_path / "na.json")], capsys)
    assert "na.json: no such file" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Official format, comma missing after line 3.
        ('{\n  "q1": "a",\n  "q2": "b"\n  "q3": "c"\n}\n', r"p\.txt:4: invalid JSON \(Expecting ','.*column 3"),
        # Unterminated official object.
        ('{"q1": "a",\n"q2": "b"', r"p\.txt:2: invalid JSON \(Expecting ',' delimiter"),
        # JSON Lines, third line broken.
        (GOOD_LINE + '{"id": "q2", "answer": "b"}\n{"id": "q3", "answer": }\n', r"p\.txt:3: invalid JSON"),
        (GOOD_LINE + '["q2", "b"]\n', r"p\.txt:2: expected a JSON object, got a JSON array"),
        (GOOD_LINE + '{"answer": "b"}\n', r'p\.txt:2: missing field "id"'),
        (GOOD_LINE + '\n{"id": "q2", "text": "b"}\n', r'p\.txt:3: missing field "answer"'),
        (GOOD_LINE + '{"id": "q2", "answer": null}\n', r'p\.txt:2: field "answer" must be a string, got a JSON null'),
        (GOOD_LINE + '{"id": "q2", "answer": ["b"]}\n', r'p\.txt:2: field "answer" must be a string, got a JSON array'),
        ('{"id": true, "answer": "a"}\n' + GOOD_LINE, r'p\.txt:1: field "id" must be a string or an integer, got a JSON boolean'),
        (GOOD_LINE + '{"id": "q2", "answer": "b", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n", r"p\.txt:2: invalid JSON \(nested deeper than 100 levels\)"),
        (GOOD_LINE + '{"id": "q2", "answer": "b", "x": ' + "7" * 4400 + "}\n", r"p\.txt:2: invalid JSON \(an integer of 4400 digits"),
        (GOOD_LINE + '{"id": "q2", "answer": "b", "x": {"k": 1, "k": 2}}\n', r"p\.txt:2: invalid JSON \(the key 'k' appears twice"),
        ('{\n  "q1": "a",\n  "q2": ' + "[" * 100_000 + "]" * 100_000 + "\n}\n", r"p\.txt:3: invalid JSON \(nested deeper"),
        ('{\n  "q1": "a",\n  "q2": NaN\n}\n', r"p\.txt:3: invalid JSON \(NaN is not a JSON value\)"),
        ('{"id": 5, "answer": "b"}\n{"id": "5", "answer": "c"}\n', r"p\.txt:2: duplicate id '5' \(first seen at line 1\)"),
        (
            GOOD_LINE + '{"id": "q2", "answer": "b"}\n{"id": "q1", "answer": "c"}\n',
            r"p\.txt:3: duplicate id 'q1' \(first seen at line 1\)",
        ),
        ('{\n  "q1": "a",\n  "q2": "b",\n  "q1": "c"\n}\n', r"p\.txt:4: duplicate id 'q1' \(first seen at line 2\)"),
        ('{\n  "q1": "a",\n  "q2": 3\n}\n', r"p\.txt:3: the answer for id 'q2' must be a string, got a JSON number"),
        ('[{"id": "q1", "answer": "a"}]', r"p\.txt:1: expected .* got a JSON array"),
        ("", r"p\.txt: is empty"),
        (" \n\n  \n", r"p\.txt: is empty"),
        ("{}", r"p\.txt: contains no predictions"),
    ],
)
def test_bad_predictions_file(
    text: str, expected: str, v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions = _write(tmp_path / "p.txt", text)
    err = _run_failing([str(v1_data), str(predictions)], capsys)
    assert str(predictions) in err
    assert re.search(expected, err), err


def test_predictions_that_are_not_utf8(v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = tmp_path / "p.json"
    predictions.write_bytes(b'{"q1": "caf\xe9"}')
    err = _run_failing([str(v1_data), str(predictions)], capsys)
    assert "p.json: is not UTF-8 text" in err


def test_integer_ids_match_gold_by_their_string_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # JSONL gold with integer ids and an id-less record (its line number, 3), scored from qa-answer-style JSONL
    # predictions with integer ids and from the official object, whose keys are strings.
    records = [
        {"id": 1, "question": "Who?", "context": CONTEXT, "answers": ["Ada Lovelace"]},
        {"id": "2", "question": "When?", "context": CONTEXT, "answers": {"text": ["1843"], "answer_start": [40]}},
        {"question": "For what?", "context": CONTEXT, "answers": [{"text": "the Analytical Engine", "answer_start": 49}]},
    ]
    data = _write_jsonl(tmp_path / "gold.jsonl", records)
    as_jsonl = _write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "answer": "Ada Lovelace"}, {"id": 2, "answer": "1843"},
                                                   {"id": 3, "answer": "Analytical Engine"}])  # fmt: skip
    as_object = _write(tmp_path / "p.json", json.dumps({"1": "Ada Lovelace", "2": "1843", "3": "Analytical Engine"}))
    for predictions in (as_jsonl, as_object):
        assert _run_ok([str(data), str(predictions)], capsys) == {"exact_match": 100.0, "f1": 100.0, "total": 3, "missing": 0}


def test_predictions_reader_can_report_bad_lines_and_keep_the_rest(tmp_path: Path) -> None:
    lines = [GOOD_LINE, '{"id": "q2", "answer": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "{broken\n", '{"id": "q3", "answer": "c"}\n']
    path = _write(tmp_path / "p.jsonl", "".join(lines))
    errors: list[PredictionsError] = []
    assert read_predictions(path, on_error=errors.append) == {"q1": "a", "q3": "c"}
    assert [str(error).split(": ", 1)[0] for error in errors] == [f"{path}:2", f"{path}:3"]
    with pytest.raises(PredictionsError, match=r"p\.jsonl:2: invalid JSON \(nested deeper than 100 levels\)"):
        read_predictions(path)


def test_format_detection_with_a_broken_first_line(tmp_path: Path) -> None:
    # A first line that is broken on its own, or cut after a comma with a record on the next line: JSON Lines.
    for first in ('{"id": "q1", "answer": "a', '{"id": "q1", ', "[" * 5000, "{}{"):
        path = _write(tmp_path / "p.jsonl", first + '\n{"id": "q2", "answer": "b"}\n')
        errors: list[PredictionsError] = []
        assert read_predictions(path, on_error=errors.append) == {"q2": "b"}, first
        assert len(errors) == 1 and str(errors[0]).startswith(f"{path}:1: ")


def test_unknown_prediction_ids(v1_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = {f"stray{i}": "x" for i in range(5)}
    predictions = _write(tmp_path / "p.json", json.dumps({**V1_PREDICTIONS, **extra}))
    err = _run_failing([str(v1_data), str(predictions)], capsys)
    assert f"{predictions}: 5 of 8 ids are not questions in {v1_data}" in err
    assert "'stray0', 'stray1', 'stray2', ..." in err
    assert "stray4" not in err


@pytest.mark.parametrize(
    ("na_probs", "expected"),
    [
        ({"q1": 0.2, "q2": 0.9}, r"no probability for 1 of 3 questions \(e\.g\. 'q3'\)"),
        ({"q1": 0.2, "q2": 0.9, "q3": 0.5, "q9": 0.1}, r"1 of 4 ids are not questions in .*\(e\.g\. 'q9'\)"),
        ({"q1": 0.2, "q2": "high", "q3": 0.5}, r"na\.json:1: the probability for id 'q2' must be a finite number"),
        ({"q1": 0.2, "q2": True, "q3": 0.5}, r"na\.json:1: the probability for id 'q2' must be a finite number"),
        ({"q1": 0.2, "q2": float("nan"), "q3": 0.5}, r"na\.json:1: invalid JSON \(NaN is not a JSON value\)"),
    ],
)
def test_bad_na_probs(
    na_probs: dict, expected: str, v2_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions = _write(tmp_path / "p.json", json.dumps(V2_PREDICTIONS))
    na_file = _write(tmp_path / "na.json", json.dumps(na_probs))
    err = _run_failing([str(v2_data), str(predictions), "--na-probs", str(na_file)], capsys)
    assert re.search(expected, err), err


def test_data_without_gold_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write_jsonl(tmp_path / "questions.jsonl", [{"id": "q1", "question": "Who?", "context": CONTEXT}])
    predictions = _write(tmp_path / "p.json", json.dumps({"q1": "Ada"}))
    err = _run_failing([str(data), str(predictions)], capsys)
    assert "questions.jsonl: 1 of 1 questions have no gold answers" in err and "'q1'" in err


def test_malformed_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "data.json", '{"data": [\n{"title": "x",\n')
    predictions = _write(tmp_path / "p.json", json.dumps({"q1": "Ada"}))
    err = _run_failing([str(data), str(predictions)], capsys)
    assert f"{data}:3:" in err


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["a.json", "b.json", "--threshold", "0.5"], capsys)
    assert code == 2
    assert "unrecognized arguments: --threshold" in err


def test_library_rejects_duplicate_question_ids() -> None:
    example = QAExample("q1", "Who?", CONTEXT, ("Ada Lovelace",), (0,))
    with pytest.raises(ScoringError, match="occur more than once"):
        evaluate([example, example], {"q1": "Ada"})


def test_library_error_types(tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="is empty"):
        read_predictions(_write(tmp_path / "empty.json", ""))


# --- the official v1.1 script's numbers on the full dev set ----------------------------------------------------
# An independent, plain reimplementation of evaluate-v1.1.py's rules, written here (no code shared with metrics.py):
# normalise (lower, strip ASCII punctuation, drop a/an/the, collapse whitespace); EM; F1 that returns 0 whenever no
# token is shared, both sides empty included; the best over each question's golds; a missing prediction scores 0
# and counts in the total.


def realistic_predictions(examples: Sequence[QAExample], seed: int = 20161) -> dict[str, str]:
    """Deterministic predictions of the kinds a real model makes, drawn from each question's own context."""
    rng = random.Random(seed)
    kinds = ["exact", "restyled", "partial", "extended", "wrong", "empty", "missing"]
    weights = [30, 15, 15, 15, 12, 6, 7]
    predictions: dict[str, str] = {}
    for example in examples:
        kind = rng.choices(kinds, weights)[0]
        which = rng.randrange(len(example.answer_texts))
        gold, start = example.answer_texts[which], example.answer_starts[which]
        words = gold.split()
        if kind == "missing":
            continue
        if kind == "exact":
            prediction = gold
        elif kind == "restyled":  # case, punctuation and articles that normalisation must see through
            recased = rng.choice([str.upper, str.lower, str.title, str.swapcase])(gold)
            prefix = rng.choice(["", "the ", "The ", "a ", "An ", '"'])
            prediction = prefix + recased + rng.choice(["", ".", "!", ",", '"'])
        elif kind == "partial" and len(words) > 1:  # words dropped from the start, the end or the middle
            cut = rng.randrange(1, len(words))
            kept = rng.choice([words[cut:], words[:cut], words[: cut - 1] + words[cut:]])
            prediction = " ".join(kept)
        elif kind in ("partial", "extended"):  # the span grown into neighbouring context words
            words_before = example.context[:start].split()
            before = words_before[max(0, len(words_before) - rng.randrange(0, 4)) :]
            after = example.context[start + len(gold) :].split()[: rng.randrange(1, 4)]
            prediction = " ".join([*before, gold, *after])
        elif kind == "wrong":  # a span from elsewhere in the context
            context_words = example.context.split()
            length = rng.randrange(1, 7)
            first = rng.randrange(max(1, len(context_words) - length))
            prediction = " ".join(context_words[first : first + length])
        else:  # empty, or nothing left after normalisation
            prediction = rng.choice(["", " ", "the", ".", "An"])
        predictions[example.id] = prediction
    return predictions


def _v1_normalize(text: str) -> str:
    text = text.lower()
    text = "".join(character for character in text if character not in _ASCII_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _v1_f1(prediction: str, gold: str) -> float:
    predicted, expected = _v1_normalize(prediction).split(), _v1_normalize(gold).split()
    common = {token: min(predicted.count(token), expected.count(token)) for token in set(predicted) & set(expected)}
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def official_v1(examples: Sequence[QAExample], predictions: dict[str, str]) -> dict[str, float]:
    exact = f1 = 0.0
    for example in examples:
        if example.id not in predictions:
            continue
        prediction = predictions[example.id]
        exact += max(float(_v1_normalize(prediction) == _v1_normalize(gold)) for gold in example.answer_texts)
        f1 += max(_v1_f1(prediction, gold) for gold in example.answer_texts)
    return {"exact_match": 100.0 * exact / len(examples), "f1": 100.0 * f1 / len(examples)}


def mixed_predictions(examples: Sequence[QAExample]) -> dict[str, str]:
    """`realistic_predictions`, plus an empty prediction for every question with a gold that normalises to nothing
    (three in dev, gold "."): the case where v1.1's F1 (0) and v2.0's (1) differ."""
    predictions = realistic_predictions(examples)
    for example in examples:
        if any(not _v1_normalize(gold) for gold in example.answer_texts):
            predictions[example.id] = ""
    return predictions


@pytest.fixture(scope="module")
def dev_agreement(squad_dir: Path) -> tuple[Path, list[QAExample], dict[str, str], dict[str, float]]:
    data = squad_dir / "dev-v1.1.json.gz"
    examples = load_examples(data)
    predictions = mixed_predictions(examples)
    return data, examples, predictions, official_v1(examples, predictions)


def test_mixed_predictions_cover_every_kind(dev_agreement) -> None:
    _, examples, predictions, reference = dev_agreement
    assert len(examples) == 10570
    missing = len(examples) - len(predictions)
    assert 500 < missing < 1000  # about 7%
    assert sum(1 for text in predictions.values() if not text.strip()) > 100
    assert sum(1 for text in predictions.values() if text.strip() and not _v1_normalize(text)) > 100  # ".", "the"
    # A mix: neither trivially right nor trivially wrong.
    assert 30 < reference["exact_match"] < 70 and reference["exact_match"] + 5 < reference["f1"] < 90
    # The v1.1 rule matters here: scoring both-empty as 1 (the v2.0 rule) would give a higher F1.
    both_empty = sum(1 for e in examples if e.id in predictions and any(not _v1_normalize(g) for g in e.answer_texts))
    assert both_empty == 3
    v2_rule_f1 = sum(question_scores(predictions[e.id], e.answer_texts, "v2.0")[1] for e in examples if e.id in predictions)
    v2_rule_f1 = 100 * v2_rule_f1 / len(examples)
    assert v2_rule_f1 == pytest.approx(reference["f1"] + 100 * 3 / len(examples), abs=1e-9)
    print(f"\nfull dev, mixed predictions: official v1.1 EM {reference['exact_match']!r} F1 {reference['f1']!r}; "
          f"with the v2.0 both-empty rule F1 {v2_rule_f1!r}")  # fmt: skip


def test_metrics_equal_the_official_v1_script_on_dev(dev_agreement) -> None:
    _, examples, predictions, reference = dev_agreement
    scores = squad_v1_scores({e.id: e.answer_texts for e in examples}, predictions)
    assert scores.total == 10570
    assert abs(scores.exact_match - reference["exact_match"]) < 1e-9
    assert abs(scores.f1 - reference["f1"]) < 1e-9


def test_evaluate_files_equals_the_official_v1_script_on_dev(dev_agreement, tmp_path: Path) -> None:
    data, examples, predictions, reference = dev_agreement
    predictions_file = _write(tmp_path / "predictions.json", json.dumps(predictions))
    result = evaluate_files(data, predictions_file)
    assert result.rules == "v1.1"
    assert len(result.missing_ids) == len(examples) - len(predictions)
    assert abs(result.exact_match - reference["exact_match"]) < 1e-9
    assert abs(result.f1 - reference["f1"]) < 1e-9


@pytest.mark.parametrize("shape", ["official", "jsonl"])
def test_qa_eval_equals_the_official_v1_script_on_dev(
    shape: str, dev_agreement, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, examples, predictions, reference = dev_agreement
    if shape == "official":
        predictions_file = _write(tmp_path / "predictions.json", json.dumps(predictions))
    else:
        records = [{"id": qid, "answer": text, "score": 0.5} for qid, text in predictions.items()]
        predictions_file = _write_jsonl(tmp_path / "answers.jsonl", records)
    code, out, err = _run([str(data), str(predictions_file)], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["total"] == 10570
    assert summary["missing"] == len(examples) - len(predictions)
    assert abs(summary["exact_match"] - reference["exact_match"]) < 1e-9
    assert abs(summary["f1"] - reference["f1"]) < 1e-9
