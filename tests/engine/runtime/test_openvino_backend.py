"""The OpenVINO backend ([openvino] extra): the same logits as ONNX Runtime on the same fp32 graph, clear errors for
graphs and devices it cannot take, never picked by backend="auto". Tests that run OpenVINO skip without it."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from spanqa.engine.core import extras
from spanqa.engine.core.model_folder import ModelFolderError, read_manifest
from spanqa.engine.runtime.backends.base import DeviceError
from spanqa.engine.runtime.backends.openvino_backend import compile_config
from spanqa.engine.runtime.options import EngineOptions, SessionOptions

SHIPPED_INT8 = Path(__file__).resolve().parents[3] / "engine" / "models" / "minilm-l6-squad-int8"
needs_openvino = pytest.mark.skipif(
    find_spec("openvino") is None, reason="openvino is not installed (pip install 'spanqa[openvino]')"
)


def test_compile_config_carries_threads_and_precision_only_when_given():
    assert compile_config(SessionOptions()) == {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    config = compile_config(SessionOptions(intra_op_threads=3), "f32")
    assert config["INFERENCE_NUM_THREADS"] == 3 and config["INFERENCE_PRECISION_HINT"] == "f32"
    # a share of the cores: the OS places the threads (pinned, two 1-thread workers shared one core)
    assert config["ENABLE_CPU_PINNING"] is False


@needs_openvino
def test_two_one_thread_backends_are_not_pinned_to_one_core(tiny_onnx):
    """What the compiled models report, not only what was asked for: pinning must be off in each of them."""
    from spanqa.engine.core.model_folder import read_manifest
    from spanqa.engine.runtime.backends.openvino_backend import OpenVinoBackend

    first = OpenVinoBackend(tiny_onnx, read_manifest(tiny_onnx), SessionOptions(intra_op_threads=1))
    for backend in (first, first.replica()):
        assert backend.compiled.get_property("ENABLE_CPU_PINNING") is False
        assert backend.compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_backend_openvino_without_the_extra_names_the_install(monkeypatch):
    from spanqa.engine.runtime.engine import QAEngine

    monkeypatch.setattr(extras, "missing_modules", lambda modules: list(modules))
    with pytest.raises(ModelFolderError, match=r"spanqa\[openvino\]"):
        QAEngine(SHIPPED_INT8, options=EngineOptions(backend="openvino"))


@needs_openvino
def test_same_logits_as_onnxruntime_on_the_same_fp32_graph(tiny_onnx):
    from spanqa.engine.core.tokenizer import QATokenizer
    from spanqa.engine.runtime.backends.onnx_backend import OnnxBackend
    from spanqa.engine.runtime.backends.openvino_backend import OpenVinoBackend
    from spanqa.engine.runtime.batching import prepare_group

    manifest = read_manifest(tiny_onnx)
    examples = [example(f"Who wrote program {n}?", "Ada wrote the first program. " * (10 * n)) for n in range(1, 5)]
    group = prepare_group(QATokenizer.from_folder(tiny_onnx), examples, manifest.window, 0, 4096, 64)
    _, batch = next(iter(group.batches))
    ort = OnnxBackend(tiny_onnx, manifest, "cpu", SessionOptions(intra_op_threads=1))
    ov = OpenVinoBackend(tiny_onnx, manifest, SessionOptions(intra_op_threads=1), precision="f32")
    for ours, theirs in zip(ov.run(batch), ort.run(batch), strict=True):
        assert ours.dtype == np.float32 and ours.shape == batch.input_ids.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    for ours, again in zip(ov.run(batch), ov.replica().run(batch), strict=True):
        np.testing.assert_array_equal(ours, again)
    assert ov.inference_precision == "f32" and ov.providers == ("OpenVINO CPU (f32)",)


def example(question: str, context: str):
    from spanqa.engine.core.records import to_example

    return to_example({"question": question, "context": context}, 0)


@needs_openvino
def test_engine_answers_on_backend_openvino(tiny_onnx):
    from spanqa.engine.runtime.backends.openvino_backend import OpenVinoBackend
    from spanqa.engine.runtime.engine import QAEngine

    engine = QAEngine(tiny_onnx, options=EngineOptions(device="cpu", backend="openvino", workers=2))
    assert isinstance(engine.backend, OpenVinoBackend) and len(engine.worker_backends) == 2
    answers = list(engine.answer_many([("Who wrote it?", "Ada wrote the first program."), ("Where?", "In London.")]))
    assert len(answers) == 2
    assert all(answer.answer == context[answer.start : answer.end] for answer, context in
               zip(answers, ["Ada wrote the first program.", "In London."]))  # fmt: skip


@needs_openvino
def test_fused_int8_graph_is_refused_naming_the_file_and_the_ops():
    from spanqa.engine.runtime.engine import QAEngine

    with pytest.raises(ModelFolderError, match=r"model\.onnx: OpenVINO cannot convert its QAttention"):
        QAEngine(SHIPPED_INT8, options=EngineOptions(backend="openvino"))


@needs_openvino
def test_a_gpu_device_is_refused():
    from spanqa.engine.runtime.engine import QAEngine

    with pytest.raises(DeviceError, match="CPU only"):
        QAEngine(SHIPPED_INT8, options=EngineOptions(backend="openvino", device="cuda"))


@needs_openvino
def test_auto_stays_on_onnxruntime_with_openvino_installed(tiny_onnx):
    from spanqa.engine.runtime.engine import QAEngine

    assert QAEngine(tiny_onnx, options=EngineOptions(device="cpu")).backend.name == "onnxruntime"
