"""The installed `qa-serve` executable: its usage errors, a real SIGTERM that drains the requests in flight, and the
shipped int8 model answering the README's sample questions exactly as the installed qa-answer does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest
from conftest import MAIN_JOB_INPUT, installed_executable
from serve_support import require_serve_extra
from support import REPO_ROOT

from spanqa.engine.cli.serve import main

require_serve_extra()


def start(*flags: str) -> tuple[subprocess.Popen, str]:
    """The installed qa-serve on a free loopback port, once it is ready; (process, base URL)."""
    import httpx

    process = subprocess.Popen(
        [installed_executable("qa-serve"), "--port", "0", *flags], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    line = process.stderr.readline()
    found = re.search(r"listening on (http://\S+)", line)
    if found is None:
        process.kill()
        pytest.fail(f"qa-serve did not start: {line}{process.stderr.read()}")
    url = found.group(1)
    deadline = time.monotonic() + 120
    try:
        while httpx.get(f"{url}/ready", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "qa-serve never became ready"
            time.sleep(0.05)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, url


def test_usage_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["--max-queue-delay-ms", "-1"]) == 2
    assert "max_queue_delay_ms must be >= 0" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_an_address_in_use_is_a_clear_error(tiny_onnx, capsys):
    from spanqa.engine.serve.server import bind

    taken = bind("127.0.0.1", 0)
    taken.listen()
    try:
        assert main(["--model", str(tiny_onnx), "--port", str(taken.getsockname()[1])]) == 2
    finally:
        taken.close()
    assert "cannot listen" in capsys.readouterr().err


def test_the_served_socket_is_tcp_so_asyncio_sets_nodelay():
    import socket

    from spanqa.engine.serve.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        # asyncio sets TCP_NODELAY on accepted sockets only when the listening socket's proto is TCP; without it a
        # keep-alive response waits for the client's delayed ACK (~40 ms a request).
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_sigterm_stops_taking_requests_and_answers_those_in_flight(tiny_onnx):
    import httpx

    # A long queue delay, and one request whose body is still on its way (admitted, so the batcher waits for it):
    # the other requests wait in the queue while SIGTERM arrives.
    process, url = start("--model", str(tiny_onnx), "--max-queue-delay-ms", "20000")
    records = [{"id": f"t{index}", "question": "which tower?", "context": f"tower {index} by the river"}
               for index in range(6)]  # fmt: skip
    rest = threading.Event()

    def slow_body():
        yield b'{"id": "slow", "question": "which river?", '
        rest.wait(timeout=60)
        yield b'"context": "the river by the tower"}'

    def post(body):
        with httpx.Client(base_url=url, timeout=60) as client:
            if body is None:
                return client.post("/v1/answer", content=slow_body())
            return client.post("/v1/answer", json=body)

    threads_results: list = [None] * (len(records) + 1)

    def run(index, body):
        threads_results[index] = post(body)

    def in_progress() -> float:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        return float(re.search(r"^spanqa_requests_in_progress (\S+)$", text, re.M).group(1))

    def wait_for_in_progress(count: int) -> None:
        deadline = time.monotonic() + 60
        while in_progress() != count:
            assert time.monotonic() < deadline, f"never {count} requests in progress"
            time.sleep(0.02)

    threads = [threading.Thread(target=run, args=(0, None))]
    threads[0].start()
    wait_for_in_progress(1)  # the slow one is admitted first, so the batcher waits for it
    threads += [threading.Thread(target=run, args=(index + 1, record)) for index, record in enumerate(records)]
    for thread in threads[1:]:
        thread.start()
    wait_for_in_progress(1 + len(records))
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert all(result is None for result in threads_results), "answered before the signal: nothing was in flight"
    rest.set()
    for thread in threads:
        thread.join(timeout=60)
    returncode = process.wait(timeout=60)
    process.stderr.close()
    assert [result.status_code for result in threads_results] == [200] * 7
    assert [result.json()["id"] for result in threads_results] == ["slow"] + [record["id"] for record in records]
    assert returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained


def test_the_shipped_int8_model_answers_as_the_installed_qa_answer(main_job):
    import httpx

    assert main_job.returncode == 0, main_job.stderr
    lines = (REPO_ROOT / MAIN_JOB_INPUT).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    process, url = start()
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            listed = client.post("/v1/answer", json=records)
            alone = [client.post("/v1/answer", json=record) for record in records[:5]]
            engine_options = client.get("/v1/model").json()["engine_options"]
    finally:
        process.terminate()
        process.wait(timeout=60)
        process.stderr.close()
    assert listed.status_code == 200
    expected = main_job.output.read_bytes().splitlines()
    # Static int8: an answer does not depend on its batch mates, so every byte is the same.
    assert listed.content == b"[" + b",".join(expected) + b"]"
    assert [response.content for response in alone] == expected[:5]
    assert engine_options["max_batch_tokens"] == 512  # qa-serve's budget, not qa-answer's: the same answers
