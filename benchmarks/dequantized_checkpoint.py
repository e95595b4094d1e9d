"""An fp32 BERT QA checkpoint rebuilt from a fused int8 qa-export folder, by dequantizing its weights.

    python -m spanqa.benchmarks.dequantized_checkpoint engine/models/minilm-l6-squad-int8 runs/dequantized-minilm

Why: qa-bench's baselines (the transformers pipeline, Optimum) and every fp32 or re-quantized variant need a
transformers checkpoint, and the fine-tuned fp32 checkpoint behind the shipped int8 model is not kept in the
repository. Its int8 weights are: each one is `(q - zero_point) * scale`, so the checkpoint they describe can be
rebuilt exactly. That checkpoint is not the original (every weight carries the int8 rounding, at most half a
quantization step off), but it is a fine-tuned model whose F1 means something, and it is the model the shipped int8
graph computes with, less the activation quantization. Figures measured on it say "dequantized" beside them.

What it reads (the layout qa-export's fused int8 graphs have, see export/quantize.py):
- QEmbedLayerNormalization: the three embedding tables and the embedding LayerNorm, each quantized per tensor;
- QAttention per layer: the packed [hidden, 3 * hidden] query/key/value weight and its fp32 bias;
- MatMulInteger per dense layer, named by the exporter after the module (`/bert/encoder/layer.3/output/dense/...`,
  under `/model` for qa-export's own exporter, which wraps the model);
- the fp32 biases and LayerNorm weights held by SkipLayerNormalization (or, unfused, LayerNormalization and the
  dense layers' bias Adds), BiasGelu and the QA head's Add.
Anything else (an unfused graph, another family) is refused with the reason rather than half-converted.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import numpy as np

_DENSE = re.compile(r"^(?:/model)?/(?P<module>bert/encoder/layer\.\d+/(?:attention/output|intermediate|output)/dense|qa_outputs)/MatMul_quant$")
_DENSE_BIAS_ADD = re.compile(r"^(?:/model)?/(?P<module>bert/encoder/layer\.\d+/(?:attention/output|output)/dense)/Add$")
_QA_HEAD_ADD = re.compile(r"^(?:/model)?/qa_outputs/Add$")
_ATTENTION = re.compile(r"^Attention_(?P<layer>\d+)_quant$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


class NotDequantizable(ValueError):
    """The graph is not a fused int8 BERT QA graph of the layout this module reads."""


def dequantized_state_dict(model_path: Path, num_layers: int) -> dict[str, np.ndarray]:
    """Parameter name -> fp32 array, in transformers' BertForQuestionAnswering layout ([out, in] for Linear)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(model_path).graph
    tensors = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}

    def dequantize(name: str, zero_point_axis: int | None = None) -> np.ndarray:
        quantized = tensors[name + "_quantized"].astype(np.float32)
        scale, zero_point = tensors[name + "_scale"], tensors[name + "_zero_point"].astype(np.float32)
        if zero_point_axis is not None and scale.ndim == 1:  # per output channel: the last axis of [in, out]
            return (quantized - zero_point[None, :]) * scale[None, :]
        return (quantized - zero_point) * scale

    state: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type == "QEmbedLayerNormalization":
            # Inputs 2..6 are the word, position and token-type tables and the LayerNorm's weight and bias, each
            # quantized per tensor, under names the exporter chose (so read them from the node, not guessed).
            parts = ("word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
                     "LayerNorm.weight", "LayerNorm.bias")  # fmt: skip
            for part, quantized in zip(parts, node.input[2:7]):
                state[f"bert.embeddings.{part}"] = dequantize(quantized.removesuffix("_quantized"))
        elif node.op_type == "QAttention" and (match := _ATTENTION.match(node.name)):
            prefix = f"bert.encoder.layer.{match['layer']}.attention.self"
            weight = dequantize(node.input[1].removesuffix("_quantized"), zero_point_axis=1)
            bias = tensors[node.input[2]]
            for index, part in enumerate(("query", "key", "value")):
                columns = slice(index * weight.shape[0], (index + 1) * weight.shape[0])
                state[f"{prefix}.{part}.weight"] = weight[:, columns].T.copy()
                state[f"{prefix}.{part}.bias"] = bias[columns].copy()
        elif node.op_type == "MatMulInteger" and (match := _DENSE.match(node.name)):
            module = match["module"].replace("/", ".")
            state[f"{module}.weight"] = dequantize(node.input[1].removesuffix("_quantized"), zero_point_axis=1).T.copy()
    # The fp32 parameters, found by position because the exporter may rename them: each layer has two residual
    # layer norms (after attention, after the feed-forward block), in graph order, either fused (SkipLayerNormalization
    # holds the LayerNorm's weight and bias and the preceding dense layer's bias) or not (LayerNormalization holds the
    # weight and bias, and the dense layer's bias is the constant operand of its own Add); each BiasGelu holds the
    # intermediate dense bias; the QA head's bias is the constant [2] operand of the Add after its MatMul.
    norms = [node for node in graph.node if node.op_type in ("SkipLayerNormalization", "LayerNormalization")]
    gelus = [node for node in graph.node if node.op_type == "BiasGelu"]
    if len(norms) != 2 * num_layers or len(gelus) != num_layers:
        raise NotDequantizable(
            f"{model_path}: {len(norms)} residual layer norms and {len(gelus)} BiasGelu nodes, expected "
            f"{2 * num_layers} and {num_layers}; not a fused int8 BERT QA graph this module can read"
        )
    for index, node in enumerate(norms):
        prefix = f"bert.encoder.layer.{index // 2}." + ("attention.output" if index % 2 == 0 else "output")
        state[f"{prefix}.LayerNorm.weight"], state[f"{prefix}.LayerNorm.bias"] = (
            (tensors[node.input[2]], tensors[node.input[3]]) if node.op_type == "SkipLayerNormalization"
            else (tensors[node.input[1]], tensors[node.input[2]])
        )  # fmt: skip
        if node.op_type == "SkipLayerNormalization":
            state[f"{prefix}.dense.bias"] = tensors[node.input[4]]
    for node in graph.node:
        if node.op_type == "Add" and (match := _DENSE_BIAS_ADD.match(node.name)):
            module = match["module"].replace("/", ".")
            state[f"{module}.bias"] = next(tensors[name] for name in node.input if name in tensors)
    for layer, node in enumerate(gelus):
        state[f"bert.encoder.layer.{layer}.intermediate.dense.bias"] = tensors[node.input[1]]
    for node in graph.node:
        if node.op_type == "Add" and _QA_HEAD_ADD.match(node.name):
            state["qa_outputs.bias"] = next(tensors[name] for name in node.input if name in tensors)
    _check_complete(state, num_layers, model_path)
    return state


