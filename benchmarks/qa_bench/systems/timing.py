"""What one timed pass of a benchmark system reports, and the clock the runners time their stages with."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from spanqa.engine.core.data import QAExample


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
