"""qa-bench's outputs: the Markdown table (with the headline ratios and the frontier), the JSON report, and the PNG
charts (the speed-accuracy chart is frontier.py's)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spanqa.benchmarks.qa_bench.frontier import frontier_line, measured_points
from spanqa.benchmarks.qa_bench.machine import MachineInfo
from spanqa.benchmarks.qa_bench.results import SystemResult, Workload
from spanqa.benchmarks.qa_bench.ceiling import Ceiling

HEADLINE_SYSTEMS = ("spanqa-int8", "spanqa-openvino")
HEADLINE_BASELINES = ("hf-pipeline", "optimum-int8")


@dataclass(frozen=True)
class BenchReport:
    checkpoint: str
    data: str
    device: str
    workload: Workload
    flops_per_384_window: float
    machine: MachineInfo
    versions: dict[str, str]
    method: dict[str, Any]  # repeats, rounds, warm-up, batch-size candidates, reference
    ceiling: Ceiling | None
    results: tuple[SystemResult, ...]
    micro: dict[str, Any] = field(default_factory=dict)  # decoder and training micro-benchmarks, when run
    benchmark: str = "qa-bench"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False) + "\n"

    def result(self, name: str) -> SystemResult | None:
        return next((result for result in self.results if result.name == name and result.ok), None)


def _number(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def headline(report: BenchReport) -> str | None:
    """One sentence per CPU default of spanqa (int8 on ONNX Runtime; OpenVINO's bf16 graph where it ran) with its
    ratios against the baselines users would pick, each with its F1."""
    sentences = []
    for system in HEADLINE_SYSTEMS:
        ours = report.result(system)
        if ours is None or not ours.ok:
            continue
        parts = []
        for name in HEADLINE_BASELINES:
            baseline = report.result(name)
            if baseline is not None and name in ours.speedup:
                parts.append(f"**{ours.speedup[name]:.2f}x {name}** (F1 {baseline.f1:.2f})")
        if parts:
            sentences.append(f"{system} (F1 {ours.f1:.2f}) answers " + " and ".join(parts) + " questions per second.")
    if not sentences:
        return None
    return "Headline, from this one run: " + " ".join(sentences)


def _machine_line(report: BenchReport) -> str:
    machine, versions = report.machine, report.versions
    flags = ", ".join(machine.cpu_flags) or "none of note"
    gpu = f"; GPU {machine.gpu}" if machine.gpu else "; no GPU"
    shown = ", ".join(f"{name} {version}" for name, version in versions.items())
    return (f"Machine: {machine.cpu}, {machine.usable_cores} usable cores (flags: {flags}){gpu}, "
            f"{_number(machine.memory_gib, 0)} GiB; Python {machine.python}; {shown}. Date: {machine.date}.")  # fmt: skip


def _stage(value: float | None) -> str:
    return _number(value, 2)


def _ratio(result: SystemResult, baseline: str) -> str:
    if not result.ok or baseline not in result.speedup:
        return "n/a"
    return f"{result.speedup[baseline]:.2f}x"


def markdown(report: BenchReport) -> str:
    workload, method = report.workload, report.method
    lines = [
        f"{workload.questions:,} questions from {report.data} -> {workload.windows:,} windows, {workload.tokens:,} "
        f"tokens (384/128 windows, no padding); model {report.checkpoint}; device {report.device}.",
        _machine_line(report),
        f"Method: every system in a fresh process per round; {method['warmup_questions']} questions of warm-up "
        f"excluded; {method['repeats']} timed pass(es) x {method['rounds']} round(s) over all questions (system "
        "order reversed every other round); figures are medians over the passes. The machine is shared: read "
        "absolute rates as +-20% and compare the ratios, which come from this one run.",
        "",
    ]
    for line in (headline(report), frontier_line(measured_points(report.results))):
        if line:
            lines += [line, ""]
    lines += [
        "| system | runtime | precision | ex/s | tokens/s | vs hf-pipeline | vs optimum-int8 | EM | F1 | "
        f"agreement with {method['reference']} | tokenize s | infer s | decode s | wall s | batch p50 / p95 ms | "
        "padding | peak RSS MiB | GEMM ceiling used (e2e / infer) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in report.results:
        if not result.ok:
            lines.append(f"| {result.name} | {result.runtime} | {result.precision} | {result.status} |" + " |" * 14)
            continue
        share = f"{_number(result.ceiling_share, 1, '%')} / {_number(result.infer_ceiling_share, 1, '%')}"
        lines.append(
            f"| {result.name} | {result.runtime} | {result.precision} | {_number(result.examples_per_second, 1)} | "
            f"{_number(result.tokens_per_second)} | {_ratio(result, 'hf-pipeline')} | {_ratio(result, 'optimum-int8')} | "
            f"{result.exact_match:.2f} | {result.f1:.2f} | {_number(result.agreement, 2, '%')} | "
            f"{_stage(result.tokenize_seconds)} | {_stage(result.infer_seconds)} | {_stage(result.decode_seconds)} | "
            f"{_stage(result.median_seconds)} | {_number(result.batch_p50_ms, 1)} / {_number(result.batch_p95_ms, 1)} | "
            f"{_number(None if result.padding_fraction is None else 100 * result.padding_fraction, 1, '%')} | "
            f"{_number(result.peak_rss_mib)} | {share} |"
        )
    lines += ["", *_notes(report), "", *_settings_table(report)]
    if report.ceiling is not None:
        lines += ["", *_ceiling_lines(report)]
    for name, micro in report.micro.items():
        command = [f"`{micro['command']}`", ""] if micro.get("command") else []
        lines += ["", f"### Micro-benchmark: {name}", "", *command, micro.get("markdown", "")]
    return "\n".join(lines).rstrip() + "\n"


def _notes(report: BenchReport) -> list[str]:
    return [
        "- ex/s and tokens/s: questions (and their real window tokens) over the median wall time of a pass, from "
        "questions in to answer texts out; loading the model is excluded (see load s below).",
        "- Stages: seed and spanqa time their own tokenize/infer/decode; pipelines are split by wrapping the "
        "pipeline's preprocess/forward/postprocess, and the rest of their wall time (collating batches, unbatching) "
        "is in none of the three. spanqa tokenizes in a background thread, overlapped with the model, so its stages "
        "can add up to more than its wall time.",
        "- Batch latency: one model call on one padded batch (windows per batch in the settings table).",
        "- Padding: share of the positions the model computed that were padding (1 - real tokens / rows x width).",
        f"- Agreement: percent of questions whose answer text equals {report.method['reference']}'s (PyTorch fp32); "
        "seed and spanqa pick spans by the same rule (best start+end logit over all windows), the pipeline by "
        "per-window probabilities, so pipeline rows also differ by algorithm, not only by numerics.",
        f"- GEMM ceiling used: the useful model FLOPs (no padding; {report.flops_per_384_window / 1e9:.3f} GFLOP per "
        "384-token window, see qa_bench/flops.py) per second of wall time (e2e) or of model time (infer), as a share "
        "of this machine's measured GEMM rate in the system's precision.",
    ]


def _settings_table(report: BenchReport) -> list[str]:
    lines = ["| system | what it is | settings | mean windows per batch | load s |", "|---|---|---|---|---|"]
    for result in report.results:
        settings = ", ".join(f"{key}={value}" for key, value in result.settings.items() if key != "batch_size_search")
        search = result.settings.get("batch_size_search")
        if search:
            tried = ", ".join(f"{size}: {seconds:.2f} s" for size, seconds in search["seconds"].items())
            settings += f"; batch sizes tried on {search['questions']} questions: {tried}"
        lines.append(f"| {result.name} | {result.description} | {settings or 'n/a'} | "
                     f"{_number(result.mean_batch_windows, 1)} | {_number(result.load_seconds, 1)} |")  # fmt: skip
    return lines


def _ceiling_lines(report: BenchReport) -> list[str]:
    ceiling = report.ceiling
    threads = f", {ceiling.threads} threads" if ceiling.threads else ""
    lines = [f"GEMM ceiling ({ceiling.device}{threads}; median of repeated runs, measured before and after the "
             "systems, the faster of the two kept):", "",
             "| precision | operator | shape | GFLOP/s |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {rate.precision} | {rate.operator} | {rate.shape} | {rate.gflops:,.1f} |" for rate in ceiling.rates]
    return lines


def plot(report: BenchReport, path: Path) -> None:
    """Two panels: throughput bars annotated with F1 (and the ratio to hf-pipeline), and the stage breakdown."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    measured = [result for result in report.results if result.ok]
    if not measured:
        raise ValueError("no system was measured; nothing to plot")
    names = [result.name for result in measured]
    figure, (rates, stages) = plt.subplots(1, 2, figsize=(14, 0.6 * len(measured) + 2.6))
    values = [result.examples_per_second for result in measured]
    colours = {"seed": "#9e9e9e", "hf-pipeline": "#f2a541", "optimum": "#4a90d9", "spanqa": "#2e9e5b"}
    rates.barh(names, values, color=[colours.get(result.family, "#777777") for result in measured])
    for index, result in enumerate(measured):
        ratio = f", {result.speedup['hf-pipeline']:.2f}x hf-pipeline" if "hf-pipeline" in result.speedup else ""
        rates.text(values[index], index, f"  F1 {result.f1:.1f}{ratio}", va="center", fontsize=8)
    rates.set_xlim(0, max(values) * 1.45)
    rates.invert_yaxis()
    rates.set_xlabel("questions per second (median pass)")
    rates.set_title(f"Throughput on {report.workload.questions:,} questions ({report.device})")

    # Shares of each pass; spanqa's tokenize overlaps its model, so its stages are scaled to their own sum.
    seconds = {stage: [getattr(result, f"{stage}_seconds") or 0.0 for result in measured]
               for stage in ("tokenize", "infer", "decode")}  # fmt: skip
    split = [sum(parts) for parts in zip(*seconds.values())]
    seconds["other / not split"] = [max(0.0, result.median_seconds - done) for result, done in zip(measured, split)]
    totals = [sum(parts) for parts in zip(*seconds.values())]
    left = [0.0] * len(measured)
    stage_colours = ("#8e7cc3", "#4a90d9", "#f2a541", "#d9d9d9")
    for (stage, widths), colour in zip(seconds.items(), stage_colours):
        shares = [100.0 * width / total if total else 0.0 for width, total in zip(widths, totals)]
        stages.barh(names, shares, left=left, color=colour, label=stage)
        left = [a + b for a, b in zip(left, shares)]
    for index, result in enumerate(measured):
        stages.text(101, index, f" {result.median_seconds:.2f} s", va="center", fontsize=8)
    stages.set_xlim(0, 118)
    stages.invert_yaxis()
    stages.set_xlabel("share of a pass (%); wall seconds on the right")
    stages.set_title("Where the time goes")
    stages.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
