"""The exported-model folder that `qa-export` writes and the engine loads, and its `manifest.json`.

Layout of a folder (nothing else is read):

    model.onnx          the graph, in the precision the manifest names
    config.json         the transformers config of the source checkpoint
    tokenizer files     whatever `AutoTokenizer.save_pretrained` wrote (tokenizer.json at least)
    manifest.json       written last: a folder without it is not a finished export
    openvino_model.xml  optional (qa-export --openvino): the same model as OpenVINO IR, with its
    openvino_model.bin  weights, for the openvino backend (runtime/backends/openvino_backend.py)

The manifest lives in the engine, not in export, because data flows export -> engine: the engine is the reader that
defines what a valid folder is, and export writes exactly that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from spanqa.engine.core.window_options import WindowOptions

MANIFEST_NAME = "manifest.json"
MODEL_FILE = "model.onnx"
FORMAT = "spanqa-onnx"
FORMAT_VERSION = 1
PRECISIONS = ("fp32", "int8", "fp16")


class ModelFolderError(ValueError):
    """A model folder that cannot be loaded. The message names the file and what is wrong with it."""


@dataclass(frozen=True)
class ParityReport:
    """PyTorch fp32 against the exported graph on the same validation windows."""

    validation: str  # what was scored: a file path or "built-in sample"
    examples: int
    windows: int
    max_abs_logit_diff: float
    agreement: float  # percent of examples whose answer text is identical
    reference_exact_match: float  # PyTorch fp32
    reference_f1: float
    exact_match: float  # the exported graph
    f1: float
    threshold: str  # the rule applied, e.g. "agreement >= 99.9" or "f1 drop <= 1.0"
    passed: bool
    forced: bool = False  # written despite failing, with --force


@dataclass(frozen=True)
class Calibration:
    """How a static int8 graph's activation scales were fixed (export/calibrate.py); absent: dynamic int8."""

    source: str  # the training data the windows came from (never the data the model is judged on)
    examples: int
    windows: int
    rule: str  # mean-minmax | minmax
    tensors: int  # activations with fixed scales


@dataclass(frozen=True)
class OpenVinoGraph:
    """The folder's second graph, for OpenVINO (export/openvino_ir.py): the plain fp32 graph as OpenVINO IR, its
    weights stored in fp16, computed in bf16 where the CPU has bf16 units; absent: the folder has none."""

    model_file: str  # "openvino_model.xml" (its weights beside it, in openvino_model.bin)
    weights: str  # "fp16": how the .bin stores them
    openvino_version: str
    parity: ParityReport | None  # the same gate as model.onnx's, run on OpenVINO's CPU plugin


