"""This machine's matrix-multiply rate: the ceiling a transformer forward pass can approach.

On a CPU the rate is measured through ONNX Runtime, the runtime the exported models use: a one-node graph built with
onnx.helper, a MatMul in fp32 and a MatMulInteger (uint8 activations x int8 weights, the pair ONNX Runtime's dynamic
quantization emits) in int8, with weights as initializers as in a real model. Shapes are the model's feed-forward
projections, [tokens x hidden] x [hidden x intermediate] and back, the largest GEMMs of an encoder layer.
On a GPU it is measured with torch.matmul in fp16 (and fp32), since ONNX Runtime there is CPU-only.

    python -m spanqa.benchmarks.qa_bench.ceiling --hidden 384 --intermediate 1536 --tokens 4096 [--device cuda]

Each figure is the median of repeated runs after warm-up runs; the ceiling is the faster of the two shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class GemmOptions:
    tokens: int = 4096  # rows of the activation matrix: ~11 windows of 384 tokens
    hidden: int = 384
    intermediate: int = 1536
    runs: int = 15
    warmup_runs: int = 3
    threads: int = 0  # ONNX Runtime intra-op threads; 0 = every core this process may use

    def __post_init__(self) -> None:
        for name in ("tokens", "hidden", "intermediate", "runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"gemm ceiling: {name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_runs < 0 or self.threads < 0:
            raise ValueError("gemm ceiling: warmup_runs and threads must not be negative")


@dataclass(frozen=True)
class GemmRate:
    precision: str  # fp32 | int8 | fp16
    operator: str  # what ran, e.g. "onnxruntime MatMul"
    shape: str  # "[M x K] x [K x N]"
    median_seconds: float
    gflops: float  # 2 M K N / median seconds / 1e9 (int8: integer operations, counted the same way)


@dataclass(frozen=True)
class Ceiling:
    device: str
    threads: int | None  # ONNX Runtime intra-op threads (CPU only)
    rates: tuple[GemmRate, ...]

    def best(self, precision: str) -> float | None:
        """The fastest measured rate in GFLOP/s for a precision, None when it was not measured."""
        found = [rate.gflops for rate in self.rates if rate.precision == precision]
        return max(found) if found else None

    def faster(self, other: Ceiling) -> Ceiling:
        """Per operator and shape, the faster of two measurements. On a shared machine a neighbour's burst can
        only slow a measurement down, so the faster one is closer to what the machine can do."""
        best = {(rate.precision, rate.operator, rate.shape): rate for rate in self.rates}
        for rate in other.rates:
            key = (rate.precision, rate.operator, rate.shape)
            if key not in best or rate.gflops > best[key].gflops:
                best[key] = rate
        return Ceiling(self.device, self.threads, tuple(best.values()))


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _median_seconds(call: Callable[[], object], options: GemmOptions) -> float:
    for _ in range(options.warmup_runs):
        call()
    times = []
    for _ in range(options.runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _matmul_graph(rows: int, inner: int, columns: int, integer: bool):
    """A one-node ONNX graph: Y = A x W with W an initializer (as a model's weights are)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if integer:
        weights = rng.integers(-127, 128, size=(inner, columns), dtype=np.int8)
        inputs = [helper.make_tensor_value_info("A", TensorProto.UINT8, [rows, inner])]
        initializers = [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.array(128, np.uint8), "a_zero")]
        node = helper.make_node("MatMulInteger", ["A", "W", "a_zero"], ["Y"])
        output = helper.make_tensor_value_info("Y", TensorProto.INT32, [rows, columns])
    else:
        weights = rng.standard_normal((inner, columns), dtype=np.float32)
        inputs = [helper.make_tensor_value_info("A", TensorProto.FLOAT, [rows, inner])]
        initializers = [numpy_helper.from_array(weights, "W")]
        node = helper.make_node("MatMul", ["A", "W"], ["Y"])
        output = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [rows, columns])
    graph = helper.make_graph([node], "gemm_ceiling", inputs, [output], initializers)
    # Opset 13 has both operators unchanged since; IR 8 loads in every onnxruntime this project supports.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _onnxruntime_rate(rows: int, inner: int, columns: int, integer: bool, options: GemmOptions, threads: int) -> GemmRate:
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads
    model = _matmul_graph(rows, inner, columns, integer)
    session = ort.InferenceSession(model.SerializeToString(), session_options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    if integer:
        activations = rng.integers(0, 256, size=(rows, inner), dtype=np.uint8)
    else:
        activations = rng.standard_normal((rows, inner), dtype=np.float32)
    seconds = _median_seconds(lambda: session.run(None, {"A": activations}), options)
    return GemmRate(
        "int8" if integer else "fp32", "onnxruntime MatMulInteger (u8 x s8)" if integer else "onnxruntime MatMul",
        f"[{rows} x {inner}] x [{inner} x {columns}]", seconds, 2.0 * rows * inner * columns / seconds / 1e9,
    )  # fmt: skip


def _torch_rate(rows: int, inner: int, columns: int, dtype_name: str, options: GemmOptions) -> GemmRate:
    import torch

    dtype = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    activations = torch.randn(rows, inner, device="cuda", dtype=dtype)
    weights = torch.randn(inner, columns, device="cuda", dtype=dtype)

    def call() -> None:
        torch.matmul(activations, weights)
        torch.cuda.synchronize()  # kernels are asynchronous; time them to completion

    seconds = _median_seconds(call, options)
    return GemmRate(
        dtype_name, f"torch.matmul cuda {dtype_name}", f"[{rows} x {inner}] x [{inner} x {columns}]", seconds,
        2.0 * rows * inner * columns / seconds / 1e9,
    )  # fmt: skip


def measure_ceiling(device: str = "cpu", options: GemmOptions = GemmOptions()) -> Ceiling:
    shapes = [(options.tokens, options.hidden, options.intermediate), (options.tokens, options.intermediate, options.hidden)]
    if device == "cuda":
        # A GPU needs far more rows than a CPU to fill; 64 windows of 384 tokens per call at least.
        rows = max(options.tokens, 64 * 384)
        rates = [_torch_rate(rows, inner, columns, precision, options)
                 for precision in ("fp16", "fp32") for _, inner, columns in shapes]  # fmt: skip
        return Ceiling("cuda", None, tuple(rates))
    if device != "cpu":
        raise ValueError(f"gemm ceiling: device must be 'cpu' or 'cuda', got {device!r}")
    threads = options.threads or usable_cores()
    rates = [_onnxruntime_rate(*shape, integer, options, threads) for integer in (False, True) for shape in shapes]
    return Ceiling("cpu", threads, tuple(rates))


def markdown(ceiling: Ceiling) -> str:
    threads = f", {ceiling.threads} ONNX Runtime threads" if ceiling.threads else ""
    lines = [f"GEMM ceiling on {ceiling.device}{threads} (median of repeated runs, warm-up excluded):", "",
             "| precision | operator | shape | median ms | GFLOP/s |", "|---|---|---|---|---|"]  # fmt: skip
    for rate in ceiling.rates:
        lines.append(f"| {rate.precision} | {rate.operator} | {rate.shape} | {rate.median_seconds * 1e3:.2f} | {rate.gflops:,.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    defaults = GemmOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--tokens", type=int, default=defaults.tokens, help="rows of the activations (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=defaults.hidden)
    parser.add_argument("--intermediate", type=int, default=defaults.intermediate)
    parser.add_argument("--runs", type=int, default=defaults.runs)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="0: every usable core (default)")
    parser.add_argument("--json", help="also write the result as JSON here")
    arguments = parser.parse_args(argv)
    try:
        options = GemmOptions(arguments.tokens, arguments.hidden, arguments.intermediate, arguments.runs,
                              defaults.warmup_runs, arguments.threads)  # fmt: skip
    except ValueError as error:
        parser.error(str(error))
    ceiling = measure_ceiling(arguments.device, options)
    print(markdown(ceiling))
    if arguments.json:
        with open(arguments.json, "w", encoding="utf-8") as handle:
            json.dump(asdict(ceiling), handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
