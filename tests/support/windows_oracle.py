"""The windows the engine made before it called the tokenizers library itself: written out from a transformers fast
tokenizer's own output (its `__call__` with only_second truncation and overflow), as an independent oracle for
`make_windows`. Used by test_features.py (all dev questions) and test_tokenizer.py (every model family)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

import spanqa.engine
from spanqa.engine.core.data import QAExample
from spanqa.engine.core.windows import OUTSIDE_CONTEXT, WindowOptions, Windows

SHIPPED_MODEL = Path(spanqa.engine.__file__).parent / "models" / "minilm-l6-squad-int8"


@dataclass
class ExpectedWindows:
    example_index: list[int]
    lengths: list[int]
    input_ids: list[int]
    token_type_ids: list[int]
    offsets: np.ndarray  # [T, 2]
    cls_index: list[int]


def capped_questions(hf_tokenizer, questions: list[str], max_tokens: int) -> list[str]:
    """Each question cut after its max_tokens-th token, as the engine cuts over-long questions."""
    encoded = hf_tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    return [
        question if len(offsets) <= max_tokens else question[: offsets[max_tokens - 1][1]]
        for question, offsets in zip(questions, encoded["offset_mapping"])
    ]


def end_over_combining_marks(context: str, end: int) -> int:
    """A token end that stops where a run of nonspacing marks starts is moved past the run (accents an uncased
    vocabulary strips stay inside the token)."""
    if end >= len(context) or unicodedata.category(context[end]) != "Mn":
        return end
    if end > 0 and unicodedata.category(context[end - 1]) == "Mn":
        return end  # inside a run the token kept: not the start of a stripped run
    while end < len(context) and unicodedata.category(context[end]) == "Mn":
        end += 1
    return end


def transformers_encode(hf_tokenizer, examples: Sequence[QAExample], options: WindowOptions):
    """The transformers call the engine made (questions stripped and capped first)."""
    questions = capped_questions(hf_tokenizer, [e.question.strip() for e in examples], options.max_question_tokens)
    return hf_tokenizer(
        questions,
        [e.context for e in examples],
        truncation="only_second",
        max_length=options.max_length,
        stride=options.stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )


def transformers_windows(hf_tokenizer, examples: Sequence[QAExample], options: WindowOptions, encoded=None) -> ExpectedWindows:
    """The windows, from `transformers_encode`'s output (computed here unless given)."""
    if encoded is None:
        encoded = transformers_encode(hf_tokenizer, examples, options)
    mapping = list(encoded["overflow_to_sample_mapping"])
    offsets = []
    for window, window_offsets in enumerate(encoded["offset_mapping"]):
        context = examples[mapping[window]].context
        in_context = np.array([sequence_id == 1 for sequence_id in encoded.sequence_ids(window)], dtype=bool)
        window_offsets = np.asarray(window_offsets, dtype=np.int64).reshape(-1, 2)
        if not context.isascii():
            window_offsets[in_context, 1] = [end_over_combining_marks(context, end) for end in window_offsets[in_context, 1]]
        window_offsets[~in_context] = OUTSIDE_CONTEXT
        offsets.append(window_offsets)
    cls_id = hf_tokenizer.cls_token_id
    return ExpectedWindows(
        example_index=mapping,
        lengths=[len(ids) for ids in encoded["input_ids"]],
        input_ids=list(chain.from_iterable(encoded["input_ids"])),
        token_type_ids=list(chain.from_iterable(encoded["token_type_ids"])),
        offsets=np.concatenate(offsets) if offsets else np.zeros((0, 2), dtype=np.int64),
        cls_index=[ids.index(cls_id) if cls_id in ids else 0 for ids in encoded["input_ids"]],
    )


def assert_same_windows(windows: Windows, expected: ExpectedWindows) -> None:
    """Every window equal: count, source example, length, token ids, token types, offsets, CLS position."""
    assert len(windows) == len(expected.lengths)
    assert windows.example_index.tolist() == expected.example_index
    assert windows.lengths.tolist() == expected.lengths
    if windows.input_ids.tolist() != expected.input_ids:
        bad = int(np.flatnonzero(windows.input_ids != np.asarray(expected.input_ids))[0])
        raise AssertionError(f"input ids differ first at token {bad} (window {_window_of(windows, bad)})")
    assert windows.token_type_ids.tolist() == expected.token_type_ids
    differ = np.flatnonzero((windows.offsets != expected.offsets).any(axis=1))
    if len(differ):
        token = int(differ[0])
        raise AssertionError(
            f"{len(differ)} offsets differ, first at token {token} (window {_window_of(windows, token)}): "
            f"{windows.offsets[token].tolist()} != {expected.offsets[token].tolist()}"
        )
    assert windows.cls_index.tolist() == expected.cls_index


def _window_of(windows: Windows, token: int) -> int:
    return int(np.searchsorted(windows.row_splits, token, side="right") - 1)


def windows_from_transformers(hf_tokenizer, examples: Sequence[QAExample], options: WindowOptions) -> Windows:
    """`make_windows` as the engine ran it on the transformers tokenizer: for answering through the old path."""
    expected = transformers_windows(hf_tokenizer, examples, options)
    row_splits = np.zeros(len(expected.lengths) + 1, dtype=np.int64)
    np.cumsum(expected.lengths, out=row_splits[1:])
    return Windows(
        input_ids=np.asarray(expected.input_ids, dtype=np.int32),
        token_type_ids=np.asarray(expected.token_type_ids, dtype=np.int32),
        offsets=expected.offsets.astype(np.int32),
        row_splits=row_splits,
        example_index=np.asarray(expected.example_index, dtype=np.int64),
        cls_index=np.asarray(expected.cls_index, dtype=np.int64),
    )
