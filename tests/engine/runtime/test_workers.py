"""Several ONNX Runtime sessions at once (`EngineOptions.workers`): the split rules, the pool's order, errors and
shutdown, and answers that are the same, byte for byte, whatever the number of workers."""

from __future__ import annotations

import gc
import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from spanqa.engine import EngineOptions, QAEngine, SessionOptions, WindowOptions
from spanqa.engine.cli.answer import main
from spanqa.engine.core.data import QAExample, sample_questions_path
from spanqa.engine.core.model_folder import ModelFolderError
from spanqa.engine.runtime.options import worker_split
from spanqa.engine.runtime.pool import BatchPool

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WINDOW = WindowOptions(max_length=96, stride=32, max_question_tokens=24)
WORDS = "river mountain city king queen war treaty empire harbour station engine tower castle village forest".split()


def make_examples(count: int) -> list[QAExample]:
    return [
        QAExample(f"q{index}", "what " + WORDS[index % len(WORDS)] + "?",
                  " ".join(WORDS[(index * 7 + position) % len(WORDS)] for position in range(5 + (index * 37) % 180)))
        for index in range(count)
    ]  # fmt: skip


def engine_for(model: Path, **changes) -> QAEngine:
    session = changes.pop("session", SessionOptions())
    return QAEngine(model, device="cpu", options=EngineOptions(window=WINDOW, session=session, **changes))


def worker_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("spanqa-worker") and thread.is_alive()]


# --- the split -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workers", "threads", "cores", "on_gpu", "expected"),
    [
        (3, 2, 8, False, (3, 2)),  # both chosen: as given
        (1, 0, 8, False, (1, 0)),  # one worker: onnxruntime's default threads, as before workers existed
        (2, 0, 8, False, (2, 4)),  # the cores shared out
        (3, 0, 2, False, (3, 1)),  # at least one thread each
        (0, 4, 8, False, (1, 4)),  # --threads alone (and Ray's actors): one session with those threads
        (0, 0, 2, True, (1, 0)),  # a GPU: one session
        (2, 0, 4, True, (2, 2)),  # workers asked for on a GPU: given
    ],
)
def test_worker_split_rules(workers, threads, cores, on_gpu, expected):
    assert worker_split(workers, threads, cores, on_gpu) == expected


def test_auto_split_on_the_cpu_follows_the_measured_threads_per_worker():
    from spanqa.engine.runtime.options import AUTO_THREADS_PER_WORKER as per_worker

    workers, threads = worker_split(0, 0, 8 * per_worker)
    assert (workers, threads) == (8, per_worker)
    assert worker_split(0, 0, 1) == (1, 0)  # one core: one session, onnxruntime's choice


def test_workers_option_is_validated():
    with pytest.raises(ValueError, match=r"workers must be >= 0 \(0: auto\), got -1"):
        EngineOptions(workers=-1)
    with pytest.raises(ValueError, match="cores >= 1"):
        worker_split(0, 0, 0)


# --- the pool --------------------------------------------------------------------------------------------------


def test_pool_returns_results_in_input_order_and_runs_workers_at_once():
    busy = {"a": 0, "b": 0}
    most_at_once = []
    lock = threading.Lock()

    def run(worker: str, delay: float) -> float:
        with lock:
            busy[worker] += 1
            assert busy[worker] == 1, "a worker object runs one batch at a time"
            most_at_once.append(sum(busy.values()))
        time.sleep(delay)
        with lock:
            busy[worker] -= 1
        return delay

    delays = [0.05, 0.0, 0.03, 0.0, 0.04, 0.01, 0.0, 0.02] * 3  # later batches often finish first
    with BatchPool(["a", "b"], run) as pool:
        assert list(pool.run(delays)) == delays
    assert max(most_at_once) == 2
    assert not worker_threads()


def test_pool_raises_a_batch_error_at_its_turn_and_a_read_error_after_the_batches_before_it():
    def run(worker, value):
        time.sleep(0.01 * (value % 3))
        if value == 5:
            raise ArithmeticError("batch 5 failed")
        return value * 10

    received = []
    with BatchPool([0, 1, 2], run) as pool, pytest.raises(ArithmeticError, match="batch 5 failed"):
        for result in pool.run(range(20)):
            received.append(result)
    assert received == [0, 10, 20, 30, 40]

    def broken():
        yield from range(4)
        raise OSError("disk went away")

    received = []
    with BatchPool([0, 1], run) as pool, pytest.raises(OSError, match="disk went away"):
        for result in pool.run(broken()):
            received.append(result)
    assert received == [0, 10, 20, 30]


def test_pool_close_drops_waiting_batches_and_does_not_hang():
    started = []

    def run(worker, value):
        started.append(value)
        time.sleep(0.05)
        return value

    pool = BatchPool([0, 1], run, depth=4)
    results = pool.run(itertools.count())
    assert next(results) == 0
    began = time.monotonic()
    results.close()
    pool.close()
    assert time.monotonic() - began < 1.0
    assert len(started) <= 6  # those submitted (depth 4, plus the one handed back), never the endless rest
    assert not worker_threads()


def test_pool_reads_at_most_one_group_beyond_the_one_being_consumed():
    read = []

    def groups():
        for index in itertools.count():
            read.append(index)
            yield index

    with BatchPool([0, 1], lambda worker, batch: batch, depth=100) as pool:
        taken = pool.run_groups(groups(), lambda group: [(None, group)] * 3)
        for group, results in itertools.islice(taken, 5):
            assert [result for _, _, result in results] == [group] * 3
            assert max(read) <= group + 1
        taken.close()


# --- the engine ------------------------------------------------------------------------------------------------


def answer_bytes(engine: QAEngine, examples: list[QAExample]) -> list[dict]:
    return [answer.to_dict() for answer in engine.answer_many(examples)]


