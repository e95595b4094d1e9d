"""Run one benchmark system in this (fresh) process and write what it measured as JSON.

    python -m spanqa.benchmarks.qa_bench.worker TASK.json

qa-bench starts one worker per system and round, so that peak memory is the system's own and one system's
caches, threads or allocator state cannot help or hurt the next. The task file says what to run; the result goes to
the path it names, written through a temporary file and a rename, so a crashed worker leaves no half result.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spanqa.benchmarks.measure import peak_rss_bytes
from spanqa.benchmarks.qa_bench.systems.catalog import SYSTEMS, SystemSpec
from spanqa.benchmarks.qa_bench.systems.timing import PassResult, Runner
from spanqa.engine.core.data import load_examples


@dataclass(frozen=True)
class WorkerTask:
    system: str
    model: str  # the prepared model this system loads: the checkpoint or an export folder
    device: str  # cpu | cuda
    data: str
    limit: int | None
    repeats: int  # timed passes over all the questions
    warmup_questions: int  # untimed pass over this many questions first
    batch_sizes: tuple[int, ...]  # pipelines: candidates for the batch-size search
    search_questions: int  # pipelines: questions the batch-size search is timed on
    output: str
    engine_overrides: dict[str, int] = field(default_factory=dict)  # spanqa: EngineOptions fields to set

    @classmethod
    def read(cls, path: str | os.PathLike) -> WorkerTask:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        raw["batch_sizes"] = tuple(raw["batch_sizes"])
        return cls(**raw)

    def write(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")


def make_runner(spec: SystemSpec, task: WorkerTask) -> Runner:
    if spec.family == "seed":
        from spanqa.benchmarks.qa_bench.systems.seed import SeedRunner

        return SeedRunner(task.model, task.device)
    if spec.family == "hf-pipeline":
        from spanqa.benchmarks.qa_bench.systems.pipelines import hf_pipeline_runner

        return hf_pipeline_runner(task.model, task.device, spec.precision)
    if spec.family == "optimum":
        from spanqa.benchmarks.qa_bench.systems.pipelines import optimum_runner

        return optimum_runner(task.model)
    if spec.family == "spanqa":
        from spanqa.benchmarks.qa_bench.systems.spanqa import SpanqaRunner

        if spec.runtime in ("ONNX Runtime", "OpenVINO"):
            backend = "onnx" if spec.runtime == "ONNX Runtime" else "openvino"
            return SpanqaRunner(task.model, task.device, backend, overrides=task.engine_overrides)
        return SpanqaRunner(task.model, task.device, "torch", spec.precision, overrides=task.engine_overrides)
    raise ValueError(f"no runner for system family {spec.family!r}")


def _peak_memory(device: str) -> dict[str, int | None]:
    gpu = None
    if device == "cuda" and "torch" in sys.modules:
        gpu = int(sys.modules["torch"].cuda.max_memory_allocated())
    return {"peak_rss_bytes": peak_rss_bytes(), "gpu_peak_allocated_bytes": gpu}


def _pass_record(result: PassResult) -> dict:
    record = asdict(result)
    del record["answers"]  # stored once, below
    return record


def run_task(task: WorkerTask) -> dict:
    spec = SYSTEMS[task.system]
    examples = load_examples(task.data)
    if task.limit is not None:
        examples = examples[: task.limit]
    started = time.perf_counter()
    runner = make_runner(spec, task)
    load_seconds = time.perf_counter() - started
    tune = getattr(runner, "tune", None)
    if callable(tune):  # pipelines: pick the batch size on a slice, before anything is timed
        tune(examples[: task.search_questions], task.batch_sizes)
    runner.run(examples[: task.warmup_questions])  # warm-up: JIT loads, allocator and thread-pool start, not timed
    passes: list[PassResult] = []
    for _ in range(task.repeats):
        gc.collect()  # start every pass from the same heap, so one pass does not pay for the last one's garbage
        passes.append(runner.run(examples))
    answers = passes[0].answers
    return {
        "system": task.system,
        "settings": runner.settings,
        "load_seconds": load_seconds,
        "questions": len(examples),
        "passes": [_pass_record(result) for result in passes],
        "answers": list(answers),
        "answers_identical_across_passes": all(result.answers == answers for result in passes),
        **_peak_memory(task.device),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m spanqa.benchmarks.qa_bench.worker TASK.json", file=sys.stderr)
        return 2
    task = WorkerTask.read(argv[0])
    result = run_task(task)
    output = Path(task.output)
    partial = output.with_name(output.name + ".partial")
    partial.write_text(json.dumps(result), encoding="utf-8")
    partial.replace(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
