"""ONNX Runtime backend: a qa-export folder's graph in an InferenceSession, on TensorRT, CUDA or the CPU.

onnxruntime is imported when a backend is made, not when this module is, so that importing the engine stays cheap.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spanqa.engine.runtime.backends.base import DeviceError, check_graph_names
from spanqa.engine.core.windows import PaddedWindows, WindowOptions
from spanqa.engine.core.model_folder import Manifest, ModelFolderError
from spanqa.engine.runtime.options import SessionOptions

logger = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)

_GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL",
}
_NUMPY_TYPES = {
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32, "tensor(float16)": np.float16,
}
_BATCH_FIELDS = ("input_ids", "attention_mask", "token_type_ids")


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """The providers to ask for, best first, always ending with the CPU.

    auto takes TensorRT, then CUDA, then the CPU, as far as this onnxruntime build offers them; cpu, cuda and
    tensorrt force that choice (TensorRT keeps CUDA behind it for the nodes it cannot take) and fail clearly when
    the build lacks it.
    """
    if device == "auto":
        return [name for name in GPU_PROVIDERS if name in available] + [CPU]
    if device == "cpu":
        return [CPU]
    wanted = {"cuda": CUDA, "tensorrt": TENSORRT}.get(device)
    if wanted is None:
        raise ValueError(f"device must be one of auto, cpu, cuda, tensorrt; got {device!r}")
    if wanted not in available:
        raise DeviceError(
            f"device {device!r}: this onnxruntime build offers {', '.join(available) or 'no providers'}, not {wanted}; "
            "install onnxruntime-gpu (pip install 'spanqa[gpu]', instead of onnxruntime) with a matching CUDA"
            + (" and TensorRT" if device == "tensorrt" else "")
        )
    if device == "tensorrt" and CUDA in available:
        return [TENSORRT, CUDA, CPU]
    return [wanted, CPU]


def session_options(options: SessionOptions):
    import onnxruntime as ort

    settings = ort.SessionOptions()
    settings.intra_op_num_threads = options.intra_op_threads
    settings.inter_op_num_threads = options.inter_op_threads
    settings.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _GRAPH_LEVELS[options.graph_optimization])
    settings.enable_cpu_mem_arena = options.cpu_memory_arena
    settings.enable_mem_pattern = options.memory_pattern
    settings.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    settings.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.allow_spinning else "0")
    # Errors only: onnxruntime's warnings (e.g. about nodes placed on the CPU) are not the user's business, and a
    # failing GPU provider gets one warning from this module instead.
    settings.log_severity_level = 3
    return settings


def disabled_optimizers(options: SessionOptions, provider: str) -> tuple[str, ...]:
    """ONNX Runtime graph optimizers the engine switches off on `provider` (SessionOptions.cpu_skip_layer_norm_fusion
    says why)."""
    return () if options.cpu_skip_layer_norm_fusion or provider != CPU else ("SkipLayerNormFusion",)


class OnnxBackend:
    """`run(batch)` feeds the graph exactly the inputs the manifest names and returns float32 start/end logits."""

    name = "onnxruntime"
    width_multiple = 1  # batches padded to their longest row (runtime/batching.py)

    def __init__(
        self,
        folder: str | os.PathLike,
        manifest: Manifest,
        device: str = "auto",
        options: SessionOptions = SessionOptions(),
        max_batch_windows: int = 64,
        window: WindowOptions = WindowOptions(),
        pad_token_id: int = 0,
    ):
        import onnxruntime as ort

        self._arguments = (folder, manifest, device, options, max_batch_windows, window, pad_token_id)
        self.intra_op_threads = options.intra_op_threads  # 0: onnxruntime's choice
        self.model_path = Path(folder) / manifest.model_file
        unknown = [name for name in manifest.input_names if name not in _BATCH_FIELDS]
        if unknown:
            raise ModelFolderError(
                f"{Path(folder) / 'manifest.json'}: input_names {unknown} are not model inputs the engine can "
                f"provide (it provides {', '.join(_BATCH_FIELDS)})"
            )
        self.input_names = tuple(manifest.input_names)
        self.output_names = tuple(manifest.output_names)
        wanted = choose_providers(device, ort.get_available_providers())
        if device == "auto" and wanted == [CPU] and _nvidia_gpu_present():
            logger.warning(
                "an NVIDIA GPU is present but this onnxruntime build runs only on the CPU; install onnxruntime-gpu "
                "(instead of onnxruntime), or run a transformers checkpoint on the torch backend"
            )
        gpu_options = {CUDA: {"device_id": 0}}
        if TENSORRT in wanted:
            gpu_options[TENSORRT] = _tensorrt_options(manifest, max_batch_windows, window)
        self.session = _open_session(self.model_path, options, wanted, gpu_options, device)
        self.providers = tuple(self.session.get_providers())
        self._input_types = _check_graph(self.session, self.input_names, self.output_names, self.model_path)
        self._runner = None
        if self.providers[0] in GPU_PROVIDERS:
            self._runner = DeviceBufferRunner(
                self.session, self.output_names, "cuda", pad_token_id=pad_token_id, max_width=window.max_length
            )

    def replica(self) -> OnnxBackend:
        """Another session on the same graph with the same settings, for another worker: sessions share nothing,
        so two can run batches at once without contending for one arena or one thread pool."""
        return OnnxBackend(*self._arguments)

    def run(self, batch: PaddedWindows) -> tuple[np.ndarray, np.ndarray]:
        feeds = {
            name: np.ascontiguousarray(getattr(batch, name), dtype=self._input_types[name]) for name in self.input_names
        }
        if self._runner is not None:
            start_logits, end_logits = self._runner.run(feeds)
        else:
            start_logits, end_logits = self.session.run(list(self.output_names), feeds)
        return _as_float32(start_logits), _as_float32(end_logits)


class DeviceBufferRunner:
    """Runs a session through IO binding, into device buffers that are reused for every batch of the same shape.

    Without binding, onnxruntime copies every input from the host and every output back through buffers it
    allocates per run (optimum#365 profiled a 22x GPU slowdown whose time went to such copies). Here each input
    is copied to the device once per batch, into a buffer kept for that shape, and only the two logit matrices
    come back. Widths are rounded up to `width_multiple` (extra positions padded and masked) so that a
    handful of shapes cover all batches (never beyond `max_width`); the `max_shapes` most recently used shapes keep
    their buffers.
    Device-generic: with device_type "cpu" it runs (and is tested) on the CPU.
    """

    def __init__(
        self,
        session,
        output_names: Sequence[str],
        device_type: str,
        device_id: int = 0,
        pad_token_id: int = 0,
        width_multiple: int = 16,
        max_width: int | None = None,
        max_shapes: int = 32,
    ):
        self._session = session
        self._output_names = tuple(output_names)
        self._device = (device_type, device_id)
        self._pad_token_id = pad_token_id
        self._width_multiple = width_multiple
        self._max_width = max_width
        self._max_shapes = max_shapes
        self._output_types = {item.name: _NUMPY_TYPES.get(item.type, np.float32) for item in session.get_outputs()}
        self._buffers: OrderedDict[tuple, tuple[dict, dict]] = OrderedDict()
        self._binding = session.io_binding()
        self._lock = threading.Lock()  # one binding and one set of buffers: runs must not interleave

    @property
    def shapes(self) -> list[tuple]:
        return list(self._buffers)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            return self._run(feeds)

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        rows, width = next(iter(feeds.values())).shape
        padded_width = -(-width // self._width_multiple) * self._width_multiple
        if self._max_width is not None:  # never past the window length the model was exported and profiled for
            padded_width = max(width, min(padded_width, self._max_width))
        inputs, outputs = self._buffers_for(feeds, (rows, padded_width))
        for name, array in feeds.items():
            if padded_width != width:
                fill = self._pad_token_id if name == "input_ids" else 0
                array = np.pad(array, ((0, 0), (0, padded_width - width)), constant_values=fill)
            inputs[name].update_inplace(np.ascontiguousarray(array))
            self._binding.bind_ortvalue_input(name, inputs[name])
        for name in self._output_names:
            self._binding.bind_ortvalue_output(name, outputs[name])
        self._binding.synchronize_inputs()
        self._session.run_with_iobinding(self._binding)
        self._binding.synchronize_outputs()
        # numpy() of a CPU buffer is a view of memory the next run overwrites: copy out the real columns.
        return [np.array(outputs[name].numpy()[:, :width]) for name in self._output_names]

    def _buffers_for(self, feeds: dict[str, np.ndarray], shape: tuple[int, int]) -> tuple[dict, dict]:
        from onnxruntime import OrtValue

        key = (shape, tuple((name, array.dtype.str) for name, array in feeds.items()))
        if key in self._buffers:
            self._buffers.move_to_end(key)
            return self._buffers[key]
        device_type, device_id = self._device
        inputs = {
            name: OrtValue.ortvalue_from_shape_and_type(shape, array.dtype.type, device_type, device_id)
            for name, array in feeds.items()
        }
        outputs = {
            name: OrtValue.ortvalue_from_shape_and_type(shape, self._output_types[name], device_type, device_id)
            for name in self._output_names
        }
        self._buffers[key] = (inputs, outputs)
        if len(self._buffers) > self._max_shapes:
            self._buffers.popitem(last=False)
        return inputs, outputs


def _open_session(model_path: Path, options: SessionOptions, providers: list[str], gpu_options: dict, device: str):
    """Open the session on the wanted providers. A GPU provider that is offered but fails to start means one warning
    and the CPU under device="auto", and a DeviceError when the device was forced; a graph the CPU cannot load
    either is a ModelFolderError naming the file."""
    import onnxruntime as ort

    settings = session_options(options)
    with_options = [(name, gpu_options[name]) if name in gpu_options else name for name in providers]
    disabled = list(disabled_optimizers(options, providers[0]))
    try:
        # enable_fallback=0: onnxruntime's own fallback prints to stdout, which may be the caller's output stream.
        session = ort.InferenceSession(
            str(model_path), settings, providers=with_options, enable_fallback=0, disabled_optimizers=disabled
        )
        failure = None
    except Exception as error:  # noqa: BLE001 - InvalidProtobuf, Fail, NoSuchFile, EP errors: sorted out below
        session, failure = None, error
    if session is not None and session.get_providers()[0] == providers[0]:
        return session
    if providers == [CPU]:
        raise _model_error(model_path, failure)
    if session is None:
        try:
            session = ort.InferenceSession(
                str(model_path), settings, providers=[CPU], enable_fallback=0,
                disabled_optimizers=list(disabled_optimizers(options, CPU)),
            )
        except Exception as error:  # noqa: BLE001 - the CPU cannot load it either: the file is at fault
            raise _model_error(model_path, error) from None
    reason = str(failure) if failure is not None else "onnxruntime did not enable it (its error log above says why)"
    if device != "auto":
        raise DeviceError(f"device {device!r}: {providers[0]} is installed but failed to start: {reason}")
    logger.warning(
        "%s is installed but failed to start, running on %s instead: %s", providers[0], session.get_providers()[0], reason
    )
    return session


def _model_error(model_path: Path, error: BaseException | None) -> ModelFolderError:
    kind = type(error).__name__ if error is not None else "error"
    return ModelFolderError(
        f"{model_path}: onnxruntime cannot load it ({kind}: {error}); the file is corrupt, truncated or not an ONNX model"
    )


def _check_graph(session, input_names: Sequence[str], output_names: Sequence[str], model_path: Path) -> dict:
    graph_inputs = {item.name: item.type for item in session.get_inputs()}
    graph_outputs = {item.name for item in session.get_outputs()}
    check_graph_names(input_names, output_names, graph_inputs, graph_outputs, model_path)
    types = {}
    for name, onnx_type in graph_inputs.items():
        if onnx_type not in ("tensor(int64)", "tensor(int32)"):
            raise ModelFolderError(f"{model_path}: input {name!r} has type {onnx_type}; expected int64 or int32 token ids")
        types[name] = _NUMPY_TYPES[onnx_type]
    return types


def _tensorrt_options(manifest: Manifest, max_batch_windows: int, window: WindowOptions) -> dict:
    """One optimisation profile covering every batch the engine makes, so TensorRT builds its engine once instead of
    once per new shape; built engines are cached per source checkpoint."""
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spanqa" / "tensorrt"
    cache = cache_root / f"{manifest.source_sha256[:16] or 'unknown'}-{manifest.precision}"
    cache.mkdir(parents=True, exist_ok=True)

    def shapes(rows: int, width: int) -> str:
        return ",".join(f"{name}:{rows}x{width}" for name in manifest.input_names)

    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": manifest.precision == "fp16",
        "trt_profile_min_shapes": shapes(1, 1),
        "trt_profile_opt_shapes": shapes(max_batch_windows, window.max_length),
        "trt_profile_max_shapes": shapes(max_batch_windows, window.max_length),
    }


def _nvidia_gpu_present() -> bool:
    # The driver's files, not torch.cuda: importing torch would cost seconds on every ONNX engine start.
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def _as_float32(logits) -> np.ndarray:
    return np.asarray(logits, dtype=np.float32)
