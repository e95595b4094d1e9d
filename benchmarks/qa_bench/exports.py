"""The models qa-bench's systems load: the checkpoint as given, and its ONNX exports (qa-export's and Optimum's),
made once into the work folder and reused while the checkpoint's sha256 is unchanged."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from spanqa.benchmarks.qa_bench.options import PROGRAM, BenchInputError, BenchOptions
from spanqa.benchmarks.qa_bench.systems.catalog import (
    CHECKPOINT, OPTIMUM_FP32, OPTIMUM_INT8, SPANQA_FP32, SPANQA_INT8, SPANQA_OPENVINO, SystemSpec,
)  # fmt: skip

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def check_checkpoint(model: str) -> Path:
    folder = Path(model)
    if not folder.is_dir():
        raise BenchInputError(f"--model {model}: no such folder (a transformers question-answering checkpoint)")
    if not (folder / "config.json").is_file():
        raise BenchInputError(f"--model {model}: no config.json; not a transformers checkpoint folder")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise BenchInputError(f"--model {model}: no weights ({', '.join(WEIGHT_FILES)})")
    return folder.resolve()


def check_export(option: str, folder: str) -> str:
    from spanqa.engine.core.model_folder import ModelFolderError, read_manifest

    try:
        read_manifest(folder)
    except ModelFolderError as error:
        raise BenchInputError(f"{option}: {error}") from None
    return str(Path(folder).resolve())



def _has_openvino_graph(folder: str) -> bool:
    from spanqa.engine.core.model_folder import read_manifest

    return read_manifest(folder).openvino is not None


def checkpoint_fingerprint(folder: Path) -> str:
    """sha256 over the checkpoint's config and weights: a cached export is reused only for the same model."""
    digest = hashlib.sha256()
    for name in ("config.json", *WEIGHT_FILES):
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def cached_export(kind: str, checkpoint: Path, work_dir: Path, fingerprint: str, calibration: str | None = None) -> str:
    """The export `kind` of the checkpoint, made once and reused while the checkpoint's fingerprint (and for
    spanqa-int8 the calibration data) is the same."""
    folder = work_dir / kind
    marker = work_dir / f"{kind}.source.json"
    calibration = calibration if kind in (SPANQA_INT8, SPANQA_OPENVINO) else None
    if kind == SPANQA_OPENVINO and calibration is None:
        raise BenchInputError(f"{kind} needs --calibration: it is the static int8 folder, with its OpenVINO graph")
    source = {"checkpoint": str(checkpoint), "sha256": fingerprint, "calibration": calibration}
    if folder.is_dir() and marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == source:
        print(f"{PROGRAM}: reusing {folder}", file=sys.stderr)
        return str(folder)
    print(f"{PROGRAM}: exporting {kind} into {folder}", file=sys.stderr)
    started = time.perf_counter()
    marker.unlink(missing_ok=True)
    if kind in (OPTIMUM_FP32, OPTIMUM_INT8):
        from spanqa.benchmarks.qa_bench.systems.pipelines import export_optimum

        export_optimum(str(checkpoint), folder, quantize=kind == OPTIMUM_INT8)
    else:
        from spanqa.benchmarks.qa_bench.systems.spanqa import export_spanqa

        precision = "fp32" if kind == SPANQA_FP32 else "int8"
        export_spanqa(str(checkpoint), folder, precision, calibration, openvino=kind == SPANQA_OPENVINO)
    marker.write_text(json.dumps(source), encoding="utf-8")  # only after the export is complete and in place
    print(f"{PROGRAM}: exported {kind} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return str(folder)


def prepare_models(
    systems: tuple[SystemSpec, ...], options: BenchOptions, checkpoint: Path, work_dir: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """Paths of the models the systems need, and the reason for each one that could not be made."""
    given = {SPANQA_FP32: options.onnx_fp32, SPANQA_INT8: options.onnx_int8}
    if options.onnx_int8 and _has_openvino_graph(options.onnx_int8):  # that folder serves both int8 systems
        given[SPANQA_OPENVINO] = options.onnx_int8
    paths, failures = {CHECKPOINT: str(checkpoint)}, {}
    needed = sorted({spec.model for spec in systems} - {CHECKPOINT})
    fingerprint = checkpoint_fingerprint(checkpoint) if needed else ""
    for kind in needed:
        if given.get(kind):
            paths[kind] = given[kind]
            continue
        try:
            paths[kind] = cached_export(kind, checkpoint, work_dir, fingerprint, options.calibration)
        except Exception as error:  # one failed export must not cost the other systems their run
            failures[kind] = f"export failed: {type(error).__name__}: {error}".splitlines()[0]
            print(f"{PROGRAM}: {failures[kind]}", file=sys.stderr)
    return paths, failures
