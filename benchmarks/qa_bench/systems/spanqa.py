"""spanqa's own engine as a benchmark system: QAEngine on qa-export's ONNX models (fp32, int8; int8 also through
its OpenVINO graph) or on the checkpoint through its torch backend (fp32 on the CPU, fp16 on CUDA), with the engine's default batching.

Stage times are the engine's own `EngineStats` (tokenize runs in a background thread, overlapped with the model, so
the three stages can add up to more than the wall time); batch latencies come from wrapping every worker's
`backend.run` (`engine.worker_backends`: the engine may run several ONNX Runtime sessions at once), one call per
padded batch, summed over the workers.
"""

from __future__ import annotations

import time
from pathlib import Path

from spanqa.benchmarks.qa_bench.systems.timing import PassResult, StageClock
from spanqa.engine.core.data import QAExample


def _stats_snapshot(engine) -> dict[str, float]:
    stats = engine.stats
    return {name: float(getattr(stats, name)) for name in ("tokenize_seconds", "infer_seconds", "decode_seconds")}


class SpanqaRunner:
    def __init__(self, model: str, device: str, backend: str, torch_dtype: str = "auto",
                 overrides: dict[str, int] | None = None) -> None:  # fmt: skip
        from spanqa.engine.runtime.engine import QAEngine
        from spanqa.engine.runtime.options import EngineOptions

        options = EngineOptions(device=device, backend=backend, torch_dtype=torch_dtype, **(overrides or {}))
        self.engine = QAEngine(model, options=options)
        self.settings = {"backend": backend, "device": device,
                         **({"torch_dtype": torch_dtype} if backend == "torch" else {}),
                         "max_batch_tokens": options.max_batch_tokens, "max_batch_windows": options.max_batch_windows,
                         "lookahead": options.lookahead, "prefetch": options.prefetch}  # fmt: skip
        self.settings["providers"] = list(getattr(self.engine.backend, "providers", ()))
        if backend in ("onnx", "openvino"):
            self.settings["workers"] = len(self.engine.worker_backends)
            threads = getattr(self.engine.backend, "intra_op_threads", 0)  # per worker
            self.settings["intra_op_threads"] = threads or f"{'onnxruntime' if backend == 'onnx' else 'openvino'} default"
        manifest = self.engine.manifest
        if manifest is not None:
            self.settings["onnx_precision"] = manifest.precision
            self.settings["fused_ops"] = {name: count for name, count in manifest.fused_ops.items() if count}

    def run(self, examples: list[QAExample]) -> PassResult:
        engine, clock = self.engine, StageClock()
        calls: list[tuple[float, tuple[int, int]]] = []  # (seconds, batch shape) per model call, from every worker
        backends = list({id(backend): backend for backend in engine.worker_backends}.values())
        for backend in backends:
            backend.run = _recorded(backend.run, calls)
        before = _stats_snapshot(engine)
        started = time.perf_counter()
        try:
            answers = [answer.answer for answer in engine.answer_many(examples)]
        finally:
            for backend in backends:
                del backend.run  # back to the class's method
        seconds = time.perf_counter() - started
        for elapsed, shape in calls:  # into the clock here, in one thread
            clock.add("model", elapsed)
            clock.batch_seconds.append(elapsed)
            clock.batch_shapes.append(shape)
        after = _stats_snapshot(engine)
        for stage in ("tokenize", "infer", "decode"):
            clock.seconds[stage] = after[f"{stage}_seconds"] - before[f"{stage}_seconds"]
        return PassResult.from_clock(seconds, clock, answers)


def _recorded(run, calls: list):
    """`run` timed: each call appends one (seconds, batch shape) tuple, a single append, safe from any thread."""

    def timed_run(batch):
        started = time.perf_counter()
        result = run(batch)
        calls.append((time.perf_counter() - started, tuple(batch.input_ids.shape)))
        return result

    return timed_run


def export_spanqa(
    checkpoint: str, output: Path, precision: str, calibration: str | None = None, openvino: bool = False
) -> None:
    """qa-export as a library, with its defaults (fusions, parity gate on its built-in sample), and for int8 the
    calibration data if there is one (static int8). It stages the folder and publishes it whole, so an interrupted
    export never looks finished."""
    from spanqa.export.options import ExportOptions
    from spanqa.export.run import export_model

    export_model(ExportOptions(checkpoint=checkpoint, output=str(output), precision=precision, overwrite=True,
                               calibration=calibration, openvino=openvino))  # fmt: skip
