"""qa-answer --backend: the engine's backend choice from the command line."""

from __future__ import annotations

import importlib.util
import json

import pytest

from spanqa.engine.cli.answer import build_parser, engine_options, main


def test_the_flag_reaches_the_engine_options():
    assert engine_options(build_parser().parse_args(["in.jsonl"])).backend == "auto"
    assert engine_options(build_parser().parse_args(["in.jsonl", "--backend", "openvino"])).backend == "openvino"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["in.jsonl", "--backend", "tensorflow"])


def test_onnx_backend_answers_with_the_shipped_model(capsys):
    code = main(["--question", "Who wrote it?", "--context", "It was written by Ada Lovelace in 1843.",
                 "--backend", "onnx"])  # fmt: skip
    assert code == 0 and json.loads(capsys.readouterr().out)["answer"] == "Ada Lovelace"


@pytest.mark.skipif(importlib.util.find_spec("openvino") is not None, reason="openvino is installed here")
def test_openvino_without_its_extra_is_one_line_naming_the_extra(capsys):
    code = main(["--question", "Who?", "--context", "Ada did.", "--backend", "openvino"])
    error = capsys.readouterr().err
    assert code == 2 and "spanqa[openvino]" in error and "Traceback" not in error
