"""`AnswerService`: one request's way through the service, from its body to its answers, and what it may cost.

A request is admitted (`limits.Admission`, else 503); its body is read (within its cap) and parsed, and its records
tokenized in the prepare threads (`parsing.parse_body`, `batcher.make_unit`): nothing heavy runs on the event loop,
where only a small body is parsed (`INLINE_PARSE_BYTES`). Its records join the batcher's queue, and the request
awaits their answers, all within `request_timeout_s` (else 504: its records leave the queue, and a batch already
running finishes without it). Everything here but `warm_up` and `close` runs on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from spanqa.engine.runtime.engine import QAEngine
from spanqa.engine.serve.batcher import DynamicBatcher, ShuttingDown, Unit, make_unit
from spanqa.engine.serve.limits import Admission, Overloaded, Ticket
from spanqa.engine.serve.metrics import ServeMetrics
from spanqa.engine.serve.options import ServeOptions
from spanqa.engine.serve.parsing import ParsedRequest, encode_answers, parse_body, top_k_of

# The question the service answers once before it says it is ready: the first call through a fresh session is
# the slow one (memory arenas, kernels chosen), and no client should pay for it.
WARM_UP_RECORD = b'{"id": "warm-up", "question": "Who answers?", "context": "The service answers questions."}'


# A body this small is parsed on the event loop (tens of microseconds): a hop to a thread and back would cost more
# than the parse, in latency, under load. Larger ones are parsed in a prepare thread.
INLINE_PARSE_BYTES = 16 * 1024


class RequestTimeout(Exception):
    """The request's answers did not come within `request_timeout_s` (504)."""


class AnswerService:
    def __init__(self, engine: QAEngine, options: ServeOptions) -> None:
        self.engine = engine
        self.options = options
        self.metrics = ServeMetrics()
        self.admission = Admission(options.max_concurrent, options.max_queued_questions, options.retry_after_s)
        self.batcher = DynamicBatcher(engine, options.max_queue_delay_s, self.metrics.observe_batch,
                                      options.packing_window)  # fmt: skip
        self._prepare = ThreadPoolExecutor(options.prepare_threads, thread_name_prefix="spanqa-serve-prepare")
        self.ready = False
        self._settings = engine.answer_settings()  # hashes the model's files: once, not per /v1/model

    def warm_up(self) -> None:
        """Answer one question through the whole path (call from a thread other than the event loop's)."""
        parsed = self._parse(WARM_UP_RECORD)
        units = self._units(parsed)
        self.batcher.submit(units, expected=False)
        for unit in units:
            unit.future.result(timeout=max(60.0, self.options.request_timeout_s))
        self.ready = True

    async def answer(self, read_body: Callable[[], Awaitable[bytes]]) -> bytes:
        """The response body for the request whose body `read_body` reads; raises `RequestError`, `Overloaded` or
        `RequestTimeout`. The request is admitted before its body is read, so a refused one is never read, and the
        batcher knows that it is on its way (its flush rule 2) while it is."""
        ticket = self.admission.admit()
        self.metrics.in_progress.inc()
        try:
            return await asyncio.wait_for(self._answer(read_body, ticket), self.options.request_timeout_s)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"no answer within {self.options.request_timeout_s:g} s") from None
        finally:
            self.admission.release(ticket)
            self.metrics.in_progress.dec()
            self.metrics.queue_depth.set(self.batcher.queued)

    async def _answer(self, read_body: Callable[[], Awaitable[bytes]], ticket: Ticket) -> bytes:
        loop = asyncio.get_running_loop()
        units: list[Unit] = []
        self.batcher.expect()
        submitted = False
        try:
            body = await read_body()
            if len(body) <= INLINE_PARSE_BYTES:
                parsed = self._parse(body)
            else:
                parsed = await loop.run_in_executor(self._prepare, self._parse, body)
            self.admission.add_questions(ticket, len(parsed.records))
            units = await loop.run_in_executor(self._prepare, self._units, parsed)
            self.batcher.submit(units)
            submitted = True
            self.metrics.queue_depth.set(self.batcher.queued)
            answers = await asyncio.gather(*(asyncio.wrap_future(unit.future) for unit in units))
        except ShuttingDown as error:  # past the drain: the batcher has stopped
            raise Overloaded(str(error), self.options.retry_after_s) from None
        except asyncio.CancelledError:  # the timeout: what is still queued leaves the queue
            self.batcher.cancel(units)
            raise
        finally:
            if not submitted:
                self.batcher.withdraw()
        return encode_answers(answers, parsed.records, parsed.single)

    def model_info(self) -> dict[str, Any]:
        """GET /v1/model: the model folder, its manifest, what decides the answers, and the service's options."""
        engine = self.engine
        return {
            "model_dir": str(engine.model_dir),
            "backend": engine.backend.name,
            "workers": len(engine.worker_backends),
            "manifest": None if engine.manifest is None else asdict(engine.manifest),
            "answer_settings": self._settings,
            "engine_options": asdict(engine.options),
            "serve_options": asdict(self.options),
        }

    def close(self) -> None:
        """Answer what is queued, then stop the threads (after the server stopped taking requests)."""
        self.batcher.close()
        self._prepare.shutdown(wait=True)

    def _parse(self, body: bytes) -> ParsedRequest:
        return parse_body(body, self.options.max_questions_per_request, self.options.max_context_chars)

    def _units(self, parsed: ParsedRequest) -> list[Unit]:
        return [make_unit(self.engine, record.to_example(), top_k_of(record)) for record in parsed.records]
