"""ONNX Runtime profiler traces summed per op type and per group (op_profile's arithmetic, apart from running
anything): which nodes belong to timed runs, what each op type costs, and which Cast/Mul nodes are dequantization."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

# Why these groups: the question is how much of int8 time is outside the int8 GEMMs. An op that fuses a
# GEMM with something else goes where its main cost is; GROUP_NOTES say what else is inside, under the tables.
GROUPS: dict[str, tuple[str, ...]] = {
    "int8 GEMMs": ("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm", "QLinearMatMul"),
    "fp32 GEMMs": ("MatMul", "Gemm", "FusedMatMul", "FusedGemm"),
    "attention": ("QAttention", "Attention", "MultiHeadAttention", "Softmax", "QOrderedAttention"),
    "layer norms": (
        "LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization", "QEmbedLayerNormalization",
        "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization",
    ),
    "GELU": ("Gelu", "BiasGelu", "FastGelu", "QuickGelu", "Erf", "GemmFastGelu"),
    "(de)quantization": ("DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear"),
}  # fmt: skip
GROUP_NOTES = (
    "int8 GEMMs: DynamicQuantizeMatMul also quantizes its input (one kernel, not split by the profiler).",
    "attention: QAttention also runs its int8 QKV projection, and Attention its fp32 one (one kernel each).",
    "layer norms: (Q)EmbedLayerNormalization also looks up the embeddings; SkipLayerNormalization adds the residual.",
    "(de)quantization: quantizers, plus the Cast/Mul nodes that dequantize an integer GEMM's output or multiply "
    "scales (found in the optimized graph); other Casts (the int64 inputs) are in other.",
)
DEQUANTIZATION = "(de)quantization"
OTHER = "other"
INTEGER_OPS = ("MatMulInteger", "ConvInteger")


def scale_nodes(graph) -> set[str]:
    """Names of the Cast and Mul nodes that turn integer GEMM results back into floats: a Cast of an integer op's
    output, and a Mul fed by such a Cast, by a quantizer's scale output, or by another such Mul (scale x scale)."""
    producer = {output: node for node in graph.node for output in node.output}
    found: set[str] = set()
    changed = True
    while changed:  # a Mul of scales can feed another Mul: repeat until nothing new is found
        changed = False
        for node in graph.node:
            if node.name in found or node.op_type not in ("Cast", "Mul"):
                continue
            sources = [producer[name] for name in node.input if name in producer]
            if node.op_type == "Cast":
                hit = any(source.op_type in INTEGER_OPS for source in sources)
            else:
                hit = any(source.name in found or source.op_type == "DynamicQuantizeLinear" for source in sources)
            if hit:
                found.add(node.name)
                changed = True
    return found


def group_of(op_type: str, node_name: str, scales: set[str]) -> str:
    if node_name in scales:
        return DEQUANTIZATION
    return next((group for group, ops in GROUPS.items() if op_type in ops), OTHER)


def timed_node_events(events: Iterable[dict], warmup_runs: int) -> tuple[list[dict], list[dict]]:
    """(node events of the timed runs, the timed model_run events): a node belongs to the run whose interval holds
    its start; runs are in time order and the first `warmup_runs` are dropped."""
    events = list(events)
    runs = sorted((event for event in events if event.get("cat") == "Session" and event.get("name") == "model_run"),
                  key=lambda event: event["ts"])  # fmt: skip
    if len(runs) <= warmup_runs:
        raise ValueError(f"the trace holds {len(runs)} model runs, not more than the {warmup_runs} warm-up runs")
    timed = runs[warmup_runs:]
    intervals = [(run["ts"], run["ts"] + run["dur"]) for run in timed]
    nodes = [event for event in events if event.get("cat") == "Node"
             and any(start <= event["ts"] <= end for start, end in intervals)]  # fmt: skip
    return nodes, timed


def summarise_trace(events: Iterable[dict], warmup_runs: int, scales: set[str] = frozenset()) -> dict[str, Any]:
    """Per op type: summed node time (ms), share of all node time (%), calls; per group: ms and share; totals."""
    nodes, runs = timed_node_events(events, warmup_runs)
    micros: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    groups_of: dict[str, set[str]] = defaultdict(set)
    group_micros: dict[str, float] = defaultdict(float)
    for event in nodes:
        op_type = event["args"]["op_name"]
        node_name = event["name"].removesuffix("_kernel_time")
        group = group_of(op_type, node_name, scales)
        micros[op_type] += event["dur"]
        calls[op_type] += 1
        groups_of[op_type].add(group)
        group_micros[group] += event["dur"]
    total = sum(micros.values())

    def share(value: float) -> float:
        return 100.0 * value / total if total else 0.0

    ops = {op: {"ms": micros[op] / 1e3, "percent": share(micros[op]), "calls": calls[op],
                "groups": sorted(groups_of[op])} for op in sorted(micros, key=micros.get, reverse=True)}  # fmt: skip
    order = [*GROUPS, OTHER]
    groups = {group: {"ms": group_micros[group] / 1e3, "percent": share(group_micros[group])}
              for group in order if group in group_micros}  # fmt: skip
    run_micros = sum(run["dur"] for run in runs)
    return {"timed_runs": len(runs), "warmup_runs": warmup_runs, "node_ms": total / 1e3, "run_ms": run_micros / 1e3,
            "node_share_of_run_percent": 100.0 * total / run_micros if run_micros else 0.0,
            "ops": ops, "groups": groups}  # fmt: skip
