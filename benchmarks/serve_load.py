"""qa-serve under load on loopback: questions/s, latency percentiles and the batches formed, at C concurrent clients
and at 1, against qa-answer's file throughput on the same questions, in one run.

    python -m spanqa.benchmarks.serve_load [--model DIR] [--data FILE] [--limit 1000] [--clients 64] [--seconds 20]
        [--single-seconds 10] [--rounds 2] [--serve-flags "--max-batch-tokens 1024"]
        [--json benchmarks/results/serve_load.json]

Every request goes to 127.0.0.1 only, and every phase is bounded in time (and in requests: --max-requests). The
server is the installed `qa-serve` (default flags, so default batching) in a process of its own; the clients are
httpx's asynchronous client in this process, one question per request, cycling through the questions. A round is:
- file: `answer_file` (what `qa-answer INPUT -o OUTPUT` runs once its model is loaded) on the questions as JSONL,
  on an engine with qa-answer's default options (1024-token batches), here; and again at qa-serve's budget
  (`--batch-tokens 512`), so that the service is also compared with the file job at the same budget;
- saturated: --clients clients for --seconds;
- one client: 1 client for --single-seconds.
The server is idle while the file pass runs, and the file engine while the server is loaded. Rounds interleave
the three, so that load from other processes falls on all of them alike; ratios are taken within each round.

Model time, for the 1-client target (p50 <= model time + 10 ms): the server's own mean model time per batch in the
1-client phase (/metrics: spanqa_model_seconds; one question a batch there), so that it is taken under the same load
as the latency; the JSON also has the median of one question's batch run alone on one of the engine's sessions
(`run_batch`) in this process, before the rounds. Batch sizes: the server's own histograms (/metrics), differenced
over each phase. The clients share the machine's cores with the server, as any
loopback test does: the saturated figure is the service's throughput with its clients on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from spanqa.engine.serve.options import SERVE_BATCH_TOKENS
from spanqa.benchmarks.measure import REPO_ROOT, add_data_arguments, load_questions, machine_note, markdown_table, report

TARGET_THROUGHPUT_RATIO = 0.80
TARGET_SINGLE_MARGIN_MS = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: the shipped int8 model)")
    add_data_arguments(parser, limit=1000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0, help="saturated phase length")
    parser.add_argument("--single-seconds", type=float, default=10.0, help="1-client phase length")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=100_000, help="bound on requests per phase")
    parser.add_argument("--serve-flags", default="", help="extra qa-serve flags, e.g. '--max-batch-tokens 1024'")
    parser.add_argument("--json", help="write the result here")
    arguments = parser.parse_args(argv)

    machine = machine_note()
    examples = load_questions(arguments.data, arguments.limit)
    records = [{"id": str(example.id), "question": example.question, "context": example.context} for example in examples]
    workdir = Path(tempfile.mkdtemp(prefix="serve-load-"))
    source = workdir / "questions.jsonl"
    source.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    bodies = [json.dumps(record, ensure_ascii=False).encode("utf-8") for record in records]

    file_engine = _file_engine(arguments.model, None)
    file_engine_serve_budget = _file_engine(arguments.model, SERVE_BATCH_TOKENS)
    model_ms = _model_time_ms(file_engine, examples[:200])
    server, url = _start_server(arguments.model, arguments.serve_flags.split())
    rounds = []
    try:
        for number in range(arguments.rounds):
            file_qps = _file_pass(file_engine, source, workdir / "answers.jsonl", len(records))
            file_qps_512 = _file_pass(file_engine_serve_budget, source, workdir / "answers.jsonl", len(records))
            saturated = _phase(url, bodies, arguments.clients, arguments.seconds, arguments.max_requests)
            single = _phase(url, bodies, 1, arguments.single_seconds, arguments.max_requests)
            rounds.append({"round": number + 1, "file_qps": file_qps, "file_qps_serve_budget": file_qps_512,
                           "saturated": saturated, "single": single,
                           "load_average": _load()})  # fmt: skip
            print(f"round {number + 1}: file {file_qps:.1f} q/s, {arguments.clients} clients "
                  f"{saturated['qps']:.1f} q/s, 1 client p50 {single['p50_ms']:.1f} ms", file=sys.stderr)  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=60)
    ratios = [entry["saturated"]["qps"] / entry["file_qps"] for entry in rounds]
    same_budget = [entry["saturated"]["qps"] / entry["file_qps_serve_budget"] for entry in rounds]
    single_p50 = statistics.median(entry["single"]["p50_ms"] for entry in rounds)
    single_model = statistics.median(entry["single"]["server_model_ms_per_batch"] for entry in rounds)
    result = {
        "command": "python -m spanqa.benchmarks.serve_load " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": arguments.model or "shipped int8 (engine/models/minilm-l6-squad-int8)",
        "questions": len(records),
        "clients": arguments.clients,
        "serve_flags": arguments.serve_flags,
        "model_ms_per_question_alone": model_ms,
        "rounds": rounds,
        "saturated_over_file_median": statistics.median(ratios),
        "saturated_over_file_at_512_median": statistics.median(same_budget),
        "single_client_p50_ms_median": single_p50,
        "targets": {
            "saturated_over_file": {"target": TARGET_THROUGHPUT_RATIO, "met": statistics.median(ratios) >= TARGET_THROUGHPUT_RATIO},
            "single_p50_ms": {"target": round(single_model + TARGET_SINGLE_MARGIN_MS, 2),
                              "met": single_p50 <= single_model + TARGET_SINGLE_MARGIN_MS},
        },  # fmt: skip
        "machine": machine,
    }
    report(result, _table(rounds, arguments.clients, model_ms), arguments.json)
    return 0


def _file_engine(model: str | None, batch_tokens: int | None):
    from spanqa.engine.runtime.engine import QAEngine
    from spanqa.engine.runtime.options import EngineOptions

    options = EngineOptions() if batch_tokens is None else EngineOptions(max_batch_tokens=batch_tokens)
    return QAEngine(model, options=options)  # otherwise qa-answer's default options


def _model_time_ms(engine, examples) -> float:
    """Median milliseconds of one question's batch on one session, tokenizing and decoding left out."""
    from spanqa.engine.runtime.engine import run_batch

    times = []
    backend = engine.worker_backends[0]
    for example in examples:
        prepared = engine.prepare([example])
        for _, batch in prepared.group.batches:
            times.append(run_batch(backend, batch)[2] * 1000)
    return round(statistics.median(times), 2)


