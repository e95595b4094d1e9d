"""Answer JSONL files on a Ray cluster: `qa-answer --ray [ADDRESS]`, or `ray_answer_file(...)` from Python.

The driver (the process that calls this) reads the input once with qa-answer's reader, reports bad lines, and cuts
the valid records into the engine's groups (`ray_plan`). A Ray Data pipeline then runs `map_batches` over the groups
with a pool of engine actors, one per GPU, or one per `cpus_per_actor` CPU cores; each actor loads the model once and
answers whole groups. The driver writes the answers in input order as they arrive, one write per line, to the same
output, errors file and schema as `qa-answer` (`answer_file`), and the output is byte-identical to a single-process run
with the same model and options: a group is batched exactly as one process batches it (see `ray_plan`).

Resuming works as for `qa-answer`, and the two are interchangeable: a run stopped on Ray can be finished on one
machine, and the other way round.

Requirements on a multi-node cluster: spanqa and the model folder at the same paths on every node (the actors load
it there); with `shared_input=True`, the input too. Without it, the driver sends every line through Ray's object store
and holds the input in memory while it does (Ray spills the store to disk when it fills): for inputs larger than the
driver's memory, put them on a shared filesystem and use `shared_input=True`, which sends only byte ranges.

Ray is imported only when this module's functions run, never when the engine is imported. Gold answers in the input
pass through to the output, but this path prints no EM/F1 summary; score the output with `qa-eval`.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from spanqa.engine.jobs.answer_file import (
    AnswerFileError,
    AnswerFileOptions,
    LineWriter,
    OutputWriteError,
    check_targets,
    error_reason,
    output_line,
)
from spanqa.engine.core.records import LineError, parse_line
from spanqa.engine.runtime.options import EngineOptions
from spanqa.engine.jobs.ray.plan import GroupTask, Plan, piece_lines, plan_groups, read_piece

STAGING_SUFFIX = ".partial"
# Each group is its own Ray Data block, so that idle actors can take any group; beyond this many, blocks hold several
# (per-block scheduling costs milliseconds against the seconds a group takes).
_MAX_BLOCKS = 4096


class RayRunError(RuntimeError):
    """Ray could not finish the run (an actor kept dying, the cluster went away); the output holds every line
    written before, complete, and the same command with --resume continues it."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: the Ray already initialised in this process, else a new local one; "auto": the
    # cluster this machine belongs to; "ray://HOST:10001": a remote cluster through Ray Client
    actors: int | None = None  # None: one per cluster GPU when the engine runs on GPUs, else CPUs // cpus_per_actor
    cpus_per_actor: int = 1  # CPU cores (and ONNX Runtime threads, unless the engine options set them) per actor
    gpus_per_actor: float = 1.0  # when the actors run on GPUs
    shared_input: bool = False  # actors read their lines from the input files themselves (plain files that every
    # node mounts at the same path): only byte ranges travel. False: the driver sends the lines through Ray.
    local_cpus: int | None = None  # CPUs of a local Ray started here (None: all of this machine's)
    # A dead actor (lost node, out-of-memory kill) is restarted and its group retried this many times; a group that
    # keeps killing actors then stops the run instead of retrying forever (Ray Data's default).
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"actors must be >= 1, got {self.actors}")
        if self.cpus_per_actor < 1:
            raise ValueError(f"cpus_per_actor must be >= 1, got {self.cpus_per_actor}")
        if self.gpus_per_actor <= 0:
            raise ValueError(f"gpus_per_actor must be > 0, got {self.gpus_per_actor}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


@dataclass(frozen=True)
class RayAnswerResult:
    answered: int  # output lines this call wrote
    already_answered: int  # complete lines an earlier run had written (resume)
    errors: int  # bad input lines skipped
    seconds: float
    actors: int
    on_gpus: bool
    errors_file: str | None
    replay_mismatches: int  # resume: re-answered lines that differ from those already written

    @property
    def examples_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    def summary_line(self) -> str:
        answered = f"answered {self.answered}"
        if self.already_answered:
            answered += f" (+{self.already_answered} already in the output)"
        errors = f"{self.errors} bad lines skipped" + (f" (see {self.errors_file})" if self.errors_file else "")
        where = f"{self.actors} Ray actor{'s' if self.actors != 1 else ''} on {'GPUs' if self.on_gpus else 'CPUs'}"
        return f"{answered}; {errors}; {self.seconds:.2f} s, {self.examples_per_second:.1f} examples/s; {where}"


def ray_answer_file(
    model: str | os.PathLike | None,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    engine_options: EngineOptions | None = None,
    ray_options: RayOptions | None = None,
    file_options: AnswerFileOptions | None = None,
) -> RayAnswerResult:
    """Answer every valid line of `inputs` (one JSONL file, or shards: one input made of their lines, in order)
    into `output`.

    `model` is what `QAEngine` takes (None: the shipped model). Raises what `answer_file` raises (`AnswerFileError`,
    `StrictModeStop`, `OutputWriteError`), and `ModelFolderError` / `DeviceError` when an actor cannot load the model.
    """
    started = time.perf_counter()
    engine_options = engine_options or EngineOptions()
    ray_options = ray_options or RayOptions()
    file_options = file_options or AnswerFileOptions()
    sources = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not sources:
        raise AnswerFileError("no input files given")
    targets = [check_targets(source, output, file_options) for source in sources]
    output_path, errors_path = targets[0].output, targets[0].errors

    errors = _ErrorsFile(errors_path, [target.input_name() for target in targets])
    with ExitStack() as stack:
        stack.callback(errors.discard)
        resuming = file_options.resume and output_path is not None and output_path.exists()
        plan = plan_groups(
            sources, engine_options.lookahead, ship=not ray_options.shared_input, on_error=errors.write,
            strict=file_options.strict, existing_output=output_path if resuming else None,
        )  # fmt: skip
        errors.commit()
        writer = _OutputLines(output_path, plan)
        stack.callback(writer.close)
        if plan.groups:
            actors, on_gpus, mismatches = _run_on_ray(model, sources, plan, writer, engine_options, ray_options)
        else:
            actors, on_gpus, mismatches = 0, False, 0
        writer.finish()
    if plan.stop_error is not None:
        raise plan.stop_error
    return RayAnswerResult(
        answered=writer.lines,
        already_answered=plan.existing.complete_lines if plan.existing else 0,
        errors=plan.errors,
        seconds=time.perf_counter() - started,
        actors=actors,
        on_gpus=on_gpus,
        errors_file=errors.name if plan.errors else None,
        replay_mismatches=mismatches,
    )


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
    answers = engine.answer_many(record.to_example() for record in records)
    return [output_line(answer, record) for answer, record in zip(answers, records, strict=True)]


class GroupAnswerer:
    """The Ray Data actor: loads the engine once, then answers one group per row.

    Errors that are the user's to fix (a model that cannot be loaded, an input that changed) come back as data, so
    the driver raises them with their own message instead of a remote traceback."""

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


def _run_on_ray(
    model: str | os.PathLike | None,
    sources: Sequence[str | os.PathLike],
    plan: Plan,
    writer: _OutputLines,
    engine_options: EngineOptions,
    ray_options: RayOptions,
) -> tuple[int, bool, int]:
    import ray
    import ray.data

    started_here = _connect(ray_options)
    data_logger = logging.getLogger("ray.data")
    previous_level = data_logger.level
    # Ray Data logs every execution's plan at INFO, and warns that progress bars are off (which is asked for).
    data_logger.setLevel(logging.ERROR)
    try:
        actors, on_gpus = _actor_count(ray.cluster_resources(), engine_options, ray_options)
        actors = min(actors, len(plan.groups))  # an actor without a group would only load the model
        options = _actor_engine_options(engine_options, ray_options, on_gpus)
        rows = [{"group": task.index, "task": pickle.dumps(task)} for task in plan.groups]
        dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), _MAX_BLOCKS))
        dataset.context.execution_options.preserve_order = True  # the output is written in input order
        dataset.context.enable_progress_bars = False
        with warnings.catch_warnings():
            # Ray 2.60 takes actor retry limits only through **ray_remote_args, which it has deprecated without a
            # replacement yet; Ray 2.64 removes it, so the `ray` extra must stay below that release.
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            answered = _map_groups(dataset, model, sources, options, actors, on_gpus, ray_options)
        mismatches = 0
        for task, row in _rows_in_order(plan.groups, answered, writer):
            if row["failure"]:
                _raise_failure(row["failure"])
            lines = _split_lines(row["lines"])
            if task.written and plan.existing is not None:
                kept = plan.existing.kept_lines
                mismatches += sum(old != new for old, new in zip(kept, lines[: task.written]))
            for line in lines[task.written :]:
                writer.write(line)
        return actors, on_gpus, mismatches
    finally:
        data_logger.setLevel(previous_level)
        if started_here:
            ray.shutdown()


