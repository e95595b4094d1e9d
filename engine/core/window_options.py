"""How contexts are cut into model windows: the options `make_windows` takes and the manifest's "window" section.

Its own module, importing nothing heavy, so that reading a model folder's manifest needs neither numpy nor a
tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["WindowOptions"]


@dataclass(frozen=True)
class WindowOptions:
    max_length: int = 384
    stride: int = 128
    # Longer questions are cut to this many tokens (with a warning) rather than failing the whole batch:
    # with only_second truncation a question that fills the window leaves no room for the context (transformers#23654).
    max_question_tokens: int = 64

    def __post_init__(self) -> None:
        # The values also come from JSON (a manifest), where 384.0, "384" or true would otherwise slip through.
        wrong_type = [item.name for item in fields(self) if type(getattr(self, item.name)) is not int]
        if wrong_type:
            raise ValueError(f"invalid window options: {', '.join(wrong_type)} not an integer in {self}")
        if self.max_length < 1 or self.stride < 0 or self.max_question_tokens < 1:
            raise ValueError(f"invalid window options: {self}")
