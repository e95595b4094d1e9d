"""Faults from outside: `qa-answer` killed with SIGKILL at random points and resumed, full and unwritable outputs,
broken model folders. Every check is on what a user sees: exit codes, one-line messages, and the files left behind.

Kill trials: the default suite runs 3 on `qa-answer`'s `main()` started in a forkserver child (the same code the
console script runs, without the ~15 s of importing torch and transformers again per trial on a loaded 2-core
machine); `-m slow` runs 20 on the installed `qa-answer` executable. Each trial kills one run with SIGKILL, either
after a random delay or the moment the output reaches a random size (so that most kills land mid-write), then finishes
it with `--resume`: the output must be byte-identical to an uninterrupted run, so every valid id is there exactly once.
"""

from __future__ import annotations

import collections
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

from spanqa.engine.cli.answer import main

# The tiny export below goes through torch's TorchScript exporter, which warns about itself.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")

RECORDS = 300
BAD_LINES = {17: b'{"id": "torn", "question": "Wh\n', 90: b"[1, 2]\n", 151: b'{"id": "q0005", "question": "dup?", '
             b'"context": "A duplicate id."}\n', 260: b'{"id": "no-context", "question": "Where?"}\n'}  # fmt: skip
CHILD_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


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


def _cli_in_child(argv: list[str], file_size_limit: int | None = None) -> None:
    """Forkserver target: qa-answer's main() with the console script's exit status."""
    import torch

    torch.set_num_threads(1)  # as OMP_NUM_THREADS=1 does for the executable: the same arithmetic in every run
    if file_size_limit is not None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.RLIM_INFINITY))
    sys.exit(main(argv))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Runs in this process compute with one torch thread, as the children do, so that all outputs compare."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
        if self.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)

    def wait(self, timeout: float = 300) -> int:
        if isinstance(self.process, subprocess.Popen):
            return self.process.wait(timeout)
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.kill()
            raise TimeoutError("qa-answer did not finish")
        return self.process.exitcode


def _start(forkserver, argv: list[str], executable: bool = False, **kwargs) -> Child:
    if executable:
        script = Path(sys.executable).with_name("qa-answer")
        command = [str(script)] if script.is_file() else [sys.executable, "-m", "spanqa.engine.cli.answer"]
        environment = dict(os.environ, **CHILD_ENVIRONMENT)
        return Child(subprocess.Popen([*command, *argv], env=environment, stderr=subprocess.DEVNULL))
    process = forkserver.Process(target=_cli_in_child, args=(argv,), kwargs=kwargs)
    process.start()
    return Child(process)


def _answer_command(source: Path, output: Path, model: Path, *extra: str) -> list[str]:
    return [str(source), "-o", str(output), "--model", str(model), "--quiet", *extra]


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


def _kill_and_resume(forkserver, tiny_model, workload, folder: Path, trials: int, seed: int, executable: bool,
                     run_seconds: float) -> collections.Counter:
    """`trials` kills of runs that take about `run_seconds` uninterrupted, each followed by a resume."""
    source, full, full_errors, _ = workload
    before = source.read_bytes()
    generator = random.Random(seed)
    outcomes = collections.Counter()
    for trial in range(trials):
        output = folder / f"out-{trial}.jsonl"
        errors = output.with_name(output.name + ".errors.jsonl")
        child = _start(forkserver, _answer_command(source, output, tiny_model), executable=executable)
        started = time.monotonic()
        if trial % 2 == 0:  # a random moment of the run (loading, reading, answering, writing)
            deadline = started + generator.uniform(0, run_seconds)
            while time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.002)
        else:  # the moment the output reaches a random size: mid-write, usually mid-line
            target = generator.randrange(1, len(full))
            while child.poll() is None and (not output.exists() or output.stat().st_size < target):
                if time.monotonic() - started > 300:
                    break
                time.sleep(0.001)
        child.kill()
        child.wait()
        written = output.read_bytes() if output.exists() else b""
        assert full.startswith(written[: written.rfind(b"\n") + 1])  # whatever was written is a prefix of the truth
        outcomes[_kill_state(written, full)] += 1

        resumed = _start(forkserver, _answer_command(source, output, tiny_model, "--resume"))
        assert resumed.wait() == 0, f"trial {trial}: the resume failed"
        assert output.read_bytes() == full, f"trial {trial}: the resumed output differs from an uninterrupted run"
        assert errors.read_bytes() == full_errors
        ids = [json.loads(line)["id"] for line in output.read_bytes().splitlines()]
        assert ids == VALID_IDS and len(set(ids)) == len(ids)  # every valid id, once, in input order
    assert source.read_bytes() == before
    return outcomes


