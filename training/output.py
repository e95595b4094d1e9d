"""The output folder: refusing to clobber another model, finding the checkpoint to resume, publishing the result.

Layout: the folder itself is the final Hugging Face model (config, weights, tokenizer, `training_report.json`), and
the Trainer's checkpoints live in its `checkpoints/` subfolder. The final model is first written to a staging
folder beside them and then moved in file by file with `config.json` last: a folder without `config.json` does not
load as a model, so a run killed while publishing leaves no loadable half-written model behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from spanqa.training.options import TrainingInputError, TrainOptions

CHECKPOINTS_FOLDER = "checkpoints"
REPORT_NAME = "training_report.json"
CONFIG_NAME = "config.json"
_STAGING_PREFIX = ".staging-"
_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
_TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last, so its presence marks a complete checkpoint
# Files a save_pretrained may have left from an earlier model; replaced or removed when a new model is published.
_MODEL_FILE_PATTERNS = (
    "config.json", "generation_config.json", "*.safetensors", "*.bin", "*.pt", "*.h5", "*.msgpack", "*.index.json",
    "tokenizer*.json", "vocab.*", "merges.txt", "special_tokens_map.json", "added_tokens.json", "*.model",
    "chat_template.*", REPORT_NAME,
)  # fmt: skip


@dataclass(frozen=True)
class OutputPlan:
    folder: Path
    checkpoints: Path
    resume_from: Path | None  # the checkpoint to continue from, with --resume


def plan_output(options: TrainOptions) -> OutputPlan:
    """Decide what to do with the output folder without touching it (every process runs this)."""
    folder = Path(options.output)
    checkpoints = folder / CHECKPOINTS_FOLDER
    if folder.exists() and not folder.is_dir():
        raise TrainingInputError(f"{folder}: exists and is not a directory")
    if options.overwrite:
        return OutputPlan(folder, checkpoints, None)
    resume_from = latest_checkpoint(checkpoints) if options.resume else None
    if resume_from is None and holds_model(folder):
        hint = "no checkpoint to resume from; " if options.resume else ""
        raise TrainingInputError(f"{folder}: already holds a model ({hint}pass --overwrite to replace it)")
    if not options.resume and latest_checkpoint(checkpoints) is not None:
        raise TrainingInputError(
            f"{folder}: holds checkpoints of an earlier run; pass --resume to continue it or --overwrite to start over"
        )
    return OutputPlan(folder, checkpoints, resume_from)


def prepare_output(plan: OutputPlan) -> None:
    """Create the folder and clear what a previous run left unusable. Only one process may call this."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    for staging in plan.folder.glob(_STAGING_PREFIX + "*"):
        shutil.rmtree(staging, ignore_errors=True)
    if plan.resume_from is None:
        shutil.rmtree(plan.checkpoints, ignore_errors=True)  # --overwrite, or nothing there yet
        return
    # A checkpoint newer than the one resumed was cut short; the Trainer would later mistake it for a real one.
    resumed_step = checkpoint_step(plan.resume_from)
    for candidate in _numbered_checkpoints(plan.checkpoints):
        if checkpoint_step(candidate) > resumed_step:
            shutil.rmtree(candidate, ignore_errors=True)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint (one whose trainer state was written and reads back), or None."""
    for candidate in sorted(_numbered_checkpoints(checkpoints), key=checkpoint_step, reverse=True):
        try:
            state = json.loads((candidate / _TRAINER_STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if state.get("global_step") == checkpoint_step(candidate):
            return candidate
    return None


def checkpoint_step(checkpoint: Path) -> int:
    return int(_CHECKPOINT_NAME.fullmatch(checkpoint.name).group(1))


def holds_model(folder: Path) -> bool:
    return folder.is_dir() and any(
        path.is_file() and path.name != REPORT_NAME for pattern in ("config.json", "*.safetensors", "*.bin")
        for path in folder.glob(pattern)
    )  # fmt: skip


def new_staging_folder(folder: Path) -> Path:
    staging = folder / f"{_STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, folder: Path) -> None:
    """Move a complete model from `staging` into `folder`, so that `folder` loads as the old model, as nothing,
    or as the new model, never as a mix. `config.json` goes first out and last in."""
    (folder / CONFIG_NAME).unlink(missing_ok=True)
    incoming = {path.name for path in staging.iterdir()}
    for pattern in _MODEL_FILE_PATTERNS:
        for stale in folder.glob(pattern):
            if stale.is_file() and stale.name not in incoming:
                stale.unlink()
    for path in sorted(staging.iterdir(), key=lambda path: path.name == CONFIG_NAME):
        os.replace(path, folder / path.name)
    staging.rmdir()


def _numbered_checkpoints(checkpoints: Path) -> list[Path]:
    if not checkpoints.is_dir():
        return []
    return [path for path in checkpoints.iterdir() if path.is_dir() and _CHECKPOINT_NAME.fullmatch(path.name)]
