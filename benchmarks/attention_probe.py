"""Where QAttention's time goes: one-operator graphs of the shipped model's attention shape, timed alone.

    python -m spanqa.benchmarks.attention_probe --shapes 2x192,1x384,4x96 --rounds 3 [--json out.json]

Why: after the int8 GEMMs were folded (export/integer_gemm.py), QAttention is the largest share of the int8 model's
time (op_profile). This splits it: the int8 QKV projection alone (MatMulIntegerToFloat), the attention core alone
on fp32 Q, K, V (MultiHeadAttention), QAttention with and without its mask, and the core's Q x K^T product as a
batched MatMul in fp32 and fp16, which tells whether the CPU provider has a faster float path for it. Where torch
is installed, the same core also runs as torch's scaled_dot_product_attention in fp32 and bf16: a yardstick, not a
spanqa path, for what a well-kept attention kernel using the CPU's bf16 units reaches at these shapes, i.e. what a
custom ONNX Runtime attention operator could hope to save. Weights and activations are random (only the shapes
matter for speed); one intra-op thread, as each of the engine's workers (torch's too: this sets torch's process-wide
thread count to 1). Each variant runs `--calls` times per round, variants interleaved within a round; medians over
rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from importlib.util import find_spec

import numpy as np

from spanqa.benchmarks.measure import machine_note, markdown_table, report

HIDDEN, HEADS = 384, 12  # MiniLM-L6: 12 heads of 32


def build_variants(batch: int, width: int, seed: int = 0) -> dict[str, tuple]:
    """{label: (session, feeds, useful GFLOP per call or None)} for one [batch, width] shape."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    head = HIDDEN // HEADS
    weights = {
        "w": rng.integers(-64, 64, (HIDDEN, 3 * HIDDEN), dtype=np.int8),
        "bias": (rng.standard_normal(3 * HIDDEN) * 0.1).astype(np.float32),
        "x_scale": np.array(0.02, np.float32), "w_scale": np.full(3 * HIDDEN, 0.003, np.float32),
        "x_zero": np.array(128, np.uint8), "w_zero": np.zeros(3 * HIDDEN, np.int8),
    }  # fmt: skip
    quantized = rng.integers(0, 255, (batch, width, HIDDEN), dtype=np.uint8)
    lengths = np.full(batch, width, np.int32)
    q, k, v = (rng.standard_normal((batch, width, HIDDEN)).astype(np.float32) for _ in range(3))

    def session(nodes, inputs, initializers, output=TensorProto.FLOAT):
        graph = helper.make_graph(
            nodes, "probe", [helper.make_tensor_value_info(name, kind, None) for name, kind in inputs],
            [helper.make_tensor_value_info("y", output, None)],
            [numpy_helper.from_array(weights[name], name) for name in initializers],
        )  # fmt: skip
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = 1
        return onnxruntime.InferenceSession(helper.make_model(graph, opset_imports=opsets).SerializeToString(),
                                            settings, providers=["CPUExecutionProvider"])  # fmt: skip

    quantized_inputs = ["w", "bias", "x_scale", "w_scale", "x_zero", "w_zero"]
    core_flop = 2 * 2 * batch * HEADS * width * width * head / 1e9  # Q x K^T and probabilities x V
    product_flop = 2 * batch * HEADS * width * width * head / 1e9

    def qattention(mask: bool):
        inputs = ["x", "w", "bias", "x_scale", "w_scale", "mask" if mask else "", "x_zero", "w_zero"]
        node = helper.make_node("QAttention", inputs, ["y"], domain="com.microsoft", num_heads=HEADS)
        feeds = {"x": quantized, **({"mask": lengths} if mask else {})}
        kinds = [("x", TensorProto.UINT8)] + ([("mask", TensorProto.INT32)] if mask else [])
        return session([node], kinds, quantized_inputs), feeds, None

    def product(element, dtype):
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        feeds = {"a": rng.standard_normal((batch * HEADS, width, head)).astype(dtype),
                 "b": rng.standard_normal((batch * HEADS, head, width)).astype(dtype)}  # fmt: skip
        return session([node], [("a", element), ("b", element)], [], element), feeds, product_flop

    projection = helper.make_node(
        "MatMulIntegerToFloat", ["x", "w", "x_scale", "w_scale", "x_zero", "w_zero", "bias"], ["y"],
        domain="com.microsoft",
    )
    core = helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], domain="com.microsoft", num_heads=HEADS)
    variants = {
        "QAttention (int8 QKV + fp32 core), mask": qattention(True),
        "QAttention, no mask": qattention(False),
        "QKV projection alone (MatMulIntegerToFloat)": (
            session([projection], [("x", TensorProto.UINT8)], quantized_inputs), {"x": quantized}, None),
        "core alone on fp32 Q, K, V (MultiHeadAttention)": (
            session([core], [(name, TensorProto.FLOAT) for name in "qkv"], []), {"q": q, "k": k, "v": v}, core_flop),
        "Q x K^T as batched MatMul, fp32": product(TensorProto.FLOAT, np.float32),
        "Q x K^T as batched MatMul, fp16": product(TensorProto.FLOAT16, np.float16),
    }  # fmt: skip
    if find_spec("torch") is not None:
        for dtype in ("fp32", "bf16"):
            variants[f"core as torch scaled_dot_product_attention, {dtype} (yardstick)"] = (
                TorchAttention(dtype), {"q": q, "k": k, "v": v}, core_flop)
    return variants


