"""The answering path runs on the core install: it imports no torch, transformers, scikit-learn or datasets (checked
in fresh processes with `python -X importtime`), and a command whose install extra is missing says which one in one
line instead of a traceback (checked with a meta-path blocker standing in for the uninstalled packages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.windows_oracle import SHIPPED_MODEL, windows_from_transformers

from spanqa.engine.core.data import load_examples, sample_questions_path

# What the core install does not have; regex is listed too, since the windows once needed it.
TRAINING_STACK = ("torch", "transformers", "sklearn", "datasets", "accelerate", "optimum", "regex")
QUESTION = "Who wrote the book?"
CONTEXT = "The book was written by Jane Austen in 1813 and published in London."

BLOCKER = '''
import importlib.abc, os, sys

class _Uninstalled(importlib.abc.MetaPathFinder):
    """Makes the listed top-level packages unimportable, as if they were not installed."""
    names = set(os.environ["SPANQA_TEST_UNINSTALLED"].split(","))

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Uninstalled())
'''


def run_python(arguments: list[str], env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def imported_top_level(importtime_stderr: str) -> set[str]:
    """Top-level packages named in `python -X importtime` lines ("import time: self | cumulative | name")."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name.split(".")[0])
    return names


def _answer_file_case(tmp_path: Path) -> list[str]:
    return ["-m", "spanqa.engine.cli.answer", str(sample_questions_path()), "-o", str(tmp_path / "answers.jsonl")]


CASES = {
    "import spanqa.engine": lambda tmp_path: ["-c", "import spanqa.engine"],
    "QAEngine.answer": lambda tmp_path: [
        "-c", f"from spanqa.engine import QAEngine; print(QAEngine().answer({QUESTION!r}, {CONTEXT!r}).answer)",
    ],  # fmt: skip
    "qa-answer --question": lambda tmp_path: [
        "-m", "spanqa.engine.cli.answer", "--question", QUESTION, "--context", CONTEXT,
    ],  # fmt: skip
    "qa-answer FILE": _answer_file_case,
    # What each --ray actor runs: the Ray modules and the actor class, which loads its engine on construction.
    "ray actor": lambda tmp_path: [
        "-c", "import ray, ray.data\nfrom spanqa.engine.jobs.ray.run import GroupAnswerer\n"
        "from spanqa.engine.runtime.options import EngineOptions\n"
        f"GroupAnswerer(None, EngineOptions(), [{str(sample_questions_path())!r}])",
    ],  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_answering_path_imports_no_training_stack(case, tmp_path):
    if case == "ray actor":
        pytest.importorskip("ray")
    result = run_python(["-X", "importtime", *CASES[case](tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    imported = imported_top_level(result.stderr)
    assert "numpy" in imported or case == "import spanqa.engine"  # the parse found the import lines
    assert not imported & set(TRAINING_STACK), sorted(imported & set(TRAINING_STACK))
    if case == "qa-answer FILE":
        assert "EM" in result.stderr and "F1" in result.stderr  # the sample carries gold answers: scored
    if case.startswith("qa-answer --question"):
        assert json.loads(result.stdout)["answer"] == "Jane Austen"


def test_qa_eval_imports_no_training_stack(tmp_path):
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps({"s001-q1": "chlorophyll"}))
    result = run_python(["-X", "importtime", "-m", "spanqa.engine.cli.eval", str(sample_questions_path()), str(predictions)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["total"] > 100
    assert not imported_top_level(result.stderr) & set(TRAINING_STACK)


@pytest.fixture
def without_torch(tmp_path) -> dict[str, str]:
    """Environment for a child process in which torch and transformers are not installed."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "SPANQA_TEST_UNINSTALLED": "torch,transformers"}


def _main_call(module: str, arguments: list[str]) -> list[str]:
    return ["-c", f"import sys\nfrom {module} import main\nsys.exit(main({arguments!r}))"]


def test_the_blocker_hides_torch(without_torch):
    result = run_python(["-c", "import torch"], env=without_torch)
    assert result.returncode == 1 and "No module named 'torch'" in result.stderr


def test_commands_without_their_extra_print_one_line(without_torch, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("")
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    commands = {
        ("qa-train", "train"): _main_call("spanqa.training.cli", ["--train", str(data), "--output", str(tmp_path / "o")]),
        ("qa-export", "export"): _main_call("spanqa.export.cli", [str(checkpoint), "--output", str(tmp_path / "e")]),
        ("qa-bench", "bench"): _main_call("spanqa.benchmarks.qa_bench.cli", ["--model", str(checkpoint), "--data", str(data)]),
    }
    for (program, extra), arguments in commands.items():
        result = run_python(arguments, env=without_torch)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (program, result.stderr[-2000:])
        assert lines[0] == f"{program}: error: needs pip install 'spanqa[{extra}]' (torch, transformers not installed)"


def test_qa_answer_on_a_checkpoint_without_torch_names_the_extra(without_torch, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    result = run_python(
        ["-m", "spanqa.engine.cli.answer", "--model", str(checkpoint), "--question", QUESTION, "--context", CONTEXT],
        env=without_torch,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"qa-answer: error: {checkpoint}: ") and "needs pip install 'spanqa[train]'" in lines[0]
    # The shipped exported model answers in the same environment.
    result = run_python(["-m", "spanqa.engine.cli.answer", "--question", QUESTION, "--context", CONTEXT], env=without_torch)
    assert result.returncode == 0 and json.loads(result.stdout)["answer"] == "Jane Austen", result.stderr[-2000:]


@pytest.mark.slow
def test_every_dev_answer_equals_the_transformers_tokenizer_path(squad_dir, monkeypatch):
    """End to end on all 10,570 dev questions: the shipped model's answers (text, span, score) with the windows cut
    by QATokenizer, and with windows cut by the transformers tokenizer as the engine did before."""
    transformers = pytest.importorskip("transformers")
    import spanqa.engine.runtime.batching as batching
    from spanqa.engine import QAEngine
    from spanqa.engine.evaluation.scoring import evaluate

    examples = load_examples(squad_dir / "dev-v1.1.json.gz")
    engine = QAEngine()
    answers = [answer.to_dict() for answer in engine.answer_many(examples)]
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(SHIPPED_MODEL)
    monkeypatch.setattr(
        batching, "make_windows", lambda tokenizer, group, options: windows_from_transformers(hf_tokenizer, group, options)
    )
    before = [answer.to_dict() for answer in engine.answer_many(examples)]
    assert len(answers) == len(before) == 10570
    differ = [i for i, (now, then) in enumerate(zip(answers, before)) if now != then]
    assert not differ, (len(differ), answers[differ[0]], before[differ[0]])
    scores = evaluate(examples, {answer["id"]: answer["answer"] for answer in answers})
    print(f"dev v1.1, shipped int8 model, both paths: EM {scores.exact_match:.2f} F1 {scores.f1:.2f}")
