"""The parity gate's verdict for each graph an export writes: publish, refuse (ParityFailed), or, with --force,
publish marked as failed. The measuring is parity.run_parity (model.onnx on ONNX Runtime) and
openvino_ir.openvino_parity (the OpenVINO graph); both graphs face the same thresholds."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from spanqa.engine.core.model_folder import ParityReport
from spanqa.engine.core.windows import Windows
from spanqa.export.checkpoint import Checkpoint
from spanqa.export.openvino_ir import openvino_parity
from spanqa.export.options import ExportError, ExportOptions
from spanqa.export.parity import ValidationSet, run_parity

logger = logging.getLogger(__name__)


class ParityFailed(ExportError):
    """The exported graph missed a parity threshold; nothing was published. CLI exit code 1."""

    def __init__(self, report: ParityReport):
        super().__init__(
            f"parity gate failed on {report.validation} ({report.threshold}): agreement {report.agreement:.2f}%, "
            f"F1 {report.f1:.2f} vs PyTorch {report.reference_f1:.2f}, max |logit diff| {report.max_abs_logit_diff:.4g}; "
            "nothing was written (use --force to publish it anyway, marked as failed)"
        )
        self.report = report


def gate_onnx(
    checkpoint: Checkpoint, graph: Path, options: ExportOptions, validation: ValidationSet | None, windows: Windows
) -> ParityReport | None:
    if validation is None:
        logger.warning("parity gate skipped (--skip-parity): the manifest records parity: null")
        return None
    report = run_parity(
        checkpoint.model, checkpoint.tokenizer, graph, options.precision, validation, windows,
        options.batch_size, options.thresholds,
    )  # fmt: skip
    return _verdict("parity", report, options.force)


def gate_openvino(
    checkpoint: Checkpoint, stage: Path, options: ExportOptions, validation: ValidationSet | None, windows: Windows
) -> ParityReport | None:
    if validation is None:
        return None
    report = openvino_parity(
        checkpoint.model, checkpoint.tokenizer, stage, validation, windows, options.batch_size, options.max_length,
        options.thresholds,
    )  # fmt: skip
    return _verdict("OpenVINO graph parity", report, options.force)


def _verdict(what: str, report: ParityReport, force: bool) -> ParityReport:
    logger.info(
        "%s on %s (%d questions, %d windows): agreement %.2f%%, F1 %.2f vs %.2f, max |logit diff| %.3g -> %s",
        what, report.validation, report.examples, report.windows, report.agreement, report.f1, report.reference_f1,
        report.max_abs_logit_diff, "pass" if report.passed else "FAIL",
    )  # fmt: skip
    if report.passed:
        return report
    if not force:
        raise ParityFailed(report)
    logger.warning("publishing despite the failed parity gate (--force): recorded as passed=false, forced=true")
    return replace(report, forced=True)
