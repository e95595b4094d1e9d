"""The one CLI contract (engine/cli/common.py) as all five commands keep it: exit codes, one-line errors, and the
traceback of an unexpected failure only with --debug."""

from __future__ import annotations

import argparse
import importlib

import pytest

from spanqa.engine.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    CommandError,
    add_debug_flag,
    run_command,
)

# Each command: its module, a library function its body calls (patched to fail), and arguments reaching it.
COMMANDS = {
    "qa-answer": ("spanqa.engine.cli.answer", "engine_options", ["--question", "q", "--context", "c"]),
    "qa-eval": ("spanqa.engine.cli.eval", "evaluate_files", ["data.json", "predictions.json"]),
    "qa-train": ("spanqa.training.cli", "require_extra", ["--train", "t.json", "--output", "out"]),
    "qa-export": ("spanqa.export.cli", "require_extra", ["checkpoint", "--output", "out"]),
    "qa-bench": ("spanqa.benchmarks.qa_bench.cli", "require_extra", ["--model", "m", "--data", "d"]),
}


def _parser() -> argparse.ArgumentParser:
    return add_debug_flag(argparse.ArgumentParser(prog="qa-test"))


def _raise(error: BaseException):
    def body(arguments: argparse.Namespace) -> int:
        raise error

    return body


def test_explained_failures_keep_their_code_on_one_line(capsys):
    assert run_command("qa-test", _parser(), _raise(CommandError("data.json:3: bad line")), []) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "qa-test: error: data.json:3: bad line\n"
    assert run_command("qa-test", _parser(), _raise(CommandError("out: disk full", EXIT_FAILURE)), []) == EXIT_FAILURE
    assert capsys.readouterr().err == "qa-test: error: out: disk full\n"


def test_multi_line_library_messages_become_one_line(capsys):
    assert run_command("qa-test", _parser(), _raise(CommandError("first\n  second\n")), []) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "qa-test: error: first second\n"


def test_unexpected_failure_is_one_line_and_the_traceback_needs_debug(capsys):
    assert run_command("qa-test", _parser(), _raise(RuntimeError("boom")), []) == EXIT_FAILURE
    error = capsys.readouterr().err
    assert error == "qa-test: error: unexpected failure: RuntimeError: boom (rerun with --debug for the traceback)\n"
    assert run_command("qa-test", _parser(), _raise(RuntimeError("boom")), ["--debug"]) == EXIT_FAILURE
    error = capsys.readouterr().err
    assert error.startswith("Traceback (most recent call last):")
    assert error.endswith("qa-test: error: unexpected failure: RuntimeError: boom\n")


def test_interrupt_is_130_with_the_commands_note(capsys):
    code = run_command("qa-test", _parser(), _raise(KeyboardInterrupt()), [], interrupted="interrupted; resume")
    assert code == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "qa-test: interrupted; resume\n"


def test_help_and_usage_errors_return_argparse_codes(capsys):
    assert run_command("qa-test", _parser(), _raise(AssertionError("not reached")), ["--help"]) == 0
    assert run_command("qa-test", _parser(), _raise(AssertionError("not reached")), ["--nope"]) == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err


@pytest.mark.parametrize("program", sorted(COMMANDS))
def test_every_command_keeps_the_contract(program, monkeypatch, capsys):
    module_name, failing, arguments = COMMANDS[program]
    module = importlib.import_module(module_name)

    def fail(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(module, failing, fail)
    assert module.main(arguments) == EXIT_FAILURE
    error = capsys.readouterr().err
    assert error == f"{program}: error: unexpected failure: RuntimeError: injected (rerun with --debug for the traceback)\n"
    assert module.main([*arguments, "--debug"]) == EXIT_FAILURE
    error = capsys.readouterr().err
    assert "Traceback (most recent call last):" in error and error.endswith("RuntimeError: injected\n")
