"""qa-export on a trained checkpoint: sizes, parity and CPU speed of fp32/int8 graphs, with and without fusion.

    python -m spanqa.benchmarks.export_bench --checkpoint runs/h200-minilm-lr1e-4 \
        --data ../shared/data/squad/dev-v1.1.json.gz --limit 1000 \
        --keep-int8 runs/export/minilm-int8 --keep-fp32 runs/export/minilm-fp32 --json runs/export_bench.json

Four exports through `export_model` (each gated on the built-in sample): fp32 plain, fp32 fused, int8 plain
(quantized without fusion), int8 fused. Then, on the first --limit questions of --data:
- parity: PyTorch fp32 logits once, each graph's logits, the same windows, decoder and metric (the export gate's code);
- speed: --speed-windows of those windows, picked evenly along the length order so that their length mix is the
  data's, run length-sorted in batches of --batch-size through each graph's ONNX Runtime CPU session with
  --threads intra-op threads. Warm-up passes are not timed; each round times every graph once, rotating their
  order; figures are medians over --rounds rounds. Both wall time and the process's CPU time are recorded: on a
  shared, oversubscribed machine wall time mostly measures the neighbours, while single-threaded CPU time
  (the default, --threads 1) still measures the graph.

--work-dir keeps the exports (default: a temporary folder); --reuse-exports takes finished exports from there
and from the --keep-* folders instead of exporting again, and --skip-dev-parity leaves out the PyTorch comparison,
so the speed part can be rerun alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spanqa.engine.core.data import load_examples
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, Windows, make_windows
from spanqa.engine.core.model_folder import MODEL_FILE, ParityReport, read_manifest
from spanqa.export.options import ExportOptions, ParityThresholds, Precision
from spanqa.export.parity import ValidationSet, compare, length_sorted_batches, onnx_logits, torch_logits
from spanqa.export.run import export_model

VARIANTS: tuple[tuple[str, Precision, bool], ...] = (
    ("fp32 plain", "fp32", False),
    ("fp32 fused", "fp32", True),
    ("int8 plain", "int8", False),
    ("int8 fused", "int8", True),
)


@dataclass(frozen=True)
class VariantResult:
    name: str
    folder: str
    model_bytes: int
    fused_ops: dict[str, int]
    sample_parity: ParityReport | None  # the export's own gate (built-in sample)
    dev_parity: ParityReport | None
    windows_per_second: float  # wall clock, median over rounds
    windows_per_cpu_second: float  # process CPU time, median over rounds
    rounds: list[float]  # wall-clock windows/s of each round


def run_exports(checkpoint: str, work: Path, keep: dict[str, str | None], reuse: bool) -> dict[str, Path]:
    folders = {}
    for name, precision, optimize in VARIANTS:
        output = keep.get(name) or str(work / name.replace(" ", "-"))
        if reuse:
            manifest = read_manifest(output)  # raises, naming the folder, when there is no finished export
            if (manifest.precision, any(manifest.fused_ops.values())) != (precision, optimize):
                raise SystemExit(f"{output}: holds a {manifest.precision} export that is not the {name!r} variant")
            folders[name] = Path(output)
            continue
        started = time.perf_counter()
        result = export_model(ExportOptions(checkpoint, output, precision=precision, optimize=optimize, overwrite=True))
        print(f"exported {name} in {time.perf_counter() - started:.0f} s -> {result.output}", file=sys.stderr)
        folders[name] = result.output
    return folders


def speed_rows(windows: Windows, count: int) -> np.ndarray:
    """`count` windows spread evenly over the length order, so the subset keeps the data's length mix."""
    by_length = np.argsort(windows.lengths, kind="stable")
    picks = np.linspace(0, len(by_length) - 1, num=min(count, len(by_length))).round().astype(np.int64)
    return np.sort(by_length[np.unique(picks)])


