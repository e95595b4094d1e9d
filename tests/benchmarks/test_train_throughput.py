"""The training throughput benchmark on a tiny random BERT: real steps, each configuration's padding, the report."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from spanqa.benchmarks.train_throughput import main
from spanqa.training.dataset import WindowCollator
from spanqa.training.model import bf16_is_native

WIDTH = 384  # the notebook's window length, which the notebook configuration pads every window to
BATCH = 4
STEPS = 3
COLOURS = ["amber", "cobalt", "crimson", "jade", "ochre", "teal"]
TOOLS = ["a hammer", "a ladder", "a lantern", "a rope", "a compass", "a kettle"]


def record(index: int) -> dict:
    """Contexts of different lengths (1 to 8 sentences), so length grouping and dynamic padding have work to do."""
    colour, tool = COLOURS[index % len(COLOURS)], TOOLS[(5 * index) % len(TOOLS)]
    filler = " ".join(f"On day {day} the {colour} boat stayed in port." for day in range(index % 8))
    context = f"The {colour} boat carried {tool} across the lake. {filler}".strip()
    answer = {"text": tool, "answer_start": context.index(tool)}
    question = f"What did the {colour} boat carry?"
    return {"id": f"t{index}", "question": question, "context": context, "answers": [answer]}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(record(index)) + "\n" for index in range(40)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory, tiny_model, data) -> tuple[dict, str]:
    output = tmp_path_factory.mktemp("bench") / "report.json"
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        code = main(["--data", str(data), "--model", str(tiny_model), "--examples", "32", "--steps", str(STEPS),
                     "--warmup-steps", "1", "--batch-size", str(BATCH), "--json", str(output)])  # fmt: skip
    assert code == 0
    return json.loads(output.read_text(encoding="utf-8")), table.getvalue()


def results(report: dict) -> dict[str, dict]:
    return {result["name"]: result for result in report["results"]}


def test_every_configuration_runs_its_steps(bench):
    report, _ = bench
    by_name = results(report)
    assert list(by_name) == ["notebook", "dynamic", "dynamic-bf16"]
    assert report["examples"] == 32 and report["windows"] == 32  # short contexts: one window each
    for result in by_name.values():
        assert result["timed_steps"] == STEPS
        assert [step["warmup"] for step in result["steps"]] == [True] + [False] * STEPS
        timed = [step for step in result["steps"] if not step["warmup"]]
        assert all(step["seconds"] > 0 and step["rows"] == BATCH for step in timed)
        assert result["median_seconds_per_step"] > 0
        assert result["features_per_second"] == pytest.approx(BATCH / result["median_seconds_per_step"])
        assert result["tokens_per_second_with_padding"] > result["tokens_per_second_without_padding"] > 0


def test_notebook_batches_are_padded_to_384(bench):
    notebook = results(bench[0])["notebook"]
    for step in notebook["steps"]:
        assert step["width"] == WIDTH
        assert step["padded_tokens"] == BATCH * WIDTH  # what the Trainer counted, not only what the collator made
        assert step["longest"] < WIDTH  # so the padding to 384 was really added
    assert notebook["mean_width"] == WIDTH
    assert notebook["padding_fraction"] > 0.5
    assert notebook["batches"] == "random" and notebook["precision"] == "fp32"


def test_dynamic_batches_are_padded_to_their_longest_window(bench):
    by_name = results(bench[0])
    for name in ("dynamic", "dynamic-bf16"):
        result = by_name[name]
        for step in result["steps"]:
            assert step["width"] == step["longest"] < WIDTH
            assert step["padded_tokens"] == step["rows"] * step["width"]
        assert result["mean_width"] < WIDTH
        assert result["padding_fraction"] < by_name["notebook"]["padding_fraction"]
        assert result["batches"] == "length-grouped"


def test_precision_and_ratios_are_reported(bench):
    report, table = bench
    by_name = results(report)
    assert by_name["notebook"]["speedup_vs_notebook"] == 1.0
    for name in ("dynamic", "dynamic-bf16"):
        expected = by_name[name]["features_per_second"] / by_name["notebook"]["features_per_second"]
        assert by_name[name]["speedup_vs_notebook"] == pytest.approx(expected)
    native = bf16_is_native(torch.cuda.is_available())
    assert by_name["dynamic"]["precision"] == "fp32"
    assert by_name["dynamic-bf16"]["precision"] == ("bf16 (native)" if native else "bf16 (emulated)")
    assert ("bf16 here is emulated" in table) is not native
    for name in by_name:
        assert f"| {name} |" in table


def test_machine_and_versions_are_recorded(bench):
    report, table = bench
    assert report["machine"]["cpu"] and report["machine"]["logical_cores"] >= 1
    assert report["machine"]["device"] in ("cpu", "cuda")
    assert report["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert report["versions"]["transformers"] != "not installed"
    assert f"torch {report['versions']['torch']}" in table


def test_collator_pads_to_a_fixed_width_when_asked(tokenizer):
    rows = [{"input_ids": [101, 7, 102], "token_type_ids": [0, 0, 0], "length": 3},
            {"input_ids": [101, 7, 8, 9, 102], "token_type_ids": [0, 0, 0, 1, 1], "length": 5}]  # fmt: skip
    fixed = WindowCollator(tokenizer, pad_to=12)(rows)
    assert fixed["input_ids"].shape == (2, 12) and fixed["attention_mask"].sum(dim=1).tolist() == [3, 5]
    assert "length" not in fixed
    assert WindowCollator(tokenizer)(rows)["input_ids"].shape == (2, 5)
    with pytest.raises(ValueError, match="6 tokens does not fit pad_to=4"):
        WindowCollator(tokenizer, pad_to=4)([{"input_ids": [1] * 6, "token_type_ids": [0] * 6}])


def test_bad_options_and_input_exit_2(capsys, tmp_path, tiny_model, data):
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(data), "--configs", "notebook,fast"])
    assert exit_info.value.code == 2 and "unknown fast" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(data), "--warmup-steps", "0"])
    assert exit_info.value.code == 2 and "--warmup-steps must be at least 1" in capsys.readouterr().err
    missing = tmp_path / "missing.jsonl"
    assert main(["--data", str(missing), "--model", str(tiny_model)]) == 2
    assert str(missing) in capsys.readouterr().err
