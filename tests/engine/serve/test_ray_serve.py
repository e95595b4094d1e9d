"""qa-serve on Ray Serve (`run_on_ray`, what `qa-serve --ray` runs) on a local Ray: two replicas of one CPU each
answer over Ray's HTTP proxy exactly as the engine does, with the same routes and statuses as without Ray."""

from __future__ import annotations

import threading
import time

import pytest
from serve_support import require_serve_extra

from spanqa.engine import EngineOptions, QAEngine

require_serve_extra()
pytest.importorskip("ray.serve", reason="the [ray-serve] extra is not installed")

# About 20 s (a local Ray and two replicas) on the loaded 2-core machine; kept in the default suite, as the only
# test of the Ray Serve deployment.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def free_port() -> int:
    from spanqa.engine.serve.server import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_ray_serve_replicas_answer_as_the_engine(tiny_onnx):
    import httpx

    from spanqa.engine.serve.options import ServeOptions
    from spanqa.engine.serve.ray_deployment import RayServeOptions, run_on_ray

    options = ServeOptions(port=free_port())
    stop, messages = threading.Event(), []
    runner = threading.Thread(
        target=run_on_ray,
        args=(str(tiny_onnx), EngineOptions(), options, RayServeOptions(replicas=2, cpus_per_replica=1),
              messages.append, stop),
        daemon=True,
    )  # fmt: skip
    runner.start()
    url = f"http://127.0.0.1:{options.port}"
    try:
        deadline = time.monotonic() + 240
        while not messages:
            assert runner.is_alive() and time.monotonic() < deadline, "Ray Serve did not start"
            time.sleep(0.2)
        records = [{"id": f"r{index}", "question": "which tower?", "context": f"the {index} tower by the river"}
                   for index in range(12)]  # fmt: skip
        with httpx.Client(base_url=url, timeout=60) as client:
            while client.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, "no replica became ready"
                time.sleep(0.2)
            responses = [client.post("/v1/answer", json=record) for record in records]
            listed = client.post("/v1/answer", json=records)
            bad = client.post("/v1/answer", json={"question": "q"})
            model = client.get("/v1/model").json()
    finally:
        stop.set()
        runner.join(timeout=120)
    engine = QAEngine(tiny_onnx)
    expected = [answer.to_dict() for answer in engine.answer_many(records)]
    assert [response.status_code for response in responses] == [200] * len(records)
    assert [response.json() for response in responses] == expected
    assert listed.status_code == 200 and [answer["id"] for answer in listed.json()] == [r["id"] for r in records]
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "context"]
    assert model["workers"] == 1  # one CPU per replica: one worker
    assert not runner.is_alive()

