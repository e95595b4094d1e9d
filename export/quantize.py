"""int8 for CPUs: ONNX Runtime dynamic quantization, u8 activations and s8 per-channel weights (the VNNI layout).

Order: fuse in fp32 first (optimize.py), then quantize, so the quantizer turns Attention into QAttention and
EmbedLayerNormalization into QEmbedLayerNormalization instead of breaking the patterns the fusions need.

Why the quantizer fails on a fused graph without help: it looks up each tensor's element type in the graph's
value_info, which it fills with ONNX's own shape inference. ONNX knows nothing of ONNX Runtime's contrib operators
(Attention, SkipLayerNormalization, ...), so every tensor they produce stays untyped and the quantizer stops at
the first MatMul that reads one ("Unable to find data type for weight_name=..."). Its DefaultTensorType option
papers over that by calling every unknown tensor float; instead the graph is typed first with ONNX Runtime's
symbolic shape inference, which implements those contrib operators, so every type the quantizer sees is the
real one.

The embeddings are quantized too (Gather in an unfused graph, QEmbedLayerNormalization in a fused one): the word
embedding table is most of a small encoder's weights, and leaving it in fp32 keeps the file near 60% of fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from spanqa.export.options import ExportError

logger = logging.getLogger(__name__)

OP_TYPES_TO_QUANTIZE = ("MatMul", "Attention", "EmbedLayerNormalization", "Gather")
_SHAPE_INFERENCE_DEBRIS = ("sym_shape_infer_temp.onnx", "sym_shape_infer_temp.onnx.data")


def quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    typed = infer_types(onnx.load(source), source)
    with _quiet_preprocessing_hint():
        try:
            quantize_dynamic(
                typed,
                target,
                op_types_to_quantize=list(OP_TYPES_TO_QUANTIZE),
                per_channel=True,
                # Full 8-bit weights: VNNI's u8 x s8 dot products do not saturate, so the 7-bit reduce_range
                # workaround for older AVX2 CPUs would only cost accuracy (measured on the trained MiniLM, first
                # 1000 SQuAD dev questions: F1 drop 1.44 with it, 0.65 without). QAttention's packed QKV weight
                # is 7-bit regardless: ONNX Runtime's quantizer fixes that for the op.
                reduce_range=False,
                weight_type=QuantType.QInt8,
                # Only weight matrices: quantizing activation x activation products (QK^T and the attention-
                # weighted values of an unfused graph) costs accuracy for little speed.
                extra_options={"MatMulConstBOnly": True},
            )
        except Exception as error:  # the quantizer raises RuntimeError/ValueError/AssertionError on odd graphs
            raise ExportError(f"int8 quantization of {source.name} failed: {error}") from None


def infer_types(model: onnx.ModelProto, source: Path) -> onnx.ModelProto:
    """Every tensor's type and shape, contrib operators included (see the module docstring)."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    # On failure ORT saves its partial result under these names in the working directory; do not leave them.
    debris = [Path(name) for name in _SHAPE_INFERENCE_DEBRIS if not Path(name).exists()]
    try:
        typed = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception as error:
        for path in debris:
            path.unlink(missing_ok=True)
        raise ExportError(f"symbolic shape inference failed on {source.name}, so it cannot be quantized: {error}") from None
    if typed is None:  # infer_shapes returns None for graphs below opset 7
        raise ExportError(f"symbolic shape inference left tensors of {source.name} untyped, so it cannot be quantized")
    return typed


class _quiet_preprocessing_hint:
    """The quantizer logs, at WARNING on the root logger, advice to run its pre-processing; the typing above is
    that pre-processing's shape-inference step (its other step, ORT graph optimization, is what fusion already
    did), so the hint would only mislead. Filter that one message for the duration of the call."""

    def __enter__(self):
        self._filter = _DropMessage("consider to run pre-processing before quantization")
        logging.getLogger().addFilter(self._filter)
        return self

    def __exit__(self, *exc_info):
        logging.getLogger().removeFilter(self._filter)
        return False


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()
