"""`qa-answer`: answer a JSONL file of questions (or one question) with an extractive QA model.

A thin layer over `spanqa.engine.jobs.answer_file.answer_file` and `QAEngine.answer`; the behaviour (output format,
resume, errors file) is documented there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from spanqa.engine.jobs.answer_file import answer_file
from spanqa.engine.jobs.failures import AnswerFileError, OutputWriteError
from spanqa.engine.jobs.options import AnswerFileOptions
from spanqa.engine.jobs.targets import ERRORS_SUFFIX, SETTINGS_SUFFIX, check_targets
from spanqa.engine.cli.common import EXIT_FAILURE, EXIT_OK, CommandError, add_debug_flag, positive_int, run_command
from spanqa.engine.core.decoder import DecodeOptions
from spanqa.engine.runtime.options import BACKENDS, DEVICES, EngineOptions, SessionOptions

PROGRAM = "qa-answer"
LOCAL_RAY = "local"  # --ray without an address


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            'Answer questions with an extractive QA model. INPUT has one {"id", "question", "context"} JSON object '
            'per line (plain or .gz; - reads stdin); "contexts": [passage, ...] instead of "context" asks the '
            'question of several passages (each a string or a {"text", "id"} object) and answers from the best of '
            "them. Each valid line gets one output line, in input order: the answer's fields (id, answer, score, "
            "start, end, is_impossible, passage for several passages, top_answers with --top-k, n_best with "
            "--n-best) and then the "
            "input's other fields except question and context, so gold \"answers\" pass through. Bad lines are "
            "skipped and listed in the errors file. When the input carries gold answers, the summary on stderr "
            "includes the official SQuAD EM/F1. With --question and --context, answers one question and prints "
            "it as JSON."
        ),
        epilog=(
            "Exit status: 0 on success (skipped bad lines included: they are counted in the summary), 2 on bad "
            "usage, bad input or a model that cannot be loaded (the message names the file and line), 1 on an "
            "unexpected failure (one line; --debug adds the traceback) or an output that cannot be written, 130 when "
            "interrupted. An interrupted or "
            "failed run keeps every answer written, on complete lines; rerun the same command with --resume."
        ),
    )
    files = parser.add_argument_group("answering a file")
    files.add_argument("input", metavar="INPUT", nargs="?", help="JSONL questions (plain or .gz; - for stdin)")
    files.add_argument(
        "-o", "--output", default="-", metavar="OUTPUT",
        help="JSONL answers (default: - for stdout); an existing non-empty file is refused without --resume or "
        "--overwrite",
    )  # fmt: skip
    files.add_argument(
        "--errors", metavar="PATH",
        help=f"where bad input lines are listed, one {{\"line\", \"error\", \"id\"?}} object each (default: "
        f"OUTPUT{ERRORS_SUFFIX}, created only when there is one; stderr when OUTPUT is stdout; - for stderr)",
    )  # fmt: skip
    files.add_argument(
        "--resume", action="store_true",
        help="finish an interrupted run: keep OUTPUT's complete lines (checked against INPUT), drop a torn last "
        "line, answer the rest; the result is the file an uninterrupted run writes. Refused when the model or an "
        f"option that decides the answers differs from the run that wrote OUTPUT (OUTPUT{SETTINGS_SUFFIX} records "
        "them)",
    )  # fmt: skip
    files.add_argument("--overwrite", action="store_true", help="replace a non-empty OUTPUT and its errors file")
    files.add_argument(
        "--strict", action="store_true",
        help="stop at the first bad input line (exit 2) instead of skipping it; the lines before it are answered",
    )  # fmt: skip
    files.add_argument("--quiet", action="store_true", help="no progress bar and no summary line on stderr")

    single = parser.add_argument_group("answering one question")
    single.add_argument("--question", metavar="Q", help="the question (with --context; INPUT is not given)")
    single.add_argument(
        "--context", metavar="C", action="append",
        help="the passage that holds the answer; give it several times to answer from the best of several passages",
    )  # fmt: skip

    engine = parser.add_argument_group("model and engine")
    engine.add_argument(
        "--model", metavar="DIR",
        help="a qa-export folder (ONNX Runtime) or a transformers QA checkpoint folder (PyTorch) "
        "(default: the shipped int8 model)",
    )  # fmt: skip
    engine.add_argument("--device", choices=DEVICES, default="auto", help="where the model runs (default: %(default)s)")
    engine.add_argument(
        "--backend", choices=BACKENDS, default="auto",
        help="auto: ONNX Runtime for a qa-export folder, PyTorch for a checkpoint; openvino runs an fp32 qa-export "
        "folder on OpenVINO (pip install 'spanqa[openvino]'; bf16 where the CPU has it) (default: %(default)s)",
    )  # fmt: skip
    engine.add_argument(
        "--batch-tokens", type=positive_int, metavar="N",
        help=f"most padded tokens per batch (default: {EngineOptions.max_batch_tokens})",
    )  # fmt: skip
    engine.add_argument(
        "--workers", type=positive_int, metavar="N",
        help="ONNX Runtime sessions run at once, each on its own batch (default: one per core, each with one "
        "thread; one with --threads); the answers are the same for any N. PyTorch checkpoints run one",
    )  # fmt: skip
    engine.add_argument(
        "--threads", type=positive_int, metavar="N",
        help="ONNX Runtime intra-op threads per worker (default: the cores shared out among the workers; without "
        "--workers, one worker with N threads; ignored by PyTorch checkpoints)",
    )  # fmt: skip
    engine.add_argument(
        "--n-best", type=positive_int, nargs="?", const=DecodeOptions.n_best, metavar="N",
        help=f"add each question's N best answers as \"n_best\" (N defaults to {DecodeOptions.n_best}; N also "
        "bounds the start and end positions the decoder tries, as in the notebook)",
    )  # fmt: skip
    engine.add_argument(
        "--null-threshold", type=float, metavar="X",
        help="SQuAD v2: answer nothing when the no-answer score beats the best span's by more than X (over all "
        "the passages of a multi-passage line) (default: always answer, as for SQuAD v1; write a negative X as "
        "--null-threshold=-X)",
    )  # fmt: skip
    engine.add_argument(
        "--top-k", type=positive_int, metavar="K",
        help="add the K best answers, without duplicates or overlapping spans, as \"top_answers\" (each with "
        f"answer, score, start, end and passage for several passages) (default: {DecodeOptions.top_k}: the best only)",
    )  # fmt: skip
    engine.add_argument(
        "--align-to-words", action=argparse.BooleanOptionalAction, default=None,
        help="widen answers that start or end inside a word to the whole word (never in text written without "
        f"spaces, such as Chinese or Thai) (default: {'on' if DecodeOptions.align_to_words else 'off'})",
    )  # fmt: skip
    engine.add_argument(
        "--max-answer-length", type=positive_int, metavar="TOKENS",
        help=f"longest answer in tokens (default: {DecodeOptions.max_answer_length})",
    )  # fmt: skip
    engine.add_argument(
        "--allow-pickle", action="store_true",
        help="load a PyTorch checkpoint whose weights are pickled (*.bin, *.pt): unpickling can run code, so only "
        "for checkpoints you trust (default: safetensors only)",
    )  # fmt: skip

    ray = parser.add_argument_group("answering on a Ray cluster (pip install 'spanqa[ray]')")
    ray.add_argument(
        "--ray", nargs="?", const=LOCAL_RAY, metavar="ADDRESS",
        help="answer INPUT with engine actors on Ray (Ray Data map_batches): one per GPU, else one per --threads "
        "CPU cores (default 1). Without ADDRESS, a local Ray on this machine; 'auto' joins the cluster this machine "
        "is in; ray://HOST:PORT a remote one. Same output, byte for byte, as without --ray (same model and options); "
        "no EM/F1 summary",
    )  # fmt: skip
    ray.add_argument("--ray-actors", type=positive_int, metavar="N", help="number of engine actors (with --ray)")
    ray.add_argument(
        "--ray-shared-input", action="store_true",
        help="actors read their lines from INPUT themselves (a plain file at the same path on every node) instead "
        "of receiving them through Ray (with --ray)",
    )  # fmt: skip
    return add_debug_flag(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    return run_command(
        PROGRAM, parser, lambda arguments: _answer(parser, arguments), argv,
        interrupted="interrupted; the answers written so far are kept (finish with --resume)",
    )  # fmt: skip


def _answer(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> int:
    usage_problem = _usage_problem(arguments)
    if usage_problem:
        parser.print_usage(sys.stderr)
        raise CommandError(usage_problem)
    try:
        options = engine_options(arguments)
    except ValueError as error:
        raise CommandError(str(error)) from None
    try:
        if arguments.question is not None:
            return _answer_one(arguments, options)
        return _answer_file(arguments, options)
    except AnswerFileError as error:
        raise CommandError(str(error)) from None
    except OutputWriteError as error:
        raise CommandError(str(error), EXIT_FAILURE) from None


def engine_options(arguments: argparse.Namespace) -> EngineOptions:
    """The EngineOptions the flags ask for; flags not given keep the engine's defaults."""
    defaults = EngineOptions()
    decode = defaults.decode
    if arguments.n_best is not None:
        decode = dataclasses.replace(decode, n_best=arguments.n_best, return_n_best=True)
    if arguments.null_threshold is not None:
        decode = dataclasses.replace(decode, null_threshold=arguments.null_threshold)
    if arguments.max_answer_length is not None:
        decode = dataclasses.replace(decode, max_answer_length=arguments.max_answer_length)
    if arguments.top_k is not None:
        decode = dataclasses.replace(decode, top_k=arguments.top_k)
    if arguments.align_to_words is not None:
        decode = dataclasses.replace(decode, align_to_words=arguments.align_to_words)
    changes: dict[str, Any] = {"device": arguments.device, "backend": arguments.backend, "decode": decode,
                               "allow_pickle": arguments.allow_pickle}  # fmt: skip
    if arguments.batch_tokens is not None:
        changes["max_batch_tokens"] = arguments.batch_tokens
    if arguments.threads is not None:
        changes["session"] = SessionOptions(intra_op_threads=arguments.threads)
    if arguments.workers is not None:
        changes["workers"] = arguments.workers
    return dataclasses.replace(defaults, **changes)


