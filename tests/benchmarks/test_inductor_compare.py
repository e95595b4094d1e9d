"""benchmarks/inductor_compare: the --system flag, and on a tiny random model that each torch runner computes the
checkpoint's logits (an int8 or bf16 graph that computed something else would time the wrong thing) on batches of
any shape, and that a small run times a system against ONNX Runtime round by round."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest

from spanqa.benchmarks import inductor_compare
from spanqa.benchmarks.inductor_compare import build


@pytest.mark.parametrize("system", ["onnxruntime", "inductor-int8,torch-bf16"])
def test_unknown_system_is_a_usage_error(system, capsys):
    with pytest.raises(SystemExit) as exit_info:
        inductor_compare.main(["--system", system, "--checkpoint", "unused"])
    assert exit_info.value.code == 2 and "--system" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_batches(tiny_onnx, squad_dir):
    """The engine's batches of 12 dev questions on the tiny export, and the engine."""
    from spanqa.benchmarks.engine_overhead import prepared_groups
    from spanqa.engine.core.data import load_examples
    from spanqa.engine.runtime.engine import QAEngine
    from spanqa.engine.runtime.options import EngineOptions, SessionOptions

    options = EngineOptions(device="cpu", backend="onnx", workers=1, session=SessionOptions(intra_op_threads=1),
                            max_batch_tokens=1024)  # fmt: skip
    engine = QAEngine(tiny_onnx, options=options)
    examples = load_examples(squad_dir / "dev-v1.1.json.gz")[:12]
    batches = [batch for group in prepared_groups(engine, examples) for _, batch in group.batches]
    return engine, examples, batches


def close_to_fp32(runner, reference, batches, tolerance: float) -> None:
    for batch in batches:
        for ours, theirs in zip(runner.run(batch), reference.run(batch), strict=True):
            assert ours.shape == theirs.shape
            real = batch.attention_mask.astype(bool)  # padded positions carry no answer
            error = np.abs(ours - theirs)[real].max()
            assert error <= tolerance * np.abs(theirs[real]).max(), (batch.input_ids.shape, error)


@pytest.mark.skipif(find_spec("torchao") is None, reason="torchao is not installed (the [bench] extra)")
def test_each_runner_computes_the_checkpoints_logits_on_every_batch_shape(tiny_model, tiny_batches, one_torch_thread):
    engine, _, batches = tiny_batches
    shapes = {batch.input_ids.shape for batch in batches}
    assert len({rows for rows, _ in shapes}) > 1 and len({width for _, width in shapes}) > 1  # dynamic in both
    names = tuple(engine.backend.input_names)
    reference = engine.backend  # the tiny checkpoint's fp32 graph on ONNX Runtime
    tolerances = {"torch-bf16": 0.05, "inductor-bf16": 0.05, "inductor-int8": 0.1, "inductor-int8-bf16": 0.1}
    assert set(tolerances) == set(inductor_compare.SYSTEMS)
    for system, tolerance in tolerances.items():
        close_to_fp32(build(system, str(tiny_model), names, batches[0], batches), reference, batches, tolerance)


@pytest.mark.skipif(find_spec("torchao") is None, reason="torchao is not installed (the [bench] extra)")
def test_a_small_run_times_the_system_against_onnx_runtime(tiny_model, tiny_batches, one_torch_thread):
    engine, examples, _ = tiny_batches
    rows = inductor_compare.measure(engine, "torch-bf16", str(tiny_model), examples, examples[:4], rounds=2)
    assert list(rows) == ["ort-int8", "torch-bf16"]
    assert rows["ort-int8"]["speedup_per_round"] == [1.0, 1.0] and len(rows["torch-bf16"]["wall_seconds"]) == 2
    assert rows["ort-int8"]["answers_identical_to_reference"] == 100.0
    assert 0.0 <= rows["torch-bf16"]["f1"] <= 100.0 and rows["torch-bf16"]["build_and_first_pass_seconds"] >= 0
