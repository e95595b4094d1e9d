"""One question over 10 passages against the same work as 10 single-passage records: end-to-end `QAEngine.answer_many`
time of both forms, interleaved round by round in one process, and what the multi-passage form answers.

    python -m spanqa.benchmarks.multi_passage_bench --questions 64 --rounds 5 [--passages 10] [--model DIR]
        [--data FILE] [--workers N] [--json benchmarks/results/multi_passage.json]

Both forms are batched by the engine's rule: groups of `lookahead` records, so a multi-passage group holds
--passages times the windows of a single-passage one (more windows to sort by length, less padding).

Each question of --data (SQuAD JSON or JSONL with answers) gets its own context and --passages - 1 other contexts
of the file, drawn at random (seeded), in a random order. The multi-passage form is one record per question
({"question", "contexts": [...]}), the single form one record per (question, passage). Both forms hold the same
windows; each round times both, the order swapped every round, and the ratio single / multi is taken within each
round (above 1: the multi-passage form is faster), which holds on a shared machine where absolute rates do not.

Quality, from the first round: how often the multi-passage answer comes from the question's own passage, and its
official EM/F1 against the gold answers, beside the single-context EM/F1 on the question's own passage alone.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys

from spanqa.benchmarks.measure import add_data_arguments, load_questions, machine_note, markdown_table, report, timed


def build_sets(examples: list, questions: int, passages: int, seed: int) -> list[tuple]:
    """(example, passage texts, index of its own passage) for the first `questions` examples with distinct contexts."""
    contexts = sorted({example.context for example in examples})
    if len(contexts) < passages:
        sys.exit(f"the data has {len(contexts)} distinct contexts, fewer than --passages {passages}")
    generator = random.Random(seed)
    sets, seen = [], set()
    for example in examples:
        if example.context in seen:
            continue
        seen.add(example.context)
        others = generator.sample([c for c in contexts if c != example.context], passages - 1)
        own = generator.randrange(passages)
        sets.append((example, others[:own] + [example.context] + others[own:], own))
        if len(sets) == questions:
            break
    return sets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a qa-export folder or checkpoint (default: the shipped int8 model)")
    add_data_arguments(parser, limit=None)
    parser.add_argument("--questions", type=int, default=64, help="questions, each with its own set (default: 64)")
    parser.add_argument("--passages", type=int, default=10, help="passages per question (default: 10)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    parser.add_argument("--workers", type=int, default=0, help="engine workers (default 0: the engine's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the result here too")
    arguments = parser.parse_args(argv)
    if arguments.passages < 2 or arguments.questions < 1 or arguments.rounds < 1:
        parser.error("--passages must be >= 2, --questions and --rounds >= 1")

    from spanqa.engine.core.metrics import question_scores
    from spanqa.engine.runtime.engine import QAEngine
    from spanqa.engine.runtime.options import EngineOptions

    machine = machine_note()
    sets = build_sets(load_questions(arguments.data, arguments.limit), arguments.questions, arguments.passages,
                      arguments.seed)  # fmt: skip
    multi = [{"id": f"q{i}", "question": ex.question, "contexts": texts} for i, (ex, texts, _) in enumerate(sets)]
    single = [{"id": f"q{i}-{p}", "question": ex.question, "context": text}
              for i, (ex, texts, _) in enumerate(sets) for p, text in enumerate(texts)]  # fmt: skip
    engine = QAEngine(arguments.model, options=EngineOptions(device="cpu", workers=arguments.workers))
    list(engine.answer_many(multi[:2]))  # warm-up: sessions, the decoder's compiled kernel

    forms = {"multi": multi, "single": single}
    passes: dict[str, list[float]] = {"multi": [], "single": []}
    windows: dict[str, int] = {}
    padding: dict[str, float] = {}
    answers: dict[str, list] = {}
    for round_number in range(arguments.rounds):
        order = ["multi", "single"] if round_number % 2 == 0 else ["single", "multi"]
        for name in order:
            engine.reset_stats()
            result, took = timed(lambda: list(engine.answer_many(forms[name])))
            passes[name].append(took.wall_seconds)
            windows[name] = engine.stats.windows
            padding[name] = engine.stats.padding_fraction
            answers.setdefault(name, result)
    if windows["multi"] != windows["single"]:
        sys.exit(f"the two forms ran {windows['multi']} and {windows['single']} windows; they should be the same")
    ratios = [s / m for s, m in zip(passes["single"], passes["multi"])]

    own_passage = multi_em = multi_f1 = single_em = single_f1 = 0.0
    for index, (example, _, own) in enumerate(sets):
        answer = answers["multi"][index]
        own_passage += answer.passage == own
        exact, f1 = question_scores(answer.answer, example.answer_texts, "v1.1")
        multi_em, multi_f1 = multi_em + exact, multi_f1 + f1
        alone = answers["single"][index * arguments.passages + own]  # the question's own passage, answered alone
        exact, f1 = question_scores(alone.answer, example.answer_texts, "v1.1")
        single_em, single_f1 = single_em + exact, single_f1 + f1
    count = len(sets)
    result = {
        "questions": count, "passages": arguments.passages, "windows": windows["multi"], "rounds": arguments.rounds,
        "model": arguments.model or "shipped int8", "data": arguments.data, "workers": arguments.workers,
        "seconds": passes, "padding_fraction": padding, "ratio_single_over_multi": ratios,
        "median_ratio": statistics.median(ratios),
        "own_passage_percent": 100 * own_passage / count,
        "multi_em": 100 * multi_em / count, "multi_f1": 100 * multi_f1 / count,
        "single_own_passage_em": 100 * single_em / count, "single_own_passage_f1": 100 * single_f1 / count,
        "machine": machine,
    }  # fmt: skip
    rows = [
        [f"1 question x {arguments.passages} passages", count, f"{statistics.median(passes['multi']):.2f}",
         f"{count * arguments.passages / statistics.median(passes['multi']):.1f}"],
        [f"{arguments.passages} single-passage records", count * arguments.passages,
         f"{statistics.median(passes['single']):.2f}",
         f"{count * arguments.passages / statistics.median(passes['single']):.1f}"],
    ]  # fmt: skip
    table = markdown_table(["form", "records", "median s", "passages/s"], rows)
    table += (
        f"\n\nsingle / multi time, per round: {', '.join(f'{r:.3f}' for r in ratios)} (median "
        f"{result['median_ratio']:.3f}); {windows['multi']} windows per pass; padding {100 * padding['multi']:.1f}% "
        f"(multi) and {100 * padding['single']:.1f}% (single)\n"
        f"multi-passage answers from the question's own passage: {result['own_passage_percent']:.1f}%; EM/F1 "
        f"{result['multi_em']:.2f}/{result['multi_f1']:.2f} (own passage alone: {result['single_own_passage_em']:.2f}/"
        f"{result['single_own_passage_f1']:.2f})"
    )
    from spanqa.benchmarks.int8_variants import repo_relative  # the results' one rule for naming paths

    report(repo_relative(result), table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
