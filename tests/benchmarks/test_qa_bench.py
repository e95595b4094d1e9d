"""qa-bench: the FLOP count, the GEMM ceiling, every system's runner on a tiny model, the report, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spanqa.benchmarks.qa_bench import exports
from spanqa.benchmarks.qa_bench.ceiling import Ceiling, GemmOptions, GemmRate, _matmul_graph, measure_ceiling
from spanqa.benchmarks.qa_bench.cli import main
from spanqa.benchmarks.qa_bench.flops import EncoderShape, window_flops, windows_flops
from spanqa.benchmarks.qa_bench.machine import describe_machine
from spanqa.benchmarks.qa_bench.options import BenchOptions
from spanqa.benchmarks.qa_bench.report import BenchReport, headline, markdown, plot
from spanqa.benchmarks.qa_bench.results import SystemResult, Workload, speedups, summarise
from spanqa.benchmarks.qa_bench.run import run_worker
from spanqa.benchmarks.qa_bench.systems.catalog import QA_PIPELINE, SYSTEMS, missing, resolve_systems, skipped_defaults
from spanqa.benchmarks.qa_bench.systems.timing import PassResult, StageClock
from spanqa.benchmarks.qa_bench.worker import WorkerTask
from spanqa.engine.core.data import load_examples

QUESTIONS = 6


@pytest.fixture(scope="module")
def dev_examples(squad_dir):
    return load_examples(squad_dir / "dev-v1.1.json.gz")[:QUESTIONS]


# --- FLOPs and the GEMM ceiling ---------------------------------------------------------------------------------


def test_flops_match_torch_flop_counter_and_the_issue_estimate():
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertForQuestionAnswering

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, attn_implementation="eager")  # fmt: skip
    model = BertForQuestionAnswering(config).eval()
    shape = EncoderShape.from_config(config)
    for length in (5, 33):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(input_ids=torch.randint(0, 50, (1, length)))
        assert window_flops(shape, length) == counter.get_total_flops()
    assert windows_flops(shape, np.array([5, 33])) == window_flops(shape, 5) + window_flops(shape, 33)
    minilm = EncoderShape.from_config({"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6})
    assert window_flops(minilm, 384) / 1e9 == pytest.approx(9.513, abs=1e-3)
    with pytest.raises(ValueError, match="intermediate_size"):
        EncoderShape.from_config({"hidden_size": 384, "num_hidden_layers": 6})


def test_ceiling_graphs_compute_the_product_and_report_rates():
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    for integer in (False, True):
        model = _matmul_graph(8, 16, 4, integer)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        weights = {init.name: init for init in model.graph.initializer}["W"]
        from onnx import numpy_helper

        w = numpy_helper.to_array(weights)
        if integer:
            a = rng.integers(0, 256, size=(8, 16), dtype=np.uint8)
            expected = (a.astype(np.int32) - 128) @ w.astype(np.int32)
            assert np.array_equal(session.run(None, {"A": a})[0], expected)
        else:
            a = rng.standard_normal((8, 16), dtype=np.float32)
            np.testing.assert_allclose(session.run(None, {"A": a})[0], a @ w, rtol=1e-5, atol=1e-5)
    ceiling = measure_ceiling("cpu", GemmOptions(tokens=64, hidden=32, intermediate=64, runs=2, warmup_runs=1, threads=1))
    assert {rate.precision for rate in ceiling.rates} == {"fp32", "int8"} and len(ceiling.rates) == 4
    assert all(rate.gflops > 0 for rate in ceiling.rates)
    assert ceiling.best("int8") == max(rate.gflops for rate in ceiling.rates if rate.precision == "int8")
    assert ceiling.best("fp16") is None
    slower = Ceiling("cpu", 1, tuple(GemmRate(r.precision, r.operator, r.shape, 1.0, r.gflops / 2) for r in ceiling.rates))
    assert slower.faster(ceiling).rates == ceiling.rates
    with pytest.raises(ValueError, match="tokens"):
        GemmOptions(tokens=0)


# --- systems and their runners ----------------------------------------------------------------------------------


def test_system_lists_are_checked():
    every = ["seed", "hf-pipeline", "optimum-fp32", "optimum-int8", "spanqa-fp32", "spanqa-int8", "spanqa-openvino",
             "spanqa-torch"]
    skipped = skipped_defaults("cpu")
    assert [spec.name for spec in resolve_systems(None, "cpu")] == [name for name in every if name not in skipped]
    for name, reason in skipped.items():  # only the baselines the transformers-5 stack cannot offer
        assert name in ("hf-pipeline", "optimum-fp32", "optimum-int8") and "pinned stack" in reason
        with pytest.raises(ValueError, match=f"{name} cannot run here"):
            resolve_systems(name, "cpu")
    assert [spec.name for spec in resolve_systems(" spanqa-fp16, seed ", "cuda")] == ["spanqa-fp16", "seed"]
    assert all("cuda" in spec.devices for spec in resolve_systems(None, "cuda"))
    with pytest.raises(ValueError, match="unknown nope"):
        resolve_systems("seed,nope", "cpu")
    with pytest.raises(ValueError, match="seed named more than once"):
        resolve_systems("seed,seed", "cpu")
    with pytest.raises(ValueError, match="spanqa-fp16 runs on cuda only"):
        resolve_systems("spanqa-fp16", "cpu")
    with pytest.raises(ValueError, match="optimum-int8 runs on cpu only"):
        resolve_systems("optimum-int8", "cuda")


def _check_pass(result: PassResult, examples, stages_split: bool = True) -> None:
    assert len(result.answers) == len(examples)
    assert all(isinstance(answer, str) for answer in result.answers)
    assert result.seconds > 0 and len(result.batch_seconds) == len(result.batch_shapes) > 0
    assert sum(rows for rows, _ in result.batch_shapes) >= len(examples)  # every question has at least one window
    if stages_split:
        for stage in (result.tokenize_seconds, result.infer_seconds, result.decode_seconds):
            assert stage is not None and 0 <= stage <= result.seconds


def test_seed_and_pipeline_runners(tiny_model, dev_examples):
    from spanqa.benchmarks.qa_bench.systems.pipelines import hf_pipeline_runner
    from spanqa.benchmarks.qa_bench.systems.seed import SeedRunner

    seed = SeedRunner(str(tiny_model), "cpu")
    result = seed.run(dev_examples)
    _check_pass(result, dev_examples)
    assert {width for _, width in result.batch_shapes} == {384}  # the notebook pads every window to 384

    if reason := missing(QA_PIPELINE):
        pytest.skip(f"the pipeline half: {reason}")
    pipeline = hf_pipeline_runner(str(tiny_model), "cpu", "fp32")
    pipeline.tune(dev_examples[:3], (1, 2))
    assert pipeline.batch_size in (1, 2) and set(pipeline.settings["batch_size_search"]["seconds"]) == {"1", "2"}
    result = pipeline.run(dev_examples)
    _check_pass(result, dev_examples)
    assert max(rows for rows, _ in result.batch_shapes) <= pipeline.batch_size
    # The wrappers are removed again: the pipeline object is left as it was.
    assert "preprocess" not in vars(pipeline.pipe) and "forward" not in vars(pipeline.pipe)


def test_optimum_runners(tiny_model, dev_examples, tmp_path):
    pytest.importorskip("optimum.exporters.onnx", reason="optimum-onnx is not installed (pinned stack only)")
    from spanqa.benchmarks.qa_bench.systems.pipelines import export_optimum, optimum_runner

    for quantize in (False, True):
        folder = tmp_path / f"optimum-{quantize}"
        export_optimum(str(tiny_model), folder, quantize=quantize)
        assert not folder.with_name(folder.name + ".partial").exists()
        runner = optimum_runner(str(folder))
        assert runner.settings["onnx_file"] == ("model_quantized.onnx" if quantize else "model.onnx")
        _check_pass(runner.run(dev_examples), dev_examples)


def test_spanqa_runners(tiny_model, dev_examples, tmp_path):
    from spanqa.benchmarks.qa_bench.systems.spanqa import SpanqaRunner
    from spanqa.export.options import ExportOptions
    from spanqa.export.run import export_model

    torch_runner = SpanqaRunner(str(tiny_model), "cpu", "torch", "fp32", overrides={"max_batch_windows": 2})
    result = torch_runner.run(dev_examples)
    _check_pass(result, dev_examples)
    assert max(rows for rows, _ in result.batch_shapes) <= 2 and torch_runner.settings["max_batch_windows"] == 2
    assert "run" not in vars(torch_runner.engine.backend)  # the latency wrapper is gone after the pass
    # The tiny model is random, so the export's parity gate is skipped here; qa-bench exports with it on.
    export_model(ExportOptions(str(tiny_model), str(tmp_path / "fp32"), skip_parity=True))
    onnx_runner = SpanqaRunner(str(tmp_path / "fp32"), "cpu", "onnx")
    onnx_result = onnx_runner.run(dev_examples)
    _check_pass(onnx_result, dev_examples)
    assert onnx_runner.settings["onnx_precision"] == "fp32"


# --- results and the report -------------------------------------------------------------------------------------


def _worker_output(answers: list[str], seconds: list[float]) -> dict:
    passes = [{"seconds": s, "tokenize_seconds": 0.1, "infer_seconds": s / 2, "decode_seconds": None,
               "batch_seconds": [0.01, 0.02, 0.03, 0.04], "batch_shapes": [[2, 10], [2, 10], [1, 20], [1, 20]]}
              for s in seconds]  # fmt: skip
    return {"settings": {"batch_size": 2}, "load_seconds": 1.5, "questions": len(answers), "passes": passes,
            "answers": answers, "answers_identical_across_passes": True, "peak_rss_bytes": 2**30,
            "gpu_peak_allocated_bytes": None}  # fmt: skip


def test_summarise_takes_medians_percentiles_and_scores(dev_examples):
    workload = Workload(questions=QUESTIONS, windows=6, tokens=60, useful_flops=2e9)
    ceiling = Ceiling("cpu", 2, (GemmRate("fp32", "MatMul", "s", 1.0, 10.0),))
    gold = [example.answer_texts[0] for example in dev_examples]
    rounds = [_worker_output(gold, [1.0, 3.0]), _worker_output(gold, [2.0])]
    result = summarise(SYSTEMS["seed"], "cpu", rounds, dev_examples, workload, ceiling)
    assert result.ok and result.timed_passes == 3 and result.median_seconds == 2.0
    assert result.examples_per_second == QUESTIONS / 2.0 and result.tokens_per_second == 30.0
    assert result.infer_seconds == 1.0 and result.decode_seconds is None  # n/a stays n/a
    assert result.exact_match == 100.0 and result.f1 == 100.0
    assert result.batch_p50_ms == pytest.approx(25.0) and result.peak_rss_mib == 1024.0
    assert result.padding_fraction == pytest.approx(1 - 60 / 80)
    assert result.effective_gflops == pytest.approx(1.0) and result.ceiling_share == pytest.approx(10.0)
    assert result.infer_ceiling_share == pytest.approx(20.0)


def _row(name: str, rate: float, f1: float) -> SystemResult:
    spec = SYSTEMS[name]
    return SystemResult(name, spec.family, spec.runtime, spec.precision, "cpu", spec.description, "ok",
                        median_seconds=10 / rate, examples_per_second=rate, exact_match=f1 - 5, f1=f1)  # fmt: skip


def test_report_headline_and_chart(tmp_path):
    rows = [_row("hf-pipeline", 10.0, 82.9), _row("optimum-int8", 20.0, 82.1), _row("spanqa-int8", 40.0, 82.5),
            _row("spanqa-openvino", 60.0, 82.8)]
    failed = SystemResult("seed", "seed", "PyTorch eager", "fp32", "cpu", "", status="failed, exit 1: boom")
    ratios = speedups([*rows, failed])
    rows = [SystemResult(**{**vars(row), "speedup": ratios[row.name]}) for row in rows]
    report = BenchReport(
        checkpoint="ckpt", data="dev.json", device="cpu", workload=Workload(10, 10, 1000, 1e9),
        flops_per_384_window=9.5e9, machine=describe_machine(), versions={"torch": "x"},
        method={"repeats": 3, "rounds": 1, "warmup_questions": 32, "reference": "seed"}, ceiling=None,
        results=(*rows, failed),
    )  # fmt: skip
    line = headline(report)
    assert "**4.00x hf-pipeline** (F1 82.90)" in line and "**2.00x optimum-int8** (F1 82.10)" in line
    assert "spanqa-int8 (F1 82.50)" in line
    assert "spanqa-openvino (F1 82.80) answers **6.00x hf-pipeline** (F1 82.90) and **3.00x optimum-int8**" in line
    text = markdown(report)
    assert "| seed | PyTorch eager | fp32 | failed, exit 1: boom |" in text
    header = next(row for row in text.splitlines() if row.startswith("| system | runtime"))
    rows_shown = [row for row in text.splitlines() if row.startswith(("| spanqa-int8 | ONNX", "| seed | PyTorch"))]
    assert len(rows_shown) == 2 and all(row.count("|") == header.count("|") for row in rows_shown)
    json.loads(report.to_json())
    plot(report, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the CLI ----------------------------------------------------------------------------------------------------


def test_cli_runs_systems_in_workers_and_writes_outputs(tiny_model, squad_dir, dev_examples, tmp_path, capsys):
    from transformers import AutoTokenizer

    from spanqa.engine.core.tokenizer import QATokenizer
    from spanqa.engine.core.windows import make_windows
    from spanqa.engine.evaluation.scoring import evaluate

    out = tmp_path / "out"
    out.mkdir()
    code = main([
        "--model", str(tiny_model), "--data", str(squad_dir / "dev-v1.1.json.gz"), "--limit", str(QUESTIONS),
        "--systems", "seed,spanqa-torch", "--repeats", "2", "--warmup-questions", "2", "--work-dir", str(tmp_path / "w"),
        "--json", str(out / "r.json"), "--markdown", str(out / "r.md"), "--plot", str(out / "r.png"),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "r.json").read_text())
    assert report["workload"]["questions"] == QUESTIONS and report["method"]["reference"] == "seed"
    assert report["machine"]["cpu"] and report["versions"]["torch"]
    assert {rate["precision"] for rate in report["ceiling"]["rates"]} == {"fp32", "int8"}
    # Every figure in the report is recomputed here from the workers' raw outputs, which the run leaves in its logs.
    raw = {name: json.loads((tmp_path / "w" / "logs" / f"{name}-round0.json").read_text()) for name in ("seed", "spanqa-torch")}
    windows = make_windows(QATokenizer.from_transformers(AutoTokenizer.from_pretrained(tiny_model)), dev_examples)
    assert report["workload"]["windows"] == len(windows) and report["workload"]["tokens"] == int(windows.lengths.sum())
    best_fp32 = max(rate["gflops"] for rate in report["ceiling"]["rates"] if rate["precision"] == "fp32")
    rows = {result["name"]: result for result in report["results"]}
    assert list(rows) == ["seed", "spanqa-torch"]
    for name, result in rows.items():
        passes, answers = raw[name]["passes"], raw[name]["answers"]
        assert result["status"] == "ok" and result["timed_passes"] == len(passes) == 2 and len(answers) == QUESTIONS
        median = float(np.median([record["seconds"] for record in passes]))
        assert result["median_seconds"] == pytest.approx(median)
        assert result["examples_per_second"] == pytest.approx(QUESTIONS / median)
        assert result["tokens_per_second"] == pytest.approx(report["workload"]["tokens"] / median)
        for stage in ("tokenize", "infer", "decode"):
            expected = float(np.median([record[f"{stage}_seconds"] for record in passes]))
            assert result[f"{stage}_seconds"] == pytest.approx(expected) and expected > 0, (name, stage)
        latencies = [latency for record in passes for latency in record["batch_seconds"]]
        assert result["batch_p50_ms"] == pytest.approx(1e3 * float(np.percentile(latencies, 50)))
        assert result["batch_p95_ms"] == pytest.approx(1e3 * float(np.percentile(latencies, 95)))
        assert result["peak_rss_mib"] == raw[name]["peak_rss_bytes"] / 2**20 and 0 < result["peak_rss_mib"] < 8192
        scores = evaluate(dev_examples, {example.id: answer for example, answer in zip(dev_examples, answers)})
        assert (result["exact_match"], result["f1"]) == (scores.exact_match, scores.f1)
        same = sum(ours == theirs for ours, theirs in zip(answers, raw["seed"]["answers"]))
        assert result["agreement"] == 100.0 * same / QUESTIONS
        assert result["speedup"]["seed"] == pytest.approx(result["examples_per_second"] / rows["seed"]["examples_per_second"])
        useful = report["workload"]["useful_flops"] / median / 1e9
        assert result["ceiling_share"] == pytest.approx(100.0 * useful / best_fp32)
    assert "| spanqa-torch |" in (out / "r.md").read_text()
    assert (out / "r.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--limit", "0"], "--limit must be at least 1"),
        (["--systems", "seed,warp-drive"], "unknown warp-drive"),
        (["--repeats", "0"], "--repeats must be at least 1"),
        (["--batch-sizes", "1,x"], "--batch-sizes: expected comma-separated integers"),
        (["--json", "/no/such/folder/r.json"], "--json /no/such/folder/r.json: folder /no/such/folder does not exist"),
        (["--plot", "/tmp"], "--plot /tmp: is a folder"),
        (["--spanqa-max-batch-tokens", "0"], "--spanqa-max-batch-tokens must be a positive integer"),
    ],
)
def test_bad_arguments_are_usage_errors(arguments, message, tiny_model, squad_dir, tmp_path, capsys):
    try:  # argparse's own errors exit; the ones found after parsing return the code
        code = main(["--model", str(tiny_model), "--data", str(squad_dir / "dev-v1.1.json.gz"), *arguments,
                              "--work-dir", str(tmp_path / "w")])  # fmt: skip
    except SystemExit as stopped:
        code = stopped.code
    assert code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "w").exists()  # refused before any work


def test_bad_inputs_exit_2_naming_them(tiny_model, squad_dir, tmp_path, capsys):
    dev = str(squad_dir / "dev-v1.1.json.gz")
    cases = [
        (["--model", str(tmp_path / "none"), "--data", dev], f"--model {tmp_path / 'none'}: no such folder"),
        (["--model", str(tmp_path), "--data", dev], "no config.json"),
        (["--model", str(tiny_model), "--data", str(tmp_path / "missing.json")], "missing.json: no such file"),
        (["--model", str(tiny_model), "--data", dev, "--onnx-int8", str(tiny_model)], "--onnx-int8: "),
        (["--model", str(tiny_model), "--data", dev, "--train-data", str(tmp_path / "t.json")], "--train-data"),
    ]
    for arguments, message in cases:
        assert main([*arguments, "--work-dir", str(tmp_path / "w")]) == 2
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error


def test_a_failing_worker_is_reported_not_fatal(tmp_path):
    task = WorkerTask("seed", str(tmp_path / "no-model"), "cpu", str(tmp_path / "none.json"), 2, 1, 1, (1,), 2,
                      str(tmp_path / "result.json"))  # fmt: skip
    (tmp_path / "logs").mkdir()
    outcome = run_worker(task, tmp_path / "logs" / "seed.log", timeout=120)
    assert isinstance(outcome, str) and outcome.startswith("failed, exit 1") and "seed.log" in outcome
    assert not (tmp_path / "result.json").exists()


def test_exports_are_cached_by_checkpoint_fingerprint(tiny_model, tmp_path, monkeypatch):
    calls = []

    def fake_export(checkpoint, folder, quantize):
        calls.append(folder)
        folder.mkdir(exist_ok=True)  # the real exporters replace an existing folder

    import spanqa.benchmarks.qa_bench.systems.pipelines as pipelines

    monkeypatch.setattr(pipelines, "export_optimum", fake_export)
    fingerprint = exports.checkpoint_fingerprint(tiny_model)
    first = exports.cached_export("optimum-int8", tiny_model, tmp_path, fingerprint)
    again = exports.cached_export("optimum-int8", tiny_model, tmp_path, fingerprint)
    assert first == again and len(calls) == 1
    exports.cached_export("optimum-int8", tiny_model, tmp_path, "another model")
    assert len(calls) == 2
    # A failed export costs only the systems that need it, with the reason.
    monkeypatch.setattr(pipelines, "export_optimum", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("disk full")))
    options = BenchOptions(model=str(tiny_model), data="d")
    paths, failures = exports.prepare_models((SYSTEMS["seed"], SYSTEMS["optimum-fp32"]), options, tiny_model, tmp_path)
    assert paths == {"checkpoint": str(tiny_model)} and failures == {"optimum-fp32": "export failed: OSError: disk full"}


def test_stage_clock_times_only_the_producer():
    clock = StageClock()

    def produce():
        yield from range(3)

    consumed = list(clock.timed_generator("tokenize", produce)())
    assert consumed == [0, 1, 2] and clock.get("tokenize") is not None and clock.get("decode") is None
    assert clock.timed("infer", lambda batch: batch * 2, batch_shape=lambda batch: (batch, 7))(3) == 6
    assert clock.batch_shapes == [(3, 7)]


def test_the_package_runs_as_a_module():
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-m", "spanqa.benchmarks.qa_bench", "--help"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("usage: qa-bench ") and "--spanqa-max-batch-tokens" in finished.stdout


def test_spanqa_int8_export_is_static_with_calibration_data_and_cached_by_it(tiny_model, tmp_path, monkeypatch):
    calls = []

    def fake_export(checkpoint, folder, precision, calibration=None, openvino=False):
        calls.append((precision, calibration, openvino))
        folder.mkdir(exist_ok=True)

    import spanqa.benchmarks.qa_bench.systems.spanqa as spanqa_system

    monkeypatch.setattr(spanqa_system, "export_spanqa", fake_export)
    fingerprint = exports.checkpoint_fingerprint(tiny_model)
    exports.cached_export("spanqa-int8", tiny_model, tmp_path, fingerprint, "train.jsonl")
    exports.cached_export("spanqa-int8", tiny_model, tmp_path, fingerprint, "train.jsonl")  # reused
    exports.cached_export("spanqa-int8", tiny_model, tmp_path, fingerprint, None)  # dynamic: a different model
    exports.cached_export("spanqa-fp32", tiny_model, tmp_path, fingerprint, "train.jsonl")  # fp32 ignores it
    exports.cached_export("spanqa-openvino", tiny_model, tmp_path, fingerprint, "train.jsonl")
    assert calls == [("int8", "train.jsonl", False), ("int8", None, False), ("fp32", None, False),
                     ("int8", "train.jsonl", True)]  # fmt: skip
    with pytest.raises(exports.BenchInputError, match="spanqa-openvino needs --calibration"):
        exports.cached_export("spanqa-openvino", tiny_model, tmp_path, fingerprint, None)
