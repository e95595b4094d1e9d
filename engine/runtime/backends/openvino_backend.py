"""OpenVINO backend (the [openvino] extra): a qa-export folder on OpenVINO's CPU plugin.

It runs the folder's OpenVINO graph where the manifest names one (qa-export --openvino: the plain fp32 graph as
OpenVINO IR with fp16 weights, export/openvino_ir.py), else the folder's model.onnx, which OpenVINO reads itself
when it is fp32 (fused or not). It cannot read the fused int8 model.onnx: it has no conversion for QAttention or
QEmbedLayerNormalization.

Where the CPU has bf16 units (AMX, AVX512-BF16) the plugin computes in bf16 by default. It is a backend to ask for
(backend="openvino", `qa-answer --backend openvino`), not backend="auto"'s choice: on this project's machines (two
AMX hosts) it answered 0.90-1.14x as many questions per second as ONNX Runtime on the static int8 model.onnx in
four qa-bench runs (BENCHMARKS.md, "CPU throughput"), short of the 1.2x that choice needs. (An earlier 0.75x was this
backend's own fault: its workers' threads were pinned to one core; compile_config says why.)

bf16 makes a row's logits depend on how far it is padded, so this backend asks for width buckets
(`width_multiple`, runtime/batching.py): each window is computed at a width of its own and its answer no longer
depends on its batch mates.

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
        # A share of the cores means the engine runs other backends beside this one. Each compiled model pins its
        # threads to cores of its own choosing, and separately compiled models choose the same ones: with pinning,
        # the engine's two 1-thread workers both ran on core 0 (two of them answered no faster than one), so leave
        # the placement to the OS scheduler.
        config["ENABLE_CPU_PINNING"] = False
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


class OpenVinoBackend:
    """`run(batch)` feeds the graph exactly the inputs the manifest names and returns float32 start/end logits."""

    name = "openvino"
    # Widths in multiples of 32: small enough to waste little padding (windows of SQuAD questions average ~170
    # tokens), and a few dozen shapes in all, which the plugin compiles once each.
    width_multiple = 32

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
        graph = manifest.openvino.model_file if manifest.openvino is not None else manifest.model_file
        self.model_path = Path(folder) / graph
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
        self.intra_op_threads = options.intra_op_threads  # 0: the plugin's choice (reported as OnnxBackend's is)
        self.compiled = core.compile_model(model, "CPU", self.config)
        # What the plugin computes in (bf16 on CPUs with bf16 units, else f32): part of what decides the answers.
        self.inference_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.providers = (f"OpenVINO CPU ({self.inference_precision})",)
        self._outputs = [self.compiled.output(name) for name in self.output_names]
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: runs from two threads must not interleave
        # The first Tensor.data access sets up pybind11's numpy bindings once per process, in a call_once that
        # releases the GIL while it waits (pybind11's gil_safe_call_once_and_store, pybind11#4877); two workers'
        # first batches meeting there hung a qa-answer --resume (seen once, in the kill-and-resume test, both
        # workers stuck in it): reach it here, in the one thread that builds the backends.
        ov.Tensor(np.zeros(1, dtype=np.int64)).data

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
