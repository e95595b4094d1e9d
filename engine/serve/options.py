"""Options of qa-serve: where it listens, how long a request may wait in the batcher, and its limits.

The batch budget itself (`max_batch_tokens`, `max_batch_windows`) is the engine's (`EngineOptions`): the service
packs its batches under the engine's budget. qa-serve sets its own default (`SERVE_BATCH_TOKENS`, measured on a
service's batches; it equals qa-answer's since the engine's default became 512). Answers do not depend on it (fp32,
static int8), only speed does.
"""

from __future__ import annotations

from dataclasses import dataclass

from spanqa.engine.core.records import MAX_LINE_BYTES

DEFAULT_HOST = "127.0.0.1"  # loopback: exposing the service is a choice made with --host
DEFAULT_PORT = 8000
# qa-serve's --max-batch-tokens default. Measured with benchmarks/serve_load.py's saturated phase (64 clients, the
# shipped int8 model, 1000 SQuAD dev questions, 2 workers x 1 thread, loaded 2-core machine, phases interleaved):
# 512 tokens answered 48-52 q/s against 39 and 24 at the engine's 1024 and 41-45 with one record a batch, with 1.8%
# padding against 9-11% (records of unlike length share a batch more often than in qa-answer's sorted groups of 256),
# and a p95 latency of 2.5 s against 4-6 s. (The engine's own default became 512 later, measured on qa-answer's
# batches: runtime/options.py.)
SERVE_BATCH_TOKENS = 512


@dataclass(frozen=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port (tests)
    # A batch is flushed when the budget is full, when nothing more is on its way, or when its oldest question has
    # waited this long for batch mates (Triton's max_queue_delay). A few ms: at low load, waiting gains little.
    max_queue_delay_ms: float = 5.0
    # A batch's mates are chosen among this many of the oldest queued records (packing rule 2): enough to find
    # records of like length (less padding), and a bound on how long a record waits behind younger ones (once among
    # the oldest this many, each batch takes the oldest). A judgement, not a measurement: at 64 clients the latency
    # tail followed the batch budget and the machine's load, not this window (one record a batch had as long a tail).
    packing_window: int = 16
    # Requests admitted at once (queued, in the model, or being read); the next one gets 503 with Retry-After.
    max_concurrent: int = 256
    # Questions admitted at once over all requests (a list request counts each of its questions): the queue's bound.
    max_queued_questions: int = 4096
    max_questions_per_request: int = 256  # more in one request: 413
    # The request body as sent; a larger one is refused (413) without being read whole. Bounded by the longest line
    # qa-answer reads, since a body holds what a line would.
    max_body_bytes: int = 8 * 1024 * 1024
    max_context_chars: int = 1_000_000  # one context longer than this: 413 (its windows would hold the queue up)
    request_timeout_s: float = 30.0  # from admission to answer; past it: 504, and the question leaves the queue
    retry_after_s: int = 1  # the Retry-After header of a 503
    # On SIGTERM: requests in flight get this long to finish before the server closes anyway.
    drain_timeout_s: float = 30.0
    prepare_threads: int = 2  # threads that parse, validate and tokenize requests (off the event loop)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.max_queue_delay_ms < 0:
            raise ValueError(f"max_queue_delay_ms must be >= 0, got {self.max_queue_delay_ms}")
        for name in ("packing_window", "max_concurrent", "max_queued_questions", "max_questions_per_request", "max_body_bytes",
                     "max_context_chars", "retry_after_s", "prepare_threads"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("request_timeout_s", "drain_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_body_bytes > MAX_LINE_BYTES:
            raise ValueError(
                f"max_body_bytes must be <= {MAX_LINE_BYTES} (qa-answer's longest line), got {self.max_body_bytes}"
            )
        if self.max_questions_per_request > self.max_queued_questions:
            raise ValueError(
                f"max_questions_per_request ({self.max_questions_per_request}) must not exceed max_queued_questions "
                f"({self.max_queued_questions}): such a request could never be admitted"
            )

    @property
    def max_queue_delay_s(self) -> float:
        return self.max_queue_delay_ms / 1000.0