def _kill_state(written: bytes, full: bytes) -> str:
    if not written:
        return "before any output"
    if written == full:
        return "after the last line"
    return "mid-line" if not written.endswith(b"\n") else "between lines"


def test_kill_9_at_random_points_then_resume_is_byte_identical(forkserver, tiny_model, workload, tmp_path):
    seconds = workload[3]
    outcomes = _kill_and_resume(forkserver, tiny_model, workload, tmp_path, 3, seed=7, executable=False, run_seconds=seconds)
    assert sum(outcomes.values()) == 3


@pytest.mark.slow
def test_kill_9_twenty_trials_on_the_installed_executable(forkserver, tiny_model, workload, tmp_path):
    source, full, _, _ = workload
    output = tmp_path / "uninterrupted.jsonl"
    started = time.monotonic()
    assert _start(forkserver, _answer_command(source, output, tiny_model), executable=True).wait() == 0
    seconds = time.monotonic() - started
    assert output.read_bytes() == full  # the executable and the forkserver child compute the same bytes
    outcomes = _kill_and_resume(forkserver, tiny_model, workload, tmp_path, 20, seed=2024, executable=True, run_seconds=seconds)
    print(f"\nkill -9 trials: {dict(outcomes)}")  # recorded in RELIABILITY.md
    assert sum(outcomes.values()) == 20
    assert outcomes["mid-line"] + outcomes["between lines"] >= 5  # the trials did hit the writing phase


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
    assert code in (1, 2)
    assert error[-1].startswith(f"qa-answer: error: {folder}") and "Permission denied" in error[-1], error
    assert not output.exists()
    assert source.read_bytes() == before


# --- broken model folders -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_export(tiny_model, tmp_path_factory) -> Path:
    """A real, loadable qa-export-style folder (the graph exported with optimum, a manifest naming it)."""
    import onnx
    import onnxruntime
    from optimum.exporters.onnx import main_export

    from spanqa.engine.core.model_folder import Manifest, write_manifest

    folder = tmp_path_factory.mktemp("export") / "model"
    main_export(str(tiny_model), str(folder), task="question-answering", do_validation=False)
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    manifest = Manifest(
        precision="fp32", opset=graph.opset_import[0].version, model_type="bert",
        input_names=tuple(item.name for item in graph.graph.input), output_names=("start_logits", "end_logits"),
        source_checkpoint=str(tiny_model), source_sha256="0" * 64, onnxruntime_version=onnxruntime.__version__,
        fused_ops={}, parity=None,
    )  # fmt: skip
    write_manifest(folder, manifest)
    return folder


def _truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BREAKAGES = {
    "truncated model.onnx": (lambda folder: _truncate_half(folder / "model.onnx"), "model.onnx: onnxruntime cannot load it"),
    "missing tokenizer": (lambda folder: (folder / "tokenizer.json").unlink(), "tokenizer.json: missing"),
    "truncated manifest": (lambda folder: _truncate_half(folder / "manifest.json"), "manifest.json: line"),
    "empty manifest": (lambda folder: (folder / "manifest.json").write_bytes(b""), "manifest.json: line 1: invalid JSON"),
}


def test_the_intact_export_answers(tiny_export, tmp_path, capsys):
    # The breakages below start from this folder: each error is about the one thing broken.
    assert main(["--question", "When?", "--context", "It opened in 1901.", "--model", str(tiny_export)]) == 0
    assert "answer" in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_model_folder_exits_2_naming_the_file_and_writes_nothing(breakage, tiny_export, workload, tmp_path, capsys):
    source, _, _, _ = workload
    before = source.read_bytes()
    folder = tmp_path / "model"
    shutil.copytree(tiny_export, folder)
    damage, message = BREAKAGES[breakage]
    damage(folder)
    output = tmp_path / "out.jsonl"
    code = main([str(source), "-o", str(output), "--model", str(folder), "--device", "cpu"])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith(f"qa-answer: error: {folder}") and message in error and "\n" not in error, error
    assert not output.exists() and not output.with_name("out.jsonl.errors.jsonl").exists()
    assert source.read_bytes() == before
