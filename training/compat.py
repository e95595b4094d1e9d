"""The Trainer arguments that transformers 5 renamed, spelled for whichever transformers is installed (4.57 or 5.x).

transformers 5 folded `warmup_ratio` into `warmup_steps` (a float in [0, 1) is a ratio of the total steps), replaced
`group_by_length=True` by `train_sampling_strategy="group_by_length"`, and dropped `save_safetensors` (it always
saves safetensors). Which spelling applies is read from `TrainingArguments`' own signature, not from a version
number, so a release that accepts both keeps working.
"""

from __future__ import annotations

import inspect
from typing import Any

from transformers import TrainingArguments

_GROUPED = "group_by_length"


def _accepted() -> set[str]:
    return set(inspect.signature(TrainingArguments.__init__).parameters)


def renamed_arguments(warmup_ratio: float, group_by_length: bool) -> dict[str, Any]:
    """Keyword arguments for TrainingArguments: the warmup share, length-grouped batches, safetensors checkpoints."""
    accepted = _accepted()
    arguments: dict[str, Any] = {}
    if "warmup_ratio" in accepted:
        arguments["warmup_ratio"] = warmup_ratio
    else:
        arguments["warmup_steps"] = float(warmup_ratio)  # below 1: a ratio (TrainOptions keeps it in [0, 1))
    if "group_by_length" in accepted:
        arguments["group_by_length"] = group_by_length
    else:
        arguments["train_sampling_strategy"] = _GROUPED if group_by_length else "random"
    if "save_safetensors" in accepted:
        arguments["save_safetensors"] = True
    return arguments


def groups_by_length(args: TrainingArguments) -> bool:
    """Whether `args` asks for length-grouped training batches, in either spelling."""
    if getattr(args, "group_by_length", False):
        return True
    return getattr(args, "train_sampling_strategy", None) == _GROUPED
