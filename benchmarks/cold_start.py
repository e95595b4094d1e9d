"""Cold start of the answering path: fresh processes, median of N runs, and what they import.

Times, each in a new interpreter (so nothing is warm but the OS file cache): `qa-answer --question Q --context C`
with the shipped model, `python -c "import spanqa.engine"`, and for scale `python -c "from transformers import
AutoTokenizer"`, the import the engine paid for before it read tokenizer.json itself (skipped where transformers is
not installed). Then one `python -X importtime` run of the same qa-answer call lists the heaviest imports and any
of torch, transformers, sklearn or datasets (there should be none).

    python benchmarks/cold_start.py                      # this interpreter's install
    python benchmarks/cold_start.py --python /tmp/venvs/core/bin/python --runs 5 --json cold.json
    python benchmarks/cold_start.py --pythonpath OLD   # OLD/spanqa/engine: an older engine tree, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

QUESTION = "Who wrote the book?"
CONTEXT = "The book was written by Jane Austen in 1813 and published in London by Thomas Egerton."
TRAINING_STACK = ("torch", "transformers", "sklearn", "datasets")


@dataclass(frozen=True)
class Timing:
    name: str
    command: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def qa_answer_command(python: str) -> list[str]:
    return [python, "-m", "spanqa.engine.cli.answer", "--question", QUESTION, "--context", CONTEXT]


def time_command(name: str, command: list[str], runs: int, env: dict[str, str]) -> Timing:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        seconds.append(time.perf_counter() - started)
    return Timing(name, " ".join(_quoted(part) for part in command), seconds)


def import_profile(python: str, top: int, env: dict[str, str]) -> dict:
    """The qa-answer call under -X importtime: its heaviest top-level imports, and any training-stack module."""
    command = [python, "-X", "importtime", *qa_answer_command(python)[1:]]
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    cumulative: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, total, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if total.isdigit() and "." not in name:  # a top-level package, wherever it was first imported from
            cumulative[name] = int(total) / 1e6  # importtime reports microseconds
    heaviest = sorted(cumulative.items(), key=lambda item: -item[1])[:top]
    return {
        "training_stack_imported": sorted(name for name in cumulative if name in TRAINING_STACK),
        "heaviest": [{"module": name, "seconds": round(seconds, 3)} for name, seconds in heaviest],
    }


def has_module(python: str, name: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({name!r}) else 1)"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def _environment(pythonpath: str | None) -> dict[str, str]:
    # One compute thread, so runs on a loaded machine compare; the model is the shipped default.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, os.environ.get("PYTHONPATH")]))
    return env


def _quoted(part: str) -> str:
    return json.dumps(part) if " " in part else part


def markdown(timings: list[Timing], profile: dict, python: str, pythonpath: str | None) -> str:
    tree = f", PYTHONPATH `{pythonpath}`" if pythonpath else ""
    lines = [
        f"Interpreter: `{python}`{tree}; {len(timings[0].seconds)} fresh processes each; load average at the end: "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs.",
        "",
        "| command | median s | min s | max s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for timing in timings:
        lines.append(
            f"| `{timing.name}` | {timing.median:.2f} | {min(timing.seconds):.2f} | {max(timing.seconds):.2f} |"
        )
    stack = ", ".join(profile["training_stack_imported"]) or "none"
    heaviest = ", ".join(f"{item['module']} {item['seconds']:.2f} s" for item in profile["heaviest"])
    lines += ["", f"`-X importtime` of the qa-answer call: training-stack modules imported: {stack}; "
              f"heaviest top-level imports (cumulative): {heaviest}."]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the install to measure")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command (default: %(default)s)")
    parser.add_argument("--json", help="also write the timings and the import profile here")
    parser.add_argument("--pythonpath", help="prepended to PYTHONPATH: a folder holding spanqa/ of another tree")
    arguments = parser.parse_args(argv)
    python = arguments.python
    env = _environment(arguments.pythonpath)
    commands = [
        ("qa-answer --question --context", qa_answer_command(python)),
        ("import spanqa.engine", [python, "-c", "import spanqa.engine"]),
    ]
    if has_module(python, "transformers"):
        commands.append(("from transformers import AutoTokenizer", [python, "-c", "from transformers import AutoTokenizer"]))
    time_command("warm-up", commands[0][1], 1, env)  # the first run fills the OS file cache and numba's cache
    timings = [time_command(name, command, arguments.runs, env) for name, command in commands]
    profile = import_profile(python, top=6, env=env)
    print(markdown(timings, profile, python, arguments.pythonpath))
    if arguments.json:
        report = {"python": python, "pythonpath": arguments.pythonpath, "timings": [{**asdict(t), "median": t.median} for t in timings], "imports": profile}
        Path(arguments.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
