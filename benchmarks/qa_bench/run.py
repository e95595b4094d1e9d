"""One qa-bench run: the workload, the exports, the GEMM ceiling, every system in its own worker process, the
micro-benchmarks, and the report that ties them together (written out by cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from spanqa.benchmarks.qa_bench.ceiling import Ceiling, GemmOptions, measure_ceiling
from spanqa.benchmarks.qa_bench.exports import check_checkpoint, check_export, prepare_models
from spanqa.benchmarks.qa_bench.flops import EncoderShape, window_flops, windows_flops
from spanqa.benchmarks.qa_bench.machine import describe_machine, library_versions
from spanqa.benchmarks.qa_bench.options import PROGRAM, BenchInputError, BenchOptions
from spanqa.benchmarks.qa_bench.report import BenchReport
from spanqa.benchmarks.qa_bench.results import SystemResult, Workload, agreement, speedups, summarise
from spanqa.benchmarks.qa_bench.systems.catalog import SystemSpec, resolve_systems, skipped_defaults
from spanqa.benchmarks.qa_bench.worker import WorkerTask
from spanqa.engine.core.data import QAExample, load_examples


def _resolve_device(device: str) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise BenchInputError(f"--device cuda: this torch build ({torch.__version__}) sees no CUDA device")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def make_workload(checkpoint: Path, examples: list[QAExample]) -> tuple[Workload, EncoderShape]:
    from transformers import AutoConfig, AutoTokenizer

    from spanqa.engine.core.tokenizer import QATokenizer
    from spanqa.engine.core.windows import make_windows

    windows = make_windows(QATokenizer.from_transformers(AutoTokenizer.from_pretrained(checkpoint)), examples)
    shape = EncoderShape.from_config(AutoConfig.from_pretrained(checkpoint))
    lengths = windows.lengths
    return Workload(len(examples), len(windows), int(lengths.sum()), windows_flops(shape, lengths)), shape


def _log_tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def run_worker(task: WorkerTask, log: Path, timeout: int) -> dict | str:
    """The worker's result, or why there is none."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=log.parent) as handle:
        task_path = Path(handle.name)
    task.write(task_path)
    Path(task.output).unlink(missing_ok=True)  # a result left by an earlier run must never pass for this one's
    try:
        with open(log, "w", encoding="utf-8") as output:
            # An explicit environment: the tokenizers library sets TOKENIZERS_PARALLELISM=false in a child forked
            # after the parent tokenized in parallel, and the worker must start with the user's setting instead.
            finished = subprocess.run([sys.executable, "-m", "spanqa.benchmarks.qa_bench.worker", str(task_path)],
                                      stdout=output, stderr=subprocess.STDOUT, timeout=timeout, env=dict(os.environ))  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout} s (log: {log})"
    finally:
        task_path.unlink(missing_ok=True)
    if finished.returncode != 0:
        return f"failed, exit {finished.returncode}: {_log_tail(log)} (log: {log})"
    return json.loads(Path(task.output).read_text(encoding="utf-8"))


