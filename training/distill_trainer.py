"""The training step of a distillation run: batches that carry the teacher's windows, and the distillation loss.

Evaluation is unchanged: evaluation rows carry no teacher columns, so their loss is the plain cross-entropy and
dev losses of runs with and without a teacher compare directly.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from spanqa.training.dataset import WindowCollator
from spanqa.training.distill import UNMATCHED, distillation_loss, gather_teacher_logits
from spanqa.training.teacher import END_INDEX, START_INDEX, TEACHER_PREFIX, Teacher
from spanqa.training.trainer import QATrainer

_INDEX_COLUMNS = (START_INDEX, END_INDEX)


class DistillCollator:
    """Pads the student's fields as WindowCollator does, the teacher's ids with the teacher's pad token, and the
    position maps with UNMATCHED to the student's padded width."""

    def __init__(self, student: PreTrainedTokenizerBase, teacher: PreTrainedTokenizerBase) -> None:
        self._student = WindowCollator(student)
        self._teacher = teacher

    def __call__(self, features: list[dict]) -> dict:
        if not features or START_INDEX not in features[0]:
            return self._student(features)  # evaluation rows
        student_rows, teacher_rows, index_rows = [], [], []
        for row in features:
            student_rows.append({k: v for k, v in row.items() if not k.startswith(TEACHER_PREFIX)})
            teacher_rows.append({
                k.removeprefix(TEACHER_PREFIX): v for k, v in row.items()
                if k.startswith(TEACHER_PREFIX) and k not in _INDEX_COLUMNS
            })  # fmt: skip
            index_rows.append([row[name] for name in _INDEX_COLUMNS])
        batch = self._student(student_rows)
        padded_teacher = self._teacher.pad(teacher_rows, return_tensors="pt")
        for name, tensor in padded_teacher.items():
            batch[TEACHER_PREFIX + name] = tensor
        width = batch["input_ids"].shape[1]
        for column, name in enumerate(_INDEX_COLUMNS):
            index = torch.full((len(features), width), UNMATCHED, dtype=torch.long)
            for row, indexes in enumerate(index_rows):
                values = torch.as_tensor(indexes[column], dtype=torch.long)
                index[row, : len(values)] = values
            batch[name] = index
        return batch


class DistillingTrainer(QATrainer):
    """QATrainer whose training loss is `distill.distillation_loss` against a frozen teacher run on each batch."""

    def __init__(self, *args, teacher: Teacher, distill_weight: float, temperature: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher
        self.distill_weight = distill_weight
        self.temperature = temperature

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if START_INDEX not in inputs:  # evaluation batches
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        start_index, end_index = inputs.pop(START_INDEX), inputs.pop(END_INDEX)
        teacher_names = [name for name in inputs if name.startswith(TEACHER_PREFIX)]
        teacher_inputs = {name.removeprefix(TEACHER_PREFIX): inputs.pop(name) for name in teacher_names}
        start_positions, end_positions = inputs.pop("start_positions"), inputs.pop("end_positions")
        with torch.no_grad():
            teacher_out = self.teacher.model(**teacher_inputs)
        outputs = model(**inputs)
        teacher_start, start_matched = gather_teacher_logits(teacher_out.start_logits.float(), start_index)
        teacher_end, end_matched = gather_teacher_logits(teacher_out.end_logits.float(), end_index)
        loss = distillation_loss(
            outputs.start_logits, outputs.end_logits, teacher_start, teacher_end, start_matched, end_matched,
            start_positions, end_positions, self.distill_weight, self.temperature,
        )  # fmt: skip
        return (loss, outputs) if return_outputs else loss
