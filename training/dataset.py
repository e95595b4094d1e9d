"""Turn engine windows into the datasets the Trainer iterates: token ids, labels and a length column, unpadded.

Windows come from `spanqa.engine.core.windows.make_windows`, so training sees exactly the windows (and labels) the engine
decodes. Nothing is padded here: the collator pads each batch to its longest window (dynamic padding), and the
`length` column lets the sampler group similar lengths without tokenizing anything again.
"""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from spanqa.engine.core.windows import Windows

LENGTH_COLUMN = "length"


def windows_dataset(windows: Windows, rows: np.ndarray | None = None) -> datasets.Dataset:
    """One dataset row per window (in `rows` order, default all in order), with training labels when present."""
    rows = np.arange(len(windows)) if rows is None else np.asarray(rows, dtype=np.int64)
    lengths = windows.lengths[rows]
    row_splits = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=row_splits[1:])
    # Index of every kept token in the flat arrays: each row's first token plus its position within the row.
    token_rows = np.repeat(np.arange(len(rows)), lengths)
    tokens = windows.row_splits[rows][token_rows] + (np.arange(row_splits[-1]) - row_splits[token_rows])
    offsets = pa.array(row_splits.astype(np.int32))  # Arrow list offsets are int32; fine below 2**31 tokens
    columns = {
        "input_ids": pa.ListArray.from_arrays(offsets, pa.array(windows.input_ids[tokens])),
        "token_type_ids": pa.ListArray.from_arrays(offsets, pa.array(windows.token_type_ids[tokens])),
        LENGTH_COLUMN: pa.array(lengths),
    }
    if windows.start_positions is not None and windows.end_positions is not None:
        columns["start_positions"] = pa.array(windows.start_positions[rows])
        columns["end_positions"] = pa.array(windows.end_positions[rows])
    return datasets.Dataset.from_dict(columns)


def answers_in_no_window(windows: Windows, has_answer: np.ndarray) -> int:
    """Examples with a gold answer that no window holds whole: every window of theirs is labelled CLS.

    That happens when an answer is longer than a window's context room; the notebook trains on such windows as
    "no answer", and so does this, but the count shows how often it happens."""
    if windows.start_positions is None:
        raise ValueError("windows have no labels; make them with with_labels=True")
    labelled = (windows.start_positions != windows.cls_index).astype(np.int64)
    labelled_per_example = np.bincount(windows.example_index, weights=labelled, minlength=len(has_answer))
    return int(np.count_nonzero(has_answer & (labelled_per_example == 0)))


class WindowCollator:
    """Pads a batch to its longest window. The length column is for the sampler only, so it never reaches the model,
    and neither do segment ids when the tokenizer's model takes none.

    `pad_to` pads every batch to that fixed width instead, as the notebook's padding="max_length" features were;
    only the training throughput benchmark wants that, to measure what dynamic padding saves."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pad_to: int | None = None) -> None:
        if pad_to is not None and pad_to < 1:
            raise ValueError(f"pad_to must be at least 1, got {pad_to}")
        self.pad_to = pad_to
        # Windows always carry segment ids; models without them (MPNet, RoBERTa-style) refuse the argument.
        self._dropped = {LENGTH_COLUMN} | (
            set() if "token_type_ids" in tokenizer.model_input_names else {"token_type_ids"}
        )
        if pad_to is None:
            self._pad = DataCollatorWithPadding(tokenizer)
        else:
            self._pad = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=pad_to)

    def __call__(self, features: list[dict]) -> dict:
        if self.pad_to is not None:
            # The tokenizer's padding leaves longer rows as they are, and the batch then fails to stack obscurely.
            longest = max(len(row["input_ids"]) for row in features)
            if longest > self.pad_to:
                raise ValueError(f"a window of {longest} tokens does not fit pad_to={self.pad_to}")
        return self._pad([{key: value for key, value in row.items() if key not in self._dropped} for row in features])
