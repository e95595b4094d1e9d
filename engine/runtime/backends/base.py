"""What every backend shares, and nothing else: the leaf module that onnx_backend, torch_backend and loading import.

A backend offers `run(PaddedWindows) -> (start_logits, end_logits)` as float32 numpy arrays [rows, width].
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from spanqa.engine.core.model_folder import Manifest, ModelFolderError
from spanqa.engine.core.windows import PaddedWindows, WindowOptions


class DeviceError(RuntimeError):
    """The requested device cannot be used (not offered by the installed runtime, or it failed to start)."""


class Backend(Protocol):
    name: str  # "onnxruntime" or "torch"
    providers: tuple[str, ...]  # what actually runs, best first, e.g. ("CUDAExecutionProvider", "CPUExecutionProvider")
    input_names: tuple[str, ...]  # the model inputs fed from each batch
    # Pad batches to widths in multiples of this (runtime/batching.py's width buckets): 1 pads each batch to its
    # longest row (ONNX Runtime, torch); more where a row's result depends on how far it is padded (OpenVINO).
    width_multiple: int

    def run(self, batch: PaddedWindows) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class LoadedModel:
    backend: Backend
    tokenizer: Any  # a spanqa.engine.core.tokenizer.QATokenizer (read from the folder, no transformers)
    window: WindowOptions
    manifest: Manifest | None  # None for a checkpoint folder


def check_graph_names(
    input_names: Sequence[str], output_names: Sequence[str], graph_inputs: Collection[str],
    graph_outputs: Collection[str], model_path: Path, input_count: int | None = None,
) -> None:  # fmt: skip
    """The manifest's input names must be the graph's inputs (`input_count` of them; default: one per name in
    `graph_inputs`, where a runtime gives a port several names it is the number of ports), and its two output names
    among its outputs; otherwise a ModelFolderError naming the manifest."""
    manifest = model_path.parent / "manifest.json"
    count = len(graph_inputs) if input_count is None else input_count
    if not set(input_names) <= set(graph_inputs) or count != len(input_names):
        raise ModelFolderError(
            f"{manifest}: input_names {list(input_names)} do not match the inputs of {model_path.name} "
            f"({sorted(graph_inputs)})"
        )
    missing = [name for name in output_names if name not in graph_outputs]
    if missing or len(output_names) != 2:
        raise ModelFolderError(
            f"{manifest}: output_names must name the start and end logits among the outputs of {model_path.name} "
            f"({sorted(graph_outputs)}); got {list(output_names)}"
        )
