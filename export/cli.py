"""`qa-export CHECKPOINT --output DIR [--precision fp32|int8|fp16] ...`: a thin layer over `export_model`.

Exit codes (engine/cli/common.py): 0 published; 1 the parity gate failed (nothing written) or an unexpected failure
(one line; --debug adds the traceback);
2 bad input (checkpoint, options, data, output path), each as one line on stderr naming the culprit.
On success one JSON line on stdout summarises the folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict

from spanqa.engine.cli.common import EXIT_FAILURE, EXIT_OK, CommandError, add_debug_flag, print_error, require_extra, run_command

from spanqa.export.options import CALIBRATION_RULES, DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, PRECISIONS, ExportError, ExportOptions

PROGRAM = "qa-export"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Export a transformers question-answering checkpoint to an optimized ONNX model folder "
        "(model.onnx, config, tokenizer, manifest.json) for the spanqa engine, after checking it against PyTorch.",
    )
    parser.add_argument("checkpoint", help="a transformers QA model folder (safetensors weights) or a Hub name")
    parser.add_argument("--output", required=True, help="folder to create (written atomically; refused if it exists)")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32",
        help="fp32; int8 (CPU: u8 activations, s8 per-channel weights; static with --calibration, else dynamic); "
        "fp16 (GPU; its parity gate needs onnxruntime-gpu) (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--opset", type=int, help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default: {DEFAULT_OPSET})")
    parser.add_argument(
        "--validation", metavar="DATA",
        help="SQuAD JSON/JSONL with answers for the parity gate (default: the built-in sample questions)",
    )  # fmt: skip
    parser.add_argument(
        "--calibration", metavar="DATA",
        help="int8: TRAINING data (SQuAD JSON/JSONL or a dataset name, split train) whose windows fix every "
        "activation scale, so each answer is independent of its batch mates (default: dynamic int8)",
    )  # fmt: skip
    parser.add_argument(
        "--calibration-examples", type=int, default=256, help="questions drawn from --calibration (default: %(default)s)"
    )
    parser.add_argument(
        "--calibration-rule", choices=CALIBRATION_RULES, default="mean-minmax",
        help="activation ranges: mean of per-batch min/max, or the widest seen (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--skip-layer-norm", choices=("auto", "fused", "unfused"), default="auto",
        help="residual Add + LayerNorm as one SkipLayerNormalization (fused) or two ops; auto: fused for fp16 (GPU), "
        "unfused for fp32/int8 (CPU, where the fused kernel is slower) (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--openvino", action="store_true",
        help="also write the model as OpenVINO IR (fp16 weights), which the engine runs where openvino is installed "
        "and the CPU has bf16 units (fp32 and int8; needs the openvino package)",
    )  # fmt: skip
    parser.add_argument("--no-optimize", action="store_true", help="skip ONNX Runtime's fusions (plain graph)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing qa-export folder at --output")
    parser.add_argument("--force", action="store_true", help="publish even if parity fails (recorded as failed)")
    parser.add_argument("--skip-parity", action="store_true", help="no parity gate; the manifest records parity: null")
    parser.add_argument("--allow-pickle", action="store_true", help="accept pickle weights (*.bin/*.pt): runs code")
    parser.add_argument("--max-length", type=int, default=384, help="window length (default: %(default)s)")
    parser.add_argument("--stride", type=int, default=128, help="window overlap in tokens (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="parity-gate windows per batch (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="only errors on stderr")
    return add_debug_flag(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROGRAM, build_parser(), _export, argv, interrupted="interrupted; nothing was written")


def _export(arguments: argparse.Namespace) -> int:
    require_extra("export")
    _configure_logging(arguments.quiet)
    # Imported here so that --help and usage errors do not pay for torch, transformers and onnxruntime.
    from spanqa.export.run import ParityFailed, export_model

    try:
        options = ExportOptions(
            checkpoint=arguments.checkpoint,
            output=arguments.output,
            precision=arguments.precision,
            opset=arguments.opset,
            validation=arguments.validation,
            optimize=not arguments.no_optimize,
            force=arguments.force,
            skip_parity=arguments.skip_parity,
            overwrite=arguments.overwrite,
            allow_pickle=arguments.allow_pickle,
            max_length=arguments.max_length,
            stride=arguments.stride,
            batch_size=arguments.batch_size,
            calibration=arguments.calibration,
            calibration_examples=arguments.calibration_examples,
            calibration_rule=arguments.calibration_rule,
            openvino=arguments.openvino,
            fuse_skip_layer_norm={"auto": None, "fused": True, "unfused": False}[arguments.skip_layer_norm],
        )
        result = export_model(options)
    except ParityFailed as failure:  # the one-line error, then the parity figures behind it as JSON
        print_error(PROGRAM, str(failure))
        print(json.dumps({"parity": asdict(failure.report)}), file=sys.stderr)
        return EXIT_FAILURE
    except ExportError as error:
        raise CommandError(str(error)) from None
    manifest = result.manifest
    print(json.dumps({
        "output": str(result.output),
        "precision": manifest.precision,
        "model_bytes": result.model_bytes,
        "input_names": list(manifest.input_names),
        "fused_ops": {op: count for op, count in manifest.fused_ops.items() if count},
        "parity": asdict(manifest.parity) if manifest.parity is not None else None,
        "seconds": result.seconds,
    }))  # fmt: skip
    return EXIT_OK


def _configure_logging(quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROGRAM}: %(message)s"))
    package_logger = logging.getLogger("spanqa.export")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(level)
    package_logger.propagate = False


if __name__ == "__main__":
    sys.exit(main())
