"""The README's main job as a test: its first command, through the installed `qa-answer`, on the shipped int8 model,
must print the EM/F1 the README quotes; and the shipped model's own parity record is tied to the engine.

Why the two figures on the same 155 questions differ (README: EM 89.68 / F1 93.02; manifest.json parity: EM 90.32 /
F1 93.63): dynamic int8 quantizes each batch's activations with one scale per tensor, so an int8 answer depends on
its batch mates and on the batch's padding. `qa-answer` batches as the engine does by default (length-sorted windows
packed under 1024 padded tokens and 64 windows); qa-export's parity gate ran 32 length-sorted windows per batch with no
token budget. Run with the gate's batches, the engine reproduces the manifest's figures exactly.
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
    # With the engine's default batches the same model gives the README's figures instead (the main-job test).
