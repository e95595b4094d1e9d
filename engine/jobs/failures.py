"""The exceptions of a file job, which `qa-answer` turns into exit codes, and how an OS error is worded in them."""

from __future__ import annotations


class AnswerFileError(ValueError):
    """Bad usage or bad input: the message names the file, and the line where there is one."""


class StrictModeStop(AnswerFileError):
    """`strict=True` met a bad input line; the lines before it were answered."""


class OutputWriteError(RuntimeError):
    """Writing the output or the errors file failed (disk full, permissions, a closed pipe); the output holds every
    line written before, complete."""


def error_reason(error: BaseException) -> str:
    """An OS error's own words ("No space left on device"), without the errno and file name noise."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