def _answer_file(arguments: argparse.Namespace, options: EngineOptions) -> int:
    file_options = AnswerFileOptions(
        errors=arguments.errors,
        resume=arguments.resume,
        overwrite=arguments.overwrite,
        strict=arguments.strict,
        progress=not arguments.quiet and sys.stderr.isatty(),
    )
    check_targets(arguments.input, arguments.output, file_options)  # before the seconds a model takes to load
    if arguments.ray is not None:
        return _answer_file_on_ray(arguments, options, file_options)
    engine = load_engine(arguments.model, options)
    result = answer_file(engine, arguments.input, arguments.output, file_options, on_skipped=_print_skipped)
    return _report(result, arguments.quiet)


def _print_skipped(message: str) -> None:
    """A bad line, when the errors go to stderr: the library words it, the program names itself."""
    print(f"{PROGRAM}: {message}", file=sys.stderr)


def _report(result, quiet: bool) -> int:
    """Finish a file run (local or Ray): warn about resume mismatches, print the summary line."""
    if result.replay_mismatches:
        print(
            f"{PROGRAM}: warning: {result.replay_mismatches} answers re-computed on resume differ from those the "
            "earlier run wrote (another thread count or machine?); the lines already written were kept",
            file=sys.stderr,
        )
    if not quiet:
        print(f"{PROGRAM}: {result.summary_line()}", file=sys.stderr)
    return EXIT_OK


