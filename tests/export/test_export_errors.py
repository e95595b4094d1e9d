"""Bad input to qa-export: one clear line on stderr, exit code 2, nothing written at the output path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from support.export_models import save_tiny_checkpoint, write_validation

from spanqa.engine.core.model_folder import MODEL_FILE, read_manifest
from spanqa.export import cli
from spanqa.export.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def validation(tmp_path_factory) -> str:
    return str(write_validation(tmp_path_factory.mktemp("validation") / "questions.jsonl"))


def run_cli(capsys, *arguments) -> tuple[int, str]:
    code = cli.main([str(argument) for argument in arguments] + ["--quiet"])
    return code, capsys.readouterr().err


def refused(capsys, output: Path, *arguments) -> str:
    """Run the CLI expecting exit 2 and no output folder; return the error line."""
    code, err = run_cli(capsys, *arguments, "--output", output)
    assert code == 2, err
    assert not output.exists()
    lines = [line for line in err.splitlines() if line.startswith("qa-export: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def copy_checkpoint(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_missing_checkpoint(capsys, tmp_path):
    message = refused(capsys, tmp_path / "out", tmp_path / "nowhere")
    assert f"{tmp_path / 'nowhere'}: no such checkpoint folder" in message


def test_folder_without_config(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "config.json: missing" in refused(capsys, tmp_path / "out", tmp_path / "empty")


def test_corrupt_config(capsys, tiny_model, tmp_path):
    checkpoint = copy_checkpoint(tiny_model, tmp_path / "checkpoint")
    (checkpoint / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    message = refused(capsys, tmp_path / "out", checkpoint)
    assert f"{checkpoint / 'config.json'}: cannot load the model configuration" in message


def test_corrupt_weights(capsys, tiny_model, tmp_path):
    checkpoint = copy_checkpoint(tiny_model, tmp_path / "checkpoint")
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    message = refused(capsys, tmp_path / "out", checkpoint)
    assert f"{checkpoint}: cannot load the weights (model.safetensors)" in message


def test_backbone_without_qa_head_is_refused(capsys, tmp_path):
    from spanqa.training.model import default_model_path

    message = refused(capsys, tmp_path / "out", default_model_path())
    assert "no question-answering head" in message and "qa_outputs.weight" in message


def test_unsupported_architecture(capsys, tokenizer, tmp_path):
    from transformers import GPT2Config, GPT2ForQuestionAnswering

    checkpoint = tmp_path / "gpt2"
    config = GPT2Config(vocab_size=64, n_embd=8, n_layer=1, n_head=2, n_positions=32)
    GPT2ForQuestionAnswering(config).save_pretrained(checkpoint)
    message = refused(capsys, tmp_path / "out", checkpoint)
    assert "model_type 'gpt2' is not supported by qa-export (supported: albert, bert," in message


def test_remote_code_is_never_trusted(capsys, tiny_model, tmp_path):
    checkpoint = copy_checkpoint(tiny_model, tmp_path / "checkpoint")
    config = json.loads((checkpoint / "config.json").read_text())
    config.update(model_type="my-custom-bert", auto_map={"AutoConfig": "modeling.MyConfig"})
    (checkpoint / "config.json").write_text(json.dumps(config))
    (checkpoint / "modeling.py").write_text("raise SystemExit('remote code ran')\n")
    message = refused(capsys, tmp_path / "out", checkpoint)
    assert "needs its own Python code (auto_map), which qa-export never runs" in message


def test_pickle_weights_need_allow_pickle(capsys, tiny_model, tokenizer, tmp_path):
    from transformers import AutoModelForQuestionAnswering

    import torch

    checkpoint = tmp_path / "pickled"
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model)
    # Written by hand: transformers 5's save_pretrained writes safetensors only.
    model.config.save_pretrained(checkpoint)
    torch.save(model.state_dict(), checkpoint / "pytorch_model.bin")
    tokenizer.save_pretrained(checkpoint)
    assert (checkpoint / "pytorch_model.bin").is_file()
    message = refused(capsys, tmp_path / "out", checkpoint)
    assert "weights only in pickle format (pytorch_model.bin)" in message and "--allow-pickle" in message
    code, err = run_cli(capsys, checkpoint, "--output", tmp_path / "out", "--allow-pickle", "--no-optimize", "--skip-parity")
    assert code == 0, err


def test_fp16_checkpoint_is_exported_from_fp32_weights(capsys, tiny_model, tokenizer, validation, tmp_path):
    import torch
    from transformers import AutoModelForQuestionAnswering

    checkpoint = tmp_path / "half"
    AutoModelForQuestionAnswering.from_pretrained(tiny_model).half().save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    assert load_checkpoint(str(checkpoint)).model.dtype == torch.float32
    code, err = run_cli(capsys, checkpoint, "--output", tmp_path / "out", "--no-optimize", "--validation", validation)
    assert code == 0, err
    graph = onnx.load(tmp_path / "out" / MODEL_FILE)
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    assert {init.data_type for init in graph.graph.initializer if init.data_type in float_types} == {onnx.TensorProto.FLOAT}
    assert read_manifest(tmp_path / "out").parity.agreement == 100.0


def test_output_under_a_file_is_not_writable(capsys, tiny_model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    message = refused(capsys, blocker / "out" / "model", tiny_model)
    assert f"not writable ({blocker} is a file, not a folder)" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits (the read-only mount test covers root)")
def test_read_only_parent_is_not_writable(capsys, tiny_model, tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o555)
    try:
        assert "not writable" in refused(capsys, parent / "out", tiny_model)
    finally:
        parent.chmod(0o755)


def read_only_command(folder: Path, command: list[str]) -> list[str]:
    """`command`, run with `folder` bind-mounted read-only over itself in a private mount namespace: the mount is
    gone when the command exits, and no other process sees it. Root ignores permission bits, not a read-only mount."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(folder), *command]


