"""The engine's speed at several token budgets per batch: the measurement behind `max_batch_tokens=1024`.

    python -m spanqa.benchmarks.token_budget_sweep --limit 96 --rounds 3 --threads 1 \\
        --budgets one-window,512,1024,2048,4096 [--model DIR] [--json out.json]

One engine per budget, all loaded first; then every round answers the same questions with each engine in turn
(order reversed every other round), after an untimed warm-up pass. The headline is questions per CPU-second (this
process, every thread), which a neighbour's load disturbs far less than wall time; one ONNX Runtime thread by default
for the same reason. `one-window` is one window per batch (no padding at all).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from spanqa.benchmarks.measure import (
    Budget, add_data_arguments, load_questions, machine_note, make_engine, markdown_table, report, timed,
)  # fmt: skip


def answer_all(engine, examples: list) -> list[str]:
    return [answer.answer for answer in engine.answer_many(examples)]


def sweep(engines: dict[str, object], examples: list, rounds: int) -> dict[str, dict]:
    for engine in engines.values():
        answer_all(engine, examples[:16])  # warm-up, not timed
    readings: dict[str, list] = {label: [] for label in engines}
    padding: dict[str, float] = {}
    labels = list(engines)
    for round_index in range(rounds):
        for label in labels if round_index % 2 == 0 else labels[::-1]:
            engine = engines[label]
            engine.reset_stats()
            _, reading = timed(lambda: answer_all(engine, examples))
            readings[label].append(reading)
            padding[label] = engine.stats.padding_fraction
    questions = len(examples)
    return {
        label: {
            "questions_per_cpu_second": statistics.median(questions / reading.cpu_seconds for reading in values),
            "questions_per_second": statistics.median(questions / reading.wall_seconds for reading in values),
            "cpu_seconds": [reading.cpu_seconds for reading in values],
            "padding_fraction": padding[label],
        }
        for label, values in readings.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, limit=96)
    parser.add_argument("--model", help="an exported model folder (default: the shipped int8 model)")
    parser.add_argument("--budgets", default="one-window,512,1024,2048,4096",
                        help="comma-separated token budgets, or one-window (default: %(default)s)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="sessions at once, as EngineOptions.workers (default: %(default)s; the engine's own: 2 here)")
    parser.add_argument("--json", help="also write the result here")
    arguments = parser.parse_args(argv)
    budgets = Budget.parse_list(parser, arguments.budgets)
    if arguments.rounds < 1 or not budgets:
        parser.error("--rounds must be at least 1 and --budgets must name one budget")
    examples = load_questions(arguments.data, arguments.limit)
    engines = {budget.label: make_engine(arguments.model, budget, threads=arguments.threads, workers=arguments.workers)
               for budget in budgets}  # fmt: skip
    rows = sweep(engines, examples, arguments.rounds)
    best = max(rows, key=lambda label: rows[label]["questions_per_cpu_second"])
    result = {"benchmark": "token_budget_sweep", "model": arguments.model or "shipped int8 (engine/models/minilm-l6-squad-int8)",
              "questions": len(examples), "rounds": arguments.rounds, "threads": arguments.threads,
              "workers": arguments.workers,
              "machine": machine_note(), "budgets": rows, "fastest": best}  # fmt: skip
    table = markdown_table(
        ["budget", "questions per CPU-second", "questions/s wall", "padding"],
        [[f"**{label}**" if label == best else label, f"{row['questions_per_cpu_second']:.1f}",
          f"{row['questions_per_second']:.1f}", f"{100 * row['padding_fraction']:.1f}%"] for label, row in rows.items()],
    )  # fmt: skip
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
