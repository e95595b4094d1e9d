"""The systems qa-bench compares, what each needs, and what one timed pass of a system reports.

A system is one way a user could answer SQuAD questions with the same trained checkpoint. The runners that drive
them live in bench_seed.py, bench_pipelines.py and bench_spanqa.py; each runs in its own process (bench_worker.py),
so this module only describes them and must stay cheap to import.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from spanqa.engine.core.data import QAExample

# Which prepared model a system loads: the checkpoint itself, or an export cached in the work folder.
CHECKPOINT = "checkpoint"
OPTIMUM_FP32, OPTIMUM_INT8 = "optimum-fp32", "optimum-int8"
SPANQA_FP32, SPANQA_INT8 = "spanqa-fp32", "spanqa-int8"


@dataclass(frozen=True)
class SystemSpec:
    name: str
    family: str  # seed | hf-pipeline | optimum | spanqa: the column groups of the report
    runtime: str
    precision: str  # fp32 | int8 | fp16
    model: str  # one of the prepared-model names above
    description: str
    devices: tuple[str, ...] = ("cpu", "cuda")  # where it can run; ONNX Runtime here is the CPU build


SYSTEMS: dict[str, SystemSpec] = {
    spec.name: spec
    for spec in (
        SystemSpec("seed", "seed", "PyTorch eager", "fp32", CHECKPOINT,
                   "the notebook's way: every window padded to 384, batches of 16, its Python n-best post-processing"),
        SystemSpec("hf-pipeline", "hf-pipeline", "PyTorch eager", "fp32", CHECKPOINT,
                   'transformers pipeline("question-answering") at its best batch size'),
        SystemSpec("hf-pipeline-fp16", "hf-pipeline", "PyTorch eager", "fp16", CHECKPOINT,
                   "the same pipeline with the model in fp16", devices=("cuda",)),
        SystemSpec("optimum-fp32", "optimum", "ONNX Runtime", "fp32", OPTIMUM_FP32,
                   "ORTModelForQuestionAnswering (Optimum's export) through the pipeline", devices=("cpu",)),
        SystemSpec("optimum-int8", "optimum", "ONNX Runtime", "int8", OPTIMUM_INT8,
                   "the same, dynamically quantized by Optimum's ORTQuantizer (avx512_vnni, per channel)",
                   devices=("cpu",)),
        SystemSpec("spanqa-fp32", "spanqa", "ONNX Runtime", "fp32", SPANQA_FP32,
                   "QAEngine on qa-export's fp32 model", devices=("cpu",)),
        SystemSpec("spanqa-int8", "spanqa", "ONNX Runtime", "int8", SPANQA_INT8,
                   "QAEngine on qa-export's int8 model", devices=("cpu",)),
        SystemSpec("spanqa-torch", "spanqa", "PyTorch eager", "fp32", CHECKPOINT,
                   "QAEngine's torch backend on the checkpoint"),
        SystemSpec("spanqa-fp16", "spanqa", "PyTorch eager", "fp16", CHECKPOINT,
                   "QAEngine's torch backend, fp16 autocast", devices=("cuda",)),
    )  # fmt: skip
}

DEFAULT_SYSTEMS = {
    "cpu": ("seed", "hf-pipeline", "optimum-fp32", "optimum-int8", "spanqa-fp32", "spanqa-int8", "spanqa-torch"),
    "cuda": ("seed", "hf-pipeline", "hf-pipeline-fp16", "spanqa-torch", "spanqa-fp16"),
}


def resolve_systems(requested: str | None, device: str) -> tuple[SystemSpec, ...]:
    """The systems named in a comma-separated list (default: all that run on `device`); ValueError names any problem."""
    names = DEFAULT_SYSTEMS[device] if not requested else tuple(n.strip() for n in requested.split(",") if n.strip())
    if not names:
        raise ValueError("--systems: no system named")
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        raise ValueError(f"--systems: unknown {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--systems: {', '.join(repeated)} named more than once")
    elsewhere = [name for name in names if device not in SYSTEMS[name].devices]
    if elsewhere:
        where = "; ".join(f"{name} runs on {'/'.join(SYSTEMS[name].devices)} only" for name in elsewhere)
        raise ValueError(f"--systems: not runnable with --device {device}: {where}")
    return tuple(SYSTEMS[name] for name in names)


@dataclass
class StageClock:
    """Seconds spent per stage, added up over a pass. A stage a system cannot split honestly is never added to,
    and reads as None (n/a) rather than 0."""

    seconds: dict[str, float] = field(default_factory=dict)
    batch_seconds: list[float] = field(default_factory=list)  # one per model call
    batch_shapes: list[tuple[int, int]] = field(default_factory=list)  # (windows, padded width) per model call

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def get(self, stage: str) -> float | None:
        return self.seconds.get(stage)

    def timed(self, stage: str, function: Callable[..., Any], batch_shape: Callable[[Any], tuple[int, int]] | None = None):
        """`function` wrapped to add its run time to `stage`; with `batch_shape`, each call is also one model batch,
        of batch_shape(first argument) = (windows, padded width), recorded for latencies and padding."""

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            result = function(*args, **kwargs)
            elapsed = time.perf_counter() - started
            self.add(stage, elapsed)
            if batch_shape is not None:
                self.batch_seconds.append(elapsed)
                self.batch_shapes.append(batch_shape(args[0]))
            return result

        return wrapper

    def timed_generator(self, stage: str, function: Callable[..., Iterator[Any]]):
        """Like `timed` for a generator function: only the time spent producing items counts, not the consumer's."""

        def wrapper(*args, **kwargs) -> Iterator[Any]:
            generator = function(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(generator)
                except StopIteration:
                    self.add(stage, time.perf_counter() - started)
                    return
                self.add(stage, time.perf_counter() - started)
                yield item

        return wrapper


@dataclass(frozen=True)
class PassResult:
    """One timed pass of a system over all the benchmark's questions."""

    seconds: float  # wall time, end to end: questions in, answer texts out
    tokenize_seconds: float | None
    infer_seconds: float | None
    decode_seconds: float | None
    batch_seconds: tuple[float, ...]
    batch_shapes: tuple[tuple[int, int], ...]  # (windows, padded width) of each model call
    answers: tuple[str, ...]  # in question order

    @classmethod
    def from_clock(cls, seconds: float, clock: StageClock, answers: list[str]) -> PassResult:
        return cls(seconds, clock.get("tokenize"), clock.get("infer"), clock.get("decode"),
                   tuple(clock.batch_seconds), tuple(clock.batch_shapes), tuple(answers))  # fmt: skip


class Runner(Protocol):
    """A loaded system. `run` answers every question once and times itself; `settings` says what it chose."""

    settings: dict[str, Any]

    def run(self, examples: list[QAExample]) -> PassResult: ...


def dtype_argument(dtype) -> dict[str, Any]:
    """The from_pretrained keyword for a torch dtype: transformers 4.56 renamed `torch_dtype` to `dtype` and warns
    on the old name; the project supports releases on both sides."""
    import transformers
    from packaging.version import Version

    return {"dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype": dtype}
