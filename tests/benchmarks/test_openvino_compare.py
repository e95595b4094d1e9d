"""benchmarks/openvino_compare: the rule that decides whether OpenVINO may become the CPU default, the per-round
ratios it is judged on, the --system flag; and, where openvino is installed, one small run end to end."""

from __future__ import annotations

import argparse
from importlib.util import find_spec

import pytest

from spanqa.benchmarks import openvino_compare
from spanqa.benchmarks.openvino_compare import System, decide, parse_systems, rotated, summarize


def test_system_flags_name_the_runtime_precision_and_quantization():
    parser = argparse.ArgumentParser()
    ort, ov, nncf = parse_systems(parser, [["a", "ort", "x"], ["b", "ov-bf16", "y"], ["c", "ov-nncf-f32", "z"]])
    assert (ort.runtime, ort.precision, ort.nncf) == ("onnxruntime", None, False)
    assert (ov.runtime, ov.precision, ov.nncf, ov.folder) == ("openvino", "bf16", False, "y")
    assert (nncf.runtime, nncf.precision, nncf.nncf) == ("openvino", "f32", True)


@pytest.mark.parametrize("specs", [
    [["a", "ort", "x"], ["b", "tensorrt", "y"]],  # unknown kind
    [["a", "ort", "x"], ["a", "ov-f32", "y"]],  # same label twice
    [["a", "ort", "x"]],  # nothing to compare with
])  # fmt: skip
def test_bad_system_flags_are_usage_errors(specs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_systems(argparse.ArgumentParser(), specs)
    assert exit_info.value.code == 2 and "--system" in capsys.readouterr().err


def test_every_system_leads_one_round_in_turn():
    items = ["a", "b", "c"]
    assert [rotated(items, index)[0] for index in range(4)] == ["a", "b", "c", "a"]
    assert sorted(rotated(items, 5)) == items


def test_speedups_are_taken_round_by_round_against_the_reference():
    walls = {"ref": [2.0, 4.0, 3.0], "fast": [1.0, 1.0, 3.0]}
    cpus = {"ref": [4.0, 8.0, 6.0], "fast": [2.0, 2.0, 6.0]}
    rows = summarize(walls, cpus, questions=12, reference="ref")
    assert rows["fast"]["speedup_per_round"] == [2.0, 4.0, 1.0]
    assert (rows["fast"]["speedup"], rows["fast"]["speedup_min"], rows["fast"]["speedup_max"]) == (2.0, 1.0, 4.0)
    assert rows["ref"]["speedup_per_round"] == [1.0, 1.0, 1.0]
    assert rows["ref"]["questions_per_second"] == 4.0  # median of 6, 3, 4
    assert (rows["ref"]["questions_per_second_min"], rows["ref"]["questions_per_second_max"]) == (3.0, 6.0)
    assert rows["fast"]["questions_per_cpu_second"] == 6.0  # median of 6, 6, 2


def _row(runtime: str, f1: float, speedup: float, speedup_min: float | None = None) -> dict:
    worst = speedup if speedup_min is None else speedup_min
    return {"runtime": runtime, "f1": f1, "speedup": speedup, "speedup_min": worst}


def test_openvino_wins_only_when_fast_enough_in_every_sense_at_equal_f1():
    rows = {
        "ref": _row("onnxruntime", 80.0, 1.0),
        "ort-other": _row("onnxruntime", 90.0, 3.0),  # not OpenVINO: never a candidate
        "too-slow": _row("openvino", 80.0, 1.19),
        "coin-toss": _row("openvino", 80.0, 1.5, speedup_min=0.9),  # slower than the reference in one round
        "less-accurate": _row("openvino", 79.4, 2.0),
        "just-in": _row("openvino", 79.5, 1.2),
        "best": _row("openvino", 81.0, 1.4),
    }
    verdict = decide(rows, "ref", min_speedup=1.2, f1_tolerance=0.5)
    assert set(verdict["systems"]) == {"too-slow", "coin-toss", "less-accurate", "just-in", "best"}
    assert [label for label, item in verdict["systems"].items() if item["passes"]] == ["just-in", "best"]
    assert verdict["systems"]["less-accurate"] == {"fast_enough": True, "f1_equal": False, "passes": False}
    assert verdict["winner"] == "best"


def test_no_winner_when_none_passes():
    rows = {"ref": _row("onnxruntime", 80.0, 1.0), "ov": _row("openvino", 80.0, 1.1)}
    assert decide(rows, "ref", 1.2, 0.5)["winner"] is None


# A mark, not importorskip in the body: the tiny export fixture would be built (torch, seconds) before the skip.
@pytest.mark.skipif(find_spec("openvino") is None, reason="openvino is not installed (pip install openvino)")
def test_one_small_run_scores_each_runtime_on_the_batches_qa_answer_gives_it(tiny_onnx, squad_dir, monkeypatch):
    from spanqa.engine.core.data import load_examples

    examples = load_examples(squad_dir / "dev-v1.1.json.gz")[:6]
    systems = [System("ort", "ort", str(tiny_onnx)), System("ov", "ov-f32", str(tiny_onnx))]
    widths: dict[str, set[int]] = {}
    windows: set[int] = set()
    original = openvino_compare.prepared_groups

    def recording(engine, examples, width_multiple=None):
        groups = original(engine, examples, width_multiple)
        label = "ov" if width_multiple and width_multiple > 1 else "ort"
        windows.add(engine.window_options.max_length)
        widths[label] = {batch.input_ids.shape[1] for group in groups for _, batch in group.batches}
        return groups

    monkeypatch.setattr(openvino_compare, "prepared_groups", recording)
    rows = openvino_compare.measure(systems, examples, repeats=2, threads=1, calibration=None, workers=2)
    # OpenVINO gets its width buckets (multiples of 32, or the window length), ONNX Runtime each batch's longest row.
    (window,) = windows
    assert widths["ov"] and all(width % 32 == 0 or width == window for width in widths["ov"])
    assert any(width % 32 for width in widths["ort"])
    assert rows["ov"]["padding_fraction"] > rows["ort"]["padding_fraction"] >= 0.0
    assert rows["ov"]["runtime"] == "openvino" and rows["ov"]["config"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert len(rows["ov"]["wall_seconds"]) == 2 and rows["ort"]["speedup_per_round"] == [1.0, 1.0]
    # The same fp32 graph on two runtimes: the same answers (a random tiny model's logits differ only in rounding).
    assert rows["ov"]["answers_identical_to_reference"] == 100.0
    assert rows["ov"]["f1"] == rows["ort"]["f1"]
