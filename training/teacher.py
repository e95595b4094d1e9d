"""The teacher of a distillation run: loading and checking it, and its view of every student training window.

Teacher logits are computed on the fly, in the training step, not cached per run. On the fly keeps `--resume` and
DDP correct with nothing to add: a checkpoint holds the student alone and every process scores the rows of its own
batches, so there is no cache to invalidate, shard or keep in step with the sampler. A cache would cost disk
(SQuAD train's ~88k windows x 384 positions x 2 logits in fp32 is ~270 MB per run) and a whole teacher pass before
the first step; the forward pass it saves costs about a third of a teacher training step, under no_grad.

Each student window gets its own teacher window: the question (capped, like the student's, at
--max-question-tokens, counted in the teacher's tokens) with exactly the context characters the student window
covers, tokenized by the teacher's tokenizer. `distill.align_positions` then maps student positions onto it.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets.table import InMemoryTable
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from spanqa.engine.core.data import QAExample
from spanqa.engine.core.windows import Windows

from spanqa.training.distill import align_positions
from spanqa.training.model import LoadedModel, check_model, load_model
from spanqa.training.options import TrainingInputError, TrainOptions

TEACHER_PREFIX = "teacher_"
START_INDEX, END_INDEX = "teacher_start_index", "teacher_end_index"
# The teacher's window holds a few more special tokens than the student's (MPNet puts two separators between the
# question and the context), so it gets a little more room, up to what its position embeddings allow.
_EXTRA_TEACHER_TOKENS = 16


@dataclass(frozen=True)
class Teacher:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str
    max_length: int  # tokens per teacher window


def check_teacher(options: TrainOptions) -> None:
    """The configuration checks, in seconds, before any data is read."""
    if options.teacher is not None:
        check_model(options.teacher, options.max_length)


def load_teacher(options: TrainOptions, device: torch.device, precision: str) -> Teacher:
    """Load the teacher for inference (eval mode, no gradients, bf16 when the run trains in bf16); it must be a
    trained QA checkpoint: a teacher whose QA head would be freshly drawn knows nothing to teach."""
    source = options.teacher
    loaded = load_model(source)
    if loaded.fresh_weights:
        raise TrainingInputError(
            f"{source}: not a question-answering checkpoint (it lacks {', '.join(loaded.fresh_weights)}); "
            "fine-tune the teacher with qa-train first and pass that output folder as --teacher"
        )
    model = loaded.model.to(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float32).eval()
    model.requires_grad_(False)
    return Teacher(model, loaded.tokenizer, source, _teacher_length(loaded, options.max_length))


def _teacher_length(loaded: LoadedModel, max_length: int) -> int:
    limits = [max_length + _EXTRA_TEACHER_TOKENS]
    if 0 < getattr(loaded.tokenizer, "model_max_length", 0) < 100_000:  # unset means a huge sentinel
        limits.append(loaded.tokenizer.model_max_length)
    return min(limits)


def with_teacher_columns(
    dataset: datasets.Dataset, windows: Windows, examples: list[QAExample], teacher: Teacher, options: TrainOptions
) -> datasets.Dataset:
    """`dataset` (one row per window, in window order) plus the teacher's ids, its other inputs, and the start/end
    index of every student position into the teacher window (distill.UNMATCHED where there is none)."""
    tokenizer = teacher.tokenizer
    questions, contexts, shifts = [], [], []
    for window in range(len(windows)):
        example = examples[int(windows.example_index[window])]
        offsets = windows.offsets[windows.row_splits[window] : windows.row_splits[window + 1]]
        inside = offsets[offsets[:, 0] >= 0]
        low, high = (int(inside[:, 0].min()), int(inside[:, 1].max())) if len(inside) else (0, 0)
        questions.append(example.question.strip())
        contexts.append(example.context[low:high])
        shifts.append(low)
    encoded = tokenizer(
        _capped(tokenizer, questions, options.max_question_tokens), contexts, truncation="only_second",
        max_length=teacher.max_length, return_offsets_mapping=True,
    )  # fmt: skip
    names = [name for name in tokenizer.model_input_names if name in encoded and name != "attention_mask"]
    columns: dict[str, list] = {TEACHER_PREFIX + name: encoded[name] for name in names}
    starts, ends = [], []
    for window in range(len(windows)):
        sequence = np.array([-1 if s is None else s for s in encoded.sequence_ids(window)])
        teacher_offsets = np.asarray(encoded["offset_mapping"][window], dtype=np.int64).reshape(-1, 2) + shifts[window]
        teacher_offsets[sequence != 1] = -1
        ids = np.asarray(encoded["input_ids"][window])
        teacher_cls = int(np.argmax(ids == tokenizer.cls_token_id)) if tokenizer.cls_token_id is not None else 0
        student = windows.offsets[windows.row_splits[window] : windows.row_splits[window + 1]].astype(np.int64)
        start, end = align_positions(student, teacher_offsets, int(windows.cls_index[window]), teacher_cls)
        starts.append(start)
        ends.append(end)
    columns[START_INDEX] = starts
    columns[END_INDEX] = ends
    arrays = {name: _list_array(rows) for name, rows in columns.items()}
    table = dataset.data.table  # in memory: windows_dataset builds it from arrays
    for name, array in arrays.items():
        table = table.append_column(name, array)
    return datasets.Dataset(InMemoryTable(table))


def _capped(tokenizer: PreTrainedTokenizerBase, questions: list[str], limit: int) -> list[str]:
    """Questions cut after `limit` of the teacher's tokens (the student's rule), at a token's end."""
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    return [
        question if len(offsets) <= limit else question[: offsets[limit - 1][1]]
        for question, offsets in zip(questions, encoded["offset_mapping"])
    ]


def _list_array(rows: list) -> pa.ListArray:
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.asarray(row, dtype=np.int64) for row in rows]) if rows else np.zeros(0, np.int64)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