def _answer_file_on_ray(
    arguments: argparse.Namespace, options: EngineOptions, file_options: AnswerFileOptions
) -> int:
    try:
        import ray  # noqa: F401 - only to say clearly that it is missing
    except ImportError:
        raise AnswerFileError("--ray needs Ray: pip install 'spanqa[ray]'") from None
    from spanqa.engine.runtime.backends.base import DeviceError
    from spanqa.engine.core.model_folder import ModelFolderError
    from spanqa.engine.jobs.ray.run import RayOptions, RayRunError, ray_answer_file

    ray_options = RayOptions(
        address=None if arguments.ray == LOCAL_RAY else arguments.ray,
        actors=arguments.ray_actors,
        cpus_per_actor=arguments.threads or 1,
        shared_input=arguments.ray_shared_input,
    )
    try:
        result = ray_answer_file(
            arguments.model, arguments.input, arguments.output, options, ray_options, file_options, _print_skipped
        )
    except (ModelFolderError, DeviceError) as error:
        raise ModelLoadError(str(error)) from None
    except RayRunError as error:
        raise CommandError(str(error), EXIT_FAILURE) from None
    return _report(result, arguments.quiet)


def _answer_one(arguments: argparse.Namespace, options: EngineOptions) -> int:
    for flag, value in (("--question", arguments.question), *(("--context", each) for each in arguments.context)):
        if not value.strip():
            raise CommandError(f"{flag} is empty")
    engine = load_engine(arguments.model, options)
    if len(arguments.context) == 1:
        answer = engine.answer(arguments.question, arguments.context[0])
    else:
        answer = engine.answer(arguments.question, contexts=arguments.context)
    print(json.dumps(answer.to_dict(), ensure_ascii=False))
    return EXIT_OK


class ModelLoadError(CommandError):
    """The model cannot be loaded (exit 2); the message names the folder or file."""


def load_engine(model: str | None, options: EngineOptions) -> Any:
    from spanqa.engine.runtime.backends.base import DeviceError  # the slow imports (onnxruntime, torch) wait until here
    from spanqa.engine.runtime.engine import QAEngine
    from spanqa.engine.core.model_folder import ModelFolderError

    try:
        return QAEngine(model, device=options.device, options=options)
    except (ModelFolderError, DeviceError) as error:  # their messages name the folder, file or device already
        raise ModelLoadError(str(error)) from None
    except Exception as error:  # noqa: BLE001 - anything else that stops loading is an unloadable model too (exit 2)
        where = model if model is not None else "the default model"
        raise ModelLoadError(f"{where}: cannot load the model ({type(error).__name__}: {error})") from None


def _usage_problem(arguments: argparse.Namespace) -> str | None:
    if (arguments.question is None) != (arguments.context is None):
        return "--question and --context go together"
    if arguments.ray is None and (arguments.ray_actors is not None or arguments.ray_shared_input):
        return "--ray-actors and --ray-shared-input go with --ray"
    if arguments.ray is not None and arguments.workers is not None:
        return "--workers goes without --ray: each Ray actor runs one session on its --threads CPUs (--ray-actors)"
    if arguments.question is not None:
        if arguments.input is not None:
            return "give INPUT or --question/--context, not both"
        if arguments.ray is not None:
            return "--ray answers a file; one --question is answered here"
        return None
    if arguments.input is None:
        return "no INPUT given (a JSONL file, or - for stdin), and no --question/--context"
    return None


if __name__ == "__main__":
    sys.exit(main())