def _check_complete(state: dict[str, np.ndarray], num_layers: int, model_path: Path) -> None:
    expected = {f"bert.embeddings.{part}" for part in (
        "word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
        "LayerNorm.weight", "LayerNorm.bias")}  # fmt: skip
    for layer in range(num_layers):
        prefix = f"bert.encoder.layer.{layer}"
        for module in ("attention.self.query", "attention.self.key", "attention.self.value",
                       "attention.output.dense", "intermediate.dense", "output.dense"):  # fmt: skip
            expected |= {f"{prefix}.{module}.weight", f"{prefix}.{module}.bias"}
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            expected |= {f"{prefix}.{norm}.weight", f"{prefix}.{norm}.bias"}
    expected |= {"qa_outputs.weight", "qa_outputs.bias"}
    missing = sorted(expected - state.keys())
    if missing:
        raise NotDequantizable(
            f"{model_path} is not a fused int8 BERT QA graph this module can read: no {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        )


def write_checkpoint(export_folder: Path, output: Path) -> Path:
    """A transformers checkpoint folder (config, safetensors, tokenizer) rebuilt from an int8 qa-export folder."""
    import json

    from safetensors.numpy import save_file

    config = json.loads((export_folder / "config.json").read_text())
    if config.get("model_type") != "bert":
        raise NotDequantizable(f"{export_folder} holds a {config.get('model_type')!r} model; only BERT is read")
    state = dequantized_state_dict(export_folder / "model.onnx", config["num_hidden_layers"])
    output.mkdir(parents=True, exist_ok=True)
    save_file({name: np.ascontiguousarray(array, dtype=np.float32) for name, array in state.items()},
              output / "model.safetensors", metadata={"format": "pt"})  # fmt: skip
    (output / "config.json").write_text(json.dumps({**config, "dtype": "float32"}, indent=2) + "\n")
    for name in _TOKENIZER_FILES:
        if (export_folder / name).exists():
            shutil.copy2(export_folder / name, output / name)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_folder", type=Path, help="a fused int8 qa-export folder (model.onnx + config.json)")
    parser.add_argument("output", type=Path, help="the checkpoint folder to write")
    arguments = parser.parse_args(argv)
    print(write_checkpoint(arguments.export_folder, arguments.output))


if __name__ == "__main__":
    main()
