"""Security: a model folder never runs its own code, pickled weights are refused unless allowed, and nothing in an
input record is ever used as a file path.

Each trap is live: the tests first show that the planted code or pickle does create its marker file when run the
way an unsafe loader would, then that spanqa never creates it.
"""

from __future__ import annotations

import json
import os
import pickle
import runpy
import shutil
import sys
from pathlib import Path

import pytest

from spanqa.engine import EngineOptions, ModelFolderError, QAEngine
from spanqa.engine.cli.answer import main as answer_main
from spanqa.engine.jobs.answer_file import answer_file
from spanqa.engine.core.model_folder import Manifest, write_manifest

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _copy_config_and_tokenizer(checkpoint: Path, folder: Path) -> None:
    """Every file of the checkpoint but its weights: config.json and whatever its tokenizer wrote (vocab.txt and
    special_tokens_map.json too on transformers 4; tokenizer.json and tokenizer_config.json alone on 5)."""
    names = sorted(path.name for path in checkpoint.iterdir() if path.is_file() and path.name not in WEIGHT_FILES)
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= set(names), names
    for name in names:
        shutil.copy(checkpoint / name, folder / name)


def _export_shaped_folder(folder: Path, checkpoint: Path) -> Path:
    """A folder that passes the manifest checks, with the checkpoint's config and tokenizer and a graph that is not
    one (so loading goes through the tokenizer and stops at onnxruntime)."""
    folder.mkdir(parents=True)
    _copy_config_and_tokenizer(checkpoint, folder)
    (folder / "model.onnx").write_bytes(b"not a graph")
    write_manifest(folder, Manifest(
        precision="fp32", opset=17, model_type="bert", input_names=("input_ids", "attention_mask", "token_type_ids"),
        output_names=("start_logits", "end_logits"), source_checkpoint="test", source_sha256="0" * 64,
        onnxruntime_version="test", fused_ops={}, parity=None,
    ))  # fmt: skip
    return folder

# --- remote code ----------------------------------------------------------------------------------------------

EVIL_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("code from the model folder ran")
from transformers import BertConfig, BertForQuestionAnswering, BertTokenizerFast
class EvilConfig(BertConfig):
    model_type = "evil-bert"
class EvilModel(BertForQuestionAnswering):
    config_class = EvilConfig
class EvilTokenizer(BertTokenizerFast):
    pass
"""


def _plant_remote_code(folder: Path, marker: Path, model_type: str | None) -> Path:
    """Give a model folder an auto_map (config and tokenizer) pointing at a module that creates `marker` on import."""
    (folder / "evil.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "evil.EvilConfig", "AutoModelForQuestionAnswering": "evil.EvilModel",
        "AutoModel": "evil.EvilModel",
    }  # fmt: skip
    if model_type is not None:
        config["model_type"] = model_type
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


def test_the_planted_module_is_a_live_trap(tmp_path, tiny_model):
    folder = shutil.copytree(tiny_model, tmp_path / "model")
    marker = tmp_path / "marker"
    _plant_remote_code(folder, marker, None)
    runpy.run_path(str(folder / "evil.py"))  # what trust_remote_code=True would do
    assert marker.exists()


@pytest.mark.parametrize("model_type", [None, "evil-bert"], ids=["known model type", "custom model type"])
def test_checkpoint_with_auto_map_never_runs_its_code(model_type, tmp_path, tiny_model, capsys):
    folder = shutil.copytree(tiny_model, tmp_path / "model")
    marker = tmp_path / "marker"
    _plant_remote_code(folder, marker, model_type)
    code = answer_main(["--question", "When?", "--context", "It opened in 1901.", "--model", str(folder)])
    error = capsys.readouterr().err
    if model_type is None:  # a standard architecture: loaded with transformers' own class, auto_map ignored
        assert code == 0, error
    else:  # only the folder's code could build it: refused with one line naming the folder
        assert code == 2 and f"qa-answer: error: {folder}" in error
    assert not marker.exists()
    assert "evil" not in sys.modules and not any(name.startswith("transformers_modules") for name in sys.modules)


def test_export_with_auto_map_in_its_tokenizer_never_runs_it(tmp_path, tiny_model):
    folder = _export_shaped_folder(tmp_path / "export", tiny_model)
    marker = tmp_path / "marker"
    _plant_remote_code(folder, marker, None)
    with pytest.raises(ModelFolderError, match=r"model\.onnx"):  # the tokenizer loaded; the fake graph is refused
        QAEngine(folder, device="cpu")
    assert not marker.exists()


# Reference: qa-export refuses auto_map checkpoints outright, tested in test_export_errors.py
# (test_remote_code_is_never_trusted).


# --- pickled weights ------------------------------------------------------------------------------------------


class _Trap:
    """Unpickling this calls open(marker, "w"): the smallest proof that loading a pickle runs what it names."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickled_checkpoint(tmp_path: Path, tiny_model: Path, marker: Path) -> Path:
    folder = tmp_path / "pickled"
    folder.mkdir()
    _copy_config_and_tokenizer(tiny_model, folder)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": _Trap(marker)}))
    return folder


