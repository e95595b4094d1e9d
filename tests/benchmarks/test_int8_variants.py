"""int8_variants: the winner is the fastest variant within the F1 budget whose answers do not depend on batching,
speed-ups are taken round by round, the rounds rotate, a variant that cannot be built is recorded (and so are the
ones built from it) without stopping the others, and a tiny model goes through the whole measurement."""

from __future__ import annotations

import pytest

from spanqa.benchmarks import int8_variants as iv
from spanqa.engine.core.data import QAExample
from support.export_models import _QUESTIONS


def _row(speedup: float, f1_drop: float, identical: float = 100.0, error: str | None = None) -> dict:
    return {"speedup_median": speedup, "f1_drop": f1_drop, "identical_percent": identical, "error": error}


def test_winner_is_the_fastest_within_the_f1_budget_and_batch_independent():
    rows = {
        iv.REFERENCE: _row(1.0, 0.0),
        "fast-but-inaccurate": _row(3.0, 0.51),
        "fast-but-batch-dependent": _row(2.5, 0.1, identical=99.9),
        "good": _row(2.0, 0.5),
        "slower-good": _row(1.8, -0.2),
        "broken": _row(9.0, 0.0, error="build failed: x"),
    }
    assert iv.choose_winner(rows) == "good"
    assert iv.choose_winner(rows, require_independent=False) == "fast-but-batch-dependent"
    assert iv.choose_winner(rows, max_f1_drop=0.6, require_independent=False) == "fast-but-inaccurate"


def test_no_winner_when_nothing_qualifies_and_never_the_reference():
    rows = {iv.REFERENCE: _row(1.0, 0.0), "bad": _row(2.0, 1.2), "dependent": _row(2.0, 0.0, identical=93.0)}
    assert iv.choose_winner(rows) is None
    assert iv.choose_winner({iv.REFERENCE: _row(1.0, 0.0)}) is None


def test_speedups_are_taken_within_each_round():
    # The reference slows down in round 2 (load); the variant slows alike, so its ratio stays 2.
    summary = iv.speed_summary([1.0, 2.0, 1.5], [2.0, 4.0, 3.0])
    assert summary["speedup_median"] == summary["speedup_min"] == summary["speedup_max"] == 2.0
    assert (summary["median_seconds"], summary["min_seconds"], summary["max_seconds"]) == (1.5, 1.0, 2.0)
    spread = iv.speed_summary([1.0, 1.0, 1.0], [2.0, 3.0, 1.0])
    assert (spread["speedup_min"], spread["speedup_median"], spread["speedup_max"]) == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError):
        iv.speed_summary([1.0, 2.0], [1.0])


def test_rounds_rotate_the_order():
    labels = ["a", "b", "c"]
    assert [iv.round_order(labels, r) for r in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]
    ]  # fmt: skip


def test_identical_share_compares_text_and_offsets():
    first = [("x", 0, 1), ("y", 2, 3), ("z", 4, 5), ("w", 6, 7)]
    second = [("x", 0, 1), ("y", 2, 4), ("z", 4, 5), ("v", 6, 7)]
    assert iv.identical_share(first, second) == 50.0
    with pytest.raises(ValueError):
        iv.identical_share(first, second[:3])


def test_selection_adds_the_reference_and_every_graph_a_variant_is_built_from():
    chosen = [variant.label for variant in iv.select_variants(iv.VARIANTS, ["static-qattention-rawmask"])]
    assert chosen == [iv.REFERENCE, "fp32-rawmask", "dyn-qattention-rawmask", "static-qattention-rawmask"]
    assert len(iv.select_variants(iv.VARIANTS, None)) == len(iv.VARIANTS)
    with pytest.raises(ValueError, match="unknown variant nope"):
        iv.select_variants(iv.VARIANTS, ["nope"])


def test_every_variant_is_built_after_what_it_needs():
    seen = {"plain"}
    for variant in iv.VARIANTS:
        assert set(variant.needs) <= seen, variant.label
        seen.add(variant.label)


def _failing(context, sources, target):
    raise RuntimeError("ORT cannot build this\nsecond line")


def test_tiny_model_builds_measures_and_records_a_failed_variant(tiny_onnx, tmp_path):
    from transformers import AutoConfig

    from spanqa.engine.core.model_folder import read_manifest
    from spanqa.engine.core.tokenizer import QATokenizer
    from spanqa.export.families import family_of

    config = AutoConfig.from_pretrained(tiny_onnx)
    tokenizer = QATokenizer.from_folder(tiny_onnx)
    context = iv.BuildContext(config, family_of(config, str(tiny_onnx)), None, [], tokenizer.pad_token_id or 0)
    variants = [
        iv.VARIANTS[0],  # the fused fp32 reference
        iv.Variant("dyn-qattention", "dynamic", (iv.REFERENCE,), iv._quantize),
        iv.Variant("broken", "raises", ("plain",), _failing),
        iv.Variant("child-of-broken", "needs broken", ("broken",), iv._quantize),
    ]
    built = iv.build_variants(variants, tiny_onnx, tmp_path, context)
    assert built["broken"]["error"] == "build failed: RuntimeError: ORT cannot build this"
    assert built["child-of-broken"]["error"] == "needs broken, which was not built"
    assert built["dyn-qattention"]["op_counts"]["QAttention"] == config.num_hidden_layers
    assert read_manifest(built["dyn-qattention"]["folder"]).precision == "int8"
    assert built["dyn-qattention"]["model_bytes"] < built[iv.REFERENCE]["model_bytes"]

    examples = [QAExample(id=qid, question=q, context=c, answer_texts=(a,)) for qid, q, c, a in _QUESTIONS]
    folders = {label: built[label]["folder"] for label in (iv.REFERENCE, "dyn-qattention")}
    manifest = read_manifest(tiny_onnx)
    measured = iv.measure(folders, examples, tokenizer, manifest.window, context.pad_token_id, rounds=2, threads=1)
    reference = measured["variants"][iv.REFERENCE]
    assert reference["speedup_median"] == 1.0 and reference["f1_drop"] == 0.0
    assert reference["identical_percent"] == 100.0 and reference["repeatable_across_rounds"]
    assert len(reference["round_seconds"]) == 2 and measured["batches"]["questions"] == len(examples)
    assert 0.0 <= measured["variants"]["dyn-qattention"]["f1"] <= 100.0


def test_results_name_paths_relative_to_the_repository(tmp_path):
    root = tmp_path / "main"
    result = {"command": f"x --checkpoint {tmp_path}/runs/ckpt --json {root}/benchmarks/results/r.json",
              "variants": {"a": {"folder": f"{tmp_path}/runs/a", "f1": 80.0}}, "list": [f"{root}/engine"]}
    assert iv.repo_relative(result, root) == {
        "command": "x --checkpoint ../runs/ckpt --json benchmarks/results/r.json",
        "variants": {"a": {"folder": "../runs/a", "f1": 80.0}}, "list": ["engine"],
    }  # fmt: skip
