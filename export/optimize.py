"""Graph fusion with ONNX Runtime's transformer optimizer, and counting the fused operators a graph holds.

Fusion runs on the fp32 graph, before any precision change: the optimizer's patterns match float subgraphs only,
so quantizing or halving first would leave attention unfused.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import onnx

from spanqa.export.families import Family, attention_heads_and_width
from spanqa.export.options import ExportError

logger = logging.getLogger(__name__)

# ONNX Runtime contrib operators that stand for a fused subgraph (and their int8 forms after quantization).
# Standard ONNX ops such as LayerNormalization are not counted: opset 17+ exports them unfused already.
FUSED_OP_TYPES = (
    "Attention",
    "QAttention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "QEmbedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
    "GemmFastGelu",
    "MatMulIntegerToFloat",  # static int8 GEMMs with their dequantization inside (integer_gemm.py)
)
ATTENTION_OP_TYPES = ("Attention", "QAttention", "MultiHeadAttention")


def fuse_graph(source: Path, target: Path, config, family: Family, skip_layer_norm: bool = True) -> dict[str, int]:
    """Write the fused graph of `source` to `target`; return its fused-op counts. Raises ExportError when the
    family is one whose every attention block should fuse and some did not.

    `skip_layer_norm=False` leaves each residual Add + LayerNormalization as two ops instead of one
    SkipLayerNormalization: on the CPU, ONNX Runtime 1.32's kernel for the fused op took 4.7-5.5x as long as the
    two it replaces (BENCHMARKS.md, "Where int8 time goes"), so CPU graphs are better without it."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    num_heads, hidden_size = attention_heads_and_width(config)
    fusion = FusionOptions("bert")
    fusion.enable_skip_layer_norm = fusion.enable_bias_skip_layer_norm = skip_layer_norm
    try:
        optimized = optimize_model(
            str(source),
            model_type="bert",
            # Given explicitly: the optimizer's own guess from the graph's reshape constants is one way fusion
            # silently fails (onnxruntime#10359).
            num_heads=num_heads,
            hidden_size=hidden_size,
            optimization_options=fusion,
            # Python fusions only: ORT's own graph optimizations run again when a session loads the model, and
            # saving their output would tie the file to the provider that optimized it.
            opt_level=0,
        )
    except Exception as error:  # the optimizer asserts and raises bare exceptions on graphs it does not expect
        raise ExportError(f"ONNX Runtime's transformer optimizer failed on {source.name}: {error}") from None
    optimized.save_model_to_file(str(target))
    counts = count_fused_ops(onnx.load(target))
    check_attention_fused(counts, family, int(config.num_hidden_layers))
    return counts


def count_fused_ops(model: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each fused operator type the graph has (zeros included, so absence is explicit)."""
    present = Counter(node.op_type for node in model.graph.node)
    return {op_type: present.get(op_type, 0) for op_type in FUSED_OP_TYPES}


def attention_count(counts: Mapping[str, int]) -> int:
    return sum(counts.get(op_type, 0) for op_type in ATTENTION_OP_TYPES)


def check_attention_fused(counts: Mapping[str, int], family: Family, num_layers: int) -> None:
    fused = attention_count(counts)
    if family.attention_in_every_layer and fused != num_layers:
        raise ExportError(
            f"attention fusion failed: {fused} of {num_layers} self-attention blocks became Attention nodes in this "
            f"{family.model_type!r} graph, where ONNX Runtime's optimizer is supposed to fuse all of them "
            "(onnxruntime#10359); the graph's attention pattern does not match this onnxruntime version's fusion. "
            "Re-export with --no-optimize for an unfused graph"
        )
    if fused < num_layers:
        logger.warning(
            "%s: %d of %d attention blocks fused (expected for this family; recorded in the manifest)",
            family.model_type, fused, num_layers,
        )  # fmt: skip


def check_fusions_kept(before: Mapping[str, int], after: Mapping[str, int], step: str) -> None:
    """A precision change must not undo fusion: attention, skip-layer-norm and embedding-layer-norm counts
    (the int8 forms counted with their float forms) must survive it."""
    groups = {
        "attention": ATTENTION_OP_TYPES,
        "embedding layer norm": ("EmbedLayerNormalization", "QEmbedLayerNormalization"),
        "skip layer norm": ("SkipLayerNormalization", "SkipSimplifiedLayerNormalization"),
    }
    for name, op_types in groups.items():
        had = sum(before.get(op_type, 0) for op_type in op_types)
        has = sum(after.get(op_type, 0) for op_type in op_types)
        if has != had:
            raise ExportError(f"{step} changed the number of fused {name} nodes from {had} to {has}")