class TorchAttention:
    """torch's scaled_dot_product_attention on [batch, width, hidden] Q, K, V split into HEADS heads, behind the
    `run(None, feeds)` call of an InferenceSession, so that it is timed as the other variants are."""

    def __init__(self, dtype: str):
        import torch

        torch.set_num_threads(1)
        self._torch, self._dtype = torch, {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]

    def run(self, _outputs, feeds: dict) -> list[np.ndarray]:
        torch = self._torch
        batch, width, _ = feeds["q"].shape
        q, k, v = (torch.from_numpy(feeds[name]).to(self._dtype).view(batch, width, HEADS, -1).transpose(1, 2)
                   for name in "qkv")  # fmt: skip
        with torch.inference_mode():
            heads = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return [heads.transpose(1, 2).reshape(batch, width, HIDDEN).float().numpy()]


def probe(batch: int, width: int, rounds: int, calls: int) -> list[dict]:
    variants = build_variants(batch, width)
    seconds: dict[str, list[float]] = {label: [] for label in variants}
    for session, feeds, _ in variants.values():
        session.run(None, feeds)  # warm-up: first-call allocation and weight packing
    for _ in range(rounds):
        for label, (session, feeds, _) in variants.items():
            began = time.perf_counter()
            for _ in range(calls):
                session.run(None, feeds)
            seconds[label].append((time.perf_counter() - began) / calls)
    rows = []
    for label, (_, _, gflop) in variants.items():
        median = statistics.median(seconds[label])
        rows.append({"shape": f"{batch}x{width}", "variant": label, "ms": round(median * 1e3, 3),
                     "gflop_per_s": round(gflop / median, 1) if gflop else None})  # fmt: skip
    return rows


def parse_shapes(text: str) -> list[tuple[int, int]]:
    try:
        shapes = [tuple(int(part) for part in item.lower().split("x")) for item in text.split(",") if item.strip()]
    except ValueError:
        shapes = []
    if not shapes or any(len(shape) != 2 or min(shape) < 1 for shape in shapes):
        raise argparse.ArgumentTypeError(f"expected shapes like 2x192,1x384, got {text!r}")
    return shapes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", type=parse_shapes, default=parse_shapes("2x192,1x384,4x96"),
                        help="batch x width pairs (default: 2x192,1x384,4x96: the engine's 512-token batches)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=30, help="calls per variant per round (default: 30)")
    parser.add_argument("--json", help="also write the result here")
    arguments = parser.parse_args(argv)
    result = {"benchmark": "attention_probe", "command": "python -m spanqa.benchmarks.attention_probe "
              + " ".join(argv if argv is not None else sys.argv[1:]), "machine": machine_note(), "rows": []}  # fmt: skip
    for batch, width in arguments.shapes:
        result["rows"].extend(probe(batch, width, arguments.rounds, arguments.calls))
    table = markdown_table(["shape", "variant", "ms per call", "GFLOP/s"],
                           [[row["shape"], row["variant"], row["ms"], row["gflop_per_s"] or ""] for row in result["rows"]])
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
