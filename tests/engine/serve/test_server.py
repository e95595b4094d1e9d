"""qa-serve on a real loopback server with a real HTTP client (httpx), on the tiny random model: answers equal to
qa-answer's output lines, dynamic batches, every status of the status rule, and a drain that loses no request."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from serve_support import GatedBackend, require_serve_extra, running_server

from spanqa.engine import EngineOptions, QAEngine
from spanqa.engine.cli.answer import main as qa_answer
from spanqa.engine.core.records import InvalidRecord, parse_line
from spanqa.engine.serve.options import ServeOptions

require_serve_extra()

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = "river mountain city king queen war treaty empire harbour station engine tower castle village forest".split()


def make_records(count: int, drop_ids: bool = False) -> list[dict]:
    records = []
    for index in range(count):
        words = [WORDS[(index * 7 + position * 3) % len(WORDS)] for position in range(5 + (index * 37) % 150)]
        record = {"id": f"q{index}", "question": f"what {WORDS[index % len(WORDS)]}?", "context": " ".join(words)}
        if index % 4 == 1:
            record["note"] = {"kept": index}  # passes through, after the answer's fields
        if drop_ids and index % 5 == 2:
            del record["id"]  # the id is then its position in the request, as a line's is its line number
        records.append(record)
    # Three windows of 384 tokens: over the engine's token budget, so it runs alone, in batches of its own.
    records.append({"id": "long", "question": "which tower?", "context": " ".join(WORDS * 70)})
    return records


@pytest.fixture(scope="module")
def engine(tiny_onnx):
    return QAEngine(tiny_onnx, options=EngineOptions(workers=2))


@pytest.fixture(scope="module")
def server(engine):
    with running_server(engine) as running:
        yield running


@pytest.fixture()
def client(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def qa_answer_lines(model, records, tmp_path) -> list[bytes]:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert qa_answer([str(source), "-o", str(output), "--model", str(model), "--quiet", "--overwrite"]) == 0
    return output.read_bytes().splitlines()


def test_answers_are_qa_answer_lines_byte_for_byte_from_concurrent_requests(server, tiny_onnx, tmp_path):
    import httpx

    records = make_records(40)
    lines = qa_answer_lines(tiny_onnx, records, tmp_path)
    with httpx.Client(base_url=server.url, timeout=60) as client, ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda record: client.post("/v1/answer", json=record), records))
    assert [response.status_code for response in responses] == [200] * len(records)
    assert [response.content for response in responses] == lines
    # One list request: the lines of one file, in order, as one JSON array (id-less records numbered alike).
    records = make_records(20, drop_ids=True)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        listed = client.post("/v1/answer", json=records)
    assert listed.status_code == 200
    assert listed.content == b"[" + b",".join(qa_answer_lines(tiny_onnx, records, tmp_path)) + b"]"
    assert listed.json()[2]["id"] == 3


def test_multi_passage_records_and_top_k_match_qa_answer(client, tiny_onnx, tmp_path):
    passages = ["the river castle", {"text": "a forest tower", "id": "b"}]
    record = {"id": "m", "question": "which castle?", "contexts": passages, "top_k": 2}
    response = client.post("/v1/answer", json=record)
    assert response.status_code == 200
    source, output = tmp_path / "m.jsonl", tmp_path / "m-out.jsonl"
    source.write_text(json.dumps(record) + "\n")
    assert qa_answer([str(source), "-o", str(output), "--model", str(tiny_onnx), "--quiet", "--top-k", "2"]) == 0
    assert response.content == output.read_bytes().rstrip(b"\n")
    assert len(response.json()["top_answers"]) == 2


def test_health_ready_model_metrics_and_docs(client, server, tiny_onnx):
    from spanqa.engine.serve.schema import EXAMPLE_RECORD

    assert client.get("/health").json() == {"status": "alive"}
    assert client.get("/ready").json() == {"status": "ready"}
    model = client.get("/v1/model").json()
    assert model["model_dir"] == str(tiny_onnx) and model["manifest"]["precision"] == "fp32"
    assert model["engine_options"]["max_batch_tokens"] == EngineOptions().max_batch_tokens
    assert model["serve_options"]["max_concurrent"] == 256
    assert model["answer_settings"] == json.loads(json.dumps(server.service.engine.answer_settings()))
    assert client.post("/v1/answer", json=EXAMPLE_RECORD).status_code == 200  # the example /docs shows
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    for name in ("spanqa_requests_total", "spanqa_request_seconds_bucket", "spanqa_batch_records_bucket",
                 "spanqa_batch_tokens_bucket", "spanqa_padded_tokens_total", "spanqa_padding_fraction",
                 "spanqa_queue_depth", "spanqa_queue_wait_seconds_bucket"):  # fmt: skip
        assert name in metrics.text, name
    assert 'spanqa_requests_total{route="/v1/answer",status="200"}' in metrics.text
    assert client.get("/docs").status_code == 200
    assert "/v1/answer" in client.get("/openapi.json").json()["paths"]


BAD_BODIES = [
    (b"{", ["body"], "invalid JSON"),
    (b'{"question": "q", "context": "c", "question": "again"}', ["body"], "appears twice"),
    (b'{"question": "q", "context": NaN}', ["body"], "NaN"),
    (b"[" * 1000 + b"]" * 1000, ["body"], "nest"),
    (b"\xff\xfe", ["body"], "UTF-8"),
    (b'"just a string"', ["body"], "a JSON string"),
    (b"[]", ["body"], "empty"),
    (b'{"question": "q", "context": "c\\ud800"}', ["body"], "surrogate"),
    (b'{"context": "c"}', ["body", "question"], 'missing field "question"'),
    (b'{"question": "q"}', ["body", "context"], 'missing field "context"'),
    (b'{"question": 7, "context": "c"}', ["body", "question"], "must be a string"),
    (b'{"question": "  ", "context": "c"}', ["body", "question"], "empty"),
    (b'{"id": true, "question": "q", "context": "c"}', ["body", "id"], "string or an integer"),
    (b'{"question": "q", "context": "c", "top_k": 0}', ["body", "top_k"], "top_k"),
    (b'{"question": "q", "contexts": []}', ["body", "contexts"], "empty list"),
    (b'{"question": "q", "context": "c", "contexts": ["d"]}', ["body"], "not both"),
    (b'[{"question": "q", "context": "c"}, 5]', ["body", 1], "expected a JSON object"),
    (b'[{"id": 1, "question": "q", "context": "c"}, {"id": "1", "question": "q", "context": "c"}]',
     ["body", 1, "id"], "duplicate id"),
]  # fmt: skip


@pytest.mark.parametrize("body, location, words", BAD_BODIES, ids=[str(i) for i in range(len(BAD_BODIES))])
def test_a_bad_request_is_a_422_naming_the_field(client, body, location, words):
    response = client.post("/v1/answer", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"] == location and words.lower() in detail[0]["msg"].lower(), detail
    if body.startswith(b"{") and b"top_k" not in body:  # qa-answer refuses the line with the same reason (top_k: ours)
        with pytest.raises(InvalidRecord) as refused:
            parse_line(body, 1)
        assert refused.value.reason in detail[0]["msg"]


def test_limits_413_and_the_service_goes_on(engine):
    import httpx

    options = ServeOptions(port=0, max_body_bytes=4096, max_context_chars=500, max_questions_per_request=3)
    with running_server(engine, options) as running, httpx.Client(base_url=running.url, timeout=60) as client:
        big = {"question": "q", "context": "word " * 2000}
        response = client.post("/v1/answer", json=big)
        assert response.status_code == 413 and "at most 4096" in response.json()["detail"][0]["msg"]
        # Chunked (no Content-Length): refused once the bytes read pass the cap.
        response = client.post("/v1/answer", content=iter([b'{"question": "q", "context": "', b"w" * 5000, b'"}']))
        assert response.status_code == 413
        response = client.post("/v1/answer", json={"question": "q", "context": "word " * 120})
        assert response.status_code == 413 and response.json()["detail"][0]["loc"] == ["body", "context"]
        response = client.post("/v1/answer", json=[{"question": "q", "context": "c"}] * 4)
        assert response.status_code == 413 and "at most 3" in response.json()["detail"][0]["msg"]
        assert client.post("/v1/answer", json={"question": "q", "context": "word " * 50}).status_code == 200


@pytest.fixture()
def gated(tiny_onnx):
    """An engine whose two workers hold every batch until the test sets the gate."""
    engine = QAEngine(tiny_onnx, options=EngineOptions(workers=2))
    gate = threading.Event()
    gate.set()  # the warm-up passes
    engine.worker_backends = tuple(GatedBackend(backend, gate) for backend in engine.worker_backends)
    return engine, gate


def post_all(url: str, bodies: list, timeout: float = 60):
    """Send the bodies at once, each on its own connection; the futures of their responses."""
    import httpx

    pool = ThreadPoolExecutor(len(bodies))

    def post(body):
        with httpx.Client(base_url=url, timeout=timeout) as client:
            return client.post("/v1/answer", json=body)

    futures = [pool.submit(post, body) for body in bodies]
    pool.shutdown(wait=False)
    return futures


def hold_both_workers(url: str, engine, record) -> list:
    """Two requests, one after the other, so that each worker holds one at the gate (sent at once, they could share
    a batch); their response futures."""
    held = []
    for _ in range(2):
        runs = sum(backend.runs for backend in engine.worker_backends)
        held += post_all(url, [record])
        wait_for(lambda: sum(backend.runs for backend in engine.worker_backends) > runs)
    return held


def wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_busy_is_503_with_retry_after_and_the_admitted_requests_are_answered(gated):
    import httpx

    engine, gate = gated
    options = ServeOptions(port=0, max_concurrent=2, max_queued_questions=3, max_questions_per_request=3)
    record = {"question": "which tower?", "context": "the tower by the river"}
    with running_server(engine, options) as running:
        gate.clear()
        held = post_all(running.url, [record, [record, record]])
        wait_for(lambda: running.service.admission.requests == 2)
        with httpx.Client(base_url=running.url, timeout=60) as client:
            busy = client.post("/v1/answer", json=record)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert client.get("/health").status_code == 200  # the service itself answers
        gate.set()
        assert [future.result().status_code for future in held] == [200, 200]
        # The question cap: 2 of 3 questions in progress, a request of 2 more is refused.
        gate.clear()
        held = post_all(running.url, [[record, record]])
        wait_for(lambda: running.service.admission.questions == 2)
        with httpx.Client(base_url=running.url, timeout=60) as client:
            assert client.post("/v1/answer", json=[record, record]).status_code == 503
        gate.set()
        assert held[0].result().status_code == 200


def test_a_request_past_its_timeout_is_a_504_and_leaves_the_queue(gated):
    import httpx

    engine, gate = gated
    options = ServeOptions(port=0, request_timeout_s=0.5)
    record = {"question": "which tower?", "context": "the tower by the river"}
    with running_server(engine, options) as running, httpx.Client(base_url=running.url, timeout=60) as client:
        gate.clear()
        held = hold_both_workers(running.url, engine, record)
        late = client.post("/v1/answer", json=record)  # queued behind them, then out of time
        assert late.status_code == 504
        assert running.service.batcher.queued == 0
        gate.set()
        assert [future.result().status_code for future in held] == [504, 504]  # they timed out in the model
        assert client.post("/v1/answer", json=record).status_code == 200


def test_records_that_wait_while_the_workers_run_go_to_the_model_together(gated):
    engine, gate = gated
    records = [{"question": "which tower?", "context": f"the {WORDS[index]} tower by the river"} for index in range(8)]
    with running_server(engine) as running:
        gate.clear()
        held = hold_both_workers(running.url, engine, records[0]) + post_all(running.url, records[1:2])
        queued = post_all(running.url, records[2:])
        wait_for(lambda: running.service.batcher.queued == 7)
        gate.set()
        assert [future.result().status_code for future in held + queued] == [200] * 9
        sample = running.service.metrics.registry.get_sample_value
        assert sample("spanqa_batch_records_bucket", {"le": "4.0"}) < sample("spanqa_batch_records_count")
        assert sample("spanqa_batch_records_sum") == 1 + 9  # the warm-up, the two held, the 7 queued in one batch
        assert sample("spanqa_batch_records_count") == 1 + 2 + 1


def test_stopping_drains_every_request_in_flight(gated):
    import httpx

    engine, gate = gated
    records = [{"id": f"d{index}", "question": "which tower?", "context": f"the {WORDS[index]} tower"}
               for index in range(8)]  # fmt: skip
    with running_server(engine, replace(ServeOptions(port=0), max_queue_delay_ms=1)) as running:
        gate.clear()
        held = post_all(running.url, records)
        wait_for(lambda: running.service.admission.requests == len(records))
        running.server.should_exit = True  # what uvicorn's SIGTERM handler does
        time.sleep(0.5)
        with pytest.raises(httpx.ConnectError):  # no new connection once the drain began
            httpx.post(f"{running.url}/v1/answer", json=records[0], timeout=5)
        gate.set()
        responses = [future.result() for future in held]
        running.thread.join(timeout=60)
    assert [response.status_code for response in responses] == [200] * len(records)
    assert [response.json()["id"] for response in responses] == [record["id"] for record in records]
