"""What the engine costs beyond the model: end to end (`QAEngine.answer_many`, questions in, answers out) against
model-only (`engine.backend.run` over exactly the same batches, tokenized beforehand and not timed).

    python -m spanqa.benchmarks.engine_overhead --limit 500 --rounds 3 [--model DIR] [--spinning] [--json out.json]

The ratio end-to-end / model-only questions per second says how much of the model's speed survives tokenizing,
batching and decoding; it is taken round by round in one process (order reversed every other round), so it holds on
a shared machine where absolute rates do not. Also printed: the engine's own tokenize/decode seconds (tokenize runs
in a background thread, overlapped with the model) and the model's CPU-milliseconds per question.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from spanqa.benchmarks.measure import add_data_arguments, load_questions, machine_note, make_engine, markdown_table, report, timed


def prepared_groups(engine, examples: list, width_multiple: int | None = None) -> list:
    """The engine's own groups and batches for these questions, as answer_many cuts them: in its backend's width
    buckets unless `width_multiple` names another backend's (a script that runs other backends on this engine's
    tokenizer and batching must cut their batches as qa-answer would for them)."""
    from spanqa.engine.runtime.backends.loading import pad_token_id
    from spanqa.engine.runtime.batching import prepare_group

    size, options = engine.options.lookahead, engine.options
    multiple = engine.backend.width_multiple if width_multiple is None else width_multiple
    return [
        prepare_group(engine.tokenizer, examples[start : start + size], engine.window_options,
                      pad_token_id(engine.tokenizer), options.max_batch_tokens, options.max_batch_windows, multiple)
        for start in range(0, len(examples), size)
    ]  # fmt: skip


def model_only(engine, groups: list) -> None:
    for group in groups:
        for _, batch in group.batches:
            engine.backend.run(batch)


def end_to_end(engine, examples: list) -> None:
    for _ in engine.answer_many(examples):
        pass


def measure(engine, examples: list, rounds: int) -> dict:
    groups = prepared_groups(engine, examples)
    end_to_end(engine, examples[:32])  # warm-up: thread pools, allocator, Numba's cache load; not timed
    samples: dict[str, list] = {"end to end": [], "model only": []}
    stages: list[tuple[float, float, float]] = []
    for round_index in range(rounds):
        order = ("end to end", "model only") if round_index % 2 == 0 else ("model only", "end to end")
        for name in order:
            if name == "end to end":
                engine.reset_stats()
                _, reading = timed(lambda: end_to_end(engine, examples))
                stats = engine.stats
                stages.append((stats.tokenize_seconds, stats.infer_seconds, stats.decode_seconds))
            else:
                _, reading = timed(lambda: model_only(engine, groups))
            samples[name].append(reading)
    questions = len(examples)
    rows = {}
    for name, readings in samples.items():
        rows[name] = {
            "wall_seconds": [reading.wall_seconds for reading in readings],
            "cpu_seconds": [reading.cpu_seconds for reading in readings],
            "questions_per_second": statistics.median(questions / reading.wall_seconds for reading in readings),
            "questions_per_cpu_second": statistics.median(questions / reading.cpu_seconds for reading in readings),
        }
    ratio = [model.wall_seconds / whole.wall_seconds for whole, model in zip(samples["end to end"], samples["model only"])]
    cpu_ratio = [model.cpu_seconds / whole.cpu_seconds for whole, model in zip(samples["end to end"], samples["model only"])]
    return {
        "questions": questions,
        "windows": sum(len(group.windows.lengths) for group in groups),
        "rounds": rounds,
        "systems": rows,
        "ratio_end_to_end_over_model_only": statistics.median(ratio),
        "ratio_in_cpu_time": statistics.median(cpu_ratio),
        "ratio_per_round": ratio,
        "engine_tokenize_seconds": statistics.median(stage[0] for stage in stages),
        "engine_infer_seconds": statistics.median(stage[1] for stage in stages),
        "engine_decode_seconds": statistics.median(stage[2] for stage in stages),
        "model_cpu_ms_per_question": 1e3 * statistics.median(rows["model only"]["cpu_seconds"]) / questions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, limit=500)
    parser.add_argument("--model", help="an exported model folder (default: the shipped int8 model)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    parser.add_argument("--spinning", action="store_true", help="let ONNX Runtime's idle threads spin (default off)")
    parser.add_argument("--json", help="also write the result here")
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1:
        parser.error("--rounds must be at least 1")
    examples = load_questions(arguments.data, arguments.limit)
    engine = make_engine(arguments.model, threads=arguments.threads, spinning=arguments.spinning)
    result = {"benchmark": "engine_overhead", "model": arguments.model or "shipped int8 (engine/models/minilm-l6-squad-int8)",
              "spinning": arguments.spinning, "threads": arguments.threads, "machine": machine_note(),
              **measure(engine, examples, arguments.rounds)}  # fmt: skip
    table = markdown_table(
        ["run", "questions/s (median)", "questions per CPU-second"],
        [[name, f"{row['questions_per_second']:.1f}", f"{row['questions_per_cpu_second']:.1f}"]
         for name, row in result["systems"].items()],
    )  # fmt: skip
    table += (f"\n\n{result['questions']} questions, {result['windows']} windows, {result['rounds']} rounds. "
              f"End to end / model-only: {result['ratio_end_to_end_over_model_only']:.2f} "
              f"({result['ratio_in_cpu_time']:.2f} in CPU time). Engine stages per pass: tokenize "
              f"{result['engine_tokenize_seconds']:.2f} s (background thread), "
              f"infer {result['engine_infer_seconds']:.2f} s, decode {result['engine_decode_seconds']:.2f} s; "
              f"model {result['model_cpu_ms_per_question']:.1f} CPU-ms per question.")  # fmt: skip
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
