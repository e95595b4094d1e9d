"""How a file job treats its files: where bad lines go, resuming or overwriting, strict mode, a progress bar."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class AnswerFileOptions:
    errors: str | os.PathLike | None = None  # None: OUTPUT + ".errors.jsonl" (stderr when OUTPUT is "-"); "-": stderr
    resume: bool = False  # finish the run that wrote OUTPUT
    overwrite: bool = False  # replace a non-empty OUTPUT (and errors file) instead of refusing
    strict: bool = False  # stop at the first bad line instead of skipping it
    progress: bool = False  # a tqdm bar on stderr
