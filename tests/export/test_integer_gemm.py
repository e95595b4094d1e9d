"""export/integer_gemm.py: static int8 GEMM chains become MatMulIntegerToFloat, computing the same values; anything
that does not match the pattern exactly is left alone."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from support.export_models import write_validation

from spanqa.engine.core.data import load_examples
from spanqa.engine.core.model_folder import MODEL_FILE, read_manifest
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import make_windows
from spanqa.export.calibrate import calibrate_int8
from spanqa.export.integer_gemm import fold_integer_gemms, fold_integer_gemms_in
from spanqa.export.options import ExportOptions
from spanqa.export.run import export_model

ROWS, INNER, COLUMNS = 5, 16, 8


def chain_model(
    bias: bool = True, static: bool = True, extra_cast_reader: bool = False, weight_scale_first: bool = False
) -> onnx.ModelProto:
    """x -> QuantizeLinear (or DynamicQuantizeLinear) -> MatMulInteger -> Cast -> Mul(scale product) [-> Add(bias)]."""
    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 128, (INNER, COLUMNS), dtype=np.int8)
    initializers = {
        "w": weights, "w_scale": rng.uniform(0.001, 0.01, COLUMNS).astype(np.float32),
        "w_zero": np.zeros(COLUMNS, np.int8), "b": rng.standard_normal(COLUMNS).astype(np.float32),
    }  # fmt: skip
    nodes = []
    if static:
        initializers.update(x_scale=np.array(0.02, np.float32), x_zero=np.array(131, np.uint8))
        nodes.append(helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["q"]))
    else:
        nodes.append(helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "x_scale", "x_zero"]))
    nodes += [
        helper.make_node("Mul", ["w_scale", "x_scale"] if weight_scale_first else ["x_scale", "w_scale"], ["scales"]),
        helper.make_node("MatMulInteger", ["q", "w", "x_zero", "w_zero"], ["product"]),
        helper.make_node("Cast", ["product"], ["product_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["product_float", "scales"], ["scaled"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [ROWS, COLUMNS])]
    if bias:
        nodes.append(helper.make_node("Add", ["b", "scaled"], ["y"]))
    else:
        nodes.append(helper.make_node("Relu", ["scaled"], ["y"]))
    if extra_cast_reader:
        nodes.append(helper.make_node("Identity", ["product_float"], ["also"]))
        outputs.append(helper.make_tensor_value_info("also", TensorProto.FLOAT, [ROWS, COLUMNS]))
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [ROWS, INNER])], outputs,
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def folded_copy(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    count = fold_integer_gemms_in(copy)
    copy.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return copy, count


@pytest.mark.parametrize("bias, weight_scale_first", [(True, False), (False, False), (True, True)])
def test_a_static_chain_becomes_one_node_with_the_same_values(bias, weight_scale_first):
    model = chain_model(bias=bias, weight_scale_first=weight_scale_first)
    folded, count = folded_copy(model)
    op_types = [node.op_type for node in folded.graph.node]
    assert count == 1 and op_types.count("MatMulIntegerToFloat") == 1
    assert not {"MatMulInteger", "Cast"} & set(op_types)
    assert "Mul" not in op_types and "Add" not in op_types  # the scale product went with its only reader
    (fused,) = [node for node in folded.graph.node if node.op_type == "MatMulIntegerToFloat"]
    assert len(fused.input) == (7 if bias else 6)
    assert list(fused.input[2:4]) == ["x_scale", "w_scale"]  # the operator's order, whatever the Mul's was
    x = np.random.default_rng(1).standard_normal((ROWS, INNER)).astype(np.float32) * 2
    np.testing.assert_allclose(run(folded, x)[0], run(model, x)[0], rtol=1e-6, atol=1e-6)


def test_a_dynamic_chain_is_left_for_onnx_runtime_to_fuse():
    """Its scale product reads DynamicQuantizeLinear's output, not two constants: ORT fuses that one itself."""
    folded, count = folded_copy(chain_model(static=False))
    assert count == 0 and "MatMulInteger" in [node.op_type for node in folded.graph.node]


def test_a_chain_whose_intermediate_has_another_reader_is_left_alone():
    model = chain_model(extra_cast_reader=True)
    folded, count = folded_copy(model)
    assert count == 0 and [node.op_type for node in folded.graph.node] == [node.op_type for node in model.graph.node]


def test_the_static_tiny_model_computes_the_same_logits_folded(tiny_model, tmp_path):
    """calibrate_int8's unfolded static graph against the folded one qa-export ships, on every window at once."""
    questions = str(write_validation(tmp_path / "questions.jsonl"))
    dynamic = export_model(ExportOptions(str(tiny_model), str(tmp_path / "dynamic"), precision="int8",
                                         skip_parity=True)).output  # fmt: skip
    tokenizer = QATokenizer.from_folder(dynamic)
    windows = make_windows(tokenizer, load_examples(questions), read_manifest(dynamic).window)
    static, folded = tmp_path / "static.onnx", tmp_path / "folded.onnx"
    calibrate_int8(dynamic / MODEL_FILE, static, windows, tokenizer.pad_token_id)
    assert fold_integer_gemms(static, folded) > 0
    sessions = [onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in (static, folded)]
    batch = windows.padded(np.arange(len(windows)), tokenizer.pad_token_id)
    feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "token_type_ids": batch.token_type_ids}
    for before, after in zip(*(session.run(None, feeds) for session in sessions), strict=True):
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