def read_only_mounts_work(scratch: Path) -> bool:
    """Whether this process may make such a mount (root with CAP_SYS_ADMIN, and util-linux's unshare)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = scratch / "probe"
    probe.mkdir()
    touched = probe / "touched"
    result = subprocess.run(read_only_command(probe, ["touch", str(touched)]), capture_output=True, text=True)
    works = result.returncode != 0 and "Read-only file system" in result.stderr and not touched.exists()
    shutil.rmtree(probe)
    return works


def test_read_only_file_system_is_not_writable_even_for_root(tiny_model, tmp_path):
    if not read_only_mounts_work(tmp_path):
        pytest.skip("needs root and unshare for a read-only bind mount (non-root users get the permission-bits test)")
    parent = tmp_path / "locked"
    parent.mkdir()
    output = parent / "out"
    qa_export = [sys.executable, "-m", "spanqa.export.cli", str(tiny_model), "--output", str(output), "--quiet"]
    result = subprocess.run(read_only_command(parent, qa_export), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("qa-export: error: ")]
    assert len(errors) == 1, result.stderr
    assert f"--output {output}: not writable" in errors[0] and "Read-only file system" in errors[0]
    assert list(parent.iterdir()) == []  # nothing written, not even a probe or staging folder


def test_existing_output_is_refused_without_overwrite(capsys, tiny_model, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    code, err = run_cli(capsys, tiny_model, "--output", output)
    assert code == 2 and "already exists; pass --overwrite" in err


def test_bad_validation_file_names_file_and_line(capsys, tiny_model, tmp_path):
    data = tmp_path / "bad.jsonl"
    good = {"id": "a", "question": "q?", "context": "c", "answers": {"text": ["c"], "answer_start": [0]}}
    data.write_text(json.dumps(good) + '\n{"id": 3}\n')
    message = refused(capsys, tmp_path / "out", tiny_model, "--validation", data)
    assert f"--validation: {data}:2" in message


def test_validation_without_answers_is_refused(capsys, tiny_model, tmp_path):
    data = tmp_path / "unanswered.jsonl"
    data.write_text('{"id": "a", "question": "q?", "context": "some text"}\n')
    assert "have no gold answers" in refused(capsys, tmp_path / "out", tiny_model, "--validation", data)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--opset", "11"], "--opset: 11 is outside the supported range 14..23"),
        (["--force", "--skip-parity"], "--force and --skip-parity contradict each other"),
        (["--max-length", "64"], "window options: max_length 64 leaves"),
    ],
)
def test_bad_options(capsys, tiny_model, validation, tmp_path, arguments, expected):
    assert expected in refused(capsys, tmp_path / "out", tiny_model, "--validation", validation, *arguments)


def test_usage_errors_return_2_without_raising(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "required" in err and "checkpoint" in err and "--output" in err
