"""How to split the cores between ONNX Runtime sessions: end-to-end `QAEngine.answer_many` questions/s for
workers x threads-per-worker configurations, interleaved round by round in one process.

    python -m spanqa.benchmarks.session_split --limit 512 --rounds 5 [--configs 1x2,2x1,2x1s,1x1] [--model DIR]
        [--data FILE] [--json benchmarks/results/session_split.json]

A configuration is WORKERSxTHREADS (threads per worker, 0 for onnxruntime's own choice), with a trailing "s" for
one session shared by the workers' threads instead of one session each. Every engine is built first; then each
round runs every configuration once over the same questions, in an order rotated each round, so that load from
other processes falls on all of them alike. Ratios against the first configuration are taken within each round,
which holds on a shared machine where absolute rates do not; the JSON keeps every pass and the load average at the
start, after each round and at the end, and the resident memory each engine added. It also checks that every
configuration gave the same answers, byte for byte, as the first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from dataclasses import dataclass

from spanqa.benchmarks.measure import add_data_arguments, load_questions, machine_note, markdown_table, report, timed


def resident_mb() -> float | None:
    """This process's resident memory now (Linux), in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None

_CONFIG = re.compile(r"^(\d+)x(\d+)(s?)$")


@dataclass(frozen=True)
class Split:
    label: str
    workers: int
    threads: int  # per worker; 0: onnxruntime's choice
    shared: bool  # one session run by every worker thread

    @classmethod
    def parse(cls, text: str) -> Split:
        match = _CONFIG.match(text)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(text)
        return cls(text, int(match.group(1)), int(match.group(2)), bool(match.group(3)))


def make_engine(model: str | None, split: Split):
    from spanqa.engine.runtime.engine import QAEngine
    from spanqa.engine.runtime.options import EngineOptions, SessionOptions

    session = SessionOptions(intra_op_threads=split.threads, share_session=split.shared)
    return QAEngine(model, options=EngineOptions(device="cpu", workers=split.workers, session=session))


def answer_lines(engine, examples: list) -> list[str]:
    return [json.dumps(answer.to_dict(), ensure_ascii=False) for answer in engine.answer_many(examples)]


def measure(model: str | None, splits: list[Split], examples: list, rounds: int) -> dict:
    engines, memory = {}, {}
    for split in splits:  # one after the other, so that each engine's memory is the growth while it was made
        before = resident_mb()
        engines[split.label] = engine = make_engine(model, split)
        answer_lines(engine, examples[:32])  # warm-up: thread pools, arenas, Numba's cache load; not timed
        after = resident_mb()
        memory[split.label] = None if before is None or after is None else round(after - before, 1)
    passes: dict[str, list[dict]] = {split.label: [] for split in splits}
    reference: list[str] | None = None
    identical = {split.label: True for split in splits}
    loads = []
    for round_index in range(rounds):
        shift = round_index % len(splits)
        for split in splits[shift:] + splits[:shift]:
            engine = engines[split.label]
            engine.reset_stats()
            lines, reading = timed(lambda: answer_lines(engine, examples))
            if reference is None:
                reference = lines
            identical[split.label] &= lines == reference
            passes[split.label].append({
                "round": round_index, "wall_seconds": round(reading.wall_seconds, 4),
                "cpu_seconds": round(reading.cpu_seconds, 4),
                "questions_per_second": round(len(examples) / reading.wall_seconds, 3),
                "tokenize_seconds": round(engine.stats.tokenize_seconds, 4),
                "infer_seconds_summed_over_workers": round(engine.stats.infer_seconds, 4),
            })  # fmt: skip
        loads.append([round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None)
        print(f"round {round_index + 1}/{rounds} done, load average {loads[-1]}", file=sys.stderr)
    base = splits[0].label
    rows = {}
    for split in splits:
        rates = [item["questions_per_second"] for item in passes[split.label]]
        pairs = zip(passes[split.label], passes[base])
        ratios = [theirs["wall_seconds"] / mine["wall_seconds"] for mine, theirs in pairs]  # same round
        rows[split.label] = {
            "workers": split.workers, "threads_per_worker": split.threads, "shared_session": split.shared,
            "sessions": len({id(backend) for backend in engines[split.label].worker_backends}),
            # Resident memory added by making the engine and warming it up (the first one also pays for loading
            # onnxruntime and the tokenizer: compare the later ones).
            "resident_mb_added": memory[split.label],
            "questions_per_second_median": round(statistics.median(rates), 3),
            "questions_per_second_min_max": [min(rates), max(rates)],
            f"speed_over_{base}_per_round": [round(ratio, 4) for ratio in ratios],
            f"speed_over_{base}_median": round(statistics.median(ratios), 4),
            "answers_identical_to_first": identical[split.label],
            "passes": passes[split.label],
        }  # fmt: skip
    return {"questions": len(examples), "rounds": rounds, "baseline": base, "configurations": rows,
            "load_average_after_each_round": loads}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, limit=512)
    parser.add_argument("--model", help="an exported model folder (default: the shipped int8 model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--configs", default="1x2,2x1,2x1s,1x1",
                        help="WORKERSxTHREADS[s], comma-separated; the first is the baseline (default: %(default)s)")
    parser.add_argument("--json", help="also write the result here")
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        splits = [Split.parse(item.strip()) for item in arguments.configs.split(",") if item.strip()]
    except ValueError as error:
        parser.error(f"--configs: expected WORKERSxTHREADS[s] such as 2x1 or 2x1s, got {error}")
    if len({split.label for split in splits}) != len(splits) or not splits:
        parser.error("--configs: give each configuration once")
    machine = machine_note()  # before loading: the load the run starts under
    examples = load_questions(arguments.data, arguments.limit)
    result = {"benchmark": "session_split",
              "model": arguments.model or "shipped int8 (engine/models/minilm-l6-squad-int8)",
              "data": os.path.basename(arguments.data), "machine": machine,
              **measure(arguments.model, splits, examples, arguments.rounds)}  # fmt: skip
    base = result["baseline"]
    table = markdown_table(
        ["configuration", "sessions", "MiB added", "questions/s median (min-max)",
         f"speed over {base}, median (per-round min-max)", "same answers"],
        [[f"{row['workers']} worker(s) x {row['threads_per_worker'] or 'default'} thread(s)"
          + (", one shared session" if row["shared_session"] else ""), row["sessions"], row["resident_mb_added"],
          f"{row['questions_per_second_median']:.1f} ({row['questions_per_second_min_max'][0]:.1f}-"
          f"{row['questions_per_second_min_max'][1]:.1f})",
          f"{row[f'speed_over_{base}_median']:.3f} ({min(row[f'speed_over_{base}_per_round']):.3f}-"
          f"{max(row[f'speed_over_{base}_per_round']):.3f})",
          "yes" if row["answers_identical_to_first"] else "NO"]
         for row in result["configurations"].values()],
    )  # fmt: skip
    table += (f"\n\n{result['questions']} questions; {result['rounds']} round(s), configurations interleaved "
              "(order rotated each round); ratios taken within a round.")
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
