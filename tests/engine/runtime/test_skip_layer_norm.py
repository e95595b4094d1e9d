"""On the CPU the engine keeps ONNX Runtime from re-fusing the Add + LayerNormalization that qa-export leaves apart
(runtime/options.py, SessionOptions.cpu_skip_layer_norm_fusion, says why)."""

from __future__ import annotations

import onnx
import pytest

from spanqa.engine.runtime.backends import onnx_backend
from spanqa.engine.runtime.engine import QAEngine
from spanqa.engine.runtime.options import EngineOptions, SessionOptions


@pytest.fixture(scope="module")
def unfused_export(tiny_model, tmp_path_factory):
    pytest.importorskip("torch", reason="exporting the tiny model needs the [export] extra")
    from spanqa.export.options import ExportOptions
    from spanqa.export.run import export_model

    folder = tmp_path_factory.mktemp("unfused") / "fp32"
    return export_model(ExportOptions(str(tiny_model), str(folder), skip_parity=True)).output


def _optimized_ops(folder, tmp_path, monkeypatch, session: SessionOptions) -> list[str]:
    """The operators of the graph ONNX Runtime actually runs, saved by it after its own optimizations."""
    saved = tmp_path / "optimized.onnx"
    make_settings = onnx_backend.session_options

    def saving(options):
        settings = make_settings(options)
        settings.optimized_model_filepath = str(saved)
        return settings

    monkeypatch.setattr(onnx_backend, "session_options", saving)
    engine = QAEngine(folder, device="cpu", options=EngineOptions(session=session, workers=1))
    assert engine.answer("Where is it?", "It is in the box.").answer
    return [node.op_type for node in onnx.load(saved).graph.node]


def test_layer_norms_stay_apart_on_the_cpu(unfused_export, tmp_path, monkeypatch):
    assert "SkipLayerNormalization" not in [node.op_type for node in onnx.load(unfused_export / "model.onnx").graph.node]
    ops = _optimized_ops(unfused_export, tmp_path, monkeypatch, SessionOptions())
    assert "SkipLayerNormalization" not in ops and ops.count("LayerNormalization") == 4


def test_onnx_runtime_fuses_them_when_allowed(unfused_export, tmp_path, monkeypatch):
    ops = _optimized_ops(unfused_export, tmp_path, monkeypatch, SessionOptions(cpu_skip_layer_norm_fusion=True))
    assert ops.count("SkipLayerNormalization") == 4
