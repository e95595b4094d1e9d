"""What the engine benchmark scripts share: where the SQuAD dev file is, the engine with one setting changed, CPU
and peak-memory readings, and the Markdown/JSON output every script prints.

The scripts (engine_overhead, token_budget_sweep, int8_batching, id_set_memory, context_memory) each back one
figure in BENCHMARKS.md or RELIABILITY.md; run any of them with --help.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_FILE = "dev-v1.1.json.gz"


def squad_folder() -> Path:
    """SPANQA_SQUAD_DIR, else ../shared/data/squad beside the repository (the tests' rule)."""
    return Path(os.environ.get("SPANQA_SQUAD_DIR", REPO_ROOT.parent / "shared" / "data" / "squad"))


def add_data_arguments(parser: argparse.ArgumentParser, limit: int | None) -> None:
    parser.add_argument("--data", default=str(squad_folder() / DEV_FILE),
                        help="SQuAD JSON or JSONL with answers (default: $SPANQA_SQUAD_DIR/%s)" % DEV_FILE)  # fmt: skip
    parser.add_argument("--limit", type=int, default=limit, help="the first N questions (default: %(default)s)")


def load_questions(data: str, limit: int | None) -> list:
    from spanqa.engine.core.data import load_examples

    if not Path(data).is_file():
        sys.exit(f"{data}: no such file (give --data, or set SPANQA_SQUAD_DIR)")
    examples = load_examples(data)
    return examples[:limit] if limit else examples


@dataclass(frozen=True)
class Budget:
    """One batching setting: a token budget, or one window per batch."""

    label: str
    max_batch_tokens: int
    max_batch_windows: int

    @classmethod
    def parse(cls, text: str) -> Budget:
        """'one-window' or a token count such as '1024' (windows per batch keep the engine's default cap)."""
        from spanqa.engine.runtime.options import EngineOptions

        defaults = EngineOptions()
        if text == "one-window":
            return cls(text, defaults.max_batch_tokens, 1)
        return cls(f"{int(text)} tokens", int(text), defaults.max_batch_windows)

    @classmethod
    def parse_list(cls, parser: argparse.ArgumentParser, text: str) -> list[Budget]:
        """The --budgets flag: comma-separated settings; a bad one is a usage error."""
        try:
            return [cls.parse(item.strip()) for item in text.split(",") if item.strip()]
        except ValueError:
            parser.error(f"--budgets: expected token counts or one-window, got {text!r}")


def make_engine(
    model: str | None, budget: Budget | None = None, threads: int = 0, spinning: bool = False, workers: int = 1
):
    """QAEngine on the CPU (model None: the shipped int8 model) with the batching and session settings given. One
    session (workers=1) by default: these scripts time `engine.backend.run`, which is that one session."""
    from dataclasses import replace

    from spanqa.engine.runtime.engine import QAEngine
    from spanqa.engine.runtime.options import EngineOptions, SessionOptions

    options = EngineOptions(
        device="cpu", workers=workers, session=SessionOptions(intra_op_threads=threads, allow_spinning=spinning)
    )
    if budget is not None:
        options = replace(options, max_batch_tokens=budget.max_batch_tokens, max_batch_windows=budget.max_batch_windows)
    return QAEngine(model, options=options)


@dataclass(frozen=True)
class Timed:
    wall_seconds: float
    cpu_seconds: float  # this process, every thread (the tokenizer thread and ONNX Runtime's pool included)


def timed(call) -> tuple[Any, Timed]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, Timed(time.perf_counter() - wall, time.process_time() - cpu)


def peak_rss_bytes() -> int:
    """This process's peak resident memory. VmHWM, because ru_maxrss survives exec on Linux: a child started from
    a parent holding 1 GB would report the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:  # not Linux
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def machine_note() -> dict[str, Any]:
    """Cores and load average (taken at the start; report() adds the end's): figures from a loaded machine are
    compared as ratios taken in one run."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"usable_cores": usable, "load_average_1_5_15": [round(value, 2) for value in load] if load else None,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def report(result: dict[str, Any], table: str, json_path: str | None) -> None:
    """Print the table and the machine line (with the load average now, at the end); write it all as JSON if asked."""
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    print(table)
    print(f"\nmachine: {json.dumps(result['machine'])}")
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def write_markdown(path: str | None, text: str, module: str, argv: list[str] | None) -> None:
    """The table with the command that made it (`python -m MODULE ARGS`), for a results/*.md beside the JSON."""
    if path:
        command = f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
        Path(path).write_text(f"{text}\n\n```\n{command}\n```\n", encoding="utf-8")