def run_systems(
    systems: tuple[SystemSpec, ...], options: BenchOptions, device: str, paths: dict[str, str], work_dir: Path
) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Every system once per round, each in a fresh worker process; order reversed every other round."""
    rounds: dict[str, list[dict]] = {spec.name: [] for spec in systems}
    failures: dict[str, str] = {}
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for round_index in range(options.rounds):
        order = systems if round_index % 2 == 0 else systems[::-1]
        for spec in order:
            if spec.name in failures:
                continue
            if spec.model not in paths:
                continue
            system_device = device if device in spec.devices else "cpu"
            task = WorkerTask(
                spec.name, paths[spec.model], system_device, options.data, options.limit, options.repeats,
                options.warmup_questions, options.batch_sizes, options.search_questions,
                str(logs / f"{spec.name}-round{round_index}.json"),
                options.engine_overrides if spec.family == "spanqa" else {},
            )  # fmt: skip
            print(f"{PROGRAM}: round {round_index + 1}/{options.rounds}: {spec.name} ...", file=sys.stderr)
            started = time.perf_counter()
            outcome = run_worker(task, logs / f"{spec.name}-round{round_index}.log", options.worker_timeout)
            if isinstance(outcome, str):
                failures[spec.name] = outcome
                print(f"{PROGRAM}: {spec.name}: {outcome}", file=sys.stderr)
                continue
            rounds[spec.name].append(outcome)
            rates = [outcome["questions"] / record["seconds"] for record in outcome["passes"]]
            print(f"{PROGRAM}: {spec.name}: {max(rates):.1f} ex/s best pass ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr)  # fmt: skip
    return rounds, failures


def _micro_benchmarks(options: BenchOptions, checkpoint: Path, work_dir: Path) -> dict:
    """The decoder (notebook post-processing vs Numba) and training-throughput benches, each in its own process."""
    runs = {
        "decoder": [
            "spanqa.benchmarks.decoder_bench", "--data", options.data, "--model", str(checkpoint),
            *(["--limit", str(options.limit)] if options.limit else []),
            "--logits-cache", str(work_dir / "decoder_logits.npz"), "--json", str(work_dir / "micro-decoder.json"),
        ],
    }  # fmt: skip
    if options.train_data:
        runs["training throughput"] = [
            "spanqa.benchmarks.train_throughput", "--data", options.train_data, "--examples", "500", "--steps", "5",
            "--json", str(work_dir / "micro-training-throughput.json"),
        ]  # fmt: skip
    micro = {}
    for name, arguments in runs.items():
        command = [sys.executable, "-m", *arguments]
        print(f"{PROGRAM}: micro-benchmark {name} ...", file=sys.stderr)
        finished = subprocess.run(command, capture_output=True, text=True)
        json_path = Path(arguments[arguments.index("--json") + 1])
        micro[name] = {
            "command": "python -m " + " ".join(arguments),
            "exit_code": finished.returncode,
            "markdown": finished.stdout.strip() or finished.stderr.strip()[-2000:],
            "result": json.loads(json_path.read_text()) if finished.returncode == 0 and json_path.is_file() else None,
        }
    if not options.train_data:
        micro["training throughput"] = {"command": "", "markdown": "not run: give --train-data to include it"}
    return micro


def run_bench(options: BenchOptions) -> BenchReport:
    checkpoint = check_checkpoint(options.model)
    onnx = {name: check_export(f"--{name.replace('_', '-')}", getattr(options, name))
            for name in ("onnx_fp32", "onnx_int8") if getattr(options, name)}  # fmt: skip
    options = replace(options, **onnx)
    if options.train_data and not Path(options.train_data).is_file():
        raise BenchInputError(f"--train-data {options.train_data}: no such file")
    if options.calibration and not Path(options.calibration).exists():
        raise BenchInputError(f"--calibration {options.calibration}: no such file")
    device = _resolve_device(options.device)
    try:
        systems = resolve_systems(options.systems, device)
    except ValueError as error:
        raise BenchInputError(str(error)) from None
    if not options.systems:
        for name, reason in skipped_defaults(device).items():
            print(f"{PROGRAM}: {name} not run: {reason}", file=sys.stderr)
    examples = load_examples(options.data)
    if options.limit is not None:
        examples = examples[: options.limit]
    if not examples:
        raise BenchInputError(f"--data {options.data}: holds no questions")
    names = [spec.name for spec in systems]
    reference = options.reference
    if reference not in names:
        reference = next((name for name in ("seed", "hf-pipeline") if name in names), names[0])
        print(f"{PROGRAM}: agreement reference {options.reference} is not run; using {reference}", file=sys.stderr)
    work_dir = Path(options.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    workload, shape = make_workload(checkpoint, examples)
    paths, export_failures = prepare_models(systems, options, checkpoint, work_dir)
    gemm = GemmOptions(hidden=shape.hidden_size, intermediate=shape.intermediate_size)
    ceiling: Ceiling | None = None
    if options.ceiling:
        print(f"{PROGRAM}: measuring the GEMM ceiling ...", file=sys.stderr)
        ceiling = measure_ceiling(device, gemm)
    rounds, run_failures = run_systems(systems, options, device, paths, work_dir)
    if ceiling is not None:  # measured again after the systems; the faster of the two counts (see Ceiling.faster)
        print(f"{PROGRAM}: measuring the GEMM ceiling again ...", file=sys.stderr)
        ceiling = ceiling.faster(measure_ceiling(device, gemm))

    results: list[SystemResult] = []
    for spec in systems:
        system_device = device if device in spec.devices else "cpu"
        failure = export_failures.get(spec.model) or run_failures.get(spec.name)
        if failure:
            results.append(SystemResult(spec.name, spec.family, spec.runtime, spec.precision, system_device,
                                        spec.description, status=failure))  # fmt: skip
        else:
            results.append(summarise(spec, system_device, rounds[spec.name], examples, workload, ceiling))
    reference_answers = rounds[reference][0]["answers"] if rounds.get(reference) else None
    ratios = speedups(results)
    results = [
        replace(result, speedup=ratios.get(result.name, {}),
                agreement=agreement(rounds[result.name][0]["answers"], reference_answers)
                if result.ok and reference_answers is not None else None)
        for result in results
    ]  # fmt: skip
    micro = _micro_benchmarks(options, checkpoint, work_dir) if options.micro else {}
    method = {"repeats": options.repeats, "rounds": options.rounds,
              "warmup_questions": min(options.warmup_questions, len(examples)),
              "batch_size_candidates": list(options.batch_sizes), "search_questions": options.search_questions,
              "reference": reference, "spanqa_engine_overrides": options.engine_overrides}  # fmt: skip
    return BenchReport(
        checkpoint=str(checkpoint), data=options.data, device=device, workload=workload,
        flops_per_384_window=window_flops(shape, 384), machine=describe_machine(), versions=library_versions(),
        method=method, ceiling=ceiling, results=tuple(results), micro=micro,
    )  # fmt: skip
