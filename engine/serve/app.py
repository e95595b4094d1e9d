"""The HTTP routes of qa-serve, on FastAPI: the answering route, health, readiness, metrics and the model's card.

Status rule: a request's fault is never a 500. 413: the body, a context or the record count over its limit;
422: a body or record that qa-answer would refuse (the detail names the item and the field); 503 with Retry-After:
the service is full or shutting down; 504: no answer within the request timeout. A 500 means the service itself
failed (the model raised), and then only the requests in that batch are told.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from spanqa.engine.serve.limits import Overloaded
from spanqa.engine.serve.metrics import CONTENT_TYPE
from spanqa.engine.serve.parsing import RequestError
from spanqa.engine.serve.schema import ANSWER_REQUEST_BODY, ANSWER_RESPONSES
from spanqa.engine.serve.service import AnswerService, RequestTimeout

logger = logging.getLogger(__name__)
ANSWER_ROUTE = "/v1/answer"
ROUTES = (ANSWER_ROUTE, "/health", "/ready", "/metrics", "/v1/model", "/docs", "/openapi.json")


def create_app(service: AnswerService) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        warming = asyncio.get_running_loop().run_in_executor(None, _warm_up, service)
        yield
        # Shutdown: the server has stopped taking connections and waited for those in flight (uvicorn's graceful
        # shutdown); refuse whatever still arrives, answer what is queued, stop the threads.
        service.admission.draining = True
        service.ready = False
        await warming
        await asyncio.get_running_loop().run_in_executor(None, service.close)

    app = FastAPI(
        title="spanqa qa-serve",
        summary="Extractive question answering over HTTP, with dynamic batching on the spanqa engine.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(_MetricsMiddleware, service=service)

    @app.post(ANSWER_ROUTE, openapi_extra={"requestBody": ANSWER_REQUEST_BODY}, responses=ANSWER_RESPONSES,
              summary="Answer one record or a list of them, as qa-answer would")  # fmt: skip
    async def answer(request: Request) -> Response:
        try:
            content = await service.answer(lambda: _read_body(request, service.options.max_body_bytes))
        except RequestError as error:
            return JSONResponse({"detail": error.detail}, status_code=error.status)
        except Overloaded as error:
            return JSONResponse({"detail": str(error)}, status_code=503,
                                headers={"Retry-After": str(error.retry_after_s)})  # fmt: skip
        except RequestTimeout as error:
            return JSONResponse({"detail": str(error)}, status_code=504)
        return Response(content, media_type="application/json")

    @app.get("/health", summary="Alive: the process answers HTTP")
    async def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/ready", summary="Ready: the model is loaded and warmed up, and the service is not shutting down",
             responses={503: {"description": "Not ready yet, or shutting down"}})  # fmt: skip
    async def ready() -> Response:
        if service.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        service.metrics.queue_depth.set(service.batcher.queued)
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/v1/model", summary="The model's manifest, what decides the answers, and the service's options")
    async def model() -> dict[str, Any]:
        return service.model_info()

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) past `limit` bytes: at once when Content-Length says so, else once the bytes read
    pass it (a chunked body), never read whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, size: int | None = None) -> RequestError:
    what = f"of {size} bytes" if size is not None else f"over {limit} bytes"
    return RequestError(413, [{"loc": ["body"], "msg": f"request body {what}; at most {limit}",
                               "type": "body_too_large"}])  # fmt: skip


def _warm_up(service: AnswerService) -> None:
    try:
        service.warm_up()
    except Exception:  # noqa: BLE001 - /ready stays 503; the log says why
        logger.exception("warm-up failed; /ready stays 503")


class _MetricsMiddleware:
    """Counts every response by route and status and times it (pure ASGI: no copy of the body)."""

    def __init__(self, app: Any, service: AnswerService) -> None:
        self.app = app
        self.metrics = service.metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        path = scope.get("path", "")
        route = path if path in ROUTES else "other"  # bounded label values
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_request(route, status, time.perf_counter() - started)