@dataclass(frozen=True)
class Manifest:
    precision: str  # fp32 | int8 | fp16
    opset: int
    model_type: str  # config.model_type of the source, e.g. "bert"
    input_names: tuple[str, ...]  # the graph's inputs, e.g. ("input_ids", "attention_mask", "token_type_ids")
    output_names: tuple[str, ...]  # ("start_logits", "end_logits")
    source_checkpoint: str  # path or Hub name given to qa-export
    source_sha256: str  # hash over the checkpoint's config and weight files
    onnxruntime_version: str
    fused_ops: Mapping[str, int]  # e.g. {"Attention": 6, "SkipLayerNormalization": 12, ...}
    parity: ParityReport | None
    window: WindowOptions = field(default_factory=WindowOptions)  # what the model was exported (and checked) with
    model_file: str = MODEL_FILE
    versions: Mapping[str, str] = field(default_factory=dict)  # spanqa, transformers, optimum, torch, onnx ...
    # What made the plain graph: "torch.onnx-torchscript" now; manifests written before the field existed were all
    # made by Optimum, hence the default.
    exporter: str = "optimum"
    # int8 only: the calibration that fixed every activation scale, so that an answer does not depend on its batch
    # mates; None for dynamic int8 (scales measured per batch) and for fp32/fp16.
    calibration: Calibration | None = None
    openvino: OpenVinoGraph | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Path:
    """Write manifest.json through a temporary file and a rename, so a reader never sees half of it."""
    path = Path(folder) / MANIFEST_NAME
    partial = path.with_name(f".{MANIFEST_NAME}.partial")
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(manifest.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return path


def is_exported_model(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MANIFEST_NAME).is_file()


def read_manifest(folder: str | os.PathLike) -> Manifest:
    """Read and check a folder's manifest; every problem is a ModelFolderError naming the file."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder")
    if not path.is_file():
        raise ModelFolderError(f"{path}: missing; {folder} is not a finished qa-export folder")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ModelFolderError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ModelFolderError(f"{path}: line {error.lineno}: invalid JSON ({error.msg}); the file is corrupt or truncated") from None
    if not isinstance(raw, dict):
        raise ModelFolderError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    if raw.get("format") != FORMAT:
        raise ModelFolderError(f"{path}: 'format' is {raw.get('format')!r}, expected {FORMAT!r}")
    if raw.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(
            f"{path}: format_version {raw.get('format_version')!r} is not {FORMAT_VERSION}; "
            "re-export the model with this version of spanqa"
        )
    manifest = _manifest_from_dict(raw, path)
    if manifest.precision not in PRECISIONS:
        raise ModelFolderError(f"{path}: 'precision' is {manifest.precision!r}, expected one of {PRECISIONS}")
    model_path = folder / manifest.model_file
    if Path(manifest.model_file).name != manifest.model_file:
        raise ModelFolderError(f"{path}: 'model_file' must be a file name inside the folder, got {manifest.model_file!r}")
    if not model_path.is_file():
        raise ModelFolderError(f"{model_path}: missing (named by {path})")
    if manifest.openvino is not None:
        graph = manifest.openvino.model_file
        if Path(graph).name != graph or not graph.endswith(".xml"):
            raise ModelFolderError(f"{path}: 'openvino.model_file' must be an .xml file inside the folder, got {graph!r}")
        for needed in (folder / graph, (folder / graph).with_suffix(".bin")):
            if not needed.is_file():
                raise ModelFolderError(f"{needed}: missing (named by {path})")
    return manifest


def _manifest_from_dict(raw: dict[str, Any], path: Path) -> Manifest:
    required = [item.name for item in fields(Manifest) if item.default is MISSING and item.default_factory is MISSING]
    missing = [name for name in required if name not in raw]
    if missing:
        raise ModelFolderError(f"{path}: missing field(s) {', '.join(missing)}; the manifest is truncated or foreign")
    values = {item.name: raw[item.name] for item in fields(Manifest) if item.name in raw}
    try:
        values["input_names"] = tuple(_strings(values["input_names"], "input_names", path))
        values["output_names"] = tuple(_strings(values["output_names"], "output_names", path))
        if values.get("parity") is not None:
            values["parity"] = ParityReport(**_object(values["parity"], "parity", path))
        if values.get("calibration") is not None:
            values["calibration"] = Calibration(**_object(values["calibration"], "calibration", path))
        if values.get("openvino") is not None:
            graph = dict(_object(values["openvino"], "openvino", path))
            if graph.get("parity") is not None:
                graph["parity"] = ParityReport(**_object(graph["parity"], "openvino.parity", path))
            values["openvino"] = OpenVinoGraph(**graph)
        if "window" in values:
            values["window"] = WindowOptions(**_object(values["window"], "window", path))
        return Manifest(**values)
    except (TypeError, ValueError) as error:  # unknown or missing keys inside a nested record, invalid window values
        raise ModelFolderError(f"{path}: malformed manifest: {error}") from None


def _strings(value: Any, name: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ModelFolderError(f"{path}: '{name}' must be a list of strings")
    return value


def _object(value: Any, name: str, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelFolderError(f"{path}: '{name}' must be a JSON object")
    return value
