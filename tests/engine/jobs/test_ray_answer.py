"""Answering on Ray: the group planner (no Ray needed), and runs on a local 2-CPU Ray cluster whose output must be
byte-identical to a single-process run (a tiny random BERT checkpoint, torch backend, one thread everywhere)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spanqa.engine.cli.answer import main
from spanqa.engine.jobs.answer_file import AnswerFileError, AnswerFileOptions, StrictModeStop, answer_file
from spanqa.engine.runtime.engine import QAEngine
from spanqa.engine.runtime.options import EngineOptions
from spanqa.engine.jobs.ray.plan import plan_groups, read_piece

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")  # Ray Data's own

LOOKAHEAD = 8  # several groups from a few dozen records, so that both actors work and groups cross shards


def _line(index: int, **extra: object) -> bytes:
    record = {"id": f"q{index:03d}", "question": f"When did mill {index} open?",
              "context": f"Mill {index} opened in {1800 + index}." + " Its wheel turned for years." * (index % 4),
              "answers": [str(1800 + index)], **extra}  # fmt: skip
    return (json.dumps(record) + "\n").encode()


def _shards() -> tuple[list[bytes], list[bytes]]:
    """Two shards, with bad lines, a blank line and an id that repeats across the shards."""
    first = [_line(index) for index in range(21)]
    first[4] = b'{"id": "broken", "question": \n'
    first[9] = b"\n"
    second = [_line(index) for index in range(21, 45)]
    second[2] = _line(3)  # q003 again: a duplicate across shards
    second[7] = b'{"id": "no-context", "question": "Where?"}\n'
    return first, second


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


# --- the planner, without Ray ---------------------------------------------------------------------------------


def test_groups_cut_valid_records_as_one_process_does_across_shards(tmp_path):
    first, second = _shards()
    sources = [_write(tmp_path / "a.jsonl", first), _write(tmp_path / "b.jsonl", second)]
    bad = []
    plan = plan_groups(sources, LOOKAHEAD, ship=True, on_error=lambda error, source: bad.append((source, error.line)))
    assert bad == [(0, 5), (1, 3), (1, 8)]
    assert plan.records == 45 - 1 - 2 - 1 and plan.errors == 3  # one blank line, three bad ones
    assert [task.size for task in plan.groups] == [8, 8, 8, 8, 8, 1]
    crossing = plan.groups[2]  # records 17-24: the end of shard a, then shard b
    assert [(piece.source, piece.first_line, piece.count) for piece in crossing.pieces] == [(0, 19, 3), (1, 1, 2), (1, 4, 3)]
    assert all(piece.data is not None for task in plan.groups for piece in task.pieces)


def test_shared_input_ranges_are_checked_against_changes(tmp_path):
    source = _write(tmp_path / "a.jsonl", [_line(index) for index in range(10)])
    plan = plan_groups([source], LOOKAHEAD, ship=False, on_error=lambda *_: None)
    piece = plan.groups[0].pieces[0]
    assert piece.data is None and read_piece(piece, [source]) == b"".join(_line(index) for index in range(8))
    source.write_bytes(source.read_bytes().replace(b"Mill 3", b"Mill 9"))
    with pytest.raises(AnswerFileError, match=r"a\.jsonl: lines 1-8 differ from what was planned"):
        read_piece(piece, [source])


def test_shared_input_needs_plain_files(tmp_path):
    source = tmp_path / "a.jsonl.gz"
    source.write_bytes(gzip.compress(_line(0)))
    with pytest.raises(AnswerFileError, match="actors can read only plain files themselves"):
        plan_groups([source], LOOKAHEAD, ship=False, on_error=lambda *_: None)


@pytest.mark.parametrize("ship", [True, False], ids=["shipped", "shared"])
def test_a_last_line_without_newline_and_crlf_lines_read_back_whole(ship, tmp_path):
    from spanqa.engine.jobs.ray.plan import piece_lines

    lines = [_line(0).replace(b"\n", b"\r\n"), _line(1), _line(2).rstrip(b"\n")]
    source = _write(tmp_path / "a.jsonl", lines)
    plan = plan_groups([source], LOOKAHEAD, ship=ship, on_error=lambda *_: None)
    (piece,) = plan.groups[0].pieces
    assert [json.loads(raw)["id"] for _, raw in piece_lines(piece, read_piece(piece, [source]))] == ["q000", "q001", "q002"]


def test_an_unreadable_gzip_stops_the_plan_after_the_records_before(tmp_path):
    source = tmp_path / "a.jsonl.gz"
    whole = gzip.compress(b"".join(_line(index) for index in range(30)))
    source.write_bytes(whole[: len(whole) * 2 // 3])  # a truncated download
    plan = plan_groups([source], LOOKAHEAD, ship=True, on_error=lambda *_: None)
    assert isinstance(plan.stop_error, AnswerFileError) and "cannot be read after line" in str(plan.stop_error)
    assert 0 < plan.records < 30 and sum(task.size for task in plan.groups) == plan.records


def test_resume_plan_keeps_written_groups_and_redoes_the_cut_one(tmp_path):
    source = _write(tmp_path / "a.jsonl", [_line(index) for index in range(20)])
    output = _write(tmp_path / "out.jsonl", [b'{"id": "q%03d", "answer": ""}\n' % index for index in range(11)] + [b'{"id": "q0'])
    plan = plan_groups([source], LOOKAHEAD, ship=True, on_error=lambda *_: None, existing_output=output)
    assert plan.existing.progress.complete_lines == 11 and plan.existing.progress.torn_bytes == len(b'{"id": "q0')
    assert [(task.index, task.written) for task in plan.groups] == [(1, 3), (2, 0)]
    assert [record.id for record, _ in plan.existing.replay] == ["q008", "q009", "q010"]  # the group the crash cut
    output.write_bytes(b'{"id": "q000", "answer": ""}\n{"id": "q005", "answer": ""}\n')
    with pytest.raises(AnswerFileError, match=r"out\.jsonl:2: answers id 'q005', but the next valid input line"):
        plan_groups([source], LOOKAHEAD, ship=True, on_error=lambda *_: None, existing_output=output)


def test_the_engine_never_imports_ray():
    code = (
        "import sys, spanqa.engine, spanqa.engine.runtime.engine, spanqa.engine.cli.answer, spanqa.engine.jobs.ray.run; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]


# --- on a local Ray cluster -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray with 2 CPUs for the module (starting one takes seconds)."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed; CI installs spanqa[ray]")
        pytest.skip("Ray is not installed (pip install 'spanqa[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_shards_on_ray_match_one_process_over_their_lines(ray_cluster, one_torch_thread, tiny_model, tmp_path):
    from spanqa.engine.jobs.ray.run import RayOptions, ray_answer_file

    first, second = _shards()
    shards = [_write(tmp_path / "a.jsonl", first), _write(tmp_path / "b.jsonl", second)]
    together = _write(tmp_path / "together.jsonl", first + second)
    options = EngineOptions(lookahead=LOOKAHEAD, prefetch=1)
    answer_file(QAEngine(tiny_model, options=options), together, tmp_path / "one.jsonl")

    result = ray_answer_file(tiny_model, shards, tmp_path / "ray.jsonl", options, RayOptions(actors=2))
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert (result.answered, result.errors, result.actors, result.on_gpus) == (41, 3, 2, False)
    # The errors file names the shard and counts lines from its start.
    expected = [json.loads(line) for line in (tmp_path / "one.jsonl.errors.jsonl").read_bytes().splitlines()]
    listed = [json.loads(line) for line in (tmp_path / "ray.jsonl.errors.jsonl").read_bytes().splitlines()]
    offset = {str(shards[0]): 0, str(shards[1]): len(first)}
    assert [(entry["line"] + offset[entry["file"]], entry.get("id")) for entry in listed] == [
        (entry["line"], entry.get("id")) for entry in expected
    ]
    assert listed[1]["error"] == f"duplicate id 'q003' (first at {shards[0]}:4)"  # across shards
    assert [entry["error"] for entry in listed[::2]] == [entry["error"] for entry in expected[::2]]


def test_cli_ray_resume_with_shared_input_finishes_a_torn_output(ray_cluster, one_torch_thread, tiny_model, tmp_path, capsys):
    first, second = _shards()
    source = _write(tmp_path / "in.jsonl", first + second)
    reference = tmp_path / "one.jsonl"
    assert main([str(source), "-o", str(reference), "--model", str(tiny_model), "--quiet"]) == 0
    full = reference.read_bytes()

    output = tmp_path / "out.jsonl"
    output.write_bytes(full[: full.index(b"\n", len(full) // 3) + 20])  # a crash mid-line, a third of the way in
    # The local run's settings file: a Ray resume accepts it only if both paths record the same settings.
    (tmp_path / "out.jsonl.run.json").write_bytes((tmp_path / "one.jsonl.run.json").read_bytes())
    arguments = [str(source), "-o", str(output), "--model", str(tiny_model), "--ray", "--ray-shared-input", "--resume"]
    assert main(arguments) == 0
    assert output.read_bytes() == full
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert "(+" in summary and "already in the output" in summary and "Ray actor" in summary
    assert (tmp_path / "out.jsonl.errors.jsonl").read_bytes() == (tmp_path / "one.jsonl.errors.jsonl").read_bytes()


def test_multi_passage_records_on_ray_match_one_process_with_top_k(ray_cluster, one_torch_thread, tiny_model, tmp_path):
    from spanqa.engine.core.decoder import DecodeOptions
    from spanqa.engine.jobs.ray.run import RayOptions, ray_answer_file

    lines = []
    for index in range(20):
        passages = [f"Mill {index + k} opened in {1800 + index + k}." + " Its wheel turned." * k for k in range(3)]
        record = {"id": f"m{index}", "question": f"When did mill {index} open?", "answers": [str(1800 + index)],
                  "contexts": passages if index % 2 else [{"id": f"p{k}", "text": t} for k, t in enumerate(passages)]}
        lines.append((json.dumps(record) + "\n").encode())
    lines[5] = b'{"id": "empty", "question": "Where?", "contexts": []}\n'
    source = _write(tmp_path / "in.jsonl", lines)
    options = EngineOptions(lookahead=LOOKAHEAD, prefetch=1, decode=DecodeOptions(top_k=3))
    answer_file(QAEngine(tiny_model, options=options), source, tmp_path / "one.jsonl")
    result = ray_answer_file(tiny_model, source, tmp_path / "ray.jsonl", options, RayOptions(actors=2))
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert (result.answered, result.errors) == (19, 1)
    assert all("passage" in json.loads(line) for line in (tmp_path / "ray.jsonl").read_bytes().splitlines())


def test_cli_ray_usage_errors(tmp_path, capsys):
    source = _write(tmp_path / "in.jsonl", [_line(0)])
    assert main([str(source), "-o", str(tmp_path / "out.jsonl"), "--ray-actors", "2"]) == 2
    assert "--ray-actors and --ray-shared-input go with --ray" in capsys.readouterr().err
    assert main(["--question", "q", "--context", "c", "--ray"]) == 2
    assert "--ray answers a file" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_actor_that_cannot_load_the_model_is_a_clear_error(ray_cluster, tmp_path, capsys):
    source = _write(tmp_path / "in.jsonl", [_line(index) for index in range(3)])
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    code = main([str(source), "-o", str(tmp_path / "out.jsonl"), "--model", str(folder), "--ray"])
    assert code == 2
    assert f"qa-answer: error: {folder}" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_strict_stops_at_the_first_bad_line_after_answering_the_lines_before(
    ray_cluster, one_torch_thread, tiny_model, tmp_path
):
    from spanqa.engine.jobs.ray.run import ray_answer_file

    first, _ = _shards()
    source = _write(tmp_path / "in.jsonl", first)
    options = EngineOptions(lookahead=2, prefetch=1)
    with pytest.raises(StrictModeStop, match=r"in\.jsonl:5: invalid JSON"):
        answer_file(QAEngine(tiny_model, options=options), source, tmp_path / "one.jsonl", AnswerFileOptions(strict=True))
    with pytest.raises(StrictModeStop, match=r"in\.jsonl:5: invalid JSON"):
        ray_answer_file(tiny_model, source, tmp_path / "ray.jsonl", options, file_options=AnswerFileOptions(strict=True))
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert len((tmp_path / "ray.jsonl").read_bytes().splitlines()) == 4


def _dying_answerer(marker: Path, always: bool):
    """A GroupAnswerer whose process dies (os._exit, as on an out-of-memory kill) when it meets group 2: once, or
    every time. Defined in a function, so Ray sends the class by value and the actors need not import this file."""
    from spanqa.engine.jobs.ray.run import GroupAnswerer

    class DyingAnswerer(GroupAnswerer):
        def __call__(self, batch):
            if int(batch["group"][0]) == 2 and (always or not marker.exists()):
                marker.touch()
                os._exit(1)
            return super().__call__(batch)

    return DyingAnswerer


def _reference_run(tiny_model, folder: Path) -> tuple[Path, EngineOptions]:
    """The input of the dying-actor tests, answered once in this process (as one.jsonl), and the options used."""
    first, second = _shards()
    source = _write(folder / "in.jsonl", first + second)
    options = EngineOptions(lookahead=LOOKAHEAD, prefetch=1)
    answer_file(QAEngine(tiny_model, options=options), source, folder / "one.jsonl")
    return source, options


@pytest.mark.slow
def test_an_actor_killed_mid_group_is_replaced_and_the_output_is_unchanged(
    ray_cluster, one_torch_thread, tiny_model, tmp_path, monkeypatch
):
    from spanqa.engine.jobs.ray import run as ray_answer

    source, options = _reference_run(tiny_model, tmp_path)
    marker = tmp_path / "died"
    monkeypatch.setattr(ray_answer, "GroupAnswerer", _dying_answerer(marker, always=False))
    ray_answer.ray_answer_file(tiny_model, source, tmp_path / "ray.jsonl", options, ray_answer.RayOptions(actors=2))
    assert marker.exists()  # an actor did die
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()


@pytest.mark.slow
def test_a_group_that_keeps_killing_actors_stops_the_run_with_the_lines_before_kept(
    ray_cluster, one_torch_thread, tiny_model, tmp_path, monkeypatch
):
    from spanqa.engine.jobs.ray import run as ray_answer

    source, options = _reference_run(tiny_model, tmp_path)
    monkeypatch.setattr(ray_answer, "GroupAnswerer", _dying_answerer(tmp_path / "died", always=True))
    output = tmp_path / "ray.jsonl"
    with pytest.raises(ray_answer.RayRunError, match=r"failed before group [0-2] was written .* rerun with --resume"):
        ray_answer.ray_answer_file(tiny_model, source, output, options, ray_answer.RayOptions(actors=2, max_retries=1))
    written = output.read_bytes()  # whole groups before the poisoned one (Ray Data stops all work at a failure)
    assert written == (tmp_path / "one.jsonl").read_bytes()[: len(written)]
    assert written.count(b"\n") in (0, LOOKAHEAD, 2 * LOOKAHEAD) and written.endswith(b"\n") or not written
