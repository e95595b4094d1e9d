"""qa-bench: throughput and EM/F1 of spanqa side by side with the baselines users would pick, on the same questions.

    qa-bench --model CHECKPOINT --data ../shared/data/squad/dev-v1.1.json.gz --limit 1000 \\
        --json bench.json --markdown bench.md --plot bench.png --frontier bench.frontier.png

Systems (--systems, comma-separated; default: every one that runs on the device): seed (the notebook's way),
hf-pipeline, optimum-fp32, optimum-int8, spanqa-fp32, spanqa-int8, spanqa-torch, and on CUDA hf-pipeline-fp16 and
spanqa-fp16. ONNX models are exported from --model into --work-dir once and reused while the checkpoint is unchanged
(or taken from --onnx-fp32/--onnx-int8). Every system runs in a fresh process (worker.py); see the report's
method line for warm-up, repeats and medians. --micro adds the decoder and training-throughput micro-benchmarks
(the latter with --train-data); on their own they are:

    python -m spanqa.benchmarks.decoder_bench --data DEV --model CHECKPOINT --limit N --json decoder.json
    python -m spanqa.benchmarks.train_throughput --data TRAIN --examples 500 --steps 5 --json training.json
    python -m spanqa.benchmarks.qa_bench.ceiling [--device cuda]

Exports are cached by the checkpoint's sha256 only: delete --work-dir after changing qa-export or Optimum.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spanqa.benchmarks.qa_bench.frontier import draw_frontier, frontier_path
from spanqa.benchmarks.qa_bench.options import ENGINE_OVERRIDES, PROGRAM, BenchInputError, BenchOptions
from spanqa.benchmarks.qa_bench.report import markdown, plot
from spanqa.benchmarks.qa_bench.run import run_bench
from spanqa.engine.cli.common import EXIT_FAILURE, EXIT_OK, CommandError, add_debug_flag, require_extra, run_command
from spanqa.engine.core.data import DataFormatError



def _check_output(option: str, path: str | None) -> None:
    if path is None:
        return
    if Path(path).is_dir():
        raise BenchInputError(f"{option} {path}: is a folder; give a file name")
    if not Path(path).resolve().parent.is_dir():
        raise BenchInputError(f"{option} {path}: folder {Path(path).resolve().parent} does not exist")



def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        "--calibration", metavar="DATA",
        help="training data: spanqa-int8 is exported as static int8 calibrated on it (default: dynamic int8)",
    )  # fmt: skip
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
    parser.add_argument("--frontier", metavar="PNG",
                        help="write the speed-accuracy chart (F1 against questions/s, the frontier as a step line) "
                             "as PNG (default: beside --json, BENCH.frontier.png; without --json, not drawn)")  # fmt: skip
    return add_debug_flag(parser)


def bench_options(arguments: argparse.Namespace) -> BenchOptions:
    """The BenchOptions the flags ask for; raises CommandError (exit 2) for a bad value."""
    try:
        batch_sizes = tuple(int(size) for size in arguments.batch_sizes.split(",") if size.strip())
    except ValueError:
        raise CommandError(f"--batch-sizes: expected comma-separated integers, got {arguments.batch_sizes!r}") from None
    try:
        options = BenchOptions(
            model=arguments.model, data=arguments.data, limit=arguments.limit, systems=arguments.systems,
            device=arguments.device, work_dir=arguments.work_dir, onnx_fp32=arguments.onnx_fp32,
            onnx_int8=arguments.onnx_int8, repeats=arguments.repeats, rounds=arguments.rounds,
            warmup_questions=arguments.warmup_questions, batch_sizes=batch_sizes,
            search_questions=arguments.search_questions, reference=arguments.reference,
            ceiling=not arguments.no_ceiling, micro=arguments.micro, train_data=arguments.train_data,
            calibration=arguments.calibration,
            engine_overrides={name: getattr(arguments, f"spanqa_{name}") for name in ENGINE_OVERRIDES
                              if getattr(arguments, f"spanqa_{name}") is not None},
        )  # fmt: skip
        for option in ("json", "markdown", "plot", "frontier"):
            _check_output(f"--{option}", getattr(arguments, option))
    except BenchInputError as error:
        raise CommandError(str(error)) from None
    return options


def main(argv: list[str] | None = None) -> int:
    return run_command(PROGRAM, build_parser(), _bench, argv)


def _bench(arguments: argparse.Namespace) -> int:
    options = bench_options(arguments)
    require_extra("bench")
    try:
        report = run_bench(options)
    except (BenchInputError, DataFormatError) as error:
        raise CommandError(str(error)) from None
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
    chart = frontier_path(arguments.frontier, arguments.json)
    if chart is not None:
        if any(result.ok for result in report.results):
            workload = f"{report.workload.questions:,} questions, {Path(report.checkpoint).name}, {report.device}"
            draw_frontier(report.results, chart, f"F1 against speed: {workload}")
        else:
            print(f"{PROGRAM}: no system was measured; {chart} not written", file=sys.stderr)
    failed = [result.name for result in report.results if not result.ok]
    if failed:
        raise CommandError(f"no measurement for {', '.join(failed)} (see the table)", EXIT_FAILURE)
    return EXIT_OK


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
