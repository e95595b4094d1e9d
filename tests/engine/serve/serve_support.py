"""qa-serve test helpers (not fixtures): the [serve] extra check, a real server on a loopback port in a thread,
and a backend whose batches wait at a gate the test opens."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from spanqa.engine.core.extras import missing_modules

SERVE_MODULES = ("fastapi", "uvicorn", "prometheus_client", "httpx")


def require_serve_extra() -> None:
    """Call at the top of a test module: fails it in CI (which installs the extra), skips it elsewhere, when the
    [serve] extra is missing."""
    missing = missing_modules(SERVE_MODULES)
    if missing:
        message = f"the [serve] extra is not installed ({', '.join(missing)}): pip install -e '.[serve]'"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


class GatedBackend:
    """A backend whose `run` waits until `gate` is set: holds batches in the model for as long as a test needs."""

    def __init__(self, inner: Any, gate: threading.Event) -> None:
        self.inner, self.gate, self.name = inner, gate, inner.name
        self.runs = 0

    def run(self, batch):
        self.runs += 1
        if not self.gate.wait(timeout=60):
            raise RuntimeError("the test never opened the gate")
        return self.inner.run(batch)


@dataclass
class RunningServer:
    url: str
    service: Any
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the server did not stop"


@contextmanager
def running_server(engine, options=None, wait_ready: bool = True) -> Iterator[RunningServer]:
    """A real uvicorn server on 127.0.0.1 (a free port), in a thread; stopped (and drained) on leaving."""
    from spanqa.engine.serve.options import ServeOptions
    from spanqa.engine.serve.server import bind, make_server
    from spanqa.engine.serve.service import AnswerService

    options = options or ServeOptions(port=0)
    sock = bind("127.0.0.1", 0)
    service = AnswerService(engine, options)
    server = make_server(service, options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    running = RunningServer(f"http://127.0.0.1:{sock.getsockname()[1]}", service, server, thread)
    deadline = time.monotonic() + 60
    while not (server.started and (service.ready or not wait_ready)):
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()
