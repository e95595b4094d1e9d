"""Knowledge distillation for span QA: the loss, and the map from a student's window onto a teacher's tokens.

Loss (per batch): A x KL(teacher || student) on the start and on the end distributions at temperature T, plus
(1 - A) x the usual cross-entropy on the labels. Both halves average start and end, as transformers' QA heads do
for their own loss, so A = 0 is exactly plain fine-tuning.

Alignment: a teacher with another tokenizer (MPNet's `<s>`/`</s>` around BERT-uncased word pieces, say) lays the
same context out on other positions, so a student position is matched to a teacher position through character
offsets: a student context token's start logit is compared with the teacher's start logit of the teacher token
that covers the same first character, and its end logit with the teacher token that covers the same last
character. The CLS position (the "no answer in this window" choice, which windows without the answer are
labelled with) maps to the teacher's CLS. Every other position (question, separators, padding, a context token the
teacher's window cut off) is left out of the KL: both distributions are renormalised over the matched positions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

UNMATCHED = -1  # a student position with no teacher counterpart


def align_positions(
    student_offsets: np.ndarray, teacher_offsets: np.ndarray, student_cls: int, teacher_cls: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each student position: the teacher position whose token covers its first character (for start logits)
    and its last character (for end logits), or UNMATCHED.

    Offsets are [L, 2] character spans in one shared coordinate system (the context's), with a negative start for
    positions outside the context. Teacher context tokens are in text order, as every tokenizer lays them out."""
    starts = np.full(len(student_offsets), UNMATCHED, dtype=np.int64)
    ends = np.full(len(student_offsets), UNMATCHED, dtype=np.int64)
    teacher_context = np.flatnonzero((teacher_offsets[:, 0] >= 0) & (teacher_offsets[:, 1] > teacher_offsets[:, 0]))
    student_context = np.flatnonzero(
        (student_offsets[:, 0] >= 0) & (student_offsets[:, 1] > student_offsets[:, 0])
    )
    if len(teacher_context) and len(student_context):
        t_begin = teacher_offsets[teacher_context, 0]
        t_end = teacher_offsets[teacher_context, 1]
        first = student_offsets[student_context, 0]
        last = student_offsets[student_context, 1] - 1  # the last character, inclusive
        starts[student_context] = _covering(t_begin, t_end, first, teacher_context)
        ends[student_context] = _covering(t_begin, t_end, last, teacher_context)
    starts[student_cls] = ends[student_cls] = teacher_cls
    return starts, ends


def _covering(begin: np.ndarray, end: np.ndarray, characters: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """positions[k] of the teacher token k with begin[k] <= character < end[k], else UNMATCHED (a character the
    teacher's window does not hold, or one its tokenizer dropped, such as a space)."""
    candidate = np.searchsorted(begin, characters, side="right") - 1  # the last token starting at or before it
    inside = candidate >= 0
    inside[inside] = characters[inside] < end[candidate[inside]]
    return np.where(inside, positions[np.clip(candidate, 0, None)], UNMATCHED)


def gather_teacher_logits(teacher_logits: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher logits laid out on the student's positions ([B, Ls] from [B, Lt] and an index [B, Ls] with
    UNMATCHED holes), and the mask of matched positions."""
    matched = index >= 0
    gathered = torch.gather(teacher_logits, 1, index.clamp(min=0))
    return gathered, matched


def span_cross_entropy(
    start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor, end_positions: torch.Tensor
) -> torch.Tensor:
    """transformers' QA loss: the mean of the start and end cross-entropies, labels past the window ignored."""
    ignored = start_logits.size(1)
    start = F.cross_entropy(start_logits, start_positions.clamp(0, ignored), ignore_index=ignored)
    end = F.cross_entropy(end_logits, end_positions.clamp(0, ignored), ignore_index=ignored)
    return (start + end) / 2


def masked_kl(student: torch.Tensor, teacher: torch.Tensor, matched: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the softened distributions over each row's matched positions, batch mean.

    Multiplied by T^2, as in Hinton et al.: the soft targets' gradients shrink as 1/T^2, so the scaling keeps the
    distillation term's weight against the cross-entropy the same whatever T is. Rows with no matched position
    contribute 0 and do not count in the mean."""
    floor = torch.finfo(torch.float32).min
    student = (student.float() / temperature).masked_fill(~matched, floor)
    teacher = (teacher.float() / temperature).masked_fill(~matched, floor)
    log_student = F.log_softmax(student, dim=-1)
    log_teacher = F.log_softmax(teacher, dim=-1)
    terms = torch.where(matched, log_teacher.exp() * (log_teacher - log_student), torch.zeros_like(student))
    rows = matched.any(dim=-1)
    per_row = terms.sum(dim=-1)
    return per_row[rows].sum() / rows.sum().clamp(min=1) * temperature**2


def distillation_loss(
    student_start: torch.Tensor, student_end: torch.Tensor,
    teacher_start: torch.Tensor, teacher_end: torch.Tensor,
    start_matched: torch.Tensor, end_matched: torch.Tensor,
    start_positions: torch.Tensor, end_positions: torch.Tensor,
    weight: float, temperature: float,
) -> torch.Tensor:  # fmt: skip
    """weight x KL (start and end averaged, T^2-scaled) + (1 - weight) x cross-entropy; teacher logits already on
    the student's positions (see gather_teacher_logits)."""
    cross_entropy = span_cross_entropy(student_start, student_end, start_positions, end_positions)
    if weight == 0:
        return cross_entropy
    kl = (
        masked_kl(student_start, teacher_start, start_matched, temperature)
        + masked_kl(student_end, teacher_end, end_matched, temperature)
    ) / 2
    return weight * kl + (1 - weight) * cross_entropy
