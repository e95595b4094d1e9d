"""Run the app on uvicorn, on a socket bound before the server starts (so that port 0 can be read back, and a
port in use is a clear error before anything else starts).

Shutdown rule: SIGTERM or SIGINT (uvicorn's handlers, in the main thread) stops taking connections, lets the
requests in flight finish for up to `drain_timeout_s`, then runs the app's shutdown, which answers what is still
queued before the threads stop. `Server.should_exit = True` does the same from another thread (the tests).
"""

from __future__ import annotations

import socket

import uvicorn

from spanqa.engine.serve.app import create_app
from spanqa.engine.serve.options import ServeOptions
from spanqa.engine.serve.service import AnswerService


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free one); raises OSError (address in use...)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it each
    # keep-alive response waits ~40 ms for the client's delayed ACK (Nagle), which the 1-client latency showed.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening at once: a client that connects before uvicorn has started waits in the backlog, not refused.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def make_server(service: AnswerService, options: ServeOptions) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(service),
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(1, round(options.drain_timeout_s)),
        # An idle keep-alive connection is closed after this; the benchmark's clients keep theirs busy.
        timeout_keep_alive=5,
    )
    return uvicorn.Server(config)


def serve(service: AnswerService, options: ServeOptions, sock: socket.socket) -> None:
    """Serve until SIGTERM/SIGINT (or `should_exit`), then drain; returns once everything has stopped."""
    make_server(service, options).run(sockets=[sock])
