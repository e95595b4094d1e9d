"""The settings file beside an output, OUTPUT.run.json: what decided its answers (the model's files, the window,
decoding and batching options: `QAEngine.answer_settings`), so that `--resume` refuses to finish an output with
another model or other options, which would leave a file that no single run writes.

It is written atomically (staged, then renamed into place) when the output is opened, before the output's first
answer, by local and Ray runs alike; a run to stdout writes none. A resume compares it with its own settings and,
when they differ, names each setting that does, as "SETTING was THEN, now NOW".

An output that holds answers but has no settings file beside it (written by a qa-answer from before settings files,
or copied without it) is refused too: nothing says how its answers were made. Start it over with --overwrite, or, if
you know the settings were the same, copy a settings file from a run with them to OUTPUT.run.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from spanqa.engine.jobs.failures import AnswerFileError, OutputWriteError, error_reason
from spanqa.engine.jobs.options import AnswerFileOptions
from spanqa.engine.jobs.targets import STAGING_SUFFIX, FileTargets

FORMAT = "spanqa-answer-settings"
FORMAT_VERSION = 1
_SHOWN_CHARACTERS = 16  # longer values (digests) are cut in messages: the start tells them apart


def settings_to_write(
    targets: FileTargets, options: AnswerFileOptions, settings: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Before a run, once its settings are known: a resume of an output that holds answers is refused unless the
    output's settings file records `settings` (raises `AnswerFileError`). Returns the settings to write when the
    output opens, or None when there is nothing to write (stdout, or the settings file already says so)."""
    if targets.output is None or targets.settings is None or settings is None:
        return None
    if options.resume and targets.output.is_file() and targets.output.stat().st_size > 0:
        check_settings(targets.output, targets.settings, settings)
        return None
    return settings


def check_settings(output: Path, path: Path, settings: dict[str, Any]) -> None:
    recorded = _read(output, path)
    differences = _differences(recorded, json.loads(json.dumps(settings)))  # as JSON would give it back
    if differences:
        raise AnswerFileError(
            f"{output}: --resume refused, the run that wrote it had other settings ({path.name}): "
            f"{'; '.join(differences)}; rerun with the same model and options, or pass --overwrite to start over"
        )


def write_settings(path: Path, settings: dict[str, Any]) -> None:
    staged = path.with_name(path.name + STAGING_SUFFIX)
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "settings": settings}
    try:
        staged.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(staged, path)
    except OSError as error:
        staged.unlink(missing_ok=True)
        raise OutputWriteError(f"{path}: cannot be written ({error_reason(error)})") from None


def _read(output: Path, path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnswerFileError(
            f"{output}: --resume refused: no {path.name} beside it records the model and options that wrote it (an "
            "output of an older qa-answer, or copied without it); pass --overwrite to start over"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise AnswerFileError(f"{path}: cannot be read ({error_reason(error)})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnswerFileError(f"{path}: not a qa-answer settings file (invalid JSON: {error.msg})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise AnswerFileError(f"{path}: not a qa-answer settings file")
    settings = document.get("settings")
    if not isinstance(settings, dict):
        raise AnswerFileError(f"{path}: not a qa-answer settings file")
    if document.get("format_version") != FORMAT_VERSION:
        raise AnswerFileError(f"{path}: format_version {document.get('format_version')!r} is not {FORMAT_VERSION}")
    return settings


def _differences(then: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    differences = []
    for key in sorted(set(then) | set(now)):
        name = f"{prefix}{key}"
        old, new = then.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences.extend(_differences(old, new, f"{name}."))
        elif old != new or type(old) is not type(new):  # 1 and 1.0 print alike but are not the same setting
            differences.append(f"{name} was {_shown(old)}, now {_shown(new)}")
    return differences


def _shown(value: Any) -> str:
    if isinstance(value, str) and len(value) > _SHOWN_CHARACTERS:
        value = value[:_SHOWN_CHARACTERS] + "…"
    return json.dumps(value, ensure_ascii=False)