def _map_groups(
    dataset: Any, model: str | os.PathLike | None, sources: Sequence[str | os.PathLike], options: EngineOptions,
    actors: int, on_gpus: bool, ray_options: RayOptions,
) -> Any:  # fmt: skip
    import ray.data

    return dataset.map_batches(
        GroupAnswerer,
        fn_constructor_kwargs={"model": None if model is None else str(model), "options": options,
                               "inputs": [str(source) for source in sources]},
        batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=ray_options.cpus_per_actor, num_gpus=ray_options.gpus_per_actor if on_gpus else 0,
        max_restarts=ray_options.max_retries, max_task_retries=ray_options.max_retries,
    )  # fmt: skip


def _rows_in_order(groups: list[GroupTask], answered: Any, writer: _OutputLines) -> Iterator[tuple[GroupTask, dict]]:
    """Each planned group with its answered row; Ray's own failures become a `RayRunError` that says what was kept."""
    from ray.exceptions import RayError

    rows = iter(answered.iter_rows())
    for task in groups:
        try:
            row = next(rows)
        except StopIteration:
            raise RuntimeError(f"Ray returned no row for group {task.index}") from None
        except RayError as error:
            summary = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
            raise RayRunError(
                f"the Ray run failed before group {task.index} was written ({type(error).__name__}: {summary}); "
                f"the output holds {writer.lines} complete lines from this run; rerun with --resume to continue"
            ) from None
        if row["group"] != task.index:
            raise RuntimeError(f"Ray returned group {row['group']} where group {task.index} was next")
        yield task, row


