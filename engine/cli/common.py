"""The contract every spanqa command line keeps, in one place:

1. Exit codes: 0 done; 1 the work failed (an unexpected error, an output that cannot be written, a failed gate or
   benchmark system); 2 bad usage or bad input (including a model that cannot be loaded and a missing install
   extra); 130 interrupted (the shell's code for Ctrl-C).
2. Every error is one line on stderr, `PROGRAM: error: MESSAGE`, naming the file, line, flag or folder at fault.
3. An unexpected failure is one line too, plus the traceback only with `--debug`.
4. The program name appears only here and in the CLI modules: library code raises or calls back, never prints it.

A command is `run_command(PROGRAM, build_parser(), body, argv)`: `body(arguments)` returns an exit code or raises
`CommandError` for an explained failure; everything else is mapped to the contract here.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from spanqa.engine.core.extras import missing_extra

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure the command explains in one line; `code` is its exit status (bad input unless said otherwise)."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--debug", action="store_true", help="on an unexpected failure, print the traceback after the one-line error"
    )
    return parser


def run_command(
    program: str,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
    interrupted: str = "interrupted",
) -> int:
    """Parse `argv`, run `body`, and keep the contract above; `interrupted` is the line printed on Ctrl-C."""
    arguments = parse_arguments(parser, argv)
    if isinstance(arguments, int):
        return arguments
    try:
        return body(arguments)
    except CommandError as error:
        print_error(program, str(error))
        return error.code
    except KeyboardInterrupt:
        print(f"{program}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout's reader stopped early (e.g. `| head`), as with any Unix filter: no message
        # The interpreter flushes stdout again at exit, which would fail again; point it at /dev/null instead
        # (the recipe of Python's signal module documentation). stdout is unusable anyway.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - rule 3: one line, the traceback on request
        debug = getattr(arguments, "debug", False)
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (rerun with --debug for the traceback)"
        print_error(program, f"unexpected failure: {type(error).__name__}: {error}{hint}")
        return EXIT_FAILURE


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code of --help / a usage error (argparse has printed it): `main` functions
    return codes rather than exit, so they can be called from Python and from tests."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)


def print_error(program: str, message: str) -> None:
    # Wrapped library errors (transformers, datasets, onnxruntime) can span lines; the contract is one line.
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"{program}: error: {one_line}", file=sys.stderr)


def positive_int(text: str) -> int:
    """argparse type for counts and sizes: the message names the bad value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def os_error_message(error: OSError) -> str:
    """An OSError as `FILE: reason`, the form every other error takes."""
    return f"{error.filename}: {error.strerror}" if error.filename else str(error)


def require_extra(extra: str, modules: Sequence[str] | None = None) -> None:
    """Raise a CommandError (exit 2) naming the install when the modules of `extra` are missing: one line, never a
    traceback from the import. Call it inside the command's body, after parsing, so --help works on any install."""
    message = missing_extra(extra, modules)
    if message is not None:
        raise CommandError(message)
