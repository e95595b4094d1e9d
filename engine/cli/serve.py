"""`qa-serve`: answer questions over HTTP, batching concurrent requests dynamically on the answering engine.

A thin layer over `spanqa.engine.serve` (the routes, the batcher, the limits are documented there) and, with --ray,
`spanqa.engine.serve.ray_deployment`. The engine's flags mean what they mean for qa-answer, and its options are
built by qa-answer's own `engine_options`, so the same flags give the same answers.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from spanqa.engine.cli.answer import engine_options, load_engine
from spanqa.engine.cli.common import EXIT_OK, CommandError, add_debug_flag, positive_int, require_extra, run_command
from spanqa.engine.core.decoder import DecodeOptions
from spanqa.engine.runtime.options import BACKENDS, DEVICES, EngineOptions
from spanqa.engine.serve.options import SERVE_BATCH_TOKENS, ServeOptions

PROGRAM = "qa-serve"
SERVE_MODULES = ("fastapi", "uvicorn", "prometheus_client")
LOCAL_RAY = "local"


def build_parser() -> argparse.ArgumentParser:
    defaults = ServeOptions()
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Answer extractive QA questions over HTTP. POST /v1/answer takes one {\"question\", \"context\"} record "
            "(or \"contexts\": [...], \"top_k\", and any other field, passed through) or a list of them, checked by "
            "the rules qa-answer applies to its input lines, and answers in qa-answer's fields. Concurrent requests "
            "are batched together under the token budget. GET /health, /ready, /metrics (Prometheus), /v1/model; "
            "OpenAPI docs at /docs. Needs pip install 'spanqa[serve]'."
        ),
        epilog=(
            "Statuses: 413 body, context or record count over its limit; 422 a record qa-answer would refuse (the "
            "detail names the item and field); 503 with Retry-After when full or shutting down; 504 past the request "
            "timeout. SIGTERM stops taking requests and answers those in flight, then ends the process by that signal "
            "(as uvicorn does); Ctrl-C likewise (exit 130). Exit status 2 on bad usage, a model that cannot be loaded "
            "or an address in use, 1 on an unexpected failure."
        ),
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default=defaults.host, help="address to listen on (default: %(default)s)")
    server.add_argument("--port", type=int, default=defaults.port,
                        help="port; 0 picks a free one (default: %(default)s)")  # fmt: skip
    server.add_argument(
        "--max-queue-delay-ms", type=float, default=defaults.max_queue_delay_ms, metavar="MS",
        help="longest a question waits for batch mates before its batch goes anyway (default: %(default)s)",
    )  # fmt: skip
    server.add_argument(
        "--packing-window", type=positive_int, default=defaults.packing_window, metavar="N",
        help="a batch's mates are chosen among the N oldest queued questions, by length (default: %(default)s)",
    )  # fmt: skip
    server.add_argument(
        "--max-concurrent", type=positive_int, default=defaults.max_concurrent, metavar="N",
        help="requests in progress at once; more get 503 with Retry-After (default: %(default)s)",
    )  # fmt: skip
    server.add_argument(
        "--max-queued-questions", type=positive_int, default=defaults.max_queued_questions, metavar="N",
        help="questions in progress at once over all requests; more get 503 (default: %(default)s)",
    )  # fmt: skip
    server.add_argument("--max-questions-per-request", type=positive_int, default=defaults.max_questions_per_request,
                        metavar="N", help="records in one request; more get 413 (default: %(default)s)")  # fmt: skip
    server.add_argument("--max-body-bytes", type=positive_int, default=defaults.max_body_bytes, metavar="N",
                        help="largest request body; larger gets 413 (default: %(default)s)")  # fmt: skip
    server.add_argument("--max-context-chars", type=positive_int, default=defaults.max_context_chars, metavar="N",
                        help="longest context (all passages of a record together); longer gets 413 "
                        "(default: %(default)s)")  # fmt: skip
    server.add_argument("--request-timeout", type=float, default=defaults.request_timeout_s, metavar="S",
                        help="seconds from arrival to answer; past it 504 (default: %(default)s)")  # fmt: skip
    server.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout_s, metavar="S",
                        help="seconds the requests in flight get to finish after SIGTERM (default: %(default)s)")

    engine = parser.add_argument_group("model and engine (as for qa-answer)")
    engine.add_argument("--model", metavar="DIR", help="a qa-export folder or a transformers QA checkpoint folder "
                        "(default: the shipped int8 model)")  # fmt: skip
    engine.add_argument("--device", choices=DEVICES, default="auto", help="where the model runs (default: %(default)s)")
    engine.add_argument("--backend", choices=BACKENDS, default="auto", help="(default: %(default)s)")
    engine.add_argument(
        "--max-batch-tokens", "--batch-tokens", dest="batch_tokens", type=positive_int, metavar="N",
        help=f"most padded tokens per model batch (default: {SERVE_BATCH_TOKENS}, measured for a service's batches, "
        "which mix records of unlike length: engine/serve/options.py)",
    )  # fmt: skip
    engine.add_argument("--workers", type=positive_int, metavar="N",
                        help="ONNX Runtime sessions, each running one batch at a time (default: one per core)")
    engine.add_argument("--threads", type=positive_int, metavar="N", help="intra-op threads per worker")
    engine.add_argument("--top-k", type=positive_int, metavar="K",
                        help=f"default top_k of a record that gives none (default: {DecodeOptions.top_k})")
    engine.add_argument("--n-best", type=positive_int, nargs="?", const=DecodeOptions.n_best, metavar="N",
                        help="add each answer's N best spans as n_best")  # fmt: skip
    engine.add_argument("--null-threshold", type=float, metavar="X", help="SQuAD v2 no-answer threshold")
    engine.add_argument("--max-answer-length", type=positive_int, metavar="TOKENS", help="longest answer in tokens")
    engine.add_argument("--align-to-words", action=argparse.BooleanOptionalAction, default=None,
                        help="widen answers that start or end inside a word to the whole word")  # fmt: skip
    engine.add_argument("--allow-pickle", action="store_true", help="load pickled PyTorch weights (trusted only)")

    ray = parser.add_argument_group("on Ray Serve (pip install 'spanqa[ray-serve]')")
    ray.add_argument("--ray", nargs="?", const=LOCAL_RAY, metavar="ADDRESS",
                     help="serve the same app as a Ray Serve deployment: without ADDRESS on a local Ray, 'auto' on "
                     "this machine's cluster")  # fmt: skip
    ray.add_argument("--ray-replicas", type=positive_int, default=1, metavar="N", help="replicas (default: 1)")
    ray.add_argument("--ray-cpus", type=float, default=1.0, metavar="N", help="CPUs per replica (default: 1)")
    ray.add_argument("--ray-gpus", type=float, default=0.0, metavar="N", help="GPUs per replica (default: 0)")
    return add_debug_flag(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(PROGRAM, build_parser(), _serve, argv, interrupted="stopped")


def serve_options(arguments: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        host=arguments.host, port=arguments.port, max_queue_delay_ms=arguments.max_queue_delay_ms,
        packing_window=arguments.packing_window,
        max_concurrent=arguments.max_concurrent, max_queued_questions=arguments.max_queued_questions,
        max_questions_per_request=arguments.max_questions_per_request, max_body_bytes=arguments.max_body_bytes,
        max_context_chars=arguments.max_context_chars, request_timeout_s=arguments.request_timeout,
        drain_timeout_s=arguments.drain_timeout,
    )  # fmt: skip


def _serve(arguments: argparse.Namespace) -> int:
    require_extra("serve", SERVE_MODULES)
    try:
        options = serve_options(arguments)
        engine = engine_options(arguments)
        if arguments.batch_tokens is None:
            engine = dataclasses.replace(engine, max_batch_tokens=SERVE_BATCH_TOKENS)
    except ValueError as error:
        raise CommandError(str(error)) from None
    if arguments.ray is not None:
        return _serve_on_ray(arguments, engine, options)
    from spanqa.engine.serve.server import bind, serve
    from spanqa.engine.serve.service import AnswerService

    loaded = load_engine(arguments.model, engine)
    try:
        sock = bind(options.host, options.port)
    except OSError as error:
        raise CommandError(f"{options.host}:{options.port}: cannot listen ({error.strerror or error})") from None
    service = AnswerService(loaded, options)
    host, port = sock.getsockname()[:2]
    print(f"{PROGRAM}: listening on http://{_url_host(host)}:{port} (docs at /docs)", file=sys.stderr, flush=True)
    serve(service, options, sock)  # after SIGTERM uvicorn ends the process by that signal, once drained
    return EXIT_OK


def _serve_on_ray(arguments: argparse.Namespace, engine: EngineOptions, options) -> int:
    try:
        from spanqa.engine.serve.ray_deployment import RayServeOptions, run_on_ray
    except ImportError as error:
        raise CommandError(f"--ray needs pip install 'spanqa[ray-serve]' ({error})") from None
    ray_options = RayServeOptions(
        address=None if arguments.ray == LOCAL_RAY else arguments.ray, replicas=arguments.ray_replicas,
        cpus_per_replica=arguments.ray_cpus, gpus_per_replica=arguments.ray_gpus,
    )  # fmt: skip
    run_on_ray(arguments.model, engine, options, ray_options, announce=_announce)
    return EXIT_OK


def _announce(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":
    sys.exit(main())
