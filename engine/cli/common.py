"""What every spanqa command line shares: argument parsing that returns an exit code instead of exiting, the
one-line error contract, and the one-line answer to a missing install extra."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spanqa.engine.core.extras import missing_extra

EXIT_MISSING_EXTRA = 2  # the code of bad usage: running a command its install does not cover


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


def require_extra(program: str, extra: str, modules: Sequence[str] | None = None) -> int:
    """0 when the modules of `extra` are installed; otherwise EXIT_MISSING_EXTRA after one line naming the install
    (never a traceback from the import). Call it after parsing, so --help works on any install:
    `if code := require_extra(PROGRAM, "train"): return code`."""
    message = missing_extra(extra, modules)
    if message is None:
        return 0
    print(f"{program}: {message}", file=sys.stderr)
    return EXIT_MISSING_EXTRA
