"""Turn the workers' raw passes into one comparable row per system: throughput, stage split, batch latency, memory,
accuracy, agreement with the reference, the share of the machine's GEMM ceiling, and speed ratios.

Every throughput figure is the median over all timed passes of a system (warm-up excluded); ratios divide medians
taken in the same qa-bench run, which is what survives a shared, noisy machine.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spanqa.benchmarks.qa_bench.systems.catalog import SystemSpec
from spanqa.benchmarks.qa_bench.ceiling import Ceiling
from spanqa.engine.core.data import QAExample
from spanqa.engine.evaluation.scoring import evaluate

# The systems every other one is compared with, in the report's ratio columns.
RATIO_BASELINES = ("hf-pipeline", "optimum-int8", "seed")


@dataclass(frozen=True)
class Workload:
    """What every system is asked to do: the same questions, cut into the same windows (engine windows, 384/128)."""

    questions: int
    windows: int
    tokens: int  # real tokens over all windows, no padding
    useful_flops: float  # model FLOPs over those windows without padding (flops.windows_flops)


@dataclass(frozen=True)
class SystemResult:
    name: str
    family: str
    runtime: str
    precision: str
    device: str
    description: str
    status: str  # "ok", or why there is no measurement
    settings: dict[str, Any] = field(default_factory=dict)
    timed_passes: int = 0
    median_seconds: float | None = None
    examples_per_second: float | None = None
    tokens_per_second: float | None = None
    tokenize_seconds: float | None = None  # medians over passes; None: the system cannot split this stage honestly
    infer_seconds: float | None = None
    decode_seconds: float | None = None
    batch_p50_ms: float | None = None
    batch_p95_ms: float | None = None
    mean_batch_windows: float | None = None
    padding_fraction: float | None = None  # share of the positions the model computed that were padding
    load_seconds: float | None = None
    peak_rss_mib: float | None = None
    gpu_peak_mib: float | None = None
    exact_match: float | None = None
    f1: float | None = None
    agreement: float | None = None  # percent of questions with the reference's exact answer text
    answers_identical_across_passes: bool | None = None
    effective_gflops: float | None = None  # useful FLOPs / median wall time
    infer_gflops: float | None = None  # useful FLOPs / median infer time
    ceiling_gflops: float | None = None  # this machine's GEMM rate in the system's precision
    ceiling_share: float | None = None  # effective / ceiling, percent
    infer_ceiling_share: float | None = None
    speedup: dict[str, float] = field(default_factory=dict)  # examples/s ratio against each RATIO_BASELINES system

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if len(present) == len(values) and present else None


def _ceiling_for(spec: SystemSpec, device: str, ceiling: Ceiling | None) -> float | None:
    if ceiling is None or ceiling.device != device:
        return None
    return ceiling.best(spec.precision)


def summarise(
    spec: SystemSpec,
    device: str,
    rounds: list[dict],
    examples: list[QAExample],
    workload: Workload,
    ceiling: Ceiling | None,
) -> SystemResult:
    """One system's row from its workers' outputs (one dict per round); agreement and ratios are filled in later."""
    base = dict(name=spec.name, family=spec.family, runtime=spec.runtime, precision=spec.precision, device=device,
                description=spec.description)  # fmt: skip
    passes = [record for round_ in rounds for record in round_["passes"]]
    if not passes:
        return SystemResult(**base, status="no timed pass")
    seconds = statistics.median(record["seconds"] for record in passes)
    latencies = np.array([latency for record in passes for latency in record["batch_seconds"]], dtype=np.float64)
    shapes = [shape for record in passes for shape in record["batch_shapes"]]
    computed = sum(rows * width for rows, width in shapes) / len(passes)
    answers = rounds[0]["answers"]
    scores = evaluate(examples, {example.id: answer for example, answer in zip(examples, answers)})
    infer = _median([record["infer_seconds"] for record in passes])
    ceiling_gflops = _ceiling_for(spec, device, ceiling)
    effective = workload.useful_flops / seconds / 1e9
    infer_gflops = workload.useful_flops / infer / 1e9 if infer else None
    return SystemResult(
        **base,
        status="ok",
        settings=rounds[0]["settings"],
        timed_passes=len(passes),
        median_seconds=seconds,
        examples_per_second=workload.questions / seconds,
        tokens_per_second=workload.tokens / seconds,
        tokenize_seconds=_median([record["tokenize_seconds"] for record in passes]),
        infer_seconds=infer,
        decode_seconds=_median([record["decode_seconds"] for record in passes]),
        batch_p50_ms=float(np.percentile(latencies, 50) * 1e3) if len(latencies) else None,
        batch_p95_ms=float(np.percentile(latencies, 95) * 1e3) if len(latencies) else None,
        mean_batch_windows=sum(rows for rows, _ in shapes) / len(shapes) if shapes else None,
        padding_fraction=max(0.0, 1.0 - workload.tokens / computed) if computed else None,
        load_seconds=statistics.median(round_["load_seconds"] for round_ in rounds),
        peak_rss_mib=max(round_["peak_rss_bytes"] for round_ in rounds) / 2**20,
        gpu_peak_mib=_gpu_peak(rounds),
        exact_match=scores.exact_match,
        f1=scores.f1,
        answers_identical_across_passes=all(round_["answers_identical_across_passes"] for round_ in rounds)
        and all(round_["answers"] == answers for round_ in rounds),
        effective_gflops=effective,
        infer_gflops=infer_gflops,
        ceiling_gflops=ceiling_gflops,
        ceiling_share=100.0 * effective / ceiling_gflops if ceiling_gflops else None,
        infer_ceiling_share=100.0 * infer_gflops / ceiling_gflops if ceiling_gflops and infer_gflops else None,
    )


def _gpu_peak(rounds: list[dict]) -> float | None:
    peaks = [round_["gpu_peak_allocated_bytes"] for round_ in rounds if round_.get("gpu_peak_allocated_bytes")]
    return max(peaks) / 2**20 if peaks else None


def agreement(answers: list[str], reference: list[str]) -> float:
    return 100.0 * sum(a == b for a, b in zip(answers, reference, strict=True)) / len(reference)


def speedups(results: list[SystemResult]) -> dict[str, dict[str, float]]:
    """examples/s of each measured system divided by each baseline's, for the baselines that were measured."""
    rates = {result.name: result.examples_per_second for result in results if result.ok}
    return {
        result.name: {baseline: rates[result.name] / rates[baseline] for baseline in RATIO_BASELINES if baseline in rates}
        for result in results
        if result.ok
    }
