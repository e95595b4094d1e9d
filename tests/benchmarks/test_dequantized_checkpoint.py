"""benchmarks/dequantized_checkpoint.py: an int8 qa-export folder back to a transformers checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from spanqa.benchmarks.dequantized_checkpoint import NotDequantizable, write_checkpoint
from spanqa.export.options import ExportOptions
from spanqa.export.run import export_model


@pytest.fixture(scope="module")
def distinct_model(tiny_model, tmp_path_factory):
    """The tiny model with every parameter made distinct: freshly initialised LayerNorms are all ones and zeros, and
    the exporter stores equal constants once, which no trained model has."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    folder = tmp_path_factory.mktemp("distinct")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exports(distinct_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("dequantize")
    common = dict(precision="int8", skip_parity=True)
    int8 = export_model(ExportOptions(str(distinct_model), str(root / "int8"), **common)).output
    fused = export_model(ExportOptions(str(distinct_model), str(root / "fused"), fuse_skip_layer_norm=True, **common))
    plain = export_model(ExportOptions(str(distinct_model), str(root / "plain"), optimize=False, **common)).output
    return {"layer-norm": int8, "skip-layer-norm": fused.output, "plain": plain}


@pytest.mark.parametrize("form", ["layer-norm", "skip-layer-norm"])
def test_every_weight_comes_back_within_its_quantization_step(form, exports, distinct_model, tmp_path):
    from safetensors.numpy import load_file
    from transformers import AutoModelForQuestionAnswering

    rebuilt = write_checkpoint(exports[form], tmp_path / "checkpoint")
    original = {name: tensor.detach().numpy() for name, tensor in
                AutoModelForQuestionAnswering.from_pretrained(distinct_model).state_dict().items()}  # fmt: skip
    weights = load_file(rebuilt / "model.safetensors")
    assert set(weights) == {name for name in original if not name.endswith("position_ids")}
    for name, value in weights.items():
        reference = original[name]
        assert value.shape == reference.shape, name
        if value.ndim == 2:  # quantized: per output channel (Linear) or per table (embeddings), at most half a step off
            step = (np.abs(reference).max(axis=1, keepdims=True) if "embeddings" not in name else np.ptp(reference)) / 100
            assert np.all(np.abs(value - reference) <= step + 1e-7), name
            assert not np.array_equal(value, reference), name  # it really went through int8
        elif "embeddings.LayerNorm" in name:  # quantized per tensor too
            assert np.abs(value - reference).max() <= np.ptp(np.append(reference, 0)) / 255 + 1e-6, name
        else:  # biases and encoder LayerNorms stay fp32 in the int8 graph
            np.testing.assert_array_equal(value, reference, err_msg=name)
    model = AutoModelForQuestionAnswering.from_pretrained(rebuilt)  # loads with no missing or unexpected weight
    assert model.config.num_hidden_layers == 2


def test_a_graph_of_another_layout_is_refused_with_the_reason(exports, tmp_path):
    with pytest.raises(NotDequantizable, match="not a fused int8 BERT QA graph"):
        write_checkpoint(exports["plain"], tmp_path / "checkpoint")
