"""qa-bench's settings: one frozen dataclass, checked when it is made, and the error for a bad argument."""

from __future__ import annotations

from dataclasses import dataclass, field

PROGRAM = "qa-bench"
ENGINE_OVERRIDES = ("max_batch_tokens", "max_batch_windows", "lookahead")


class BenchInputError(ValueError):
    """A bad argument or input file; the message names it."""


@dataclass(frozen=True)
class BenchOptions:
    model: str  # a transformers QA checkpoint folder
    data: str
    limit: int | None = None
    systems: str | None = None  # comma-separated names; None: every system that runs on the device
    device: str = "auto"  # auto | cpu | cuda: where the PyTorch systems run (ONNX Runtime ones run on the CPU)
    work_dir: str = "runs/qa-bench"
    onnx_fp32: str | None = None  # existing qa-export folders to use instead of exporting
    onnx_int8: str | None = None
    repeats: int = 3
    rounds: int = 1
    warmup_questions: int = 32
    batch_sizes: tuple[int, ...] = (1, 8, 32)  # pipelines' batch-size search
    search_questions: int = 64
    reference: str = "seed"  # agreement is measured against this system's answers
    ceiling: bool = True
    micro: bool = False
    train_data: str | None = None  # for the training-throughput micro-benchmark
    # Training data for spanqa-int8's export: static int8 calibrated on it (qa-export --calibration); None: dynamic
    calibration: str | None = None
    worker_timeout: int = 3 * 3600
    # EngineOptions fields set for the spanqa systems (max_batch_tokens, max_batch_windows, lookahead); empty: defaults
    engine_overrides: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("repeats", "rounds", "search_questions", "worker_timeout"):
            if getattr(self, name) < 1:
                raise BenchInputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise BenchInputError(f"--limit must be at least 1, got {self.limit}")
        if self.warmup_questions < 1:
            raise BenchInputError(f"--warmup-questions must be at least 1, got {self.warmup_questions}")
        if not self.batch_sizes or any(size < 1 for size in self.batch_sizes):
            raise BenchInputError(f"--batch-sizes must be positive integers, got {','.join(map(str, self.batch_sizes))}")
        for name, value in self.engine_overrides.items():
            if name not in ENGINE_OVERRIDES or value < 1:
                raise BenchInputError(f"--spanqa-{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise BenchInputError(f"--device must be auto, cpu or cuda, got {self.device!r}")
