"""Floating-point operations of one forward pass of a BERT-style encoder with a span (QA) head.

Counted: every matrix multiplication of the encoder layers (query/key/value and attention-output projections, the
two feed-forward projections), the attention scores (Q K^T) and the attention context (probabilities x V), and the
QA head (hidden -> 2 logits). Not counted: embeddings (lookups, no matmul), layer norms, softmax, GELU, biases and
residual additions, which are O(tokens x hidden) and together well under 1% for MiniLM-L6 at 384 tokens.
A multiply-add counts as 2 FLOPs.

Per layer, for a window of L tokens, hidden size H and intermediate size I:

    projections  Q, K, V, output   4 x 2 L H H   = 8 L H^2
    feed-forward up and down       2 x 2 L H I   = 4 L H I
    scores and context             2 x 2 L L H   = 4 L^2 H     (summed over heads: heads x head_dim = H)

MiniLM-L6 (H 384, I 1536, 6 layers) at L = 384: 6 x (0.453 + 0.906 + 0.226) GFLOP + 0.0006 GFLOP (head)
= 9.513 GFLOP per window, the issue's "~9.5 GFLOP".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EncoderShape:
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_labels: int = 2  # start and end logits

    @classmethod
    def from_config(cls, config) -> EncoderShape:
        """From a transformers config object or its config.json as a dict."""
        read = config.get if isinstance(config, dict) else lambda name, default=None: getattr(config, name, default)
        missing = [name for name in ("hidden_size", "intermediate_size", "num_hidden_layers") if read(name) is None]
        if missing:
            raise ValueError(f"model config lacks {', '.join(missing)}: not a BERT-style encoder")
        return cls(int(read("hidden_size")), int(read("intermediate_size")), int(read("num_hidden_layers")))


@dataclass(frozen=True)
class LayerFlops:
    projections: float
    feed_forward: float
    attention: float  # scores and context: the only part that grows with L^2

    @property
    def total(self) -> float:
        return self.projections + self.feed_forward + self.attention


def layer_flops(shape: EncoderShape, length: int) -> LayerFlops:
    hidden, intermediate = shape.hidden_size, shape.intermediate_size
    return LayerFlops(
        projections=8.0 * length * hidden * hidden,
        feed_forward=4.0 * length * hidden * intermediate,
        attention=4.0 * length * length * hidden,
    )


def window_flops(shape: EncoderShape, length: int) -> float:
    """FLOPs of one window of `length` tokens (real tokens only: padding is work a system chose to do)."""
    head = 2.0 * length * shape.hidden_size * shape.num_labels
    return shape.num_layers * layer_flops(shape, length).total + head


def windows_flops(shape: EncoderShape, lengths: np.ndarray) -> float:
    """Total FLOPs over windows of the given lengths; vectorised, since a benchmark has thousands of windows."""
    lengths = np.asarray(lengths, dtype=np.float64)
    hidden, intermediate = shape.hidden_size, shape.intermediate_size
    per_layer = 8.0 * lengths * hidden * hidden + 4.0 * lengths * hidden * intermediate + 4.0 * lengths**2 * hidden
    head = 2.0 * lengths * hidden * shape.num_labels
    return float(np.sum(shape.num_layers * per_layer + head))
