"""qa-export --openvino (export/openvino_ir.py): the folder's second graph (OpenVINO IR, fp16 weights), its manifest
record and parity gate, the engine running it (backend openvino, and auto where it wins) with every answer
independent of batching. Tests that run OpenVINO skip where openvino is not installed."""

from __future__ import annotations

from dataclasses import replace
from importlib.util import find_spec

import pytest
from support.export_models import write_validation

from spanqa.engine.core.data import load_examples
from spanqa.engine.core.model_folder import ModelFolderError, read_manifest, write_manifest
from spanqa.engine.runtime.backends import loading
from spanqa.engine.runtime.engine import QAEngine, answer_settings
from spanqa.engine.runtime.options import EngineOptions
from spanqa.export import cli
from spanqa.export.options import ExportError, ExportOptions, ParityThresholds
from spanqa.export.run import export_model

RANDOM_MODEL_INT8 = ParityThresholds(int8_max_f1_drop=100.0)  # a random model's F1 means nothing (see test_export)
needs_openvino_export = pytest.mark.skipif(
    find_spec("openvino") is None, reason="openvino is not installed (pip install 'spanqa[openvino-export]')"
)


@pytest.fixture(scope="module")
def training_file(tmp_path_factory) -> str:
    return str(write_validation(tmp_path_factory.mktemp("openvino-calibration") / "train.jsonl"))


@pytest.fixture(scope="module")
def openvino_export(tiny_model, training_file, tmp_path_factory):
    if find_spec("openvino") is None:
        pytest.skip("openvino is not installed")
    output = tmp_path_factory.mktemp("openvino") / "int8"
    options = ExportOptions(str(tiny_model), str(output), precision="int8", validation=training_file,
                            calibration=training_file, openvino=True, thresholds=RANDOM_MODEL_INT8)  # fmt: skip
    return export_model(options).output


def test_openvino_is_for_cpu_precisions(tiny_model, tmp_path):
    with pytest.raises(ExportError, match="--openvino: a CPU graph"):
        ExportOptions(str(tiny_model), str(tmp_path / "x"), precision="fp16", openvino=True)
    ExportOptions(str(tiny_model), str(tmp_path / "x"), precision="fp32", openvino=True)  # accepted


def test_cli_without_openvino_installed_says_what_to_install(tiny_model, training_file, tmp_path, monkeypatch, capsys):
    from spanqa.export import run

    monkeypatch.setattr(run, "openvino_missing", lambda: "--openvino needs the openvino package: pip install x")
    code = cli.main([str(tiny_model), "--output", str(tmp_path / "out"), "--precision", "int8", "--calibration",
                     training_file, "--openvino", "--skip-parity"])  # fmt: skip
    assert code == 2 and "--openvino needs the openvino package" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@needs_openvino_export
def test_the_folder_holds_both_graphs_and_the_manifest_records_the_second(openvino_export, training_file):
    manifest = read_manifest(openvino_export)
    graph = manifest.openvino
    assert graph is not None and graph.model_file == "openvino_model.xml" and graph.weights == "fp16"
    assert graph.openvino_version and manifest.model_file == "model.onnx" and manifest.precision == "int8"
    weights = openvino_export / "openvino_model.bin"
    assert (openvino_export / "openvino_model.xml").is_file() and weights.is_file()
    plain_parameters = sum(parameter.numel() for parameter in _tiny_parameters(openvino_export))
    assert 2 * plain_parameters * 0.9 <= weights.stat().st_size <= 2 * plain_parameters * 1.1  # fp16: 2 bytes each
    assert graph.parity is not None and graph.parity.validation == training_file and graph.parity.passed
    assert graph.parity.examples == manifest.parity.examples == len(load_examples(training_file))


def _tiny_parameters(folder):
    import safetensors.torch

    source = read_manifest(folder).source_checkpoint
    return safetensors.torch.load_file(f"{source}/model.safetensors").values()


@needs_openvino_export
def test_backend_openvino_runs_the_ir_and_answers_do_not_depend_on_batching(openvino_export, training_file):
    """bf16 (where the CPU has it) makes logits depend on padding; the width buckets make each answer its own."""
    examples = load_examples(training_file)
    engine = QAEngine(openvino_export, options=EngineOptions(backend="openvino", device="cpu"))
    assert engine.backend.model_path.name == "openvino_model.xml" and engine.backend.width_multiple > 1
    alone = [next(engine.answer_many([example])) for example in examples]
    for options in (EngineOptions(max_batch_tokens=64), EngineOptions(max_batch_tokens=4096), EngineOptions(lookahead=3)):
        batched = QAEngine(openvino_export, options=replace(options, backend="openvino", device="cpu"))
        grouped = list(batched.answer_many(examples[::-1]))[::-1]
        for single, other in zip(alone, grouped, strict=True):
            assert (other.answer, other.start, other.end, other.score) == (single.answer, single.start, single.end,
                                                                           single.score)  # fmt: skip


@needs_openvino_export
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_each_gate_scores_what_the_engine_answers(openvino_export, training_file, backend):
    """A gate's figures are the engine's own on the same questions: same decoder and word alignment, and (for the
    OpenVINO graph) the same width buckets; even a random model's near-tied spans come out alike."""
    from spanqa.engine.evaluation.scoring import evaluate

    examples = load_examples(training_file)
    engine = QAEngine(openvino_export, options=EngineOptions(backend=backend, device="cpu"))
    scores = evaluate(examples, {answer.id: answer.answer for answer in engine.answer_many(examples)})
    manifest = read_manifest(openvino_export)
    parity = manifest.parity if backend == "onnx" else manifest.openvino.parity
    assert (round(scores.f1, 4), round(scores.exact_match, 4)) == (parity.f1, parity.exact_match)


@needs_openvino_export
def test_auto_stays_on_onnxruntime_for_a_folder_with_an_openvino_graph(openvino_export):
    """OpenVINO is asked for, never auto's choice (it was not faster; runtime/backends/loading.py)."""
    assert QAEngine(openvino_export, options=EngineOptions(device="cpu")).backend.name == "onnxruntime"
    assert loading.resolve_backend(openvino_export, EngineOptions()) == "onnx"
    assert answer_settings(openvino_export, EngineOptions())["backend"] == "onnx"
    assert answer_settings(openvino_export, EngineOptions(backend="openvino"))["backend"] == "openvino"


def test_a_manifest_naming_a_missing_openvino_graph_is_refused(tiny_onnx, tmp_path):
    import shutil

    from spanqa.engine.core.model_folder import OpenVinoGraph

    folder = tmp_path / "model"
    shutil.copytree(tiny_onnx, folder)
    graph = OpenVinoGraph("openvino_model.xml", "fp16", "0", None)
    write_manifest(folder, replace(read_manifest(folder), openvino=graph))
    with pytest.raises(ModelFolderError, match=r"openvino_model\.xml: missing"):
        read_manifest(folder)
    (folder / "openvino_model.xml").write_text("<net/>")
    with pytest.raises(ModelFolderError, match=r"openvino_model\.bin: missing"):
        read_manifest(folder)
    write_manifest(folder, replace(read_manifest(tiny_onnx), openvino=replace(graph, model_file="../x.xml")))
    with pytest.raises(ModelFolderError, match="must be an .xml file inside the folder"):
        read_manifest(folder)
