"""What every spanqa command line shares: argument parsing that returns an exit code instead of exiting, and the
one-line error contract."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
