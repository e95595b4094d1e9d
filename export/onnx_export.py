"""PyTorch QA model -> plain fp32 ONNX graph with torch.onnx's TorchScript exporter, dynamic batch and sequence axes.

Why torch.onnx and not Optimum: optimum-onnx pins transformers<4.58, so it cannot be installed beside transformers 5.
Optimum itself calls this same exporter (`torch.onnx.export(..., dynamo=False)`) on the same model, and on the pinned
stack the two graphs fuse to the same operator counts and give the same logits for every family
(tests/export/test_export_families.py compares them wherever Optimum is installed), so there is one export code path and
Optimum stays only as qa-bench's baseline.

Why the TorchScript exporter and not the dynamo one: it needs only `onnx` (dynamo needs onnxscript as well), its
graph is the one ONNX Runtime's transformer optimizer was written against (the Attention and EmbedLayerNormalization
patterns), and it is the graph the shipped model and its parity figures came from.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from spanqa.export.options import DEFAULT_OPSET, ExportError

logger = logging.getLogger(__name__)

EXPORTER = "torch.onnx-torchscript"  # recorded in the manifest's `exporter` field
MODEL_FILE = "model.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # in this order, those the model accepts
OUTPUT_NAMES = ("start_logits", "end_logits")
_DYNAMIC_AXES = {0: "batch_size", 1: "sequence_length"}
_EXAMPLE_SHAPE = (2, 16)  # the example batch to trace; both axes are exported as dynamic


@dataclass(frozen=True)
class GraphSignature:
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    opset: int


def model_input_names(model, tokenizer=None) -> tuple[str, ...]:
    """The inputs the graph takes: those the model's forward accepts and (if given) the tokenizer produces.
    DistilBERT's forward has no token_type_ids; RoBERTa's has, but its tokenizer gives none (one type embedding)."""
    accepted = inspect.signature(model.forward).parameters
    names = [name for name in INPUT_NAMES if name in accepted]
    if tokenizer is not None:
        names = [name for name in names if name in tokenizer.model_input_names]
    return tuple(names)


def export_plain_onnx(model, work_folder: Path, opset: int | None, input_names: tuple[str, ...]) -> Path:
    """Export `model` (eval mode, fp32) into `work_folder` as model.onnx and return the graph's path."""
    work_folder.mkdir(parents=True, exist_ok=True)
    path = work_folder / MODEL_FILE
    wrapper = _SpanLogits(model, input_names).eval()
    example = _example_inputs(model, input_names)
    dynamic_axes = {name: _DYNAMIC_AXES for name in (*input_names, *OUTPUT_NAMES)}
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about Python control flow on shapes it cannot see through; the dynamic axes and the
        # parity gate cover what matters, and the warnings would bury the export's own output.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper,
                example,
                str(path),
                input_names=list(input_names),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=dynamic_axes,
                opset_version=opset or DEFAULT_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as error:  # the tracer and the symbolic functions raise many types; all mean "did not export"
            message = " ".join(str(error).split())[:500]
            raise ExportError(f"ONNX export of the {model.config.model_type!r} model failed: {message}") from None
    external = sorted(p.name for p in work_folder.iterdir() if p != path)
    if external:
        # Over 2 GB a graph keeps its weights in side files; the folder contract holds a single model.onnx.
        raise ExportError(
            f"the exported graph stores its weights outside model.onnx ({', '.join(external)}); "
            "models over 2 GB are not supported by the qa-export folder format"
        )
    if not path.is_file():
        raise ExportError(f"torch.onnx wrote no {MODEL_FILE} in {work_folder}")
    return path


def graph_signature(path: Path) -> GraphSignature:
    """The graph's real inputs and outputs (a DistilBERT or RoBERTa graph takes no token_type_ids; the engine must
    feed exactly these: optimum#1500, optimum#2062) and its default-domain opset."""
    model = onnx.load(path, load_external_data=False)
    initializers = {initializer.name for initializer in model.graph.initializer}
    inputs = tuple(value.name for value in model.graph.input if value.name not in initializers)
    outputs = tuple(value.name for value in model.graph.output)
    opsets = [entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")]
    if not opsets:
        raise ExportError(f"{path}: the graph imports no standard ONNX opset")
    return GraphSignature(inputs, outputs, opsets[0])


def _example_inputs(model, input_names: tuple[str, ...]) -> tuple:
    """A padded example batch: ids of ordinary tokens, a mask with padding in the second row (so the traced mask
    arithmetic is the general one), and token types of both kinds where the model has two."""
    batch, length = _EXAMPLE_SHAPE
    vocab = int(model.config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "input_ids": torch.randint(min(5, vocab - 1), vocab, _EXAMPLE_SHAPE, generator=generator),
        "attention_mask": torch.ones(_EXAMPLE_SHAPE, dtype=torch.int64),
        "token_type_ids": torch.zeros(_EXAMPLE_SHAPE, dtype=torch.int64),
    }
    tensors["attention_mask"][1, length // 2 :] = 0
    if int(getattr(model.config, "type_vocab_size", 1) or 1) > 1:
        tensors["token_type_ids"][:, length // 2 :] = 1
    return tuple(tensors[name] for name in input_names)


class _SpanLogits(torch.nn.Module):
    """Positional inputs in `input_names` order -> (start_logits, end_logits): the graph's whole interface."""

    def __init__(self, model, input_names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs):
        outputs = self.model(**dict(zip(self.input_names, inputs)), return_dict=True)
        return outputs.start_logits, outputs.end_logits
