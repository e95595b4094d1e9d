"""Static int8 (export/calibrate.py): fixed activation scales, answers independent of batching, the manifest record."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper
from support.export_models import write_validation

from spanqa.engine.core.data import load_examples
from spanqa.engine.core.model_folder import MODEL_FILE, read_manifest
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import make_windows
from spanqa.engine.runtime.engine import QAEngine
from spanqa.engine.runtime.options import EngineOptions
from spanqa.export import cli
from spanqa.export.calibrate import calibrate_int8, load_calibration_examples, quantization_parameters
from spanqa.export.options import ExportError, ExportOptions, ParityThresholds
from spanqa.export.run import export_model

RANDOM_MODEL_INT8 = ParityThresholds(int8_max_f1_drop=100.0)  # a random model's F1 means nothing (see test_export)


@pytest.fixture(scope="module")
def training_file(tmp_path_factory) -> str:
    return str(write_validation(tmp_path_factory.mktemp("calibration") / "train.jsonl"))


@pytest.fixture(scope="module")
def int8_exports(tiny_model, training_file, tmp_path_factory):
    """The tiny model in dynamic and in static int8, gated on the same questions."""
    root = tmp_path_factory.mktemp("int8")
    common = dict(precision="int8", validation=training_file, thresholds=RANDOM_MODEL_INT8)
    dynamic = export_model(ExportOptions(str(tiny_model), str(root / "dynamic"), **common)).output
    static = export_model(ExportOptions(str(tiny_model), str(root / "static"), calibration=training_file, **common)).output
    return dynamic, static


@pytest.mark.parametrize("low, high", [(-3.0, 5.0), (0.5, 2.0), (-4.0, -1.0), (-1e-3, 7.25), (0.0, 0.0)])
def test_scale_and_zero_point_are_dynamic_quantizations_own(low, high):
    """DynamicQuantizeLinear run by ONNX Runtime on values spanning [low, high] gives the same scale and zero point."""
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "scale", "zero_point"])
    graph = helper.make_graph(
        [node], "dql", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("q", TensorProto.UINT8, [None]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("zero_point", TensorProto.UINT8, [])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = np.linspace(low, high, 101, dtype=np.float32)
    _, scale, zero_point = session.run(None, {"x": values})
    ours = quantization_parameters(float(values.min()), float(values.max()))
    assert ours[0] == pytest.approx(float(scale), rel=1e-6)
    assert int(ours[1]) == int(zero_point)


def test_every_dynamic_quantizer_is_replaced_by_a_fixed_one(int8_exports):
    dynamic, static = (onnx.load(folder / MODEL_FILE) for folder in int8_exports)
    dynamic_ops = [node.op_type for node in dynamic.graph.node]
    static_ops = [node.op_type for node in static.graph.node]
    assert dynamic_ops.count("DynamicQuantizeLinear") > 0 and "DynamicQuantizeLinear" not in static_ops
    assert static_ops.count("QuantizeLinear") == dynamic_ops.count("DynamicQuantizeLinear")
    for kept in ("QAttention", "QEmbedLayerNormalization"):  # the fast int8 kernels stay
        assert static_ops.count(kept) == dynamic_ops.count(kept) > 0
    # and every weight GEMM becomes one MatMulIntegerToFloat (integer_gemm.py)
    assert static_ops.count("MatMulIntegerToFloat") == dynamic_ops.count("MatMulInteger") > 0
    assert "MatMulInteger" not in static_ops


def test_one_batch_calibration_reproduces_dynamic_quantization_of_that_batch(int8_exports, training_file, tmp_path):
    """Calibrated on exactly one unpadded window, the static graph's ranges are that window's, so on that window it
    computes what the dynamic graph computes, bit for bit; on another window it does not."""
    dynamic, _ = int8_exports
    tokenizer = QATokenizer.from_folder(dynamic)
    windows = make_windows(tokenizer, load_examples(training_file), read_manifest(dynamic).window)
    one = make_windows(tokenizer, load_examples(training_file)[:1], read_manifest(dynamic).window)
    target = tmp_path / "static.onnx"
    report = calibrate_int8(dynamic / MODEL_FILE, target, one, tokenizer.pad_token_id, batch_windows=1)
    assert report.windows == 1 and report.batches == 1
    sessions = [onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                for path in (dynamic / MODEL_FILE, target)]  # fmt: skip

    def logits(session, rows):
        batch = windows.padded(rows, tokenizer.pad_token_id)
        return session.run(None, {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
                                  "token_type_ids": batch.token_type_ids})[0]  # fmt: skip

    same = [logits(session, [0]) for session in sessions]
    np.testing.assert_array_equal(same[0], same[1])
    other = int(np.argmax(windows.lengths))  # the longest window: wider activations than the first one
    assert not np.array_equal(logits(sessions[0], [other]), logits(sessions[1], [other]))


def test_static_answers_do_not_depend_on_batch_mates_or_budget(int8_exports, training_file):
    _, static = int8_exports
    examples = load_examples(training_file)
    alone = [next(QAEngine(static).answer_many([example])) for example in examples]
    for options in (EngineOptions(max_batch_tokens=64), EngineOptions(max_batch_tokens=4096), EngineOptions(lookahead=3)):
        grouped = list(QAEngine(static, options=options).answer_many(examples[::-1]))[::-1]
        for single, batched in zip(alone, grouped, strict=True):
            assert (batched.answer, batched.start, batched.end) == (single.answer, single.start, single.end)
            assert batched.score == single.score


def test_manifest_records_the_calibration_and_dynamic_has_none(int8_exports, training_file):
    dynamic, static = (read_manifest(folder) for folder in int8_exports)
    assert dynamic.calibration is None
    calibration = static.calibration
    assert calibration.source == training_file and calibration.rule == "mean-minmax"
    assert calibration.examples == len(load_examples(training_file)) and calibration.windows >= calibration.examples
    assert calibration.tensors == sum(node.op_type == "QuantizeLinear" for node in onnx.load(int8_exports[1] / MODEL_FILE).graph.node)
    assert static.parity.passed


def test_calibration_examples_are_a_fixed_sample(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"id": str(n), "question": f"q{n}?", "context": f"c {n}"}) + "\n" for n in range(50)))
    first = [example.id for example in load_calibration_examples(str(path), 10)]
    assert first == [example.id for example in load_calibration_examples(str(path), 10)]
    assert len(set(first)) == 10 and first != [str(n) for n in range(10)]
    assert len(load_calibration_examples(str(path), 500)) == 50


def test_calibration_is_refused_where_it_means_nothing(tiny_model, tmp_path, capsys):
    with pytest.raises(ExportError, match="only int8"):
        ExportOptions(str(tiny_model), str(tmp_path / "x"), precision="fp32", calibration="train.jsonl")
    with pytest.raises(ExportError, match="calibration-examples"):
        ExportOptions(str(tiny_model), str(tmp_path / "x"), precision="int8", calibration="t", calibration_examples=0)
    missing = tmp_path / "missing.jsonl"
    code = cli.main([str(tiny_model), "--output", str(tmp_path / "out"), "--precision", "int8",
                     "--calibration", str(missing), "--skip-parity"])  # fmt: skip
    assert code == 2 and "--calibration" in capsys.readouterr().err and not (tmp_path / "out").exists()
