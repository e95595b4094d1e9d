"""How much a dynamically quantized model's answers depend on their batch mates: the same questions answered at
several batching settings, scored, and compared answer by answer with the first setting.

    python -m spanqa.benchmarks.int8_batching --limit 1000 --budgets 1024,4096,one-window [--model DIR] [--json out.json]

Dynamic int8 quantizes activations per tensor, i.e. per batch (padding included), so an answer can change when its
batch changes; a static int8 or fp32 model's answers should not (run it with --model on one to see). The engine
picks its backend as qa-answer does (OpenVINO for a folder with an OpenVINO graph where that wins, see
runtime/backends/loading.py); each row names the runtime. Speed is not measured here; see token_budget_sweep.
"""

from __future__ import annotations

import argparse
import sys

from spanqa.benchmarks.measure import Budget, add_data_arguments, load_questions, machine_note, make_engine, markdown_table, report


def answers_at(model: str | None, budget: Budget, examples: list, threads: int) -> tuple[list[str], float, str]:
    engine = make_engine(model, budget, threads=threads)
    answers = [answer.answer for answer in engine.answer_many(examples)]
    return answers, engine.stats.padding_fraction, engine.backend.providers[0]


def compare(model: str | None, budgets: list[Budget], examples: list, threads: int) -> dict[str, dict]:
    from spanqa.engine.evaluation.scoring import evaluate

    rows: dict[str, dict] = {}
    reference: list[str] | None = None
    for budget in budgets:
        answers, padding, runtime = answers_at(model, budget, examples, threads)
        reference = answers if reference is None else reference
        scores = evaluate(examples, {example.id: answer for example, answer in zip(examples, answers, strict=True)})
        same = sum(ours == theirs for ours, theirs in zip(answers, reference, strict=True))
        rows[budget.label] = {"exact_match": scores.exact_match, "f1": scores.f1, "padding_fraction": padding,
                              "identical_to_first": 100.0 * same / len(examples),
                              "answers_differing": len(examples) - same, "runtime": runtime}  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, limit=1000)
    parser.add_argument("--model", help="an exported model folder (default: the shipped int8 model)")
    parser.add_argument("--budgets", default="1024,4096,one-window",
                        help="comma-separated token budgets or one-window; the first is the reference "
                             "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    parser.add_argument("--json", help="also write the result here")
    arguments = parser.parse_args(argv)
    budgets = Budget.parse_list(parser, arguments.budgets)
    if len(budgets) < 2:
        parser.error("--budgets: name at least two settings to compare")
    examples = load_questions(arguments.data, arguments.limit)
    rows = compare(arguments.model, budgets, examples, arguments.threads)
    result = {"benchmark": "int8_batching", "model": arguments.model or "shipped int8 (engine/models/minilm-l6-squad-int8)",
              "questions": len(examples), "machine": machine_note(), "budgets": rows}  # fmt: skip
    table = markdown_table(
        ["batching", "EM", "F1", "answers identical to the first row", "padding"],
        [[label, f"{row['exact_match']:.2f}", f"{row['f1']:.2f}", f"{row['identical_to_first']:.1f}%",
          f"{100 * row['padding_fraction']:.1f}%"] for label, row in rows.items()],
    )  # fmt: skip
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
