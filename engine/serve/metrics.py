"""The service's Prometheus metrics, in a registry of its own (no process-global state: two services in one process,
as in the tests, keep apart).

- spanqa_requests_total{route, status}: requests answered, by route and HTTP status
- spanqa_request_seconds{route}: latency from the request's arrival to its response
- spanqa_batch_records / spanqa_batch_rows / spanqa_batch_tokens: records, windows and real tokens per model batch
- spanqa_padded_tokens_total: padded positions (rows x width) over all batches; against spanqa_batch_tokens_sum it
  is the padding, which the gauge spanqa_padding_fraction gives over the batches so far
- spanqa_queue_wait_seconds: how long a record waited in the queue for its batch
- spanqa_model_seconds: time a worker spent on one batch (all its model runs)
- spanqa_queue_depth (records waiting), spanqa_requests_in_progress (admitted requests)
"""

from __future__ import annotations

import threading

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from spanqa.engine.serve.batcher import BatchReport

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter("spanqa_requests", "Requests answered, by route and HTTP status", ["route", "status"],
                                registry=registry)  # fmt: skip
        self.latency = Histogram("spanqa_request_seconds", "Request latency, arrival to response", ["route"],
                                 buckets=_LATENCY_BUCKETS, registry=registry)  # fmt: skip
        self.batch_records = Histogram("spanqa_batch_records", "Records per model batch", buckets=_SIZE_BUCKETS,
                                       registry=registry)  # fmt: skip
        self.batch_rows = Histogram("spanqa_batch_rows", "Windows per model batch", buckets=_SIZE_BUCKETS,
                                    registry=registry)  # fmt: skip
        self.batch_tokens = Histogram("spanqa_batch_tokens", "Real tokens per model batch", buckets=_TOKEN_BUCKETS,
                                      registry=registry)  # fmt: skip
        self.padded_total = Counter("spanqa_padded_tokens", "Padded positions (rows x width) over all batches",
                                    registry=registry)  # fmt: skip
        self.padding = Gauge("spanqa_padding_fraction", "1 - real tokens / padded positions, over all batches",
                             registry=registry)  # fmt: skip
        self.queue_wait = Histogram("spanqa_queue_wait_seconds", "Seconds a record waited for its batch",
                                    buckets=_LATENCY_BUCKETS, registry=registry)  # fmt: skip
        self.model_seconds = Histogram("spanqa_model_seconds", "Seconds a worker spent on one batch",
                                       buckets=_LATENCY_BUCKETS, registry=registry)  # fmt: skip
        self.queue_depth = Gauge("spanqa_queue_depth", "Records waiting for a batch", registry=registry)
        self.in_progress = Gauge("spanqa_requests_in_progress", "Requests admitted and not yet answered",
                                 registry=registry)  # fmt: skip
        self._tokens = 0
        self._padded = 0
        self._lock = threading.Lock()

    def observe_batch(self, report: BatchReport) -> None:
        """Called from a worker's thread (prometheus_client's metrics are thread-safe)."""
        self.batch_records.observe(report.records)
        self.batch_rows.observe(report.rows)
        self.batch_tokens.observe(report.tokens)
        self.padded_total.inc(report.padded_tokens)
        for seconds in report.waited:
            self.queue_wait.observe(seconds)
        self.model_seconds.observe(report.model_seconds)
        with self._lock:
            self._tokens += report.tokens
            self._padded += report.padded_tokens
            self.padding.set(1.0 - self._tokens / self._padded if self._padded else 0.0)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
