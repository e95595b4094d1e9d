"""Faults from outside: `qa-answer` killed with SIGKILL and resumed, full and unwritable outputs, broken model
folders. Every check is on what a user sees: exit codes, one-line messages, and the files left behind.

Kill trials. Each trial starts a run, kills it with SIGKILL, records what the kill found and left (whether it landed
before the process exited, i.e. exit status -9; how many output bytes existed; whether the last line was torn), then
finishes the output with `--resume`: it must be byte-identical to an uninterrupted run. qa-answer writes each line
with a single write() to an unbuffered file, which a SIGKILL cannot cut halfway, so a kill on its own leaves either no
output or whole lines; a torn last line needs a writer that stalls mid-line, as on a hung disk, which
tests/support/stall_site/sitecustomize.py provides (the output's writes come back short at a byte count, then block). The
default suite forces each outcome once on forkserver children running qa-answer's `main()` (the console script's
code, without ~15 s of importing torch per trial on the loaded 2-core machine), and resumes a torn output of the
shipped int8 ONNX model through the installed `qa-answer` executable; `-m slow` runs 20 trials on the executable.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import installed_executable

from spanqa.engine.cli.answer import main
from support import REPO_ROOT

# The tiny export goes through torch's TorchScript exporter, which warns about itself. One torch thread (conftest.py)
# in this process, as in the children, so that all outputs compare byte for byte.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

RECORDS = 300
BAD_LINES = {17: b'{"id": "torn", "question": "Wh\n', 90: b"[1, 2]\n", 151: b'{"id": "q0005", "question": "dup?", '
             b'"context": "A duplicate id."}\n', 260: b'{"id": "no-context", "question": "Where?"}\n'}  # fmt: skip
CHILD_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
STALL_SITE = REPO_ROOT / "tests" / "support" / "stall_site"
_stall_hook_spec = importlib.util.spec_from_file_location("stall_hook", STALL_SITE / "sitecustomize.py")
stall_hook = importlib.util.module_from_spec(_stall_hook_spec)
_stall_hook_spec.loader.exec_module(stall_hook)


def _input_lines() -> list[bytes]:
    lines, index = [], 0
    while index < RECORDS:
        if len(lines) + 1 in BAD_LINES:
            lines.append(BAD_LINES[len(lines) + 1])
            continue
        record = {"id": f"q{index:04d}", "question": f"When did station {index} open?",
                  "context": f"Station {index} opened in {1850 + index % 150} beside the canal.", "n": index}  # fmt: skip
        lines.append((json.dumps(record) + "\n").encode())
        index += 1
    return lines


VALID_IDS = [f"q{index:04d}" for index in range(RECORDS)]


# --- running qa-answer in a child process ---------------------------------------------------------------------


def _cli_in_child(argv: list[str], file_size_limit: int | None = None, stall: tuple[str, int] | None = None) -> None:
    """Forkserver target: qa-answer's main() with the console script's exit status."""
    import torch

    torch.set_num_threads(1)  # as OMP_NUM_THREADS=1 does for the executable: the same arithmetic in every run
    if file_size_limit is not None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.RLIM_INFINITY))
    if stall is not None:
        stall_hook.install(*stall)
    sys.exit(main(argv))


@pytest.fixture(scope="module")
def forkserver():
    context = multiprocessing.get_context("forkserver")
    # Imported once by the server; each child is forked from it with torch, transformers and the engine loaded
    # (transformers imports its model and tokenizer modules lazily, so they are named here: 0.5 s a child, not 6).
    context.set_forkserver_preload([
        "torch", "transformers", "transformers.models.auto.tokenization_auto", "transformers.models.auto.modeling_auto",
        "transformers.models.bert.modeling_bert", "transformers.models.bert.tokenization_bert_fast",
        "spanqa.engine.cli.answer", "spanqa.engine.runtime.engine", "spanqa.engine.runtime.backends.torch_backend", "spanqa.engine.core.decoder",
    ])  # fmt: skip
    return context


@dataclass
class Child:
    """A running qa-answer: a forkserver child or a subprocess of the installed executable."""

    process: object

    def poll(self) -> int | None:
        if isinstance(self.process, subprocess.Popen):
            return self.process.poll()
        return self.process.exitcode

    def kill(self) -> None:
        """SIGKILL, unless the process was already reaped; one that exited but was not yet reaped gets it too, and
        its exit status then tells that the kill came too late."""
        self.process.kill()  # both Popen.kill and Process.kill skip a reaped process

    def wait(self, timeout: float = 600) -> int:
        if isinstance(self.process, subprocess.Popen):
            return self.process.wait(timeout)
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.kill()
            raise TimeoutError("qa-answer did not finish")
        return self.process.exitcode


def _start(forkserver, argv: list[str], executable: bool = False, stall: tuple[Path, int] | None = None,
           environment: dict[str, str] | None = None, **kwargs) -> Child:  # fmt: skip
    """qa-answer `argv` in a forkserver child, or through the installed executable; `stall` = (output, byte count)
    installs the stalling-writer hook."""
    if executable:
        environment = dict(os.environ, **(CHILD_ENVIRONMENT if environment is None else environment))
        if stall is not None:
            environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STALL_SITE), environment.get("PYTHONPATH")]))
            environment[stall_hook.PATH_VARIABLE], environment[stall_hook.BYTES_VARIABLE] = str(stall[0]), str(stall[1])
        command = [installed_executable("qa-answer"), *argv]
        return Child(subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL))
    stall_argument = None if stall is None else (str(stall[0]), stall[1])
    process = forkserver.Process(target=_cli_in_child, args=(argv,), kwargs=dict(kwargs, stall=stall_argument))
    process.start()
    return Child(process)


def _answer_command(source: Path, output: Path, model: Path | None, *extra: str) -> list[str]:
    model_arguments = [] if model is None else ["--model", str(model)]
    return [str(source), "-o", str(output), *model_arguments, "--quiet", *extra]


@pytest.fixture(scope="module")
def workload(tmp_path_factory, tiny_model, forkserver):
    """The input, and the output and errors file of an uninterrupted run with the time it took."""
    folder = tmp_path_factory.mktemp("kill")
    source = folder / "in.jsonl"
    source.write_bytes(b"".join(_input_lines()))
    output = folder / "reference.jsonl"
    assert _start(forkserver, _answer_command(source, output, tiny_model)).wait() == 0  # starts the forkserver too
    again = folder / "again.jsonl"
    started = time.monotonic()
    assert _start(forkserver, _answer_command(source, again, tiny_model)).wait() == 0
    seconds = time.monotonic() - started  # what a run takes once the server is up: the range of random kill delays
    assert again.read_bytes() == output.read_bytes()  # runs are deterministic, so byte equality is the right test
    errors = output.with_name(output.name + ".errors.jsonl").read_bytes()
    return source, output.read_bytes(), errors, seconds


# --- kill -9 and resume ---------------------------------------------------------------------------------------

NO_OUTPUT, WHOLE_LINES, TORN, TOO_LATE = "no output", "whole lines only", "mid-line torn", "exited before the kill"
OUTCOMES = (NO_OUTPUT, WHOLE_LINES, TORN)


@dataclass(frozen=True)
class Plan:
    """When to kill: after `delay` seconds, when the output holds `at_bytes` bytes, or, with `stall`, when the
    stalling writer has stopped the output at `at_bytes` (exactly there, so the outcome is forced); else at once."""

    name: str
    delay: float | None = None
    at_bytes: int | None = None
    stall: bool = False


@dataclass(frozen=True)
class KillTrial:
    """What one SIGKILL found and left, read after the process was reaped."""

    plan: str
    returncode: int
    output_bytes: int
    torn: bool  # the output ends inside a line

    @property
    def landed(self) -> bool:
        """The kill ended the process (exit status -9) rather than finding it already exited."""
        return self.returncode == -signal.SIGKILL

    @property
    def outcome(self) -> str:
        if not self.landed:
            return TOO_LATE
        if self.output_bytes == 0:
            return NO_OUTPUT
        return TORN if self.torn else WHOLE_LINES


def line_end_after(full: bytes, position: int) -> int:
    """The byte count of the complete lines up to the first newline at or after `position`."""
    return full.index(b"\n", position) + 1


def mid_line_after(full: bytes, position: int) -> int:
    """A byte count inside the line that starts after `position`: 10 bytes into it, never at its end."""
    start = full.index(b"\n", position) + 1
    assert full.index(b"\n", start) - start > 10
    return start + 10


def _wait_for_size(child: Child, output: Path, size: int, exact: bool, timeout: float = 600) -> None:
    began = time.monotonic()
    while child.poll() is None and time.monotonic() - began < timeout:
        current = output.stat().st_size if output.exists() else 0
        if current >= size:
            assert not exact or current == size, f"the stalled output holds {current} bytes, not {size}"
            return
        time.sleep(0.001)


def kill_once(child: Child, output: Path, plan: Plan) -> KillTrial:
    if plan.delay is not None:
        deadline = time.monotonic() + plan.delay
        while time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.002)
    elif plan.at_bytes is not None:
        _wait_for_size(child, output, plan.at_bytes, exact=plan.stall)
    child.kill()
    returncode = child.wait()
    written = output.read_bytes() if output.exists() else b""
    return KillTrial(plan.name, returncode, len(written), bool(written) and not written.endswith(b"\n"))


def kill_and_resume(forkserver, command: list[str], output: Path, full: bytes, plan: Plan, executable: bool,
                    resume_executable: bool, environment: dict[str, str] | None = None) -> KillTrial:  # fmt: skip
    """Kills one run of `command` (writing `output`) as `plan` says, checks what it left, resumes it and checks the
    result is `full`, the output of an uninterrupted run."""
    stall = (output, plan.at_bytes) if plan.stall else None
    child = _start(forkserver, command, executable=executable, stall=stall, environment=environment)
    trial = kill_once(child, output, plan)
    written = output.read_bytes() if output.exists() else b""
    assert full.startswith(written), f"{plan.name}: the killed run wrote bytes that an uninterrupted run does not"
    resumed = _start(forkserver, [*command, "--resume"], executable=resume_executable, environment=environment)
    assert resumed.wait() == 0, f"{plan.name}: the resume failed"
    assert output.read_bytes() == full, f"{plan.name}: the resumed output differs from an uninterrupted run"
    return trial


def _check_resumed_workload(output: Path, full_errors: bytes) -> None:
    assert output.with_name(output.name + ".errors.jsonl").read_bytes() == full_errors
    ids = [json.loads(line)["id"] for line in output.read_bytes().splitlines()]
    assert ids == VALID_IDS  # every valid id, once, in input order


def test_kill_9_forced_outcomes_then_resume_is_byte_identical(forkserver, tiny_model, workload, tmp_path):
    source, full, full_errors, _ = workload
    before = source.read_bytes()
    # 256 records a look-ahead group: the first stall falls in group one, the second in group two, so resumes
    # restart both at the file's start and at a group boundary.
    forced = {
        Plan("at start"): NO_OUTPUT,
        Plan("stalled at a line end", at_bytes=line_end_after(full, len(full) // 3), stall=True): WHOLE_LINES,
        Plan("stalled mid-line", at_bytes=mid_line_after(full, len(full) * 9 // 10), stall=True): TORN,
    }
    trials = []
    for number, (plan, expected) in enumerate(forced.items()):
        output = tmp_path / f"out-{number}.jsonl"
        command = _answer_command(source, output, tiny_model)
        trial = kill_and_resume(forkserver, command, output, full, plan, executable=False, resume_executable=False)
        _check_resumed_workload(output, full_errors)
        trials.append(trial)
        assert trial.outcome == expected, trial
        assert not plan.stall or trial.output_bytes == plan.at_bytes, trial
    assert {trial.outcome for trial in trials} == set(OUTCOMES)
    assert source.read_bytes() == before


def test_kill_9_of_the_shipped_int8_model_resumed_by_the_installed_executable(forkserver, main_job, tmp_path):
    """The README's main job (the shipped int8 ONNX model), killed with a torn last line and finished by the
    installed `qa-answer ... --resume`: the same bytes as the uninterrupted main job."""
    assert main_job.returncode == 0, main_job.stderr[-2000:]
    full = main_job.output.read_bytes()
    source = REPO_ROOT / main_job.command[1]  # named from the repository's root
    output = tmp_path / "answers.jsonl"
    command = _answer_command(source, output, None)  # no --model: the shipped default, as in the main job
    plan = Plan("stalled mid-line", at_bytes=mid_line_after(full, len(full) // 2), stall=True)
    # The main job runs in the tests' own environment; so do these runs, for the same ONNX Runtime threads.
    trial = kill_and_resume(forkserver, command, output, full, plan, executable=False, resume_executable=True,
                            environment={})  # fmt: skip
    assert trial.outcome == TORN and trial.output_bytes == plan.at_bytes, trial


def _twenty_plans(full: bytes, run_seconds: float, seed: int) -> list[Plan]:
    generator = random.Random(seed)
    before_the_last_lines = len(full) - 300  # a stall there always leaves a line unwritten
    plans = []
    for trial in range(20):
        kind = trial % 5
        if kind == 0:
            plans.append(Plan("at start"))
        elif kind == 1:  # a random moment of the run (start-up, loading, reading, answering, writing)
            plans.append(Plan("random delay", delay=generator.uniform(0, run_seconds)))
        elif kind == 2:  # the moment the output reaches a random size
            plans.append(Plan("random byte count", at_bytes=generator.randrange(1, len(full))))
        elif kind == 3:
            at_bytes = mid_line_after(full, generator.randrange(before_the_last_lines))
            plans.append(Plan("stalled mid-line", at_bytes=at_bytes, stall=True))
        else:
            at_bytes = line_end_after(full, generator.randrange(before_the_last_lines))
            plans.append(Plan("stalled at a line end", at_bytes=at_bytes, stall=True))
    return plans


@pytest.mark.slow
def test_kill_9_twenty_trials_on_the_installed_executable(forkserver, tiny_model, workload, tmp_path):
    source, full, full_errors, _ = workload
    before = source.read_bytes()
    output = tmp_path / "uninterrupted.jsonl"
    started = time.monotonic()
    assert _start(forkserver, _answer_command(source, output, tiny_model), executable=True).wait() == 0
    seconds = time.monotonic() - started
    assert output.read_bytes() == full  # the executable and the forkserver child compute the same bytes
    trials = []
    print(f"\nkill -9 trials on the executable (one uninterrupted run: {seconds:.1f} s):")  # for RELIABILITY.md
    for number, plan in enumerate(_twenty_plans(full, seconds, seed=2024)):
        output = tmp_path / f"out-{number}.jsonl"
        command = _answer_command(source, output, tiny_model)
        trials.append(kill_and_resume(forkserver, command, output, full, plan, executable=True, resume_executable=True))
        _check_resumed_workload(output, full_errors)
        trial = trials[-1]
        print(f"  {number:2} {plan.name:21} exit {trial.returncode:3} {trial.output_bytes:6} of {len(full)} bytes: "
              f"{trial.outcome}; resumed byte-identical", flush=True)  # fmt: skip
    assert source.read_bytes() == before
    outcomes = collections.Counter(trial.outcome for trial in trials)
    print(f"  outcomes: {dict(outcomes)}; kills that landed (exit -9): {sum(trial.landed for trial in trials)} of 20")
    assert set(OUTCOMES) <= set(outcomes)
    for trial in trials:
        if trial.plan == "at start":
            assert trial.outcome == NO_OUTPUT, trial
        if trial.plan.startswith("stalled"):
            assert trial.outcome == (TORN if "mid-line" in trial.plan else WHOLE_LINES), trial


# --- full and unwritable outputs ------------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_disk_full_mid_run_exits_1_keeps_complete_lines_and_resume_finishes(forkserver, tiny_model, workload, tmp_path):
    source, full, full_errors, _ = workload
    before = source.read_bytes()
    output = tmp_path / "out.jsonl"
    limit = full.index(b"\n", len(full) // 2) + 40  # the disk "fills" inside a line
    child = _start(forkserver, _answer_command(source, output, tiny_model), file_size_limit=limit)
    assert child.wait() == 1  # the documented status for an output that cannot be written
    assert output.read_bytes() == full[: full.rindex(b"\n", 0, limit) + 1]  # complete lines only, no torn one
    assert source.read_bytes() == before
    assert _start(forkserver, _answer_command(source, output, tiny_model, "--resume")).wait() == 0
    assert output.read_bytes() == full
    assert output.with_name("out.jsonl.errors.jsonl").read_bytes() == full_errors


def test_unwritable_errors_file_stops_cleanly_and_resume_finishes(tiny_model, workload, tmp_path, capsys):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    source, full, _, _ = workload
    output = tmp_path / "out.jsonl"
    code = main(_answer_command(source, output, tiny_model, "--errors", "/dev/full"))
    assert code == 1
    assert "qa-answer: error: /dev/full: cannot be written (No space left on device)" in capsys.readouterr().err
    written = output.read_bytes()
    assert full.startswith(written) and (not written or written.endswith(b"\n"))  # complete lines only
    assert main(_answer_command(source, output, tiny_model, "--resume", "--errors", str(tmp_path / "errors.jsonl"))) == 0
    assert output.read_bytes() == full


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in. root ignores permission bits, so as root: a sysfs folder, whose
    files only the kernel makes."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    probe = Path("/sys/spanqa-probe")
    try:
        probe.open("wb").close()
    except OSError:
        return Path("/sys")
    probe.unlink()
    pytest.skip("running as root with no folder that refuses new files")


def test_read_only_output_folder_is_a_clear_error_and_leaves_the_input(tiny_model, workload, tmp_path, capsys):
    source, _, _, _ = workload
    before = source.read_bytes()
    folder = _unwritable_folder(tmp_path)
    output = folder / "out.jsonl"
    code = main(_answer_command(source, output, tiny_model))
    error = capsys.readouterr().err.strip().splitlines()
    # Refused before any work, like a bad path (2); exit 1 is for an output that fails while being written.
    assert code == 2
    assert error == [f"qa-answer: error: {output}: cannot be written (Permission denied)"]
    assert not output.exists()
    assert source.read_bytes() == before


# --- broken model folders -------------------------------------------------------------------------------------


def _truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BREAKAGES = {
    "truncated model.onnx": (lambda folder: _truncate_half(folder / "model.onnx"), "model.onnx: onnxruntime cannot load it"),
    "missing tokenizer": (lambda folder: (folder / "tokenizer.json").unlink(), "tokenizer.json: missing"),
    "truncated manifest": (lambda folder: _truncate_half(folder / "manifest.json"), "manifest.json: line"),
    "empty manifest": (lambda folder: (folder / "manifest.json").write_bytes(b""), "manifest.json: line 1: invalid JSON"),
}


def test_the_intact_export_answers(tiny_onnx, tmp_path, capsys):
    # The breakages below start from this folder (conftest.py's tiny export): each error is about the one thing broken.
    assert main(["--question", "When?", "--context", "It opened in 1901.", "--model", str(tiny_onnx)]) == 0
    assert "answer" in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_model_folder_exits_2_naming_the_file_and_writes_nothing(breakage, tiny_onnx, workload, tmp_path, capsys):
    source, _, _, _ = workload
    before = source.read_bytes()
    folder = tmp_path / "model"
    shutil.copytree(tiny_onnx, folder)
    damage, message = BREAKAGES[breakage]
    damage(folder)
    output = tmp_path / "out.jsonl"
    code = main([str(source), "-o", str(output), "--model", str(folder), "--device", "cpu"])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith(f"qa-answer: error: {folder}") and message in error and "\n" not in error, error
    assert not output.exists() and not output.with_name("out.jsonl.errors.jsonl").exists()
    assert source.read_bytes() == before
