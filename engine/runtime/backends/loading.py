"""Open a model folder as a backend plus its tokenizer and window options.

A qa-export folder (manifest.json) runs on ONNX Runtime (or, asked for with backend="openvino", on OpenVINO), a
transformers checkpoint on torch; all offer
`run(PaddedWindows) -> (start_logits, end_logits)` as float32 numpy arrays [rows, width]. The tokenizer comes from
the folder's tokenizer.json through the tokenizers library, so an exported folder loads without transformers or torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from spanqa.engine.core.extras import missing_extra
from spanqa.engine.core.tokenizer import TOKENIZER_FILE, QATokenizer, TokenizerFileError
from spanqa.engine.core.windows import WindowOptions
from spanqa.engine.core.model_folder import MODEL_FILE, ModelFolderError, is_exported_model, read_manifest
from spanqa.engine.runtime.backends.base import Backend, LoadedModel
from spanqa.engine.runtime.options import EngineOptions, worker_split

_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
)


def load_model(model_dir: str | os.PathLike, options: EngineOptions) -> LoadedModel:
    """Every loading problem is a ModelFolderError naming the file (or a DeviceError naming the device)."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder")
    kind = resolve_backend(folder, options)
    if kind == "onnx":
        return _load_onnx(folder, options)
    if kind == "openvino":
        return _load_openvino(folder, options)
    return _load_torch(folder, options)


def resolve_backend(model_dir: str | os.PathLike, options: EngineOptions) -> str:
    """The backend `options.backend` means for this folder: itself unless "auto"; auto is ONNX Runtime for a
    qa-export folder and torch for a checkpoint. OpenVINO is never auto's choice (openvino_backend's docstring gives
    the measurement: short of the 1.2x over ONNX Runtime that choice needs)."""
    if options.backend != "auto":
        return options.backend
    folder = Path(model_dir)
    # model.onnx without a manifest is an unfinished export: say so rather than try it as a checkpoint.
    return "onnx" if is_exported_model(folder) or (folder / MODEL_FILE).is_file() else "torch"


def _load_onnx(folder: Path, options: EngineOptions) -> LoadedModel:
    from spanqa.engine.runtime.backends.onnx_backend import OnnxBackend

    manifest = read_manifest(folder)
    tokenizer = load_tokenizer(folder, exported=True)
    window = options.window or manifest.window
    _check_window(folder, window)
    _, threads = _onnx_split(options)
    backend = OnnxBackend(
        folder, manifest, options.device, replace(options.session, intra_op_threads=threads),
        options.max_batch_windows, window, pad_token_id(tokenizer),
    )  # fmt: skip
    return LoadedModel(backend, tokenizer, window, manifest)


def _load_openvino(folder: Path, options: EngineOptions) -> LoadedModel:
    """A qa-export folder's model.onnx on OpenVINO's CPU plugin (the [openvino] extra), threads split as for ONNX
    Runtime."""
    from spanqa.engine.runtime.backends.base import DeviceError

    missing = missing_extra("openvino", ["openvino"])
    if missing is not None:
        raise ModelFolderError(f"{folder}: backend openvino {missing}")
    if options.device not in ("auto", "cpu"):
        raise DeviceError(f"device {options.device!r}: the openvino backend runs on the CPU only")
    from spanqa.engine.runtime.backends.openvino_backend import OpenVinoBackend

    manifest = read_manifest(folder)
    tokenizer = load_tokenizer(folder, exported=True)
    window = options.window or manifest.window
    _check_window(folder, window)
    _, threads = _onnx_split(replace(options, device="cpu"))
    backend = OpenVinoBackend(folder, manifest, replace(options.session, intra_op_threads=threads))
    return LoadedModel(backend, tokenizer, window, manifest)


