"""What every backend shares, and nothing else: the leaf module that onnx_backend, torch_backend and loading import.

A backend offers `run(PaddedWindows) -> (start_logits, end_logits)` as float32 numpy arrays [rows, width].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from spanqa.engine.core.model_folder import Manifest
from spanqa.engine.core.windows import PaddedWindows, WindowOptions


class DeviceError(RuntimeError):
    """The requested device cannot be used (not offered by the installed runtime, or it failed to start)."""


class Backend(Protocol):
    name: str  # "onnxruntime" or "torch"
    providers: tuple[str, ...]  # what actually runs, best first, e.g. ("CUDAExecutionProvider", "CPUExecutionProvider")
    input_names: tuple[str, ...]  # the model inputs fed from each batch

    def run(self, batch: PaddedWindows) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class LoadedModel:
    backend: Backend
    tokenizer: Any  # a spanqa.engine.core.tokenizer.QATokenizer (read from the folder, no transformers)
    window: WindowOptions
    manifest: Manifest | None  # None for a checkpoint folder
