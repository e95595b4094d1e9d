"""What the engine returns: one `Answer` per question (defined in core, where the decoder builds it), and
cumulative `EngineStats`."""

from __future__ import annotations

from dataclasses import dataclass

from spanqa.engine.core.answers import Answer

__all__ = ["Answer", "EngineStats"]


@dataclass
class EngineStats:
    """Cumulative counts since the engine was made or `QAEngine.reset_stats()` was called."""

    examples: int = 0
    windows: int = 0
    batches: int = 0
    tokens: int = 0  # real tokens fed to the model
    padded_tokens: int = 0  # batch rows x batch width, summed over batches: what the model computed on
    tokenize_seconds: float = 0.0  # windowing and batch assembly (in the background thread, overlapped)
    infer_seconds: float = 0.0  # backend.run, including host/device copies
    decode_seconds: float = 0.0  # span decoding and building Answers

    @property
    def padding_fraction(self) -> float:
        """Share of the computed positions that were padding: 1 - tokens / padded_tokens."""
        return 1.0 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0
