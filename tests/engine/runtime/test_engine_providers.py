"""Execution-provider choice and GPU fallback, against fake provider lists and a fake onnxruntime session."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime
import pytest

from spanqa.engine import DeviceError, ModelFolderError
from spanqa.engine.runtime.backends.onnx_backend import CPU, CUDA, TENSORRT, _open_session, _tensorrt_options, choose_providers
from spanqa.engine.runtime.options import SessionOptions

ALL = [TENSORRT, CUDA, "AzureExecutionProvider", CPU]


@pytest.mark.parametrize(
    "device, available, expected",
    [
        ("auto", ALL, [TENSORRT, CUDA, CPU]),
        ("auto", [CUDA, CPU], [CUDA, CPU]),
        ("auto", ["AzureExecutionProvider", CPU], [CPU]),
        ("cpu", ALL, [CPU]),
        ("cuda", ALL, [CUDA, CPU]),
        ("tensorrt", ALL, [TENSORRT, CUDA, CPU]),
        ("tensorrt", [TENSORRT, CPU], [TENSORRT, CPU]),
    ],
)
def test_choose_providers(device, available, expected):
    assert choose_providers(device, available) == expected


@pytest.mark.parametrize("device, missing", [("cuda", CUDA), ("tensorrt", TENSORRT)])
def test_forcing_a_provider_the_build_lacks_is_a_clear_error(device, missing):
    with pytest.raises(DeviceError, match=rf"device '{device}': .* not {missing}; install onnxruntime-gpu"):
        choose_providers(device, ["AzureExecutionProvider", CPU])


class FakeSession:
    """Mimics onnxruntime: a provider in `raising` makes the constructor fail, one in `dropping` is silently left
    out (what onnxruntime does when a provider library fails to load), and a bad file fails on every provider."""

    raising: set = set()
    dropping: set = set()
    corrupt = False
    opened: list = []

    def __init__(self, path, settings, providers, enable_fallback, disabled_optimizers=()):
        assert enable_fallback == 0, "onnxruntime's own fallback prints to stdout"
        names = [provider[0] if isinstance(provider, tuple) else provider for provider in providers]
        # The CPU's SkipLayerNormFusion is switched off there only (SessionOptions.cpu_skip_layer_norm_fusion).
        assert list(disabled_optimizers) == (["SkipLayerNormFusion"] if names[0] == "CPUExecutionProvider" else [])
        FakeSession.opened.append(names)
        if FakeSession.corrupt:
            raise RuntimeError("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model failed")
        if names[0] in FakeSession.raising:
            raise RuntimeError(f"{names[0]}: CUDA failure 100: no CUDA-capable device is detected")
        self._providers = [name for name in names if name not in FakeSession.dropping]

    def get_providers(self):
        return self._providers


@pytest.fixture
def fake_ort(monkeypatch):
    monkeypatch.setattr(onnxruntime, "InferenceSession", FakeSession)
    FakeSession.raising, FakeSession.dropping, FakeSession.corrupt, FakeSession.opened = set(), set(), False, []
    return FakeSession


def _open(providers, device):
    return _open_session(Path("model.onnx"), SessionOptions(), providers, {CUDA: {"device_id": 0}}, device)


def test_working_gpu_provider_is_used(fake_ort, caplog):
    session = _open([CUDA, CPU], "auto")
    assert session.get_providers() == [CUDA, CPU]
    assert not caplog.records


@pytest.mark.parametrize("failure", ["raising", "dropping"])
def test_auto_falls_back_to_the_cpu_with_one_warning(fake_ort, caplog, failure):
    getattr(fake_ort, failure).add(CUDA)
    with caplog.at_level(logging.WARNING):
        session = _open([CUDA, CPU], "auto")
    assert session.get_providers() == [CPU]
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "CUDAExecutionProvider is installed but failed to start, running on CPUExecutionProvider" in warnings[0].message


def test_tensorrt_failing_falls_back_to_cuda_under_auto(fake_ort, caplog):
    fake_ort.dropping.add(TENSORRT)
    with caplog.at_level(logging.WARNING):
        session = _open([TENSORRT, CUDA, CPU], "auto")
    assert session.get_providers() == [CUDA, CPU]
    assert "running on CUDAExecutionProvider" in caplog.records[-1].message


@pytest.mark.parametrize("failure", ["raising", "dropping"])
def test_a_forced_device_that_fails_is_an_error(fake_ort, failure):
    getattr(fake_ort, failure).add(CUDA)
    with pytest.raises(DeviceError, match="device 'cuda': CUDAExecutionProvider is installed but failed to start"):
        _open([CUDA, CPU], "cuda")


def test_a_corrupt_graph_is_a_model_error_not_a_device_warning(fake_ort, caplog):
    fake_ort.corrupt = True
    with caplog.at_level(logging.WARNING), pytest.raises(ModelFolderError, match=r"model\.onnx: onnxruntime cannot load it"):
        _open([CUDA, CPU], "auto")
    assert fake_ort.opened == [[CUDA, CPU], [CPU]]
    assert not caplog.records


def test_tensorrt_profile_covers_every_batch_shape(tmp_path, monkeypatch):
    from spanqa.engine.core.windows import WindowOptions
    from spanqa.engine.core.model_folder import Manifest

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    manifest = Manifest(
        precision="fp16", opset=17, model_type="bert", input_names=("input_ids", "attention_mask"),
        output_names=("start_logits", "end_logits"), source_checkpoint="x", source_sha256="ab" * 32,
        onnxruntime_version="x", fused_ops={}, parity=None,
    )  # fmt: skip
    options = _tensorrt_options(manifest, 48, WindowOptions(max_length=256))
    assert options["trt_profile_min_shapes"] == "input_ids:1x1,attention_mask:1x1"
    assert options["trt_profile_max_shapes"] == "input_ids:48x256,attention_mask:48x256"
    assert options["trt_fp16_enable"] is True
    assert Path(options["trt_engine_cache_path"]).is_dir()
    assert str(tmp_path) in options["trt_engine_cache_path"]
