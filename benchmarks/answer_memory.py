"""Peak memory of the whole `qa-answer` command (model load included) as the input file grows.

    python -m spanqa.benchmarks.answer_memory --records 1000,10000 [--model DIR] [--json out.json]

Each input is the bundled sample's questions (engine/sample_data/questions.jsonl) repeated with fresh ids and their
contexts cut to 300 characters, so that more records means more work but no longer contexts. Each size runs
`qa-answer IN -o OUT` in its own process; its peak RSS comes from the kernel's accounting of that one child
(os.wait4), and its examples/s from qa-answer's own summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from spanqa.benchmarks.measure import REPO_ROOT, machine_note, markdown_table, report

SAMPLE = REPO_ROOT / "engine" / "sample_data" / "questions.jsonl"
CONTEXT_CHARS = 300


def write_input(path: Path, count: int) -> None:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(path, "w", encoding="utf-8") as output:
        for index in range(count):
            row = rows[index % len(rows)]
            record = {"id": f"{row['id']}-{index}", "question": row["question"], "context": row["context"][:CONTEXT_CHARS]}
            output.write(json.dumps(record, ensure_ascii=False) + "\n")


def run_answer(source: Path, target: Path, model: str | None) -> dict:
    command = [sys.executable, "-m", "spanqa.engine.cli.answer", str(source), "-o", str(target), "--overwrite"]
    command += ["--model", model] if model else []
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read()
    if process.returncode != 0:
        sys.exit(f"answer_memory: qa-answer exited {process.returncode}: {stderr.strip()[-2000:]}")
    rate = re.search(r"([0-9.]+) examples/s", stderr)
    kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024
    return {"peak_rss_kib": int(kib), "examples_per_second": float(rate.group(1)) if rate else None,
            "summary": stderr.strip().splitlines()[-1] if stderr.strip() else ""}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default="1000,10000", help="comma-separated input sizes (default: %(default)s)")
    parser.add_argument("--model", help="model folder (default: qa-answer's, the shipped int8 model)")
    parser.add_argument("--json", help="also write the result here")
    arguments = parser.parse_args(argv)
    try:
        counts = [int(text) for text in arguments.records.split(",") if text.strip()]
    except ValueError:
        parser.error(f"--records: expected comma-separated integers, got {arguments.records!r}")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="answer-memory-") as folder:
        for count in counts:
            source, target = Path(folder) / f"q{count}.jsonl", Path(folder) / f"a{count}.jsonl"
            write_input(source, count)
            runs[str(count)] = run_answer(source, target, arguments.model)
    result = {"benchmark": "answer_memory", "model": arguments.model or "shipped int8 (engine/models/minilm-l6-squad-int8)",
              "machine": machine_note(), "runs": runs}  # fmt: skip
    first = runs[str(counts[0])]["peak_rss_kib"]
    table = markdown_table(
        ["input", "peak RSS", "examples/s (summary line)"],
        [[f"{int(count):,} questions", f"{run['peak_rss_kib']:,} KiB ({100 * (run['peak_rss_kib'] / first - 1):+.1f}%)",
          f"{run['examples_per_second']}"] for count, run in runs.items()],
    )  # fmt: skip
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
