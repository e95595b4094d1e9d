"""Model folders the engine refuses, each with a ModelFolderError naming the file; options it refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spanqa.engine import DeviceError, EngineOptions, ModelFolderError, QAEngine, SessionOptions, default_model_dir
from spanqa.engine.core.model_folder import Manifest, write_manifest


def fake_export(folder: Path, tokenizer_source: Path, model_bytes: bytes = b"\x08\x07garbage") -> Path:
    """A folder that passes the manifest checks but whose graph is whatever `model_bytes` is."""
    folder.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (tokenizer_source / name).is_file():  # transformers 5 writes no vocab.txt beside tokenizer.json
            shutil.copy(tokenizer_source / name, folder / name)
    (folder / "model.onnx").write_bytes(model_bytes)
    manifest = Manifest(
        precision="fp32", opset=17, model_type="bert", input_names=("input_ids", "attention_mask", "token_type_ids"),
        output_names=("start_logits", "end_logits"), source_checkpoint="test", source_sha256="0" * 64,
        onnxruntime_version="test", fused_ops={}, parity=None,
    )  # fmt: skip
    write_manifest(folder, manifest)
    return folder


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelFolderError, match=rf"{tmp_path / 'nothing'}: no such model folder"):
        QAEngine(tmp_path / "nothing")


def test_unfinished_export_without_manifest(tmp_path, tiny_model):
    folder = fake_export(tmp_path / "export", tiny_model)
    (folder / "manifest.json").unlink()
    with pytest.raises(ModelFolderError, match=r"manifest\.json: missing; .* not a finished qa-export folder"):
        QAEngine(folder)


def test_truncated_manifest(tmp_path, tiny_model):
    folder = fake_export(tmp_path / "export", tiny_model)
    text = (folder / "manifest.json").read_text()
    (folder / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(ModelFolderError, match=r"manifest\.json: line \d+: invalid JSON"):
        QAEngine(folder)


def test_corrupt_onnx_file(tmp_path, tiny_model):
    folder = fake_export(tmp_path / "export", tiny_model)
    with pytest.raises(ModelFolderError, match=r"model\.onnx: onnxruntime cannot load it \((InvalidProtobuf|Fail)"):
        QAEngine(folder, device="cpu")


def test_missing_tokenizer(tmp_path, tiny_model):
    folder = fake_export(tmp_path / "export", tiny_model)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelFolderError, match=r"tokenizer\.json: missing"):
        QAEngine(folder)


def test_checkpoint_without_config(tmp_path, tiny_model):
    folder = tmp_path / "checkpoint"
    shutil.copytree(tiny_model, folder)
    (folder / "config.json").unlink()
    with pytest.raises(ModelFolderError, match=r"config\.json: missing"):
        QAEngine(folder)


def test_pickled_weights_need_allow_pickle(tmp_path, tiny_model):
    import torch
    from transformers import AutoModelForQuestionAnswering

    folder = tmp_path / "pickled"
    folder.mkdir()
    # Written by hand: transformers 5's save_pretrained no longer writes pickles.
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model)
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    shutil.copy(tiny_model / "tokenizer.json", folder / "tokenizer.json")
    with pytest.raises(ModelFolderError, match=r"pytorch_model\.bin: pickled weights"):
        QAEngine(folder)
    engine = QAEngine(folder, options=EngineOptions(allow_pickle=True))
    assert engine.backend.name == "torch"


def test_window_longer_than_the_model_positions(tiny_model):
    from spanqa.engine import WindowOptions

    with pytest.raises(ModelFolderError, match=r"config\.json: the model has 512 positions"):
        QAEngine(tiny_model, options=EngineOptions(window=WindowOptions(max_length=600)))


def test_torch_backend_refuses_tensorrt(tiny_model):
    with pytest.raises(DeviceError, match="tensorrt"):
        QAEngine(tiny_model, device="tensorrt")


def test_conflicting_device_arguments(tiny_model):
    with pytest.raises(ValueError, match="contradicts"):
        QAEngine(tiny_model, device="cpu", options=EngineOptions(device="cuda"))


def test_the_shipped_model_is_installed_and_answers():
    # Fails when engine/models/minilm-l6-squad-int8 is missing, truncated or not the fine-tuned int8 export: the
    # README's main job and QAEngine() depend on it.
    from spanqa.engine.core.model_folder import read_manifest

    folder = default_model_dir()
    manifest = read_manifest(folder)
    assert folder.name == "minilm-l6-squad-int8" and (manifest.precision, manifest.model_type) == ("int8", "bert")
    engine = QAEngine(device="cpu")  # no folder: the shipped one
    assert engine.backend.name == "onnxruntime"
    answer = engine.answer("Who wrote it?", "It was written by Ada Lovelace in 1843.")  # the README's example
    assert (answer.answer, answer.start, answer.end) == ("Ada Lovelace", 18, 30) and answer.score > 0.5
    context = "The bridge over the Tay was opened in 1878 and fell in a storm in December 1879."
    assert engine.answer("When did the bridge open?", context).answer == "1878"


def test_a_missing_default_model_is_a_clear_error(monkeypatch):
    import spanqa.engine.runtime.engine as engine_module

    monkeypatch.setattr(engine_module, "DEFAULT_MODEL_NAME", "no-such-model")
    with pytest.raises(ModelFolderError, match=r"no-such-model: the default model is not installed"):
        default_model_dir()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"device": "gpu"}, "device must be one of"),
        ({"backend": "tf"}, "backend must be one of"),
        ({"torch_dtype": "int4"}, "torch_dtype must be one of"),
        ({"max_batch_tokens": 0}, "max_batch_tokens must be >= 1"),
        ({"lookahead": 0}, "lookahead must be >= 1"),
    ],
)
def test_engine_options_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        EngineOptions(**changes)


def test_session_options_are_checked():
    with pytest.raises(ValueError, match="graph_optimization"):
        SessionOptions(graph_optimization="max")
    with pytest.raises(ValueError, match="intra_op_threads"):
        SessionOptions(intra_op_threads=-1)
