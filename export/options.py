"""What an export is asked to do, the parity thresholds it must meet, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Precision = Literal["fp32", "int8", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "int8", "fp16")
CALIBRATION_RULES = ("mean-minmax", "minmax")  # see export/calibrate.py

# 14 is the first opset with scaled_dot_product_attention (how transformers' encoders export); 23 is the newest
# torch 2.13's exporter writes, and onnxruntime 1.32 loads it.
MIN_OPSET = 14
MAX_OPSET = 23
DEFAULT_OPSET = 18  # what Optimum chose for these encoders, so graphs match the ones exported before


class ExportError(ValueError):
    """Bad input or a refused export: one line that names the culprit (file, option or field). CLI exit code 2."""


@dataclass(frozen=True)
class ParityThresholds:
    """When the exported graph is close enough to PyTorch fp32 to be published (issue #4)."""

    fp32_min_agreement: float = 99.9  # percent of questions whose answer text is identical
    int8_max_f1_drop: float = 1.0  # F1 points below the PyTorch reference
    fp16_max_f1_drop: float = 0.1


@dataclass(frozen=True)
class ExportOptions:
    checkpoint: str  # a transformers question-answering checkpoint: local folder or Hub name
    output: str  # the folder to create (refused if it exists, unless overwrite)
    precision: Precision = "fp32"
    opset: int | None = None  # None: DEFAULT_OPSET
    # SQuAD JSON/JSONL (anything spanqa.engine.core.data.load_examples reads); None: the built-in sample questions.
    validation: str | None = None
    optimize: bool = True  # ONNX Runtime's transformer fusions (Attention, SkipLayerNormalization, ...)
    force: bool = False  # publish even when parity fails (recorded as passed=false, forced=true)
    skip_parity: bool = False  # publish without a parity gate (recorded as parity: null)
    overwrite: bool = False  # replace an existing qa-export folder (only once the new one is complete)
    allow_pickle: bool = False  # accept *.bin/*.pt weights, which unpickle code on load
    max_length: int = 384  # window defaults, used by the parity gate and recorded in the manifest
    stride: int = 128
    max_question_tokens: int = 64
    batch_size: int = 32  # windows per forward pass in the parity gate
    thresholds: ParityThresholds = field(default_factory=ParityThresholds)
    # int8 only: training data (anything load_examples reads) whose windows fix every activation scale (static int8,
    # export/calibrate.py); None: dynamic int8, whose answers depend on their batch mates.
    calibration: str | None = None
    # Fuse each residual Add + LayerNormalization into SkipLayerNormalization: None = only for fp16 (a GPU graph);
    # fp32 and int8 graphs are for the CPU, where the fused kernel is the slower (export/optimize.py).
    fuse_skip_layer_norm: bool | None = None
    calibration_examples: int = 256  # drawn from the calibration data with a fixed seed
    calibration_rule: str = "mean-minmax"  # mean-minmax | minmax (export/calibrate.py)
    # Also write the plain graph as OpenVINO IR with fp16 weights (export/openvino_ir.py), which the engine runs on
    # CPUs with bf16 units: for CPU folders (fp32, int8).
    openvino: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ExportError(f"--precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.opset is not None and not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ExportError(f"--opset: {self.opset} is outside the supported range {MIN_OPSET}..{MAX_OPSET}")
        for name in ("max_length", "batch_size", "max_question_tokens"):
            if getattr(self, name) < 1:
                raise ExportError(f"--{name.replace('_', '-')}: must be positive, got {getattr(self, name)}")
        if self.stride < 0:
            raise ExportError(f"--stride: must not be negative, got {self.stride}")
        if self.force and self.skip_parity:
            raise ExportError("--force and --skip-parity contradict each other: --force publishes a failed parity gate")
        if self.calibration is not None and self.precision != "int8":
            raise ExportError(f"--calibration: only int8 has activation scales to calibrate, not {self.precision}")
        if self.openvino and self.precision == "fp16":
            raise ExportError("--openvino: a CPU graph, for --precision fp32 or int8 (fp16 is the GPU's)")
        if self.calibration_examples < 1:
            raise ExportError(f"--calibration-examples: must be positive, got {self.calibration_examples}")
        if self.calibration_rule not in CALIBRATION_RULES:
            raise ExportError(f"--calibration-rule: {self.calibration_rule!r} is not one of {', '.join(CALIBRATION_RULES)}")
        if not self.checkpoint:
            raise ExportError("CHECKPOINT: empty")
        if not self.output:
            raise ExportError("--output: empty")
