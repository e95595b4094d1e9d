"""Each supported family exports (torch.onnx), fuses what ORT's optimizer fuses for it, quantizes keeping those
fusions, and matches PyTorch, on whichever transformers is installed (4.57 or 5.x); where Optimum is installed, its
graph of the same model fuses and computes the same; a BERT-family graph whose attention does not fuse fails loudly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from support.export_models import save_tiny_checkpoint, write_validation

from spanqa.engine.core.model_folder import MODEL_FILE, read_manifest
from spanqa.export.checkpoint import load_checkpoint
from spanqa.export.families import FAMILIES
from spanqa.export.onnx_export import EXPORTER, export_plain_onnx, model_input_names
from spanqa.export.optimize import attention_count, check_fusions_kept, count_fused_ops, fuse_graph
from spanqa.export.options import ExportError, ExportOptions
from spanqa.export.quantize import quantize_int8
from spanqa.export.run import export_model

LAYERS = 3
# (graph inputs, Attention nodes, EmbedLayerNormalization nodes), as ONNX Runtime 1.32 fuses them.
EXPECTED = {
    "distilbert": (("input_ids", "attention_mask"), LAYERS, 1),
    # RoBERTa computes position ids from the input ids (cumsum past padding), a pattern ORT's embedding fusion
    # does not match: its embeddings stay Gather + LayerNormalization, and are quantized as Gathers.
    "roberta": (("input_ids", "attention_mask"), LAYERS, 0),
    "xlm-roberta": (("input_ids", "attention_mask"), LAYERS, 0),
    "electra": (("input_ids", "attention_mask", "token_type_ids"), LAYERS, 1),
    # ALBERT runs one shared layer LAYERS times; ORT fuses only some of the repeats (not enforced, recorded).
    "albert": (("input_ids", "attention_mask", "token_type_ids"), LAYERS - 1, 0),
}


@pytest.fixture(scope="module")
def validation(tmp_path_factory) -> str:
    return str(write_validation(tmp_path_factory.mktemp("validation") / "questions.jsonl"))


@pytest.mark.parametrize("model_type", sorted(EXPECTED))
def test_family_exports_fuses_quantizes_and_matches_pytorch(model_type, tokenizer, validation, tmp_path):
    inputs, attention, embed_layer_norm = EXPECTED[model_type]
    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint", model_type, tokenizer, layers=LAYERS)
    # SkipLayerNormalization fused (the GPU form), so every fusion the optimizer has for the family is checked.
    options = ExportOptions(str(checkpoint), str(tmp_path / "fp32"), validation=validation, fuse_skip_layer_norm=True)
    result = export_model(options)
    manifest = read_manifest(result.output)
    assert manifest.model_type == model_type
    assert manifest.input_names == inputs  # the graph's real inputs (optimum#1500, #2062)
    assert manifest.fused_ops["Attention"] == attention
    assert manifest.fused_ops["EmbedLayerNormalization"] == embed_layer_norm
    assert manifest.fused_ops["SkipLayerNormalization"] == 2 * LAYERS
    assert manifest.parity.passed and manifest.parity.agreement == 100.0
    assert manifest.parity.max_abs_logit_diff < 1e-4
    assert FAMILIES[model_type].attention_in_every_layer == (attention == LAYERS)

    # int8 of the fused graph keeps every fusion and quantizes the embeddings (size), and runs.
    fused = result.output / MODEL_FILE
    quantized = tmp_path / "int8.onnx"
    quantize_int8(fused, quantized)
    before, after = manifest.fused_ops, count_fused_ops(onnx.load(quantized))
    check_fusions_kept(before, after, "int8")
    assert after["QAttention"] == attention
    assert quantized.stat().st_size <= 0.30 * fused.stat().st_size
    session = onnxruntime.InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
    assert [value.name for value in session.get_inputs()] == list(inputs)


def test_manifest_names_the_exporter(tiny_model, tmp_path):
    manifest = read_manifest(export_model(ExportOptions(str(tiny_model), str(tmp_path / "out"), skip_parity=True)).output)
    assert manifest.exporter == EXPORTER == "torch.onnx-torchscript"


@pytest.mark.parametrize("model_type", ["bert", *sorted(EXPECTED)])
def test_torch_onnx_graph_fuses_and_computes_like_optimums(model_type, tokenizer, tmp_path):
    """The reason for one export path: where Optimum installs (the pinned stack), its graph of the same model fuses
    to the same operator counts and gives the same logits as spanqa's torch.onnx graph."""
    pytest.importorskip("optimum.exporters.onnx", reason="optimum-onnx is not installed (the pinned stack has it)")
    from optimum.exporters.onnx import onnx_export_from_model

    loaded = load_checkpoint(str(save_tiny_checkpoint(tmp_path / "checkpoint", model_type, tokenizer, layers=LAYERS)))
    family, config = FAMILIES[model_type], loaded.model.config
    names = model_input_names(loaded.model, loaded.tokenizer)
    ours = fuse_graph(export_plain_onnx(loaded.model, tmp_path / "ours", None, names), tmp_path / "ours.onnx", config, family)
    onnx_export_from_model(loaded.model, tmp_path / "optimum", task="question-answering", do_validation=False)
    theirs = fuse_graph(tmp_path / "optimum" / MODEL_FILE, tmp_path / "theirs.onnx", config, family)
    assert ours == theirs and attention_count(ours) > 0
    rng = np.random.default_rng(0)
    ids = rng.integers(5, len(tokenizer), size=(3, 40))
    mask = np.ones_like(ids)
    mask[2, 25:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    logits = []
    for graph in (tmp_path / "ours.onnx", tmp_path / "theirs.onnx"):
        session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        assert tuple(value.name for value in session.get_inputs()) == names
        logits.append(session.run(["start_logits", "end_logits"], {name: feeds[name] for name in names}))
    for ours_logits, their_logits in zip(*logits, strict=True):
        assert np.abs(ours_logits - their_logits)[mask.astype(bool)].max() < 1e-5


@pytest.fixture(scope="module")
def plain_bert_graph(tmp_path_factory, tokenizer) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("fusion")
    loaded = load_checkpoint(str(save_tiny_checkpoint(folder / "checkpoint", "bert", tokenizer)))
    names = model_input_names(loaded.model, loaded.tokenizer)
    return export_plain_onnx(loaded.model, folder / "plain", opset=None, input_names=names), loaded.model.config


def test_unfused_attention_fails_loudly_for_bert(plain_bert_graph, tmp_path, monkeypatch):
    from onnxruntime.transformers import fusion_options

    class AttentionFusionOff(fusion_options.FusionOptions):  # what a silently failing fusion looks like
        def __init__(self, model_type):
            super().__init__(model_type)
            self.enable_attention = False

    graph, config = plain_bert_graph
    monkeypatch.setattr(fusion_options, "FusionOptions", AttentionFusionOff)
    with pytest.raises(ExportError, match=r"attention fusion failed: 0 of 2 .* 'bert'"):
        fuse_graph(graph, tmp_path / "fused.onnx", config, FAMILIES["bert"])
    # A family where partial fusion is expected records it instead.
    counts = fuse_graph(graph, tmp_path / "fused.onnx", config, FAMILIES["albert"])
    assert counts["Attention"] == 0 and counts["SkipLayerNormalization"] == 4


def test_fusion_works_at_the_lowest_supported_opset(tokenizer, validation, tmp_path):
    # Opset 14 has no LayerNormalization op, so the exporter decomposes it and the optimizer must rebuild it.
    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint", "bert", tokenizer)
    options = ExportOptions(str(checkpoint), str(tmp_path / "out"), opset=14, validation=validation)
    manifest = read_manifest(export_model(options).output)
    assert manifest.opset == 14
    assert manifest.fused_ops["Attention"] == 2 and manifest.fused_ops["SkipLayerNormalization"] == 0
    graph_ops = [node.op_type for node in onnx.load(tmp_path / "out" / MODEL_FILE).graph.node]
    assert graph_ops.count("LayerNormalization") == 4  # rebuilt from the decomposed ops, left apart from the Add
    assert manifest.parity.passed


def test_roberta_window_must_fit_positions_after_the_padding_offset(tokenizer, tmp_path):
    # 514 position embeddings numbered from padding_idx + 1 (the BERT vocabulary pads with id 0): 513 usable.
    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint", "roberta", tokenizer, layers=1)
    options = ExportOptions(str(checkpoint), str(tmp_path / "out"), max_length=514, skip_parity=True)
    with pytest.raises(ExportError, match="--max-length 514 exceeds the 513 positions"):
        export_model(options)
    assert not (tmp_path / "out").exists()