def test_the_pickle_is_a_live_trap(tmp_path, tiny_model):
    marker = tmp_path / "marker"
    folder = _pickled_checkpoint(tmp_path, tiny_model, marker)
    pickle.loads((folder / "pytorch_model.bin").read_bytes())
    assert marker.exists()


def test_qa_answer_refuses_pickled_weights_without_allow_pickle(tmp_path, tiny_model, capsys):
    marker = tmp_path / "marker"
    folder = _pickled_checkpoint(tmp_path, tiny_model, marker)
    code = answer_main(["--question", "When?", "--context", "In 1901.", "--model", str(folder)])
    error = capsys.readouterr().err
    assert code == 2
    assert f"{folder / 'pytorch_model.bin'}: pickled weights can run arbitrary code" in error
    assert not marker.exists()
    with pytest.raises(ModelFolderError, match="pickled weights"):
        QAEngine(folder)
    assert not marker.exists()


def test_qa_export_refuses_pickled_weights_without_allow_pickle(tmp_path, tiny_model, capsys):
    from spanqa.export.cli import main as export_main

    marker = tmp_path / "marker"
    folder = _pickled_checkpoint(tmp_path, tiny_model, marker)
    code = export_main([str(folder), "--output", str(tmp_path / "export")])
    assert code == 2  # bad input, before anything is loaded
    assert capsys.readouterr().err == (
        f"qa-export: error: {folder}: weights only in pickle format (pytorch_model.bin); loading a pickle can run "
        "arbitrary code. Convert them to safetensors, or pass --allow-pickle if you trust the file\n"
    )
    assert not marker.exists() and not (tmp_path / "export").exists()


def test_qa_answer_allow_pickle_loads_a_trusted_pickled_checkpoint(tmp_path, tiny_model, capsys):
    import torch
    from transformers import AutoModelForQuestionAnswering

    folder = tmp_path / "trusted"
    folder.mkdir()
    _copy_config_and_tokenizer(tiny_model, folder)
    # Written with torch.save, since transformers 5's save_pretrained writes safetensors whatever it is asked.
    torch.save(AutoModelForQuestionAnswering.from_pretrained(tiny_model).state_dict(), folder / "pytorch_model.bin")
    assert not (folder / "model.safetensors").exists()
    arguments = ["--question", "When?", "--context", "It opened in 1901."]
    assert answer_main([*arguments, "--model", str(folder)]) == 2
    assert answer_main([*arguments, "--model", str(folder), "--allow-pickle"]) == 0
    from_pickle = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer_main([*arguments, "--model", str(tiny_model)]) == 0
    assert from_pickle == json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the same weights loaded


# --- input records are data, never paths ------------------------------------------------------------------------

HOSTILE = [
    "../../etc/passwd", "/etc/shadow", "~/.ssh/id_rsa", "file:///etc/hosts", "..\\..\\windows\\win.ini", "CON",
    "/dev/zero", "|rm -rf /", "$(touch pwned)", "\x00/etc/passwd", "%2e%2e%2fetc%2fpasswd",
]  # fmt: skip