def subset(windows: Windows, rows: np.ndarray) -> Windows:
    tokens = [np.arange(windows.row_splits[row], windows.row_splits[row + 1]) for row in rows]
    flat = np.concatenate(tokens)
    row_splits = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(piece) for piece in tokens], out=row_splits[1:])
    return Windows(windows.input_ids[flat], windows.token_type_ids[flat], windows.offsets[flat], row_splits,
                   np.arange(len(rows), dtype=np.int64), windows.cls_index[rows])  # fmt: skip


def time_sessions(
    sessions: dict, windows: Windows, batch_size: int, pad_token_id: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Windows per wall-clock second and per CPU second of each session, per round; rounds rotate the order."""
    names = list(sessions)
    batches = [batch for _, batch in length_sorted_batches(windows, batch_size, pad_token_id)]
    feeds_by_name = {
        name: [{value.name: getattr(batch, value.name) for value in session.get_inputs()} for batch in batches]
        for name, session in sessions.items()
    }
    for name, session in sessions.items():  # warm-up, not timed
        session.run(None, feeds_by_name[name][0])
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            for feeds in feeds_by_name[name]:
                sessions[name].run(None, feeds)
            wall[name].append(len(windows) / (time.perf_counter() - started))
            cpu[name].append(len(windows) / (time.process_time() - started_cpu))
    return wall, cpu


def benchmark(arguments: argparse.Namespace) -> list[VariantResult]:
    import onnxruntime
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    keep = {"int8 fused": arguments.keep_int8, "fp32 fused": arguments.keep_fp32}
    with tempfile.TemporaryDirectory(prefix="export-bench-") as scratch:
        work = Path(arguments.work_dir) if arguments.work_dir else Path(scratch)
        folders = run_exports(arguments.checkpoint, work, keep, arguments.reuse_exports)
        tokenizer = AutoTokenizer.from_pretrained(arguments.checkpoint)
        examples = load_examples(arguments.data)[: arguments.limit]
        windows = make_windows(QATokenizer.from_transformers(tokenizer), examples, WindowOptions())
        validation = ValidationSet(f"{arguments.data} (first {len(examples)})", examples)
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = arguments.threads
        sessions = {
            name: onnxruntime.InferenceSession(
                str(folders[name] / MODEL_FILE), session_options, providers=["CPUExecutionProvider"]
            )
            for name, _, _ in VARIANTS
        }
        dev_parity: dict[str, ParityReport | None] = {name: None for name, _, _ in VARIANTS}
        if not arguments.skip_dev_parity:
            model = AutoModelForQuestionAnswering.from_pretrained(arguments.checkpoint, dtype=torch.float32).eval()
            reference = torch_logits(model, tokenizer, windows, arguments.batch_size)
            print(f"PyTorch reference: {len(windows)} windows, {reference.seconds:.0f} s in the model", file=sys.stderr)
            for name, precision, _ in VARIANTS:
                logits = onnx_logits(sessions[name], windows, arguments.batch_size, tokenizer.pad_token_id)
                dev_parity[name] = compare(validation, windows, reference, logits, tokenizer.pad_token_id, precision,
                                           ParityThresholds())  # fmt: skip
                print(f"{name}: dev parity done ({logits.seconds:.0f} s in the model)", file=sys.stderr)
        speed_windows = subset(windows, speed_rows(windows, arguments.speed_windows))
        wall, cpu = time_sessions(sessions, speed_windows, arguments.batch_size, tokenizer.pad_token_id, arguments.rounds)
        results = []
        for name, _, _ in VARIANTS:
            manifest = read_manifest(folders[name])
            results.append(VariantResult(
                name=name,
                folder=str(folders[name]) if keep.get(name) else "(temporary)",
                model_bytes=(folders[name] / MODEL_FILE).stat().st_size,
                fused_ops={op: count for op, count in manifest.fused_ops.items() if count},
                sample_parity=manifest.parity,
                dev_parity=dev_parity[name],
                windows_per_second=statistics.median(wall[name]),
                windows_per_cpu_second=statistics.median(cpu[name]),
                rounds=[round(speed, 2) for speed in wall[name]],
            ))  # fmt: skip
    return results


def markdown(results: list[VariantResult], speed_windows: int, threads: int) -> str:
    by_name = {result.name: result for result in results}
    fp32_bytes = by_name["fp32 plain"].model_bytes
    lines = [
        "| graph | size (MB) | % of fp32 plain | fused ops | sample gate: agree % / F1 (PyTorch) | "
        "dev: max abs dlogit | dev: agree % | dev EM / F1 (PyTorch) | dev gate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        sample, dev = result.sample_parity, result.dev_parity
        fused = ", ".join(f"{op} {count}" for op, count in result.fused_ops.items()) or "none"
        sample_cell = f"{sample.agreement:.1f} / {sample.f1:.2f} ({sample.reference_f1:.2f})" if sample else "skipped"
        dev_cells = (
            f"{dev.max_abs_logit_diff:.3g} | {dev.agreement:.1f} | {dev.exact_match:.2f} / {dev.f1:.2f} "
            f"({dev.reference_exact_match:.2f} / {dev.reference_f1:.2f}) | {dev.threshold}: "
            f"{'pass' if dev.passed else 'FAIL'}"
            if dev
            else "skipped | | |"
        )
        lines.append(
            f"| {result.name} | {result.model_bytes / 1e6:.1f} | {100 * result.model_bytes / fp32_bytes:.1f} | "
            f"{fused} | {sample_cell} | {dev_cells} |"
        )
    lines += [
        "",
        f"| graph | windows per CPU-second ({threads} thread(s), median) | windows/s wall (median) | wall per round |",
        "|---|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result.name} | {result.windows_per_cpu_second:.2f} | {result.windows_per_second:.2f} | "
            f"{', '.join(f'{speed:.1f}' for speed in result.rounds)} |"
        )
    lines.append("")
    for top, bottom in [("int8 fused", "int8 plain"), ("fp32 fused", "fp32 plain"), ("int8 fused", "fp32 plain")]:
        cpu = by_name[top].windows_per_cpu_second / by_name[bottom].windows_per_cpu_second
        wall = by_name[top].windows_per_second / by_name[bottom].windows_per_second
        lines.append(f"- {top} / {bottom}: {cpu:.2f}x by CPU time, {wall:.2f}x by wall time")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a trained transformers QA folder")
    parser.add_argument("--data", required=True, help="SQuAD JSON/JSONL for the dev parity and speed windows")
    parser.add_argument("--limit", type=int, default=1000, help="first N questions of --data (default: %(default)s)")
    parser.add_argument("--speed-windows", type=int, default=256, help="windows timed per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per graph (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per batch (default: %(default)s)")
    parser.add_argument("--keep-int8", help="publish the fused int8 export here (replacing an earlier export)")
    parser.add_argument("--keep-fp32", help="publish the fused fp32 export here (replacing an earlier export)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default: %(default)s)")
    parser.add_argument("--work-dir", help="keep the exports here (default: a temporary folder)")
    parser.add_argument("--reuse-exports", action="store_true", help="use finished exports in --work-dir/--keep-*")
    parser.add_argument("--skip-dev-parity", action="store_true", help="speed only: no PyTorch comparison on --data")
    parser.add_argument("--json", help="also write the results here")
    arguments = parser.parse_args(argv)
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = benchmark(arguments)
    summary = {
        "command": " ".join(["python -m spanqa.benchmarks.export_bench", *(argv if argv is not None else sys.argv[1:])]),
        "seconds": round(time.perf_counter() - started),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "threads": arguments.threads,
        "results": [asdict(result) for result in results],
    }
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(summary, indent=2) + "\n")
    print(markdown(results, arguments.speed_windows, arguments.threads))
    print(f"\n{summary['seconds']} s; load average before {load_before}, after {summary['load_average_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
