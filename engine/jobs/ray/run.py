"""Answer JSONL files on a Ray cluster: `qa-answer --ray [ADDRESS]`, or `ray_answer_file(...)` from Python.

The driver (the process that calls this) reads the input once with qa-answer's reader, reports bad lines, and cuts
the valid records into the engine's groups (`spanqa.engine.jobs.ray.plan`). A Ray Data pipeline then runs
`map_batches` over the groups with a pool of engine actors (`placement`), one per GPU, or one per `cpus_per_actor` CPU
cores; each actor loads the model once and answers whole groups (`actor`). The driver writes the answers in input order as they arrive, one write per line, to the same
output, errors file, settings file and schema as `qa-answer`, through the same pieces (`spanqa.engine.jobs`: feed,
errors file, resume check, writer, result), and the output is byte-identical to a single-process run with the same
model and options: a group is batched exactly as one process batches it (see `spanqa.engine.jobs.ray.plan`).

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

import logging
import os
import pickle
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from spanqa.engine.jobs.errors_file import ErrorsFile
from spanqa.engine.jobs.failures import AnswerFileError
from spanqa.engine.jobs.options import AnswerFileOptions
from spanqa.engine.jobs.output import JobOutput
from spanqa.engine.jobs.ray.actor import GroupAnswerer, raise_failure, split_lines
from spanqa.engine.jobs.ray.placement import RayOptions, actor_count, actor_engine_options, connect
from spanqa.engine.jobs.ray.plan import GroupTask, Plan, plan_groups
from spanqa.engine.jobs.result import AnswerFileResult
from spanqa.engine.jobs.run_settings import settings_to_write, write_settings
from spanqa.engine.jobs.targets import check_targets
from spanqa.engine.runtime.options import EngineOptions

# Each group is its own Ray Data block, so that idle actors can take any group; beyond this many, blocks hold several
# (per-block scheduling costs milliseconds against the seconds a group takes).
_MAX_BLOCKS = 4096


class RayRunError(RuntimeError):
    """Ray could not finish the run (an actor kept dying, the cluster went away); the output holds every line
    written before, complete, and the same command with --resume continues it."""


def ray_answer_file(
    model: str | os.PathLike | None,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    engine_options: EngineOptions | None = None,
    ray_options: RayOptions | None = None,
    file_options: AnswerFileOptions | None = None,
    on_skipped: Callable[[str], None] | None = None,
) -> AnswerFileResult:
    """Answer every valid line of `inputs` (one JSONL file, or shards: one input made of their lines, in order)
    into `output`.

    `model` is what `QAEngine` takes (None: the shipped model). `on_skipped` is `answer_file`'s. Raises what
    `answer_file` raises (`AnswerFileError`, `StrictModeStop`, `OutputWriteError`), and `ModelFolderError` /
    `DeviceError` when an actor cannot load the model.
    """
    started = time.perf_counter()
    engine_options = engine_options or EngineOptions()
    ray_options = ray_options or RayOptions()
    file_options = file_options or AnswerFileOptions()
    sources = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not sources:
        raise AnswerFileError("no input files given")
    targets = [check_targets(source, output, file_options) for source in sources]
    target = targets[0]
    settings = _answer_settings(model, engine_options) if target.output is not None else None
    new_settings = settings_to_write(target, file_options, settings)

    with ExitStack() as stack:
        errors = stack.enter_context(ErrorsFile(target.errors, [each.input_name() for each in targets], on_skipped))
        resuming = file_options.resume and target.output is not None and target.output.exists()
        plan = plan_groups(
            sources, engine_options.lookahead, ship=not ray_options.shared_input, on_error=errors.write,
            strict=file_options.strict, existing_output=target.output if resuming else None,
        )  # fmt: skip
        errors.commit()
        writer = stack.enter_context(JobOutput(
            target.output, plan.existing.progress.complete_bytes if plan.existing else None,
            partial(write_settings, target.settings, new_settings) if new_settings else None,
        ))  # fmt: skip
        if plan.groups:
            actors, on_gpus, mismatches = _run_on_ray(model, sources, plan, writer, engine_options, ray_options)
        else:
            actors, on_gpus, mismatches = 0, False, 0
        writer.finish()
    if plan.stop_error is not None:
        raise plan.stop_error
    return AnswerFileResult(
        answered=writer.lines,
        already_answered=plan.existing.progress.complete_lines if plan.existing else 0,
        errors=plan.errors,
        seconds=time.perf_counter() - started,
        padding_fraction=None,
        gold=None,
        errors_file=errors.name if plan.errors else None,
        replay_mismatches=mismatches,
        actors=actors,
        on_gpus=on_gpus,
    )


def _answer_settings(model: str | os.PathLike | None, options: EngineOptions) -> dict[str, Any]:
    """The settings an engine on `model` would report (`QAEngine.answer_settings`), without loading it here."""
    from spanqa.engine.runtime.engine import answer_settings, default_model_dir

    return answer_settings(default_model_dir() if model is None else Path(model), options)


def _run_on_ray(
    model: str | os.PathLike | None,
    sources: Sequence[str | os.PathLike],
    plan: Plan,
    writer: JobOutput,
    engine_options: EngineOptions,
    ray_options: RayOptions,
) -> tuple[int, bool, int]:
    import ray
    import ray.data

    started_here = connect(ray_options)
    data_logger = logging.getLogger("ray.data")
    previous_level = data_logger.level
    # Ray Data logs every execution's plan at INFO, and warns that progress bars are off (which is asked for).
    data_logger.setLevel(logging.ERROR)
    try:
        actors, on_gpus = actor_count(ray.cluster_resources(), engine_options, ray_options)
        actors = min(actors, len(plan.groups))  # an actor without a group would only load the model
        options = actor_engine_options(engine_options, ray_options, on_gpus)
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
                raise_failure(row["failure"])
            lines = split_lines(row["lines"])
            if task.written and plan.existing is not None:
                kept = [line for _, line in plan.existing.replay]
                mismatches += sum(old != new for old, new in zip(kept, lines[: task.written], strict=True))
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


def _rows_in_order(groups: list[GroupTask], answered: Any, writer: JobOutput) -> Iterator[tuple[GroupTask, dict]]:
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


__all__ = ["GroupAnswerer", "RayOptions", "RayRunError", "ray_answer_file"]
