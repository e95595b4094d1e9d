"""The PyTorch scoring path used for dev-set figures: windows -> model -> decoder -> official metric.

The model is replaced by a stub whose logits point at a known span of each window (found by the question's gold
answer), so the scores are known exactly: the gold span gives EM = F1 = 100; the span one token earlier ("in 1871"
for "1871") gives EM 0 and F1 66.67 (two tokens predicted, one of them right).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from spanqa.benchmarks.score_checkpoint import main, score_checkpoint

CONTEXT = "The lighthouse on Skerry Point was built in 1871 by a crew of eleven masons from Aberdeen."
QUESTIONS = [
    ("When was it built?", "1871"), ("Where were the masons from?", "Aberdeen"), ("How many masons?", "eleven"),
]  # fmt: skip


def _find(sequence: list[int], part: list[int]) -> int:
    return next(index for index in range(len(sequence)) if sequence[index : index + len(part)] == part)


def _span_stub(tokenizer, shift: int):
    """A QA model whose start/end logits are 10 on the question's gold answer span, moved `shift` tokens earlier at
    the start, and 0 elsewhere."""
    import torch

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    gold = {tuple(ids(question)): ids(answer) for question, answer in QUESTIONS}

    class SpanStub(torch.nn.Module):
        def forward(self, input_ids, attention_mask, token_type_ids=None):
            start = torch.zeros(input_ids.shape)
            end = torch.zeros(input_ids.shape)
            for row, tokens in enumerate(input_ids.tolist()):
                separator = tokens.index(tokenizer.sep_token_id)
                answer = gold[tuple(tokens[1:separator])]  # [CLS] question [SEP] context [SEP]
                first = separator + 1 + _find(tokens[separator + 1 :], answer)
                start[row, first - shift] = 10.0
                end[row, first + len(answer) - 1] = 10.0
            return SimpleNamespace(start_logits=start, end_logits=end)

    return SpanStub()


@pytest.fixture
def data(tmp_path):
    rows = [
        {"id": f"q{i}", "question": question, "context": CONTEXT * (1 + i % 3),
         "answers": [{"text": answer, "answer_start": CONTEXT.index(answer)}]}
        for i, (question, answer) in enumerate(QUESTIONS * 2)
    ]  # fmt: skip
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def stub_model(monkeypatch, tokenizer):
    from transformers import AutoModelForQuestionAnswering

    def use(shift: int) -> None:
        stub = _span_stub(tokenizer, shift)
        monkeypatch.setattr(AutoModelForQuestionAnswering, "from_pretrained", lambda *_, **__: stub)

    return use


def test_gold_spans_score_100(tiny_model, data, stub_model, capsys):
    stub_model(shift=0)
    score = score_checkpoint(str(tiny_model), str(data), every=2, batch_size=2)
    assert (score.questions, score.windows) == (3, 3)
    assert (score.exact_match, score.f1) == (100.0, 100.0)
    assert main([str(tiny_model), "--data", str(data)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["questions"], printed["exact_match"], printed["f1"]) == (6, 100.0, 100.0)
    assert printed["checkpoint"] == str(tiny_model)


def test_a_span_one_token_too_early_scores_partial_f1(tiny_model, data, stub_model):
    stub_model(shift=1)  # "in 1871", "from Aberdeen", "of eleven"
    score = score_checkpoint(str(tiny_model), str(data), batch_size=4)
    assert score.exact_match == 0.0
    assert score.f1 == pytest.approx(200 / 3)


def test_the_real_model_path_agrees_with_the_engine(tiny_model, data):
    # The tiny checkpoint itself (random weights), scored here and answered by QAEngine's torch backend with its own
    # batching: fp32 answers do not depend on batching, so the two pipelines give the same scores.
    from spanqa.engine import QAEngine
    from spanqa.engine.core.data import load_examples
    from spanqa.engine.evaluation.scoring import evaluate

    examples = load_examples(str(data))
    score = score_checkpoint(str(tiny_model), str(data), batch_size=2)
    answers = QAEngine(tiny_model, device="cpu").answer_many(examples)
    result = evaluate(examples, {answer.id: answer.answer for answer in answers})
    assert (score.questions, score.windows) == (6, 6)
    assert (score.exact_match, score.f1) == (result.exact_match, result.f1)


def test_bad_data_is_exit_2(tmp_path, tiny_model, capsys):
    assert main([str(tiny_model), "--data", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err
