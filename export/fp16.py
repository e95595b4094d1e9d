"""fp16 for GPUs: float16 weights and arithmetic, float32 where fp16 is known to overflow, float32 inputs/outputs.

Kept in float32 (the converter puts Casts around them):
- Softmax: exp() of attention scores overflows fp16's 65504 range;
- LayerNormalization and (Simplified)SkipLayerNormalization: the variance of the residual stream overflows fp16
  (TensorRT#2585, onnxruntime#19492).
Not kept, on purpose: fused Attention (its CUDA kernel accumulates the softmax in fp32 itself, and an fp32
Attention would undo most of fp16's gain) and EmbedLayerNormalization (it sums three embedding rows, far from
overflow, and holding the vocabulary table in fp16 halves the file). Graph inputs and outputs stay float32
(`keep_io_types`), so callers feed the same arrays and the span decoder gets float32 logits.

The parity gate for fp16 needs ONNX Runtime's CUDA provider: on the CPU provider ORT has no fp16 kernels for most
of these ops and, measured with onnxruntime 1.32, silently folds the fp16 weights back to fp32 and computes in fp32,
which would test the rounding of the weights but not fp16 arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from spanqa.export.options import ExportError

KEEP_FP32_OPS = (
    "Softmax",
    "LayerNormalization",
    "SkipLayerNormalization",
    "SimplifiedLayerNormalization",
    "SkipSimplifiedLayerNormalization",
)
PARITY_PROVIDER = "CUDAExecutionProvider"


def convert_fp16(source: Path, target: Path) -> None:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(source))
    try:
        model.convert_float_to_float16(
            keep_io_types=True,
            # The converter's own defaults (ops with no fp16 kernel at all) plus the overflow-prone ops above.
            op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *KEEP_FP32_OPS}),
        )
    except Exception as error:
        raise ExportError(f"fp16 conversion of {source.name} failed: {error}") from None
    model.save_model_to_file(str(target))


def fp16_parity_available() -> bool:
    import onnxruntime

    return PARITY_PROVIDER in onnxruntime.get_available_providers()
