"""What each Ray engine actor runs: the output lines of whole groups, computed as `answer_file` computes them.

Errors that are the user's to fix (a model that cannot be loaded, an input that changed) travel back as data, a
"kind<TAB>message" string per group, so that the driver raises them with their own message (`raise_failure`)
instead of a remote traceback.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Any

from spanqa.engine.core.records import parse_line
from spanqa.engine.jobs.failures import AnswerFileError
from spanqa.engine.jobs.output import output_line
from spanqa.engine.jobs.ray.plan import GroupTask, piece_lines, read_piece
from spanqa.engine.runtime.options import EngineOptions


def answer_group(engine: Any, task: GroupTask, inputs: Sequence[str | os.PathLike]) -> list[bytes]:
    """The output lines of one group, computed as `answer_file` computes them (what each actor runs)."""
    records = []
    for piece in task.pieces:
        for line_number, raw in piece_lines(piece, read_piece(piece, inputs)):
            record = parse_line(raw, line_number, first_line=line_number == 1)
            if record is None:
                raise RuntimeError(f"line {line_number} of input {piece.source} was planned as a record but is blank")
            records.append(record)
    if len(records) != task.size or task.size > engine.options.lookahead:  # else not batched as one process does
        raise RuntimeError(f"group {task.index}: {len(records)} records read, {task.size} planned, lookahead "
                           f"{engine.options.lookahead}")  # fmt: skip
    return [output_line(answer, record) for record, answer in engine.answer_pairs((r, r.to_example()) for r in records)]


class GroupAnswerer:
    """The Ray Data actor: loads the engine once, then answers one group per row."""

    def __init__(self, model: str | None, options: EngineOptions, inputs: list[str]) -> None:
        from spanqa.engine.runtime.backends.base import DeviceError
        from spanqa.engine.runtime.engine import QAEngine
        from spanqa.engine.core.model_folder import ModelFolderError

        self._inputs = inputs
        self._engine = None
        self._load_error: tuple[str, str] | None = None
        try:
            self._engine = QAEngine(model, options=options)
        except ModelFolderError as error:
            self._load_error = ("model", str(error))
        except DeviceError as error:
            self._load_error = ("device", str(error))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        lines, failures = [], []
        for task_bytes in batch["task"]:
            task: GroupTask = pickle.loads(task_bytes)  # written by the driver of this run (Ray pickles anyway)
            if self._load_error is not None:
                lines.append(b"")
                failures.append("%s\t%s" % self._load_error)
                continue
            try:
                lines.append(b"".join(answer_group(self._engine, task, self._inputs)))
                failures.append("")
            except AnswerFileError as error:
                lines.append(b"")
                failures.append(f"input\t{error}")
        return {
            "group": batch["group"],
            "lines": np.array(lines, dtype=object),
            "failure": np.array(failures, dtype=object),
        }


def raise_failure(failure: str) -> None:
    from spanqa.engine.runtime.backends.base import DeviceError
    from spanqa.engine.core.model_folder import ModelFolderError

    kind, message = failure.split("\t", 1)
    raise {"model": ModelFolderError, "device": DeviceError}.get(kind, AnswerFileError)(message)


def split_lines(blob: bytes) -> list[bytes]:
    lines = blob.split(b"\n")
    return [line + b"\n" for line in lines[:-1]]  # every output line ends with a newline; JSON escapes any inside
