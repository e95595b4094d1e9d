"""op_profile: the per-op sums are the trace's own numbers, warm-up runs are left out, every op type of the graph
shows up, and the Cast/Mul scale ops of a dynamically quantized graph are told apart from other Casts."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from spanqa.benchmarks import op_profile, op_trace
from spanqa.engine.core.data import QAExample
from support.export_models import _QUESTIONS


def _examples() -> list[QAExample]:
    return [QAExample(id=qid, question=question, context=context) for qid, question, context, _ in _QUESTIONS]


def _trace(runs: list[list[tuple[str, str, int]]]) -> list[dict]:
    """A trace in ONNX Runtime's layout: per run a model_run event, and inside it (node, op, dur) Node events."""
    events, clock = [{"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 5}], 10
    for nodes in runs:
        start = clock
        for name, op, dur in nodes:
            events.append({"cat": "Node", "name": f"{name}_kernel_time", "ts": clock, "dur": dur, "args": {"op_name": op}})
            clock += dur + 1
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": clock - start})
        clock += 3
    return events


def test_summary_sums_by_op_type_and_leaves_out_warmup_runs():
    one_run = [("MatMul_0", "MatMul", 100), ("Cast_1", "Cast", 7), ("MatMul_2", "MatMul", 50), ("Mul_3", "Mul", 3)]
    warmup = [("MatMul_0", "MatMul", 9000), ("Cast_1", "Cast", 9000)]
    summary = op_trace.summarise_trace(_trace([warmup, one_run, one_run]), warmup_runs=1, scales={"Mul_3"})
    assert summary["timed_runs"] == 2 and summary["warmup_runs"] == 1
    assert summary["ops"]["MatMul"] == {"ms": 0.3, "percent": pytest.approx(100 * 300 / 320), "calls": 4,
                                        "groups": ["fp32 GEMMs"]}  # fmt: skip
    assert summary["ops"]["Cast"]["ms"] == pytest.approx(0.014) and summary["ops"]["Cast"]["groups"] == ["other"]
    assert summary["ops"]["Mul"]["groups"] == [op_trace.DEQUANTIZATION]
    assert summary["node_ms"] == pytest.approx(0.32)
    assert list(summary["ops"]) == ["MatMul", "Cast", "Mul"]  # most time first
    assert summary["groups"]["fp32 GEMMs"]["ms"] == pytest.approx(0.3)
    assert summary["groups"]["other"]["ms"] == pytest.approx(0.014)
    with pytest.raises(ValueError, match="2 model runs"):
        op_trace.summarise_trace(_trace([one_run, one_run]), warmup_runs=2)


def test_profile_of_a_tiny_model_matches_its_trace_read_independently(tiny_onnx, monkeypatch):
    """Profile the tiny fp32 export, keep the raw trace, and recompute every sum from it by hand."""
    import onnx

    kept: dict[str, list] = {}
    real_summarise = op_profile.summarise_trace

    def keep_events(events, warmup_runs, scales=frozenset()):
        kept["events"], kept["warmup"] = list(events), warmup_runs
        return real_summarise(kept["events"], warmup_runs, scales)

    monkeypatch.setattr(op_profile, "summarise_trace", keep_events)
    profile = op_profile.profile_models({"tiny": str(tiny_onnx)}, _examples(), warmup_batches=1, threads=1, passes=2)
    profile = profile["tiny"]
    events, warmup = kept["events"], kept["warmup"]

    runs = sorted((e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"), key=lambda e: e["ts"])
    assert len(runs) == warmup + 2 * profile["batches"] and profile["timed_runs"] == 2 * profile["batches"]
    first_timed = runs[warmup]["ts"]
    by_op: dict[str, int] = defaultdict(int)
    calls: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["ts"] >= first_timed:
            by_op[event["args"]["op_name"]] += event["dur"]
            calls[event["args"]["op_name"]] += 1
    assert {op: row["calls"] for op, row in profile["ops"].items()} == dict(calls)
    assert {op: row["ms"] for op, row in profile["ops"].items()} == pytest.approx({op: us / 1e3 for op, us in by_op.items()})
    assert profile["node_ms"] == pytest.approx(sum(by_op.values()) / 1e3)
    assert sum(row["percent"] for row in profile["ops"].values()) == pytest.approx(100.0)
    assert sum(row["ms"] for row in profile["groups"].values()) == pytest.approx(profile["node_ms"])
    assert profile["run_ms"] >= profile["node_ms"] > 0
    # Every node of the graph ONNX Runtime ran appears once per timed run.
    assert profile["graph_ops_not_in_trace"] == [] and set(profile["graph_op_types"]) == set(profile["ops"])
    optimized_nodes = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["ts"] >= first_timed:
            optimized_nodes[event["name"]] += 1
    assert set(optimized_nodes.values()) == {profile["timed_runs"]}
    assert profile["windows"] >= len(_QUESTIONS) and profile["batches"] >= 2  # the long context makes several windows
    plain_ops = {node.op_type for node in onnx.load(str(tiny_onnx / "model.onnx")).graph.node}
    assert "MatMul" in plain_ops and "MatMul" in profile["ops"]


def test_scale_nodes_of_a_dynamically_quantized_graph(tiny_onnx, tmp_path):
    """quantize_dynamic's MatMulInteger -> Cast -> Mul(scale) chains, with the scale x scale Mul, are found; the
    graph's other Casts and Muls are not."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = tmp_path / "int8.onnx"
    quantize_dynamic(str(tiny_onnx / "model.onnx"), str(quantized), weight_type=QuantType.QInt8)
    graph = onnx.load(str(quantized)).graph
    found = op_trace.scale_nodes(graph)
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    expected = set()
    for node in graph.node:
        if node.op_type == "MatMulInteger":
            (cast,) = consumers[node.output[0]]
            assert cast.op_type == "Cast"
            (mul,) = consumers[cast.output[0]]
            expected |= {cast.name, mul.name}
            scale_input = next(name for name in mul.input if name != cast.output[0])
            expected |= {n.name for n in graph.node if scale_input in n.output and n.op_type == "Mul"}
    assert expected and expected <= found
    others = [node for node in graph.node if node.op_type in ("Cast", "Mul") and node.name not in found]
    assert others, "the tiny BERT graph has Casts/Muls of its own (mask arithmetic) that are not scale ops"
    assert all(op_trace.group_of(node.op_type, node.name, found) == "other" for node in others)
    assert all(op_trace.group_of("Mul", name, found) == op_trace.DEQUANTIZATION for name in expected)


def test_model_flag_and_markdown(tiny_onnx, tmp_path):
    import argparse

    assert op_profile.parse_model_flag(f"tiny={tiny_onnx}") == ("tiny", str(tiny_onnx))
    for bad in ("no-label", f"={tiny_onnx}", f"x={tmp_path}"):
        with pytest.raises(argparse.ArgumentTypeError):
            op_profile.parse_model_flag(bad)
    out = tmp_path / "profile.json"
    data = tmp_path / "questions.jsonl"
    from support.export_models import write_validation

    write_validation(data)
    with pytest.raises(SystemExit):  # two models under one label
        op_profile.main(["--data", str(data), "--model", f"tiny={tiny_onnx}", "--model", f"tiny={tiny_onnx}"])
    assert op_profile.main(["--data", str(data), "--model", f"first={tiny_onnx}", "--model", f"second={tiny_onnx}",
                            "--warmup-batches", "1", "--threads", "1", "--json", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert list(result["models"]) == ["first", "second"] and result["questions"] == len(_QUESTIONS)
    text = op_profile.markdown(result["models"])
    assert "| group | first ms / % | second ms / % |" in text and "| all nodes |" in text
    for profile in result["models"].values():
        assert profile["timed_runs"] == profile["batches"] and profile["warmup_runs"] == 1
        for op, row in profile["ops"].items():
            assert f"| {op} | " in text and f"| {row['calls']:,} |" in text
