"""qa-bench: throughput and EM/F1 of spanqa side by side with the baselines users would pick, on the same questions.

    qa-bench --model /work/runs/h200-minilm-lr1e-4 --data ../shared/data/squad/dev-v1.1.json.gz --limit 1000 \\
        --json bench.json --markdown bench.md --plot bench.png

Systems (--systems, comma-separated; default: every one that runs on the device): seed (the notebook's way),
hf-pipeline, optimum-fp32, optimum-int8, spanqa-fp32, spanqa-int8, spanqa-torch, and on CUDA hf-pipeline-fp16 and
spanqa-fp16. ONNX models are exported from --model into --work-dir once and reused while the checkpoint is unchanged
(or taken from --onnx-fp32/--onnx-int8). Every system runs in a fresh process (bench_worker.py); see the report's
method line for warm-up, repeats and medians. --micro adds the decoder and training-throughput micro-benchmarks
(the latter with --train-data); on their own they are:

    python -m spanqa.benchmarks.decoder_bench --data DEV --model CHECKPOINT --limit N --json decoder.json
    python -m spanqa.benchmarks.train_throughput --data TRAIN --examples 500 --steps 5 --json training.json
    python -m spanqa.benchmarks.gemm_ceiling [--device cuda]

Exports are cached by the checkpoint's sha256 only: delete --work-dir after changing qa-export or Optimum.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from spanqa.benchmarks.bench_machine import describe_machine, library_versions
from spanqa.benchmarks.bench_report import BenchReport, markdown, plot
from spanqa.benchmarks.bench_results import SystemResult, Workload, agreement, speedups, summarise
from spanqa.benchmarks.bench_systems import (
    CHECKPOINT, OPTIMUM_FP32, OPTIMUM_INT8, SPANQA_FP32, SPANQA_INT8, SystemSpec, resolve_systems,
)  # fmt: skip
from spanqa.benchmarks.bench_worker import WorkerTask
from spanqa.benchmarks.gemm_ceiling import Ceiling, GemmOptions, measure_ceiling
from spanqa.benchmarks.model_flops import EncoderShape, window_flops, windows_flops
from spanqa.engine.core.data import DataFormatError, QAExample, load_examples

PROGRAM = "qa-bench"
EXIT_BAD_INPUT = 2
EXIT_SYSTEM_FAILED = 1
ENGINE_OVERRIDES = ("max_batch_tokens", "max_batch_windows", "lookahead")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


class BenchInputError(ValueError):
    """A bad argument or input file; the message names it."""


@dataclass(frozen=True)
class BenchOptions:
    model: str  # a transformers QA checkpoint folder
    data: str
    limit: int | None = None
    systems: str | None = None  # comma-separated names; None: every system that runs on the device
    device: str = "auto"  # auto | cpu | cuda: where the PyTorch systems run (ONNX Runtime ones run on the CPU)
    work_dir: str = "runs/qa-bench"
    onnx_fp32: str | None = None  # existing qa-export folders to use instead of exporting
    onnx_int8: str | None = None
    repeats: int = 3
    rounds: int = 1
    warmup_questions: int = 32
    batch_sizes: tuple[int, ...] = (1, 8, 32)  # pipelines' batch-size search
    search_questions: int = 64
    reference: str = "seed"  # agreement is measured against this system's answers
    ceiling: bool = True
    micro: bool = False
    train_data: str | None = None  # for the training-throughput micro-benchmark
    worker_timeout: int = 3 * 3600
    # EngineOptions fields set for the spanqa systems (max_batch_tokens, max_batch_windows, lookahead); empty: defaults
    engine_overrides: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("repeats", "rounds", "search_questions", "worker_timeout"):
            if getattr(self, name) < 1:
                raise BenchInputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise BenchInputError(f"--limit must be at least 1, got {self.limit}")
        if self.warmup_questions < 1:
            raise BenchInputError(f"--warmup-questions must be at least 1, got {self.warmup_questions}")
        if not self.batch_sizes or any(size < 1 for size in self.batch_sizes):
            raise BenchInputError(f"--batch-sizes must be positive integers, got {','.join(map(str, self.batch_sizes))}")
        for name, value in self.engine_overrides.items():
            if name not in ENGINE_OVERRIDES or value < 1:
                raise BenchInputError(f"--spanqa-{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise BenchInputError(f"--device must be auto, cpu or cuda, got {self.device!r}")


def _resolve_device(device: str) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise BenchInputError(f"--device cuda: this torch build ({torch.__version__}) sees no CUDA device")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _check_checkpoint(model: str) -> Path:
    folder = Path(model)
    if not folder.is_dir():
        raise BenchInputError(f"--model {model}: no such folder (a transformers question-answering checkpoint)")
    if not (folder / "config.json").is_file():
        raise BenchInputError(f"--model {model}: no config.json; not a transformers checkpoint folder")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise BenchInputError(f"--model {model}: no weights ({', '.join(WEIGHT_FILES)})")
    return folder.resolve()


def _check_export(option: str, folder: str) -> str:
    from spanqa.engine.core.model_folder import ModelFolderError, read_manifest

    try:
        read_manifest(folder)
    except ModelFolderError as error:
        raise BenchInputError(f"{option}: {error}") from None
    return str(Path(folder).resolve())


def _check_output(option: str, path: str | None) -> None:
    if path is None:
        return
    if Path(path).is_dir():
        raise BenchInputError(f"{option} {path}: is a folder; give a file name")
    if not Path(path).resolve().parent.is_dir():
        raise BenchInputError(f"{option} {path}: folder {Path(path).resolve().parent} does not exist")


def checkpoint_fingerprint(folder: Path) -> str:
    """sha256 over the checkpoint's config and weights: a cached export is reused only for the same model."""
    digest = hashlib.sha256()
    for name in ("config.json", *WEIGHT_FILES):
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _cached_export(kind: str, checkpoint: Path, work_dir: Path, fingerprint: str) -> str:
    """The export `kind` of the checkpoint, made once and reused while the checkpoint's fingerprint is the same."""
    folder = work_dir / kind
    marker = work_dir / f"{kind}.source.json"
    source = {"checkpoint": str(checkpoint), "sha256": fingerprint}
    if folder.is_dir() and marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == source:
        print(f"{PROGRAM}: reusing {folder}", file=sys.stderr)
        return str(folder)
    print(f"{PROGRAM}: exporting {kind} into {folder}", file=sys.stderr)
    started = time.perf_counter()
    marker.unlink(missing_ok=True)
    if kind in (OPTIMUM_FP32, OPTIMUM_INT8):
        from spanqa.benchmarks.bench_pipelines import export_optimum

        export_optimum(str(checkpoint), folder, quantize=kind == OPTIMUM_INT8)
    else:
        from spanqa.benchmarks.bench_spanqa import export_spanqa

        export_spanqa(str(checkpoint), folder, "int8" if kind == SPANQA_INT8 else "fp32")
    marker.write_text(json.dumps(source), encoding="utf-8")  # only after the export is complete and in place
    print(f"{PROGRAM}: exported {kind} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return str(folder)


def prepare_models(
    systems: tuple[SystemSpec, ...], options: BenchOptions, checkpoint: Path, work_dir: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """Paths of the models the systems need, and the reason for each one that could not be made."""
    given = {SPANQA_FP32: options.onnx_fp32, SPANQA_INT8: options.onnx_int8}
    paths, failures = {CHECKPOINT: str(checkpoint)}, {}
    needed = sorted({spec.model for spec in systems} - {CHECKPOINT})
    fingerprint = checkpoint_fingerprint(checkpoint) if needed else ""
    for kind in needed:
        if given.get(kind):
            paths[kind] = given[kind]
            continue
        try:
            paths[kind] = _cached_export(kind, checkpoint, work_dir, fingerprint)
        except Exception as error:  # one failed export must not cost the other systems their run
            failures[kind] = f"export failed: {type(error).__name__}: {error}".splitlines()[0]
            print(f"{PROGRAM}: {failures[kind]}", file=sys.stderr)
    return paths, failures


def make_workload(checkpoint: Path, examples: list[QAExample]) -> tuple[Workload, EncoderShape]:
    from transformers import AutoConfig, AutoTokenizer

    from spanqa.engine.core.windows import make_windows

    windows = make_windows(AutoTokenizer.from_pretrained(checkpoint), examples)
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
            finished = subprocess.run([sys.executable, "-m", "spanqa.benchmarks.bench_worker", str(task_path)],
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
    checkpoint = _check_checkpoint(options.model)
    onnx = {name: _check_export(f"--{name.replace('_', '-')}", getattr(options, name))
            for name in ("onnx_fp32", "onnx_int8") if getattr(options, name)}  # fmt: skip
    options = replace(options, **onnx)
    if options.train_data and not Path(options.train_data).is_file():
        raise BenchInputError(f"--train-data {options.train_data}: no such file")
    device = _resolve_device(options.device)
    try:
        systems = resolve_systems(options.systems, device)
    except ValueError as error:
        raise BenchInputError(str(error)) from None
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


def _parse_args(argv: list[str] | None) -> tuple[BenchOptions, argparse.Namespace]:
    defaults = BenchOptions(model="", data="")
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--model", required=True, help="transformers QA checkpoint folder (the fp32 reference)")
    parser.add_argument("--data", required=True, help="SQuAD JSON (.json/.json.gz) or JSONL with answers")
    parser.add_argument("--limit", type=int, help="only the first N questions (default: all)")
    parser.add_argument("--systems", help="comma-separated systems (default: every one that runs on the device)")
    parser.add_argument("--device", default=defaults.device, help="auto | cpu | cuda, for the PyTorch systems")
    parser.add_argument("--work-dir", default=defaults.work_dir, help="exports and worker logs (default: %(default)s)")
    parser.add_argument("--onnx-fp32", help="existing qa-export fp32 folder for spanqa-fp32 (default: export)")
    parser.add_argument("--onnx-int8", help="existing qa-export int8 folder for spanqa-int8 (default: export)")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed passes per system and round")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="fresh processes per system")
    parser.add_argument("--warmup-questions", type=int, default=defaults.warmup_questions)
    parser.add_argument("--batch-sizes", default=",".join(map(str, defaults.batch_sizes)),
                        help="pipelines: batch sizes to try (default: %(default)s)")
    parser.add_argument("--search-questions", type=int, default=defaults.search_questions,
                        help="pipelines: questions each batch size is timed on (default: %(default)s)")
    parser.add_argument("--reference", default=defaults.reference, help="system whose answers agreement is measured against")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the GEMM ceiling measurement")
    parser.add_argument("--micro", action="store_true", help="also run the decoder and training micro-benchmarks")
    parser.add_argument("--train-data", help="training data for the training-throughput micro-benchmark")
    for name in ENGINE_OVERRIDES:
        parser.add_argument(f"--spanqa-{name.replace('_', '-')}", type=int,
                            help=f"EngineOptions.{name} for the spanqa systems (default: the engine's)")
    parser.add_argument("--json", help="write the full report (every pass, settings, machine) as JSON")
    parser.add_argument("--markdown", help="write the Markdown table here (it is printed either way)")
    parser.add_argument("--plot", help="write the charts (throughput with F1, stage breakdown) as PNG")
    arguments = parser.parse_args(argv)
    try:
        batch_sizes = tuple(int(size) for size in arguments.batch_sizes.split(",") if size.strip())
    except ValueError:
        parser.error(f"--batch-sizes: expected comma-separated integers, got {arguments.batch_sizes!r}")
    try:
        options = BenchOptions(
            model=arguments.model, data=arguments.data, limit=arguments.limit, systems=arguments.systems,
            device=arguments.device, work_dir=arguments.work_dir, onnx_fp32=arguments.onnx_fp32,
            onnx_int8=arguments.onnx_int8, repeats=arguments.repeats, rounds=arguments.rounds,
            warmup_questions=arguments.warmup_questions, batch_sizes=batch_sizes,
            search_questions=arguments.search_questions, reference=arguments.reference,
            ceiling=not arguments.no_ceiling, micro=arguments.micro, train_data=arguments.train_data,
            engine_overrides={name: getattr(arguments, f"spanqa_{name}") for name in ENGINE_OVERRIDES
                              if getattr(arguments, f"spanqa_{name}") is not None},
        )  # fmt: skip
        for option in ("json", "markdown", "plot"):
            _check_output(f"--{option}", getattr(arguments, option))
    except BenchInputError as error:
        parser.error(str(error))
    return options, arguments


def main(argv: list[str] | None = None) -> int:
    options, arguments = _parse_args(argv)
    try:
        report = run_bench(options)
    except (BenchInputError, DataFormatError) as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = markdown(report)
    print(text)
    # Each output is written whole or not at all; the JSON first, since it holds everything.
    if arguments.json:
        _write_atomically(Path(arguments.json), report.to_json())
    if arguments.markdown:
        _write_atomically(Path(arguments.markdown), text)
    if arguments.plot:
        if any(result.ok for result in report.results):
            plot(report, Path(arguments.plot))
        else:
            print(f"{PROGRAM}: no system was measured; {arguments.plot} not written", file=sys.stderr)
    failed = [result.name for result in report.results if not result.ok]
    if failed:
        print(f"{PROGRAM}: no measurement for {', '.join(failed)} (see the table)", file=sys.stderr)
        return EXIT_SYSTEM_FAILED
    return 0


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main())
