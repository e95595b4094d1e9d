"""Static int8: the dynamic int8 graph with every activation scale fixed by calibration on training windows.

Why: dynamic quantization (quantize.py) measures each activation's range on the batch it is computing, so a
question's answer depends on its batch mates (measured: 91-93% of answers unchanged when the batching changes).
Here each DynamicQuantizeLinear(x) -> (q, scale, zero_point) becomes QuantizeLinear(x, scale, zero_point) with
constants, so an answer depends only on its own question; the consumers (QAttention, MatMulInteger and their scale
products) are untouched, so the graph keeps the fused int8 kernels that make the dynamic graph fast, and loses the
per-batch min/max reductions. (The next stage, integer_gemm.py, then gives each MatMulInteger chain the one-node
form ONNX Runtime no longer finds for itself once the scales are constants.)

The ranges come from windows of a training file, never the data the model is then judged on. Two rules:
1. "minmax": the widest value seen over all calibration windows (nothing saturates on data like the calibration's);
2. "mean-minmax" (default): the mean over calibration batches of each batch's min and max, which is about the range
   dynamic quantization would have used on a batch of that size; rarer outliers saturate at it.
Padded positions are left out of the ranges: their values never reach a real position (attention masks them), so
letting them widen a range would only cost resolution.
The zero point and scale follow DynamicQuantizeLinear's own formula (u8, range widened to include 0), so a range
equal to a batch's gives that batch's dynamic result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from spanqa.engine.core.data import QAExample
from spanqa.engine.core.windows import PaddedWindows, Windows
from spanqa.export.options import ExportError
from spanqa.export.parity import read_examples

CalibrationRule = Literal["mean-minmax", "minmax"]  # the names are ExportOptions' CALIBRATION_RULES
CALIBRATION_SEED = 0  # which training examples calibrate is fixed, so an export can be repeated exactly


@dataclass(frozen=True)
class CalibrationReport:
    tensors: int  # activations given fixed scales
    windows: int  # calibration windows run
    batches: int
    rule: CalibrationRule


def load_calibration_examples(source: str, count: int) -> list[QAExample]:
    """`count` examples drawn from `source` (all of them if it has fewer), the same ones on every run."""
    import random

    examples = read_examples("--calibration", source, split="train")
    if len(examples) <= count:
        return examples
    return random.Random(CALIBRATION_SEED).sample(examples, count)


def calibrate_int8(
    dynamic_graph: Path,
    target: Path,
    windows: Windows,
    pad_token_id: int,
    rule: CalibrationRule = "mean-minmax",
    batch_windows: int = 16,
) -> CalibrationReport:
    """Write `target`: `dynamic_graph` with its activation ranges measured on `windows` and fixed."""
    model = onnx.load(dynamic_graph)
    quantizers = [node for node in model.graph.node if node.op_type == "DynamicQuantizeLinear"]
    if not quantizers:
        raise ExportError(f"{dynamic_graph.name} has no DynamicQuantizeLinear node: nothing to calibrate")
    if len(windows) == 0:
        raise ExportError("calibration: the calibration data gave no windows")
    observed = [node.input[0] for node in quantizers]
    ranges, batches = _observe_ranges(model, observed, windows, pad_token_id, batch_windows, rule)
    _fix_scales(model, quantizers, ranges)
    onnx.save(model, target)
    return CalibrationReport(tensors=len(quantizers), windows=len(windows), batches=batches, rule=rule)


def quantization_parameters(low: float, high: float) -> tuple[np.float32, np.uint8]:
    """DynamicQuantizeLinear's u8 scale and zero point for the range [low, high] (widened to include 0)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    scale = np.float32((high - low) / 255.0) if high > low else np.float32(1.0)
    zero_point = np.uint8(np.clip(np.rint(-low / scale), 0, 255))
    return scale, zero_point


def _observe_ranges(
    model: onnx.ModelProto,
    observed: list[str],
    windows: Windows,
    pad_token_id: int,
    batch_windows: int,
    rule: CalibrationRule,
) -> tuple[dict[str, tuple[float, float]], int]:
    import onnxruntime

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {output.name for output in probe.graph.output}
    probe.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in observed if name not in existing
    )
    settings = onnxruntime.SessionOptions()
    # Unoptimized: ORT's fusions could remove or rename the tensors observed here.
    settings.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(probe.SerializeToString(), settings, providers=["CPUExecutionProvider"])
    feeds_wanted = [value.name for value in session.get_inputs()]
    lows: dict[str, list[float]] = {name: [] for name in observed}
    highs: dict[str, list[float]] = {name: [] for name in observed}
    batches = 0
    for batch in _batches(windows, batch_windows, pad_token_id):
        values = session.run(observed, {name: getattr(batch, name) for name in feeds_wanted})
        real = batch.attention_mask.astype(bool)
        for name, value in zip(observed, values):
            if value.ndim < 2 or value.shape[:2] != real.shape:
                raise ExportError(f"calibration: activation {name} has shape {value.shape}, not [batch, tokens, ...]")
            kept = value[real]
            lows[name].append(float(kept.min()))
            highs[name].append(float(kept.max()))
        batches += 1
    if rule == "minmax":
        return {name: (min(lows[name]), max(highs[name])) for name in observed}, batches
    return {name: (float(np.mean(lows[name])), float(np.mean(highs[name]))) for name in observed}, batches


def _batches(windows: Windows, batch_windows: int, pad_token_id: int) -> Iterator[PaddedWindows]:
    """Length-sorted batches, as the engine forms them, so the calibration sees inference-like batches."""
    order = np.argsort(windows.lengths, kind="stable")
    for first in range(0, len(order), batch_windows):
        yield windows.padded(order[first : first + batch_windows], pad_token_id)


def _fix_scales(model: onnx.ModelProto, quantizers: list, ranges: dict[str, tuple[float, float]]) -> None:
    graph = model.graph
    for node in quantizers:
        quantized, scale_name, zero_point_name = node.output
        scale, zero_point = quantization_parameters(*ranges[node.input[0]])
        graph.initializer.extend([
            numpy_helper.from_array(np.array(scale, dtype=np.float32), scale_name),
            numpy_helper.from_array(np.array(zero_point, dtype=np.uint8), zero_point_name),
        ])  # fmt: skip
        replacement = helper.make_node(
            "QuantizeLinear", [node.input[0], scale_name, zero_point_name], [quantized], name=node.name + "_static"
        )
        position = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(position, replacement)
