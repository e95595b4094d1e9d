"""The README's main job as a test: its first command, through the installed `qa-answer`, on the shipped int8 model,
must print the EM/F1 the README quotes; and the shipped model's own parity record is tied to the engine.

The shipped model is static int8 (its activation scales were calibrated at export), so an answer does not depend on
its batch mates: `qa-answer`'s batches (length-sorted windows packed under the token budget) and qa-export's parity
gate's (32 length-sorted windows, no budget) give the same answers, and the README's figures are the manifest's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from support import REPO_ROOT


MAIN_JOB_INPUT = "engine/sample_data/questions.jsonl"  # as the README's command names it (the main_job fixture runs it)

SUMMARY = re.compile(
    r"qa-answer: answered (?P<answered>\d+); (?P<bad>\d+) bad lines skipped; .*?EM (?P<em>\d+\.\d\d) "
    r"F1 (?P<f1>\d+\.\d\d) on (?P<scored>\d+)\s+questions with gold answers",
    re.DOTALL,
)


def _readme_figures() -> dict[str, str]:
    """The main job's summary as README.md quotes it (the paragraph after the first command)."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    quoted = SUMMARY.search(readme)
    assert quoted, "README.md no longer quotes the main job's summary line (qa-answer: answered ...; EM ... F1 ...)"
    return quoted.groupdict()


def test_readme_main_job_prints_the_figures_the_readme_quotes(main_job):
    assert main_job.returncode == 0, main_job.stderr[-2000:]
    printed = SUMMARY.search(main_job.stderr)
    assert printed, main_job.stderr[-2000:]
    assert printed.groupdict() == _readme_figures()
    assert printed["answered"] == printed["scored"] == "155" and printed["bad"] == "0"


def test_main_job_summary_agrees_with_its_answers_file(main_job):
    # The summary scores answers as they stream past; qa-eval's library scores the file written, independently.
    from spanqa.engine.evaluation.scoring import evaluate_files

    printed = SUMMARY.search(main_job.stderr)
    assert printed, main_job.stderr[-2000:]
    result = evaluate_files(REPO_ROOT / MAIN_JOB_INPUT, main_job.output)
    assert (f"{result.exact_match:.2f}", f"{result.f1:.2f}") == (printed["em"], printed["f1"])
    assert result.total == 155 and not result.missing_ids
    lines = main_job.output.read_text(encoding="utf-8").splitlines()
    inputs = (REPO_ROOT / MAIN_JOB_INPUT).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [json.loads(line)["id"] for line in inputs]
    assert {"answer", "score", "start", "end"} <= set(json.loads(lines[0]))


def test_manifest_sample_parity_is_the_engine_under_the_parity_gate_batches():
    from spanqa.engine import EngineOptions, QAEngine, default_model_dir
    from spanqa.engine.core.data import load_examples, sample_questions_path
    from spanqa.engine.core.model_folder import read_manifest
    from spanqa.engine.evaluation.scoring import evaluate
    from spanqa.export.options import ExportOptions

    folder = default_model_dir()
    parity = read_manifest(folder).parity
    assert parity is not None and parity.validation == "built-in sample"
    examples = load_examples(str(sample_questions_path()))

    # The gate's batches: `ExportOptions.batch_size` length-sorted windows (32, the default the model was exported
    # with), never cut by a token budget; the 155 questions fit in one look-ahead group, as they are one set there.
    gate = EngineOptions(max_batch_tokens=10**9, max_batch_windows=ExportOptions.batch_size)
    assert len(examples) <= gate.lookahead
    engine = QAEngine(folder, device="cpu", options=gate)
    result = evaluate(examples, {answer.id: answer.answer for answer in engine.answer_many(examples)})
    assert (round(result.exact_match, 4), round(result.f1, 4)) == (parity.exact_match, parity.f1)
    assert engine.stats.windows == parity.windows
    # Static int8: the engine's default batches give the same figures, which are the README's main-job figures.
    default = QAEngine(folder, device="cpu")
    again = evaluate(examples, {answer.id: answer.answer for answer in default.answer_many(examples)})
    assert (round(again.exact_match, 4), round(again.f1, 4)) == (parity.exact_match, parity.f1)
    assert read_manifest(folder).calibration is not None
    readme = _readme_figures()
    assert (readme["em"], readme["f1"]) == (f"{parity.exact_match:.2f}", f"{parity.f1:.2f}")
