"""PyTorch QA model -> plain fp32 ONNX graph with Optimum, dynamic batch and sequence axes."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx

from .options import ExportError

logger = logging.getLogger(__name__)

TASK = "question-answering"
OPTIMUM_MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class GraphSignature:
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    opset: int


def export_plain_onnx(model, work_folder: Path, opset: int | None) -> Path:
    """Export `model` into `work_folder` (a scratch folder: Optimum also writes config and tokenizer files there,
    which the caller does not publish) and return the graph's path."""
    from optimum.exporters.onnx import onnx_export_from_model

    with warnings.catch_warnings():
        # The tracer warns about Python control flow on shapes it cannot see through; the dynamic axes and the
        # parity gate cover what matters, and the warnings would bury the export's own output.
        warnings.simplefilter("ignore")
        try:
            onnx_export_from_model(
                model,
                work_folder,
                opset=opset,
                task=TASK,
                do_validation=False,  # the parity gate compares on real questions instead of random tensors
            )
        except Exception as error:  # torch.onnx and Optimum raise many types; all mean "this model did not export"
            message = " ".join(str(error).split())[:500]
            raise ExportError(f"ONNX export of the {model.config.model_type!r} model failed: {message}") from None
    path = work_folder / OPTIMUM_MODEL_FILE
    external = sorted(p.name for p in work_folder.iterdir() if p.name.startswith(OPTIMUM_MODEL_FILE) and p != path)
    if external:
        # Over 2 GB a graph keeps its weights in side files; the folder contract holds a single model.onnx.
        raise ExportError(
            f"the exported graph stores its weights outside model.onnx ({', '.join(external)}); "
            "models over 2 GB are not supported by the qa-export folder format"
        )
    if not path.is_file():
        raise ExportError(f"Optimum wrote no {OPTIMUM_MODEL_FILE} in {work_folder}")
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
