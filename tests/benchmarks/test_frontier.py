"""qa-bench's speed-accuracy frontier: which systems are on it, the chart written from a run's results, the
Markdown line, and the --frontier flag (its default beside --json)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spanqa.benchmarks.qa_bench import cli
from spanqa.benchmarks.qa_bench.frontier import (
    Point, dominates, draw_frontier, frontier_line, frontier_path, label_offsets, measured_points, pareto_frontier,
)  # fmt: skip
from spanqa.benchmarks.qa_bench.machine import describe_machine
from spanqa.benchmarks.qa_bench.report import BenchReport, markdown
from spanqa.benchmarks.qa_bench.results import SystemResult, Workload, speedups

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed (pip install 'spanqa[bench]'); the chart cannot be drawn",
)


def _result(name: str, rate: float | None, f1: float | None, status: str = "ok") -> SystemResult:
    return SystemResult(name, "spanqa", "ONNX Runtime", "int8", "cpu", "", status,
                        examples_per_second=rate, median_seconds=None if rate is None else 10 / rate, f1=f1,
                        exact_match=None if f1 is None else f1 - 5)  # fmt: skip


def _report(results: tuple[SystemResult, ...]) -> BenchReport:
    ratios = speedups(list(results))  # as run_bench fills them in
    results = tuple(SystemResult(**{**vars(result), "speedup": ratios.get(result.name, {})}) for result in results)
    return BenchReport(
        checkpoint="runs/ckpt", data="dev.json", device="cpu", workload=Workload(10, 10, 1000, 1e9),
        flops_per_384_window=9.5e9, machine=describe_machine(), versions={"torch": "x"},
        method={"repeats": 3, "rounds": 1, "warmup_questions": 32, "reference": "seed"}, ceiling=None, results=results,
    )  # fmt: skip


RESULTS = (
    _result("seed", 3.0, 86.0),  # as accurate as spanqa-fp32 but slower: off the frontier
    _result("hf-pipeline", 20.0, 85.0),  # beaten by spanqa-fp32 on both
    _result("spanqa-fp32", 30.0, 86.0),  # the most accurate, and the fastest of those
    _result("optimum-int8", 40.0, 84.0),  # beaten by spanqa-int8 on both
    _result("spanqa-int8", 60.0, 85.5),
    _result("tiny-int8", 90.0, 70.0),  # fastest: on it whatever its F1
    _result("broken", None, None, status="failed, exit 1: boom"),
)


def test_frontier_of_a_known_run():
    points = measured_points(RESULTS)
    assert [point.name for point in points] == [result.name for result in RESULTS[:-1]]
    assert [point.name for point in pareto_frontier(points)] == ["spanqa-fp32", "spanqa-int8", "tiny-int8"]
    # Exactly equal figures: neither system is better, both stay.
    twins = [Point("a", 10.0, 80.0), Point("b", 10.0, 80.0), Point("c", 5.0, 70.0)]
    assert [point.name for point in pareto_frontier(twins)] == ["a", "b"]
    assert pareto_frontier([]) == []
    assert measured_points([_result("nan", float("nan"), 80.0), _result("no-f1", 10.0, None)]) == []


@given(st.lists(st.tuples(st.floats(0.1, 1000.0), st.floats(0.0, 100.0)), max_size=12))
def test_frontier_is_exactly_the_undominated_points(pairs):
    points = [Point(f"s{index}", speed, f1) for index, (speed, f1) in enumerate(pairs)]
    front = pareto_frontier(points)
    names = {point.name for point in front}
    for point in points:
        beaten = any(
            other.questions_per_second >= point.questions_per_second and other.f1 >= point.f1
            and (other.questions_per_second, other.f1) != (point.questions_per_second, point.f1)
            for other in points
        )  # fmt: skip
        assert (point.name in names) == (not beaten)
    speeds = [point.questions_per_second for point in front]
    assert speeds == sorted(speeds)
    assert all(slower.f1 >= faster.f1 for slower, faster in zip(front, front[1:]))  # the step line only falls
    assert not any(dominates(a, b) for a in front for b in front)


def test_frontier_line_and_markdown():
    line = frontier_line(measured_points(RESULTS))
    assert line.endswith("spanqa-fp32 (30.0 q/s, F1 86.00) -> spanqa-int8 (60.0 q/s, F1 85.50) -> "
                         "tiny-int8 (90.0 q/s, F1 70.00).")  # fmt: skip
    assert frontier_line([]) is None
    assert line in markdown(_report(RESULTS))
    assert "frontier" not in markdown(_report((RESULTS[-1],)))


def test_chart_path_defaults_beside_the_json(tmp_path):
    assert frontier_path("f.png", "r.json") == Path("f.png")
    assert str(frontier_path(None, str(tmp_path / "bench.json"))) == str(tmp_path / "bench.frontier.png")
    assert frontier_path(None, None) is None


def test_labels_of_close_points_are_stacked_not_overlapping():
    anchors = [(100.0, 50.0), (101.0, 50.0), (102.0, 50.5), (400.0, 50.0)]  # three crowded points, one far away
    names = ["optimum-fp32", "spanqa-fp32", "hf-pipeline", "spanqa-int8"]
    offsets = label_offsets(anchors, names, char_width=5.0, line_height=10.0)
    assert offsets[0] == offsets[3] == (4.0, 3.0)  # nothing in the way: the default place
    boxes = [(x + dx, y + dy, x + dx + 5.0 * len(name), y + dy + 10.0)
             for (x, y), (dx, dy), name in zip(anchors, offsets, names)]  # fmt: skip
    for i, (left, bottom, right, top) in enumerate(boxes):
        for other in boxes[i + 1 :]:
            assert right <= other[0] or other[2] <= left or top <= other[1] or other[3] <= bottom
    assert sorted(dy for _, dy in offsets[:3]) == [3.0, 13.0, 23.0]  # raised one line at a time


@needs_matplotlib
def test_chart_is_written_from_a_results_object(tmp_path):
    chart = tmp_path / "frontier.png"
    front = draw_frontier(_report(RESULTS).results, chart, "title")
    assert [point.name for point in front] == ["spanqa-fp32", "spanqa-int8", "tiny-int8"]
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError, match="nothing to chart"):
        draw_frontier((RESULTS[-1],), tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


@needs_matplotlib
def test_cli_draws_the_chart_beside_the_json_or_where_told(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "run_bench", lambda options: _report(RESULTS[:-1]))
    base = ["--model", str(tmp_path), "--data", str(tmp_path / "dev.json"), "--no-ceiling"]
    assert cli.main([*base, "--json", str(tmp_path / "run.json")]) == 0
    assert (tmp_path / "run.frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert "Speed-accuracy frontier" in capsys.readouterr().out
    assert cli.main([*base, "--frontier", str(tmp_path / "chosen.png")]) == 0
    assert (tmp_path / "chosen.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["chosen.png", "run.frontier.png"]
    assert cli.main([*base, "--frontier", str(tmp_path)]) == 2
    assert f"--frontier {tmp_path}: is a folder" in capsys.readouterr().err
    monkeypatch.setattr(cli, "run_bench", lambda options: _report((RESULTS[-1],)))
    assert cli.main([*base, "--frontier", str(tmp_path / "none.png")]) == 1  # nothing measured: no chart, exit 1
    assert not (tmp_path / "none.png").exists() and "none.png not written" in capsys.readouterr().err
