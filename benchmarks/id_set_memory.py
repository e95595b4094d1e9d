"""Memory of `answer_file` (qa-answer's file job) as the input grows, with an instant stand-in engine, so that what
grows is the job's own state: the set of seen ids that refuses duplicates.

    python -m spanqa.benchmarks.id_set_memory --records 20000,200000 [--json out.json]

Each size runs in a fresh process over a generated JSONL file (SQuAD-style 24-character hex ids, a short question
and context); the figure is the process's peak RSS (VmHWM), and bytes per record is the peak's growth between the
smallest and the largest size divided by the records added.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from spanqa.benchmarks.measure import machine_note, markdown_table, peak_rss_bytes, report

LOOKAHEAD = 256  # the engine's default group size, so the job holds as many records at once as with a real engine


class InstantEngine:
    """Answers each question with the first word of its context, in order, at no cost. It offers both ways
    answer_file has asked for answers (`answer_pairs` with a payload per record, and plain `answer_many`)."""

    options = SimpleNamespace(lookahead=LOOKAHEAD)
    stats = None

    @staticmethod
    def _answer(example) -> SimpleNamespace:
        word = example.context.split(" ", 1)[0]
        return SimpleNamespace(id=example.id, answer=word, to_dict=lambda: {"id": example.id, "answer": word})

    def answer_many(self, examples):
        return (self._answer(example) for example in examples)

    def answer_pairs(self, items):
        return ((payload, self._answer(example)) for payload, example in items)

    def answer_settings(self) -> dict:
        return {"engine": "instant stand-in"}


def write_records(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as output:
        for index in range(count):
            record = {"id": f"{index:024x}", "question": f"Which number is {index}?",
                      "context": f"Number {index} is in this sentence."}  # fmt: skip
            output.write(json.dumps(record) + "\n")


def child(input_path: str, output_path: str) -> None:
    """Run in a fresh process: answer the file, print the peak RSS."""
    from spanqa.engine.jobs.answer_file import AnswerFileOptions, answer_file

    result = answer_file(InstantEngine(), input_path, output_path, AnswerFileOptions(overwrite=True))
    print(json.dumps({"answered": result.answered, "peak_rss_bytes": peak_rss_bytes()}))


def measure(count: int, folder: Path) -> dict:
    source, target = folder / f"in-{count}.jsonl", folder / f"out-{count}.jsonl"
    write_records(source, count)
    finished = subprocess.run([sys.executable, "-m", "spanqa.benchmarks.id_set_memory", "--child", str(source), str(target)],
                              capture_output=True, text=True, env=dict(os.environ))  # fmt: skip
    if finished.returncode != 0:
        sys.exit(f"id_set_memory: the {count}-record run failed: {finished.stderr.strip()[-2000:]}")
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    if outcome["answered"] != count:
        sys.exit(f"id_set_memory: {count} records, {outcome['answered']} answered")
    source.unlink()
    target.unlink()
    return outcome


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(*argv[1:3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default="20000,200000", help="comma-separated input sizes (default: %(default)s)")
    parser.add_argument("--json", help="also write the result here")
    arguments = parser.parse_args(argv)
    try:
        counts = sorted({int(text) for text in arguments.records.split(",") if text.strip()})
    except ValueError:
        parser.error(f"--records: expected comma-separated integers, got {arguments.records!r}")
    if len(counts) < 2 or counts[0] < 1:
        parser.error("--records: give at least two positive sizes")
    with tempfile.TemporaryDirectory(prefix="id-set-memory-") as folder:
        runs = {count: measure(count, Path(folder)) for count in counts}
    low, high = counts[0], counts[-1]
    per_record = (runs[high]["peak_rss_bytes"] - runs[low]["peak_rss_bytes"]) / (high - low)
    result = {"benchmark": "id_set_memory", "machine": machine_note(), "bytes_per_record": per_record,
              "runs": {str(count): run for count, run in runs.items()}}  # fmt: skip
    table = markdown_table(["records", "peak RSS MiB"], [[f"{count:,}", f"{run['peak_rss_bytes'] / 2**20:.1f}"]
                                                          for count, run in runs.items()])  # fmt: skip
    table += f"\n\nGrowth: {per_record:.0f} bytes per record between {low:,} and {high:,} records."
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