def test_answers_are_identical_for_any_number_of_workers(tiny_onnx):
    examples = make_examples(70)
    expected = answer_bytes(engine_for(tiny_onnx, workers=1, lookahead=8, max_batch_tokens=300), examples)
    for workers, shared in ((2, False), (3, False), (3, True)):
        engine = engine_for(
            tiny_onnx, workers=workers, lookahead=8, max_batch_tokens=300, session=SessionOptions(share_session=shared)
        )
        sessions = {id(backend.session) for backend in engine.worker_backends}
        assert len(engine.worker_backends) == workers and len(sessions) == (1 if shared else workers)
        assert answer_bytes(engine, examples) == expected, (workers, shared)
        assert engine.stats.examples == len(examples)
    assert not worker_threads()


def test_a_failing_batch_surfaces_as_with_one_worker(tiny_onnx):
    examples = make_examples(40)
    seen: list[bytes] = []
    recorder = engine_for(tiny_onnx, workers=1, lookahead=8)
    plain_run = recorder.backend.run
    recorder.backend.run = lambda batch: seen.append(batch.input_ids.tobytes()) or plain_run(batch)
    list(recorder.answer_many(examples))
    doomed = seen[len(seen) // 2]  # a batch in the middle: identified by its tokens, whichever worker takes it
    failures = {}
    for workers in (1, 2, 3):
        engine = engine_for(tiny_onnx, workers=workers, lookahead=8)
        for backend in engine.worker_backends:
            def failing_run(batch, fine=backend.run):
                if batch.input_ids.tobytes() == doomed:
                    raise RuntimeError("onnxruntime failed on a batch")
                return fine(batch)

            backend.run = failing_run
        received = []
        with pytest.raises(RuntimeError, match="onnxruntime failed on a batch"):
            for answer in engine.answer_many(examples):
                received.append(answer.id)
        failures[workers] = received
    assert failures[1] == failures[2] == failures[3]
    assert 0 < len(failures[1]) < len(examples) and len(failures[1]) % 8 == 0  # the groups before the failing one
    assert not worker_threads()


# A bad record with several workers: test_engine.py's test_a_bad_record_fails_after_the_answers_before_it[2].


def test_abandoning_or_interrupting_answer_many_stops_the_workers(tiny_onnx):
    engine = engine_for(tiny_onnx, workers=2, lookahead=4)
    examples = make_examples(20)

    def endless():
        yield from itertools.cycle(examples)

    answers = engine.answer_many(endless())
    assert len(list(itertools.islice(answers, 9))) == 9
    assert worker_threads()
    del answers
    gc.collect()
    assert not worker_threads()

    def interrupted():  # Ctrl-C arrives in the caller's thread while it reads the input
        yield from examples[:12]
        raise KeyboardInterrupt

    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        list(engine.answer_many(interrupted()))
    assert time.monotonic() - began < 30
    assert not worker_threads()


def test_torch_backend_refuses_several_workers_and_runs_one_by_default(tiny_model):
    with pytest.raises(ModelFolderError, match=r"runs one worker \(got workers=2"):
        engine_for(tiny_model, workers=2)
    engine = engine_for(tiny_model)
    assert len(engine.worker_backends) == 1 and engine.worker_backends[0] is engine.backend
    assert np.isfinite(engine.answer("what river?", "the river city").score)


# --- qa-answer ---------------------------------------------------------------------------------------------------


def test_qa_answer_output_bytes_do_not_depend_on_workers(tmp_path):
    """The shipped model: the same bytes with 1 and 2 workers, and the same settings file, so a run may be resumed
    with another --workers."""
    questions = tmp_path / "questions.jsonl"
    questions.write_bytes(b"".join(sample_questions_path().read_bytes().splitlines(keepends=True)[:64]))
    outputs = {}
    for workers in (1, 2):
        output = tmp_path / f"answers-{workers}.jsonl"
        assert main([str(questions), "-o", str(output), "--workers", str(workers), "--quiet"]) == 0
        outputs[workers] = (output.read_bytes(), Path(f"{output}.run.json").read_text())
    assert outputs[1][0].count(b"\n") == 64
    assert outputs[1] == outputs[2]


def test_qa_answer_workers_flag_is_checked(capsys, tmp_path):
    assert main([str(sample_questions_path()), "-o", str(tmp_path / "a.jsonl"), "--workers", "0"]) == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err
    assert main([str(sample_questions_path()), "--ray", "--workers", "2"]) == 2
    assert "--workers goes without --ray" in capsys.readouterr().err


# --- benchmarks/session_split.py -----------------------------------------------------------------------------------


def test_session_split_benchmark_times_each_split_and_checks_answers(tmp_path, capsys):
    import json

    from spanqa.benchmarks.session_split import main as benchmark

    result = tmp_path / "split.json"
    arguments = ["--data", str(sample_questions_path()), "--limit", "12", "--rounds", "2", "--configs", "1x1,2x1s,2x1"]
    assert benchmark([*arguments, "--json", str(result)]) == 0
    document = json.loads(result.read_text())
    rows = document["configurations"]
    assert list(rows) == ["1x1", "2x1s", "2x1"] and document["baseline"] == "1x1"
    assert [row["sessions"] for row in rows.values()] == [1, 1, 2]
    assert all(row["answers_identical_to_first"] for row in rows.values())
    assert all(len(row["passes"]) == 2 and len(row["speed_over_1x1_per_round"]) == 2 for row in rows.values())
    assert rows["1x1"]["speed_over_1x1_per_round"] == [1.0, 1.0]
    assert len(document["load_average_after_each_round"]) == 2
    assert "| 2 worker(s) x 1 thread(s) | 2 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        benchmark([*arguments[:4], "--configs", "2x"])
