"""benchmarks/attention_probe.py: every variant runs on the shape asked for, and bad shapes are refused."""

from __future__ import annotations

import argparse
import json

import pytest

from spanqa.benchmarks import attention_probe


def test_every_variant_is_timed_at_each_shape(tmp_path):
    out = tmp_path / "probe.json"
    assert attention_probe.main(["--shapes", "1x8,2x4", "--rounds", "1", "--calls", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {row["shape"] for row in rows} == {"1x8", "2x4"}
    assert len(rows) == 2 * len(attention_probe.build_variants(1, 8))
    assert all(row["ms"] > 0 for row in rows)
    rated = [row for row in rows if row["gflop_per_s"] is not None]
    assert rated and all(row["gflop_per_s"] > 0 for row in rated)


def test_the_variants_compute_what_they_claim():
    """QAttention with a full-length mask and without one give the same output; the projection has 3 x hidden."""
    variants = attention_probe.build_variants(2, 8)
    masked, unmasked = (variants[label] for label in ("QAttention (int8 QKV + fp32 core), mask", "QAttention, no mask"))
    first, second = (session.run(None, feeds)[0] for session, feeds, _ in (masked, unmasked))
    assert first.shape == (2, 8, attention_probe.HIDDEN)
    assert abs(first - second).max() < 1e-4
    session, feeds, _ = variants["QKV projection alone (MatMulIntegerToFloat)"]
    assert session.run(None, feeds)[0].shape == (2, 8, 3 * attention_probe.HIDDEN)


def test_the_torch_yardstick_computes_the_same_attention_core():
    """torch's scaled_dot_product_attention gives MultiHeadAttention's output (bf16 to bf16's precision)."""
    pytest.importorskip("torch")
    variants = attention_probe.build_variants(2, 8)
    session, feeds, _ = variants["core alone on fp32 Q, K, V (MultiHeadAttention)"]
    expected = session.run(None, feeds)[0]
    for dtype, tolerance in (("fp32", 1e-5), ("bf16", 5e-2)):
        torch_session, torch_feeds, _ = variants[f"core as torch scaled_dot_product_attention, {dtype} (yardstick)"]
        assert abs(torch_session.run(None, torch_feeds)[0] - expected).max() < tolerance


@pytest.mark.parametrize("text", ["", "2x", "axb", "0x4", "2x3x4"])
def test_bad_shapes_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        attention_probe.parse_shapes(text)