def _file_pass(engine, source: Path, output: Path, count: int) -> float:
    from spanqa.engine.jobs.answer_file import answer_file
    from spanqa.engine.jobs.options import AnswerFileOptions

    started = time.perf_counter()
    answer_file(engine, str(source), str(output), AnswerFileOptions(overwrite=True))
    return round(count / (time.perf_counter() - started), 2)


def _start_server(model: str | None, flags: list[str]) -> tuple[subprocess.Popen, str]:
    import httpx

    executable = Path(sys.executable).with_name("qa-serve")
    command = [str(executable), "--port", "0", *(["--model", model] if model else []), *flags]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    found = re.search(r"listening on (http://\S+)", process.stderr.readline())
    if found is None:
        process.kill()
        sys.exit(f"qa-serve did not start: {process.stderr.read()}")
    url = found.group(1)
    deadline = time.monotonic() + 120
    while httpx.get(f"{url}/ready", timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            sys.exit("qa-serve never became ready")
        time.sleep(0.1)
    return process, url


def _phase(url: str, bodies: list[bytes], clients: int, seconds: float, max_requests: int) -> dict[str, Any]:
    before = _batch_histogram(url)
    latencies, failures, wall = asyncio.run(_load_clients(url, bodies, clients, seconds, max_requests))
    after = _batch_histogram(url)
    ordered = sorted(latencies)

    def percentile(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2) if ordered else float("nan")

    batches = after["count"] - before["count"]
    sizes = {bound: after["buckets"][bound] - before["buckets"].get(bound, 0) for bound in after["buckets"]}
    return {
        "clients": clients, "requests": len(latencies), "failures": failures, "seconds": round(wall, 2),
        "qps": round(len(latencies) / wall, 2), "p50_ms": percentile(0.50), "p95_ms": percentile(0.95),
        "p99_ms": percentile(0.99), "batches": batches,
        "server_model_ms_per_batch": round(1000 * (after["model_seconds"] - before["model_seconds"]) / batches, 2)
        if batches else None,
        "mean_records_per_batch": round((after["sum"] - before["sum"]) / batches, 2) if batches else None,
        "batches_with_at_most": sizes,
    }  # fmt: skip


async def _load_clients(url, bodies, clients, seconds, max_requests) -> tuple[list[float], int, float]:
    import httpx

    latencies: list[float] = []
    failures = 0
    next_index = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def one_client() -> None:
            nonlocal next_index, failures
            while time.perf_counter() < deadline and next_index < max_requests:
                body = bodies[next_index % len(bodies)]
                next_index += 1
                sent = time.perf_counter()
                response = await client.post("/v1/answer", content=body, headers=headers)
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - sent)
                else:
                    failures += 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - started
    return latencies, failures, wall


def _batch_histogram(url: str) -> dict[str, Any]:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    buckets = {match.group(1): float(match.group(2))
               for match in re.finditer(r'^spanqa_batch_records_bucket\{le="([^"]+)"\} (\S+)$', text, re.M)}  # fmt: skip
    value = lambda name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))  # noqa: E731
    return {"buckets": buckets, "count": value("spanqa_batch_records_count"), "sum": value("spanqa_batch_records_sum"),
            "model_seconds": value("spanqa_model_seconds_sum")}  # fmt: skip


def _load() -> list[float]:
    import os

    return [round(value, 2) for value in os.getloadavg()]


def _table(rounds: list[dict], clients: int, model_ms: float) -> str:
    rows = []
    for entry in rounds:
        saturated, single = entry["saturated"], entry["single"]
        rows.append([
            entry["round"], f"{entry['file_qps']:.1f}", f"{entry['file_qps_serve_budget']:.1f}",
            f"{saturated['qps']:.1f}", f"{saturated['qps'] / entry['file_qps']:.2f}", f"{saturated['p50_ms']:.0f} / {saturated['p95_ms']:.0f} / "
            f"{saturated['p99_ms']:.0f}", saturated["mean_records_per_batch"], f"{single['qps']:.1f}",
            f"{single['p50_ms']:.1f} / {single['p95_ms']:.1f} / {single['p99_ms']:.1f}",
            single["mean_records_per_batch"], f"{single['server_model_ms_per_batch']:.1f}",
        ])  # fmt: skip
    headers = ["round", "qa-answer file q/s", "qa-answer --batch-tokens 512 q/s", f"{clients} clients q/s",
               "ratio to qa-answer", "p50/p95/p99 ms",
               "records/batch", "1 client q/s", "1 client p50/p95/p99 ms", "records/batch", "1 client model ms"]  # fmt: skip
    return markdown_table(headers, rows)


if __name__ == "__main__":
    sys.exit(main())
