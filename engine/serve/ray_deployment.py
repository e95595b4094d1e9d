"""The same service as a Ray Serve deployment: each replica holds its own engine, batcher and limits, and serves the
app of `app.create_app` (routes, statuses and metrics as without Ray); Ray's proxy spreads requests over them.

Replicas per CPU group or GPU: `cpus_per_replica` CPUs each (its engine runs that many workers of one thread,
unless --workers/--threads say otherwise), or `gpus_per_replica` GPUs (the engine's device "auto" then finds CUDA).

Two ways in:
- `qa-serve --ray [ADDRESS] --ray-replicas N --ray-cpus C` (run_on_ray), until SIGTERM/SIGINT;
- `serve run spanqa.engine.serve.ray_deployment:app_builder model=DIR replicas=2 cpus=1` (Ray's own CLI; the
  arguments are `app_builder`'s).
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray import serve

from spanqa.engine.runtime.engine import QAEngine
from spanqa.engine.runtime.options import EngineOptions
from spanqa.engine.serve.app import create_app
from spanqa.engine.serve.options import SERVE_BATCH_TOKENS, ServeOptions
from spanqa.engine.serve.service import AnswerService

APP_NAME = "qa-serve"


@dataclass(frozen=True)
class RayServeOptions:
    address: str | None = None  # None: a local Ray; "auto": the cluster this machine is in; ray://HOST:PORT
    replicas: int = 1
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if self.cpus_per_replica <= 0 or self.gpus_per_replica < 0:
            raise ValueError(
                f"cpus_per_replica must be > 0 and gpus_per_replica >= 0, got {self.cpus_per_replica}, "
                f"{self.gpus_per_replica}"
            )


@serve.ingress()
class QAServeReplica:
    """One replica: an engine on the replica's share of the machine and the service around it."""

    def __init__(self, model: str | None, engine_options: EngineOptions, serve_options: ServeOptions, cpus: float):
        self.service = AnswerService(QAEngine(model, options=replica_engine_options(engine_options, cpus)),
                                     serve_options)  # fmt: skip

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.service)

    def check_health(self) -> None:
        """Ray Serve restarts a replica whose batcher thread died (the model failing alone is told per request)."""
        if not self.service.batcher.alive:
            raise RuntimeError("the batcher thread has stopped")


def replica_engine_options(options: EngineOptions, cpus: float) -> EngineOptions:
    """Workers of one thread on the replica's CPUs, unless workers or threads were chosen: the engine's own auto
    split would count the whole machine's cores, not the replica's."""
    if options.workers or options.session.intra_op_threads:
        return options
    return replace(options, workers=max(1, math.floor(cpus)), session=replace(options.session, intra_op_threads=1))


def build_app(
    model: str | None, engine_options: EngineOptions, serve_options: ServeOptions, ray_options: RayServeOptions
) -> Any:
    deployment = serve.deployment(
        QAServeReplica,
        name=APP_NAME,
        num_replicas=ray_options.replicas,
        ray_actor_options={"num_cpus": ray_options.cpus_per_replica, "num_gpus": ray_options.gpus_per_replica},
        # The replica's own admission (limits.py) decides when it is full, not Ray's default of 5 at once.
        max_ongoing_requests=serve_options.max_concurrent,
    )
    return deployment.bind(model, engine_options, serve_options, ray_options.cpus_per_replica)


def app_builder(args: dict[str, str]) -> Any:
    """For `serve run spanqa.engine.serve.ray_deployment:app_builder model=DIR replicas=N cpus=C gpus=G
    max_batch_tokens=T max_queue_delay_ms=D` (every argument optional)."""
    engine = replace(EngineOptions(), max_batch_tokens=int(args.get("max_batch_tokens", SERVE_BATCH_TOKENS)))
    serve_options = ServeOptions(
        max_queue_delay_ms=float(args.get("max_queue_delay_ms", ServeOptions.max_queue_delay_ms)),
    )
    ray_options = RayServeOptions(
        replicas=int(args.get("replicas", 1)), cpus_per_replica=float(args.get("cpus", 1)),
        gpus_per_replica=float(args.get("gpus", 0)),
    )  # fmt: skip
    return build_app(args.get("model"), engine, serve_options, ray_options)


def run_on_ray(
    model: str | None, engine_options: EngineOptions, serve_options: ServeOptions, ray_options: RayServeOptions,
    announce: Callable[[str], None], stop: threading.Event | None = None,
) -> None:  # fmt: skip
    """Start (or join) Ray, deploy, and serve on host:port until SIGTERM/SIGINT or `stop`; then shut Serve down,
    which lets each replica drain (its app's shutdown answers what is queued)."""
    stop = stop or threading.Event()
    ray.init(address=ray_options.address, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": serve_options.host, "port": serve_options.port})
        serve.run(build_app(model, engine_options, serve_options, ray_options), name=APP_NAME, route_prefix="/")
        # After ray.init, whose own SIGTERM handler would end the driver without shutting Serve down.
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, lambda *_: stop.set())
        announce(f"listening on http://{serve_options.host}:{serve_options.port} on Ray Serve "
                 f"({ray_options.replicas} replicas)")  # fmt: skip
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
