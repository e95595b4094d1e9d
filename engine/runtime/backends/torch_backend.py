"""PyTorch backend: a transformers question-answering checkpoint folder, on the CPU or CUDA, fp32 or fp16/bf16 autocast.

It serves machines with torch but no onnxruntime build for their accelerator, and is the reference the ONNX graphs
are compared with. Only safetensors weights load unless `allow_pickle`: a pickled checkpoint can run code on load.
Remote code is never trusted.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from spanqa.engine.runtime.backends.base import DeviceError
from spanqa.engine.core.windows import PaddedWindows
from spanqa.engine.core.model_folder import ModelFolderError

logger = logging.getLogger(__name__)

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "pytorch_model.pt")


def resolve_torch_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device 'cuda': this torch build ({torch.__version__}) sees no CUDA device")
        return "cuda"
    raise DeviceError(f"device {device!r} is not available to the torch backend (use auto, cpu or cuda)")


def resolve_torch_dtype(dtype: str, device: str) -> str:
    """auto is fp16 on CUDA and fp32 on the CPU (CPU half precision is emulated on most processors)."""
    if dtype == "auto":
        return "fp16" if device == "cuda" else "fp32"
    if dtype not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"torch_dtype must be auto, fp32, fp16 or bf16; got {dtype!r}")
    return dtype


def check_weights(folder: Path, allow_pickle: bool) -> None:
    if not (folder / "config.json").is_file():
        raise ModelFolderError(
            f"{folder / 'config.json'}: missing; {folder} is neither a qa-export folder (no manifest.json) nor a "
            "transformers checkpoint"
        )
    if any((folder / name).is_file() for name in SAFE_WEIGHTS):
        return
    pickled = [name for name in PICKLED_WEIGHTS if (folder / name).is_file()]
    if pickled and not allow_pickle:
        raise ModelFolderError(
            f"{folder / pickled[0]}: pickled weights can run arbitrary code when loaded; convert the checkpoint to "
            "safetensors, or pass allow_pickle=True if you trust its source"
        )
    if not pickled:
        raise ModelFolderError(f"{folder}: no model weights ({' or '.join(SAFE_WEIGHTS + PICKLED_WEIGHTS)})")


class TorchBackend:
    """`run(batch)` returns float32 start/end logits from AutoModelForQuestionAnswering under inference_mode."""

    name = "torch"
    width_multiple = 1  # batches padded to their longest row (runtime/batching.py)

    def __init__(self, folder: str | os.PathLike, device: str = "auto", dtype: str = "auto", allow_pickle: bool = False):
        import torch
        from transformers import AutoModelForQuestionAnswering

        folder = Path(folder)
        check_weights(folder, allow_pickle)
        self.device = resolve_torch_device(device)
        self.dtype = resolve_torch_dtype(dtype, self.device)
        try:
            with _no_progress_bars():
                model = AutoModelForQuestionAnswering.from_pretrained(
                    folder,
                    trust_remote_code=False,
                    use_safetensors=None if allow_pickle else True,
                    local_files_only=True,
                )
        except (OSError, ValueError, KeyError) as error:
            if "trust_remote_code" in str(error):  # transformers' advice names an option spanqa never offers
                raise ModelFolderError(
                    f"{folder / 'config.json'}: the checkpoint needs its own Python code (auto_map), which spanqa "
                    "never runs; use a model whose architecture transformers implements"
                ) from None
            raise ModelFolderError(f"{folder}: cannot load a question-answering model: {error}") from None
        # Weights may be stored in half precision; compute in fp32 and let autocast lower it where asked.
        self.model = model.float().to(self.device).eval()
        self.providers = (f"{self.device}:{self.dtype}",)
        self._autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.dtype)
        # The forward signature decides which inputs exist (DistilBERT and RoBERTa take no token_type_ids).
        accepted = inspect.signature(self.model.forward).parameters
        self.input_names = tuple(name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted)

    def run(self, batch: PaddedWindows) -> tuple[np.ndarray, np.ndarray]:
        import torch

        inputs = {name: torch.from_numpy(np.ascontiguousarray(getattr(batch, name))) for name in self.input_names}
        if self.device != "cpu":
            inputs = {name: tensor.pin_memory().to(self.device, non_blocking=True) for name, tensor in inputs.items()}
        with torch.inference_mode(), torch.autocast(
            device_type=self.device, dtype=self._autocast or torch.float32, enabled=self._autocast is not None
        ):
            outputs = self.model(**inputs)
        return (
            outputs.start_logits.float().cpu().numpy(),
            outputs.end_logits.float().cpu().numpy(),
        )


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers 5 draws a "Loading weights" bar on stderr for every load; a command's stderr is its one-line
    messages, so the bar is off while the engine loads (and put back as it was)."""
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()
