"""The PyTorch scoring path used for dev-set figures: windows -> model -> decoder -> official metric."""

from __future__ import annotations

import json

from spanqa.benchmarks.score_checkpoint import main, score_checkpoint

CONTEXT = "The lighthouse on Skerry Point was built in 1871 by a crew of eleven masons from Aberdeen."


def test_scores_a_checkpoint_end_to_end(tmp_path, tiny_model, capsys):
    rows = [
        {"id": f"q{i}", "question": question, "context": CONTEXT * (1 + i % 3), "answers": [{"text": answer, "answer_start": CONTEXT.index(answer)}]}
        for i, (question, answer) in enumerate([("When was it built?", "1871"), ("Where were the masons from?", "Aberdeen"), ("How many masons?", "eleven")] * 2)
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    score = score_checkpoint(str(tiny_model), str(data), every=2, batch_size=2)
    assert score.questions == 3 and score.windows == 3
    assert 0.0 <= score.exact_match <= score.f1 <= 100.0
    assert main([str(tiny_model), "--data", str(data)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["questions"] == 6 and printed["checkpoint"] == str(tiny_model)


def test_bad_data_is_exit_2(tmp_path, tiny_model, capsys):
    assert main([str(tiny_model), "--data", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err
