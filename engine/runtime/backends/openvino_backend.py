"""OpenVINO backend (the [openvino] extra, EngineOptions(backend="openvino")): a qa-export folder's model.onnx
compiled by OpenVINO's CPU plugin.

OpenVINO reads the ONNX file itself, fused fp32 exports included (it converts ORT's Attention,
EmbedLayerNormalization, SkipLayerNormalization and BiasGelu), but it has no conversion for QAttention or
QEmbedLayerNormalization, so the fused int8 export (the shipped model) stays on ONNX Runtime. Where the CPU has
bf16 units (AMX, AVX512-BF16) the plugin computes in bf16 by default, and that is where it wins: in
benchmarks/results/openvino_compare*.json an fp32 export on OpenVINO in bf16 answered 1.29x and 1.50x (1 worker x 2
threads) and 2.11x (2 x 1, the engine's default split) as many questions per second as ONNX Runtime on the shipped
int8 model (medians of interleaved rounds), at F1 85.50 against 83.80 on 500 dev questions; forced to f32 it ran at
ONNX Runtime fp32's speed, about half the int8 model's. It is not chosen by backend="auto": the shipped model
cannot run on it, the win needs bf16 hardware, and bf16 answers are not fp32's.

openvino is imported when a backend is made, not when this module is, so that importing the engine stays cheap.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from spanqa.engine.core.model_folder import Manifest, ModelFolderError
from spanqa.engine.core.windows import PaddedWindows
from spanqa.engine.runtime.backends.base import check_graph_names
from spanqa.engine.runtime.options import SessionOptions

# Conversions OpenVINO's ONNX frontend lacks; a graph holding one runs on ONNX Runtime only.
ONNXRUNTIME_ONLY_OPS = ("QAttention", "QEmbedLayerNormalization")


def compile_config(options: SessionOptions, precision: str | None = None) -> dict:
    """One stream, one request at a time (the engine runs one batch per backend at once), on the session's thread
    count (0: the plugin's own choice, every core), in `precision` ("f32", "bf16"; None: the plugin's default)."""
    config: dict = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if options.intra_op_threads > 0:
        config["INFERENCE_NUM_THREADS"] = options.intra_op_threads
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


class OpenVinoBackend:
    """`run(batch)` feeds the graph exactly the inputs the manifest names and returns float32 start/end logits."""

    name = "openvino"

    def __init__(
        self,
        folder: str | os.PathLike,
        manifest: Manifest,
        options: SessionOptions = SessionOptions(),
        precision: str | None = None,
        model=None,
    ):
        """`precision` forces the plugin's inference precision ("f32" gives fp32's answers on any CPU); `model` is an
        openvino.Model of the folder's graph already read and transformed (e.g. quantized by NNCF) to run instead."""
        import openvino as ov

        self._folder, self._manifest, self._options, self._precision = folder, manifest, options, precision
        self.model_path = Path(folder) / manifest.model_file
        self.input_names = tuple(manifest.input_names)
        self.output_names = tuple(manifest.output_names)
        core = ov.Core()
        if model is None:
            try:
                model = core.read_model(str(self.model_path))
            except Exception as error:  # noqa: BLE001 - OpConversionFailure, a missing or corrupt file: the file's
                raise _model_error(self.model_path, error) from None
        self._model = model
        _check_names(model, self.input_names, self.output_names, self.model_path)
        self.config = compile_config(options, precision)
        self.compiled = core.compile_model(model, "CPU", self.config)
        # What the plugin computes in (bf16 on CPUs with bf16 units, else f32): part of what decides the answers.
        self.inference_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.providers = (f"OpenVINO CPU ({self.inference_precision})",)
        self._outputs = [self.compiled.output(name) for name in self.output_names]
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: runs from two threads must not interleave

    def replica(self) -> OpenVinoBackend:
        """Another backend on the same folder and settings, for a worker of its own."""
        return OpenVinoBackend(self._folder, self._manifest, self._options, self._precision, self._model)

    def run(self, batch: PaddedWindows) -> tuple[np.ndarray, np.ndarray]:
        feeds = {name: np.ascontiguousarray(getattr(batch, name), dtype=np.int64) for name in self.input_names}
        with self._lock:
            # infer() copies the outputs out of the request's buffers, so the next run cannot overwrite them.
            outputs = self._request.infer(feeds)
        start, end = (np.asarray(outputs[output], dtype=np.float32) for output in self._outputs)
        return start, end


def _check_names(model, input_names: tuple[str, ...], output_names: tuple[str, ...], model_path: Path) -> None:
    graph_inputs = {name for port in model.inputs for name in port.get_names()}
    graph_outputs = {name for port in model.outputs for name in port.get_names()}
    check_graph_names(input_names, output_names, graph_inputs, graph_outputs, model_path, len(model.inputs))


def _model_error(model_path: Path, error: BaseException) -> ModelFolderError:
    text = str(error)
    unsupported = [name for name in ONNXRUNTIME_ONLY_OPS if name in text]
    if unsupported:
        return ModelFolderError(
            f"{model_path}: OpenVINO cannot convert its {', '.join(unsupported)} nodes (ONNX Runtime contrib ops of "
            "the fused int8 export); run this folder on onnxruntime, or give OpenVINO an fp32 or plain "
            "(qa-export --no-optimize) export"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[-1] if lines else error
    return ModelFolderError(f"{model_path}: openvino cannot load it ({type(error).__name__}: {reason})")


__all__ = ["ONNXRUNTIME_ONLY_OPS", "OpenVinoBackend", "compile_config"]