def _connect(options: RayOptions) -> bool:
    """Join or start Ray; True when this call started it (and so stops it afterwards)."""
    import ray

    if ray.is_initialized():
        return False
    settings: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if options.address is None:
        ray.init(num_cpus=options.local_cpus, **settings)
    else:
        ray.init(address=options.address, **settings)
    return True


def _actor_count(resources: dict[str, float], engine: EngineOptions, options: RayOptions) -> tuple[int, bool]:
    gpus = resources.get("GPU", 0.0)
    on_gpus = engine.device != "cpu" and gpus > 0
    if engine.device in ("cuda", "tensorrt") and not gpus:
        from spanqa.engine.runtime.backends.base import DeviceError

        raise DeviceError(f"device {engine.device!r}: the Ray cluster has no GPUs")
    if options.actors is not None:
        return options.actors, on_gpus
    if on_gpus:
        return max(1, int(gpus // options.gpus_per_actor)), True
    return max(1, int(resources.get("CPU", 1.0) // options.cpus_per_actor)), False


def _actor_engine_options(engine: EngineOptions, options: RayOptions, on_gpus: bool) -> EngineOptions:
    """One ONNX Runtime thread per CPU the actor holds, unless the caller chose: by default onnxruntime takes every
    core of the node, and N actors on one node would each do so."""
    if on_gpus or engine.session.intra_op_threads:
        return engine
    return replace(engine, session=replace(engine.session, intra_op_threads=options.cpus_per_actor))


def _raise_failure(failure: str) -> None:
    from spanqa.engine.runtime.backends.base import DeviceError
    from spanqa.engine.core.model_folder import ModelFolderError

    kind, message = failure.split("\t", 1)
    raise {"model": ModelFolderError, "device": DeviceError}.get(kind, AnswerFileError)(message)


def _split_lines(blob: bytes) -> list[bytes]:
    lines = blob.split(b"\n")
    return [line + b"\n" for line in lines[:-1]]  # every output line ends with a newline; JSON escapes any inside


class _OutputLines:
    """`answer_file`'s LineWriter, opened at the first line (or by `finish`), so a run that fails before answering
    anything (an actor that cannot load the model) leaves an existing output as it was and creates none."""

    def __init__(self, path: Path | None, plan: Plan) -> None:
        self._path = path
        self._keep = plan.existing.complete_bytes if plan.existing else None  # resume: bytes of complete lines
        self._writer: LineWriter | None = None

    @property
    def lines(self) -> int:
        return self._writer.lines if self._writer is not None else 0

    def write(self, line: bytes) -> None:
        (self._writer or self._open()).write(line)

    def finish(self) -> None:
        """A run with nothing (left) to write still leaves its output, as `answer_file` does: empty, or cut back
        to its complete lines."""
        if self._writer is None:
            self._open()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _open(self) -> LineWriter:
        self._writer = LineWriter.open(self._path, self._keep)
        return self._writer


class _ErrorsFile:
    """Bad lines, one `{"line", "error"[, "id"]}` object each (plus "file" when there are several inputs), as
    `answer_file` writes them. Staged in ERRORS.partial while planning, so a plan that fails (a resume of another
    input's output) leaves the previous errors file as it was; no bad lines, no file. None: stderr."""

    def __init__(self, path: Path | None, input_names: list[str]) -> None:
        self._path = path
        self._names = input_names
        self._handle: BinaryIO | None = None
        self.name = "<stderr>" if path is None else str(path)

    def write(self, error: LineError, source: int) -> None:
        if self._path is None:
            print(f"qa-answer: skipped {error.describe(self._names[source])}", file=sys.stderr)
            return
        line = error.to_json_line()
        if len(self._names) > 1:  # prefix the file's name: line numbers count from each file's start
            line = b'{"file": %s, %s' % (_json_string(self._names[source]), line[1:])
        try:
            if self._handle is None:
                self._handle = open(self._staging(), "wb", buffering=0)
            self._handle.write(line)
        except OSError as error_writing:
            raise OutputWriteError(f"{self.name}: cannot be written ({error_reason(error_writing)})") from None

    def commit(self) -> None:
        if self._path is None:
            return
        try:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
                os.replace(self._staging(), self._path)
            elif self._path.is_file():
                self._path.unlink()  # a previous run's list; this input has no bad lines
        except OSError as error:
            raise OutputWriteError(f"{self.name}: cannot be replaced ({error_reason(error)})") from None

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._staging().unlink(missing_ok=True)

    def _staging(self) -> Path:
        assert self._path is not None
        return self._path.with_name(self._path.name + STAGING_SUFFIX)


def _json_string(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "backslashreplace")


__all__ = ["GroupAnswerer", "RayAnswerResult", "RayOptions", "RayRunError", "answer_group", "ray_answer_file"]
