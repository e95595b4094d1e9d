"""`export_model`: checkpoint -> ONNX -> (fusion) -> (int8 [-> calibration -> integer GEMMs] | fp16) -> parity gate
[-> OpenVINO graph (--openvino), gated too] -> published folder.

Nothing is written at the output path until the folder is complete: the model is built in a hidden staging folder
beside the output (same filesystem, so the final rename is atomic), the manifest is written last, and only then is
the staging folder renamed into place. A failure at any step (bad input, a failed parity gate, Ctrl-C) removes the
staging and scratch folders and leaves the output path as it was.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from spanqa.engine.core.data import QAExample
from spanqa.engine.core.windows import WindowOptions, Windows
from spanqa.engine.core.model_folder import MODEL_FILE, Calibration, Manifest, write_manifest

from spanqa.export.calibrate import calibrate_int8, load_calibration_examples

from spanqa.export.checkpoint import Checkpoint, load_checkpoint
from spanqa.export.fp16 import PARITY_PROVIDER, convert_fp16, fp16_parity_available
from spanqa.export.onnx_export import EXPORTER, GraphSignature, export_plain_onnx, graph_signature, model_input_names
from spanqa.export.gate import ParityFailed, gate_onnx, gate_openvino  # noqa: F401 - ParityFailed: run's API
from spanqa.export.integer_gemm import fold_integer_gemms
from spanqa.export.openvino_ir import openvino_missing, openvino_record, write_openvino_graph
from spanqa.export.optimize import check_fusions_kept, count_fused_ops, fuse_graph
from spanqa.export.options import ExportError, ExportOptions
from spanqa.export.parity import load_validation, prepare_windows
from spanqa.export.publish import check_output, publish, staging_folder
from spanqa.export.quantize import quantize_int8

logger = logging.getLogger(__name__)

EXPECTED_OUTPUTS = ("start_logits", "end_logits")
_POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "camembert")
_VERSIONED_PACKAGES = ("spanqa", "transformers", "optimum", "optimum-onnx", "torch", "onnx", "onnxruntime")


@dataclass(frozen=True)
class ExportResult:
    output: Path
    manifest: Manifest
    model_bytes: int  # size of model.onnx
    seconds: float


def export_model(options: ExportOptions) -> ExportResult:
    began = time.perf_counter()
    output = Path(options.output).expanduser().absolute()
    check_output(output, options.overwrite)
    window_options = _window_options(options)
    # Cheap refusals first, so a bad flag or data file fails in seconds rather than after the export.
    if options.precision == "fp16" and not options.skip_parity and not fp16_parity_available():
        raise ExportError(
            f"--precision fp16: the parity gate needs ONNX Runtime's {PARITY_PROVIDER} (onnxruntime-gpu and a GPU), "
            "and this onnxruntime has none. On the CPU provider ONNX Runtime folds fp16 weights back to fp32 and "
            "computes in fp32, so it cannot measure fp16 accuracy. Export on a GPU machine, or pass --skip-parity "
            "to write the model with parity: null"
        )
    if options.openvino and (missing := openvino_missing()):
        raise ExportError(missing)
    validation = None if options.skip_parity else load_validation(options.validation)
    calibration = None
    if options.calibration is not None:
        calibration = load_calibration_examples(options.calibration, options.calibration_examples)
    checkpoint = load_checkpoint(options.checkpoint, options.allow_pickle)
    _check_window_fits(checkpoint, window_options)
    probe = validation.examples if validation is not None else [QAExample("probe", "Is this a question?", "Some text.")]
    windows = prepare_windows(checkpoint.tokenizer, probe, window_options)
    calibration_windows = None if calibration is None else prepare_windows(checkpoint.tokenizer, calibration, window_options)

    with staging_folder(output, "partial") as stage, staging_folder(output, "work") as work:
        graph, signature, fused_ops, calibrated = _build_graph(checkpoint, options, work, calibration_windows)
        shutil.copyfile(graph, stage / MODEL_FILE)
        checkpoint.model.config.save_pretrained(stage)
        checkpoint.tokenizer.save_pretrained(stage)
        parity = gate_onnx(checkpoint, stage / MODEL_FILE, options, validation, windows)
        openvino = None
        if options.openvino:  # from the plain graph, which _build_graph wrote first
            write_openvino_graph(work / "plain" / MODEL_FILE, stage)
            openvino = openvino_record(gate_openvino(checkpoint, stage, options, validation, windows))
        manifest = Manifest(
            precision=options.precision,
            opset=signature.opset,
            model_type=checkpoint.family.model_type,
            input_names=signature.input_names,
            output_names=signature.output_names,
            exporter=EXPORTER,
            calibration=None if calibration is None else Calibration(
                source=options.calibration, examples=len(calibration), windows=calibrated.windows,
                rule=calibrated.rule, tensors=calibrated.tensors,
            ),  # fmt: skip
            openvino=openvino,
            source_checkpoint=options.checkpoint,
            source_sha256=checkpoint.sha256,
            onnxruntime_version=_version("onnxruntime"),
            fused_ops=fused_ops,
            parity=parity,
            window=window_options,
            versions={name: _version(name) for name in _VERSIONED_PACKAGES},
        )
        write_manifest(stage, manifest)  # last: a folder without it is not a finished export
        model_bytes = (stage / MODEL_FILE).stat().st_size
        publish(stage, output, options.overwrite)
    return ExportResult(output, manifest, model_bytes, round(time.perf_counter() - began, 1))


def _build_graph(checkpoint: Checkpoint, options: ExportOptions, work: Path, calibration_windows: Windows | None):
    """Plain export, then fusion (unless disabled), then the precision change (and, for static int8, calibration).
    Returns the final graph, its signature, its fused-operator counts and the calibration report (or None)."""
    config = checkpoint.model.config
    input_names = model_input_names(checkpoint.model, checkpoint.tokenizer)
    calibrated = None
    graph = export_plain_onnx(checkpoint.model, work / "plain", options.opset, input_names)
    signature = graph_signature(graph)
    if signature.output_names != EXPECTED_OUTPUTS:
        raise ExportError(f"the exported graph's outputs are {signature.output_names}, expected {EXPECTED_OUTPUTS}")
    inputs = ", ".join(signature.input_names)
    logger.info("exported %s (opset %d, inputs %s)", checkpoint.family.model_type, signature.opset, inputs)
    if options.optimize:
        fused = work / "fused.onnx"
        skip_layer_norm = options.fuse_skip_layer_norm
        if skip_layer_norm is None:
            skip_layer_norm = options.precision == "fp16"
        counts = fuse_graph(graph, fused, config, checkpoint.family, skip_layer_norm)
        logger.info("fused: %s", ", ".join(f"{op} {n}" for op, n in counts.items() if n) or "nothing")
        graph = fused
    else:
        counts = count_fused_ops(_load(graph))
    if options.precision == "int8":
        quantized = work / "int8.onnx"
        quantize_int8(graph, quantized)
        after = count_fused_ops(_load(quantized))
        check_fusions_kept(counts, after, "int8 quantization")
        graph, counts = quantized, after
        if calibration_windows is not None:
            static = work / "int8-static.onnx"
            calibrated = calibrate_int8(graph, static, calibration_windows, checkpoint.tokenizer.pad_token_id,
                                        options.calibration_rule)  # fmt: skip
            logger.info("calibrated %d activation scales on %d training windows (%s)",
                        calibrated.tensors, calibrated.windows, calibrated.rule)  # fmt: skip
            graph = work / "int8-static-folded.onnx"
            folded = fold_integer_gemms(static, graph)
            logger.info("folded dequantization into %d MatMulIntegerToFloat GEMMs", folded)
            after = count_fused_ops(_load(graph))
            check_fusions_kept(counts, after, "int8 calibration and GEMM folding")
            counts = after
    elif options.precision == "fp16":
        halved = work / "fp16.onnx"
        convert_fp16(graph, halved)
        after = count_fused_ops(_load(halved))
        check_fusions_kept(counts, after, "fp16 conversion")
        graph, counts = halved, after
    final_signature = graph_signature(graph)
    if final_signature.input_names != signature.input_names or final_signature.output_names != signature.output_names:
        raise ExportError(f"graph rewriting changed the model's inputs/outputs: {signature} -> {final_signature}")
    return graph, final_signature, counts, calibrated


def _window_options(options: ExportOptions) -> WindowOptions:
    try:
        return WindowOptions(options.max_length, options.stride, options.max_question_tokens)
    except ValueError as error:
        raise ExportError(f"window options: {error}") from None


def _check_window_fits(checkpoint: Checkpoint, window_options: WindowOptions) -> None:
    config = checkpoint.model.config
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and config.model_type in _POSITIONS_AFTER_PADDING:
        positions -= config.pad_token_id + 1  # RoBERTa numbers positions from padding_idx + 1
    if positions is not None and window_options.max_length > positions:
        raise ExportError(
            f"--max-length {window_options.max_length} exceeds the {positions} positions of {checkpoint.source}"
        )


def _load(path: Path):
    import onnx

    return onnx.load(path)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