class _FileAccessLog:
    """Records every file-system event Python audits (open, listdir, remove, rename, mkdir, ...) while armed.
    Audit hooks cannot be removed, so one hook per test process records only while armed."""

    events: list[tuple[str, str]] = []
    armed = False
    installed = False

    @classmethod
    def install(cls) -> None:
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True

    @classmethod
    def _hook(cls, event: str, arguments: tuple) -> None:
        if not cls.armed or not (event == "open" or event.startswith(("os.", "shutil.", "glob."))):
            return
        if event == "open":
            arguments = arguments[:1]  # (path, mode, flags): only the path
        for argument in arguments:
            if isinstance(argument, (str, bytes, os.PathLike)):
                cls.events.append((event, os.fsdecode(argument) if not isinstance(argument, str) else argument))


def _hostile_records(victim: Path) -> list[bytes]:
    records = []
    for index, text in enumerate([*HOSTILE, str(victim)]):
        record = {"id": text, "question": text, "context": f"{text} is a path, and {text} again.", "title": text,
                  "answers": [text], "file": text, "path": text, "model": text, "output": text}  # fmt: skip
        records.append(json.dumps(record))
        records.append(json.dumps({**record, "id": f"{index}-{text}", "question": "Which file?"}))
    return [(line + "\n").encode() for line in records]


def test_record_fields_are_never_used_as_paths(tmp_path, tiny_model):
    victim = tmp_path / "victim.txt"
    victim.write_text("must stay as it is")
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(_hostile_records(victim)))
    output = tmp_path / "out.jsonl"
    engine = QAEngine(tiny_model, options=EngineOptions(lookahead=4))
    engine.answer("Warm up?", "Lazy imports and compilation happen now, not while the file is answered.")
    before = sorted(path.name for path in tmp_path.iterdir())
    cwd_before = sorted(os.listdir("."))

    _FileAccessLog.install()
    _FileAccessLog.events.clear()
    _FileAccessLog.armed = True
    try:
        result = answer_file(engine, source, output)
    finally:
        _FileAccessLog.armed = False

    assert result.errors == 0 and result.answered == len(_hostile_records(victim))  # odd ids are ids all the same
    assert victim.read_text() == "must stay as it is"
    # No new files but the output and its own settings file (OUTPUT.run.json, staged as OUTPUT.run.json.partial).
    own = {str(output), *(str(output) + suffix for suffix in (".errors.jsonl", ".run.json", ".run.json.partial"))}
    new_files = {str(path) for path in tmp_path.iterdir()} - {str(tmp_path / name) for name in before}
    assert str(output) in new_files and new_files <= own, new_files
    assert sorted(os.listdir(".")) == cwd_before
    touched = {path for _, path in _FileAccessLog.events}
    hostile_paths = [text for text in [*HOSTILE, str(victim)] if text]
    assert not [path for path in touched if any(text in path for text in hostile_paths)], touched
    # The model folder is read too (the settings file records a digest of the model's files).
    model_files = {path for path in touched if path == str(tiny_model) or path.startswith(f"{tiny_model}{os.sep}")}
    assert {str(source), str(output)} <= touched - model_files <= {str(source), *own}, touched
    answers = [json.loads(line) for line in output.read_bytes().splitlines()]
    assert {answer["path"] for answer in answers} == set(hostile_paths)  # the fields passed through as plain data


def test_a_manifest_cannot_point_outside_its_folder(tmp_path, tiny_model):
    folder = _export_shaped_folder(tmp_path / "export", tiny_model)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"not a graph")
    manifest = json.loads((folder / "manifest.json").read_text())
    for hostile in ("../outside.onnx", str(outside), "sub/../../outside.onnx"):
        manifest["model_file"] = hostile
        (folder / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelFolderError, match="'model_file' must be a file name inside the folder"):
            QAEngine(folder, device="cpu")