def _load_torch(folder: Path, options: EngineOptions) -> LoadedModel:
    if options.workers > 1:  # a usage error, said before the slow imports
        raise ModelFolderError(
            f"{folder}: a checkpoint folder runs on the torch backend, which runs one worker (got workers="
            f"{options.workers}; torch's own threads use the cores): leave workers out, or export the model with "
            "qa-export to run several ONNX Runtime sessions"
        )
    missing = missing_extra("torch-backend")
    if missing is not None:  # before any torch import, so the message names the install instead of a module
        raise ModelFolderError(f"{folder}: a checkpoint folder runs on the torch backend, which {missing}")
    from spanqa.engine.runtime.backends.torch_backend import TorchBackend, check_weights

    check_weights(folder, options.allow_pickle)  # before the slow imports and the tokenizer
    tokenizer = load_tokenizer(folder, exported=False)
    window = options.window or WindowOptions()
    _check_window(folder, window)
    backend = TorchBackend(folder, options.device, options.torch_dtype, options.allow_pickle)
    return LoadedModel(backend, tokenizer, window, None)


def worker_backends(loaded: LoadedModel, options: EngineOptions) -> tuple[Backend, ...]:
    """The backends the engine's workers run on, `loaded.backend` first (how many: `runtime.options.worker_split`):
    more sessions on the same graph with the same settings, or `loaded.backend` repeated with
    `session.share_session`. The torch backend runs one (load_model refuses more)."""
    if loaded.manifest is None:
        return (loaded.backend,)
    workers, _ = _onnx_split(options)
    if options.session.share_session:
        return (loaded.backend,) * workers
    return (loaded.backend, *(loaded.backend.replica() for _ in range(workers - 1)))


def _onnx_split(options: EngineOptions) -> tuple[int, int]:
    """(workers, threads per worker) for an ONNX Runtime engine. A GPU counts as the device when this onnxruntime
    build offers one that `options.device` may take (if it then fails to start, the one CPU worker keeps
    onnxruntime's default threads, as before workers existed)."""
    import onnxruntime

    from spanqa.engine.runtime.backends.onnx_backend import GPU_PROVIDERS, choose_providers

    on_gpu = choose_providers(options.device, onnxruntime.get_available_providers())[0] in GPU_PROVIDERS
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return worker_split(options.workers, options.session.intra_op_threads, cores, on_gpu)


def load_tokenizer(folder: Path, exported: bool) -> QATokenizer:
    """The folder's tokenizer.json; a checkpoint saved without one (slow-tokenizer files only) is converted by
    transformers, which the torch backend that runs such a folder has installed anyway."""
    if exported and not (folder / TOKENIZER_FILE).is_file():
        raise ModelFolderError(
            f"{folder / TOKENIZER_FILE}: missing; an exported model folder must hold its fast tokenizer"
        )
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelFolderError(f"{folder / TOKENIZER_FILE}: missing; {folder} holds no tokenizer files")
    try:
        if (folder / TOKENIZER_FILE).is_file():
            return QATokenizer.from_folder(folder)
        return QATokenizer.from_transformers(_converted_tokenizer(folder))
    except TokenizerFileError as error:
        raise ModelFolderError(str(error)) from None


def _converted_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True, local_files_only=True, trust_remote_code=False)
    except Exception as error:  # noqa: BLE001 - tokenizers raise a bare Exception on a corrupt tokenizer file
        raise ModelFolderError(f"{folder}: cannot load the tokenizer: {error}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelFolderError(f"{folder}: the tokenizer has no fast (Rust) version, which the engine's windowing needs")
    return tokenizer


def pad_token_id(tokenizer: QATokenizer) -> int:
    # Pad positions are masked out, so any id serves when a tokenizer defines no padding token.
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _check_window(folder: Path, window: WindowOptions) -> None:
    """Refuse windows longer than the model's position table before any question is read."""
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFolderError(f"{config_path}: missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(f"{config_path}: not valid JSON ({error})") from None
    positions = config.get("max_position_embeddings") if isinstance(config, dict) else None
    if isinstance(positions, int) and window.max_length > positions:
        raise ModelFolderError(
            f"{config_path}: the model has {positions} positions, fewer than the window max_length {window.max_length}"
        )


__all__ = ["load_model", "load_tokenizer", "pad_token_id", "resolve_backend", "worker_backends"]
