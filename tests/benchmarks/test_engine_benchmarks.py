"""The engine benchmark scripts behind BENCHMARKS.md and RELIABILITY.md, on a few questions: each figure they
print is checked against what it is computed from."""

from __future__ import annotations

import json

import pytest

from spanqa.benchmarks import engine_overhead, id_set_memory, int8_batching, token_budget_sweep
from spanqa.benchmarks.measure import Budget, make_engine, write_markdown
from spanqa.engine.core.data import load_examples

QUESTIONS = 8


@pytest.fixture(scope="module")
def dev_examples(squad_dir):
    return load_examples(squad_dir / "dev-v1.1.json.gz")[:QUESTIONS]


def test_budgets_parse_to_engine_settings():
    from spanqa.engine.runtime.options import EngineOptions

    assert Budget.parse("one-window") == Budget("one-window", EngineOptions().max_batch_tokens, 1)
    assert Budget.parse("4096") == Budget("4096 tokens", 4096, 64)
    with pytest.raises(ValueError):
        Budget.parse("lots")


def test_a_markdown_result_carries_the_command_that_made_it(tmp_path):
    path = tmp_path / "result.md"
    write_markdown(str(path), "| a |\n|---|", "spanqa.benchmarks.x", ["--limit", "3", "--json", "r.json"])
    assert path.read_text() == "| a |\n|---|\n\n```\npython -m spanqa.benchmarks.x --limit 3 --json r.json\n```\n"
    write_markdown(None, "ignored", "spanqa.benchmarks.x", [])  # no --markdown: nothing written, no error


def test_engine_overhead_times_the_same_batches_both_ways(dev_examples):
    engine = make_engine(None, threads=1)
    groups = engine_overhead.prepared_groups(engine, dev_examples)
    result = engine_overhead.measure(engine, dev_examples, rounds=2)
    assert result["questions"] == QUESTIONS and result["windows"] == sum(len(g.windows.lengths) for g in groups)
    assert engine.stats.examples == QUESTIONS and engine.stats.windows == result["windows"]  # the last e2e pass
    for name in ("end to end", "model only"):
        walls = result["systems"][name]["wall_seconds"]
        assert len(walls) == 2 and min(walls) > 0
    ratios = [model / whole for whole, model in zip(result["systems"]["end to end"]["wall_seconds"],
                                                    result["systems"]["model only"]["wall_seconds"])]  # fmt: skip
    assert result["ratio_per_round"] == pytest.approx(ratios)


def test_batching_comparison_scores_and_counts_identical_answers(dev_examples):
    from spanqa.engine.evaluation.scoring import evaluate

    budgets = [Budget.parse("1024"), Budget.parse("one-window")]
    rows = int8_batching.compare(None, budgets, dev_examples, threads=1)
    first, _, _ = int8_batching.answers_at(None, budgets[0], dev_examples, threads=1)
    single, _, _ = int8_batching.answers_at(None, budgets[1], dev_examples, threads=1)
    scores = evaluate(dev_examples, dict(zip([example.id for example in dev_examples], single)))
    assert rows["one-window"]["f1"] == scores.f1 and rows["one-window"]["padding_fraction"] == 0.0
    assert rows["1024 tokens"]["identical_to_first"] == 100.0
    same = sum(a == b for a, b in zip(first, single))
    assert rows["one-window"]["identical_to_first"] == 100.0 * same / QUESTIONS


def test_token_budget_sweep_reports_every_budget(dev_examples):
    engines = {budget.label: make_engine(None, budget, threads=1) for budget in map(Budget.parse, ("one-window", "512"))}
    rows = token_budget_sweep.sweep(engines, dev_examples, rounds=1)
    assert list(rows) == ["one-window", "512 tokens"]
    assert rows["one-window"]["padding_fraction"] == 0.0 and rows["512 tokens"]["padding_fraction"] >= 0.0
    for row in rows.values():
        assert row["questions_per_cpu_second"] == pytest.approx(QUESTIONS / row["cpu_seconds"][0])


def test_id_set_memory_answers_every_record(tmp_path, capsys):
    assert id_set_memory.main(["--records", "300,3000", "--json", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    runs = result["runs"]
    assert (runs["300"]["answered"], runs["3000"]["answered"]) == (300, 3000)
    growth = (runs["3000"]["peak_rss_bytes"] - runs["300"]["peak_rss_bytes"]) / 2700
    assert result["bytes_per_record"] == pytest.approx(growth)
    assert "| 3,000 |" in capsys.readouterr().out
