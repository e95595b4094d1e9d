"""The paths of a file job, checked before any work (and before a model loads): input, output, errors file, and the
settings file beside the output. "-" is stdin or stdout."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from spanqa.engine.jobs.failures import AnswerFileError
from spanqa.engine.jobs.options import AnswerFileOptions

STDIO = "-"
ERRORS_SUFFIX = ".errors.jsonl"
SETTINGS_SUFFIX = ".run.json"  # what decided the answers, for --resume (see `settings_file`)
STAGING_SUFFIX = ".partial"  # a file being written, renamed into place when complete


@dataclass(frozen=True)
class FileTargets:
    """Where a run reads and writes; None stands for stdin, stdout, stderr (and no settings file for stdout)."""

    input: Path | None
    output: Path | None
    errors: Path | None

    def input_name(self) -> str:
        return display_name(self.input)

    def output_name(self) -> str:
        return "<stdout>" if self.output is None else str(self.output)

    @property
    def settings(self) -> Path | None:
        return None if self.output is None else self.output.with_name(self.output.name + SETTINGS_SUFFIX)


def display_name(path: str | os.PathLike | None) -> str:
    return "<stdin>" if path is None or str(path) == STDIO else str(path)


def check_targets(
    input_path: str | os.PathLike, output_path: str | os.PathLike, options: AnswerFileOptions = AnswerFileOptions()
) -> FileTargets:
    """Validate the paths of a run before any work (and before loading a model): raises `AnswerFileError`."""
    source = None if str(input_path) == STDIO else Path(input_path)
    target = None if str(output_path) == STDIO else Path(output_path)
    if options.resume and options.overwrite:
        raise AnswerFileError("--resume and --overwrite contradict each other; pass one")
    if source is not None:
        if not source.exists():
            raise AnswerFileError(f"{source}: no such file")
        if source.is_dir():
            raise AnswerFileError(f"{source}: is a directory, not a JSONL file")
    if target is None:
        if options.resume:
            raise AnswerFileError("--resume needs an output file to finish; stdout cannot be read back")
    else:
        _check_output_path(target, source, options)
    errors = _errors_path(target, options.errors)
    if errors is not None:
        for other, role in ((source, "input"), (target, "output")):
            if other is not None and same_file(errors, other):
                raise AnswerFileError(f"{errors}: the errors file cannot be the {role} file")
        if errors.is_dir():
            raise AnswerFileError(f"{errors}: is a directory, not an errors file")
        if not errors.parent.is_dir():
            raise AnswerFileError(f"{errors}: the folder {errors.parent} does not exist")
        if _is_nonempty_file(errors) and not (options.resume or options.overwrite):
            raise AnswerFileError(
                f"{errors}: the errors file already has entries; pass --resume to finish that run, --overwrite to "
                "start over, or --errors to write elsewhere"
            )
    return FileTargets(source, target, errors)


def _check_output_path(target: Path, source: Path | None, options: AnswerFileOptions) -> None:
    if target.name.endswith(".gz"):
        raise AnswerFileError(f"{target}: the output is written uncompressed (a resume appends to it); drop the .gz")
    if target.is_dir():
        raise AnswerFileError(f"{target}: is a directory; -o takes a file name")
    if not target.parent.is_dir():
        raise AnswerFileError(f"{target}: the folder {target.parent} does not exist")
    if source is not None and same_file(target, source):
        raise AnswerFileError(f"{target}: the output cannot be the input file")
    if options.resume and target.exists() and not target.is_file():
        raise AnswerFileError(f"{target}: --resume needs a regular output file")
    if _is_nonempty_file(target) and not (options.resume or options.overwrite):
        raise AnswerFileError(
            f"{target}: already holds answers; pass --resume to finish that run, or --overwrite to start over"
        )


def _errors_path(output: Path | None, errors: str | os.PathLike | None) -> Path | None:
    if errors is None:
        return None if output is None else output.with_name(output.name + ERRORS_SUFFIX)
    return None if str(errors) == STDIO else Path(errors)


def same_file(first: Path, second: Path) -> bool:
    try:
        return first.exists() and second.exists() and os.path.samefile(first, second)
    except OSError:
        return False


def _is_nonempty_file(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0
