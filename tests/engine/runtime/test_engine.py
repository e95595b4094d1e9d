"""QAEngine on tiny random models: ONNX Runtime against torch, batching invariance, order, laziness, errors, threads."""

from __future__ import annotations

import gc
import itertools
import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from spanqa.engine import Answer, DecodeOptions, EngineOptions, QAEngine, WindowOptions
from spanqa.engine.core.data import DataFormatError, QAExample
from spanqa.engine.core.model_folder import write_manifest

# One torch thread (conftest.py): on the shared 2-core machine a second OpenMP thread makes tiny-model calls 10x
# slower (spin waits against other processes); the answers do not depend on it.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Small windows, so that the longer contexts below span several windows and answers must be gathered across them.
WINDOW = WindowOptions(max_length=96, stride=32, max_question_tokens=24)
WORDS = (
    "river mountain city king queen war treaty empire science music painter novel river bridge harbour station "
    "engine tower castle village forest island desert ocean winter summer spring autumn north south east west "
    "company market bank school church museum garden palace temple library university theatre stadium airport"
).split()


def make_examples(count: int, seed: int = 0) -> list[QAExample]:
    generator = random.Random(seed)
    examples = []
    for index in range(count):
        context = " ".join(generator.choice(WORDS) for _ in range(generator.choice((5, 30, 80, 200))))
        if index % 7 == 3:
            context = "Caf\u0065\u0301 Zo\u00eb. " + context  # accents the uncased vocabulary strips
        question = "what " + " ".join(generator.choice(WORDS) for _ in range(generator.randint(1, 6))) + "?"
        examples.append(QAExample(id=f"q{index}", question=question, context=context))
    return examples


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory, tokenizer, export_onnx) -> tuple[Path, Path]:
    """A checkpoint whose graph takes no token_type_ids, and its ONNX export."""
    import torch
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering

    folder = tmp_path_factory.mktemp("tiny-distilbert")
    torch.manual_seed(1)
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    DistilBertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, export_onnx(folder, tmp_path_factory.mktemp("tiny-distilbert-onnx") / "model")


def engine_for(model: Path, **changes) -> QAEngine:
    return QAEngine(model, device="cpu", options=EngineOptions(window=WINDOW, **changes))


def as_tuples(answers: list[Answer]) -> list[tuple]:
    return [(a.id, a.answer, a.start, a.end, a.is_impossible) for a in answers]


def test_onnx_and_torch_backends_give_the_same_answers(tiny_model, tiny_onnx):
    examples = make_examples(60)
    onnx_engine = engine_for(tiny_onnx)
    torch_engine = engine_for(tiny_model)
    assert (onnx_engine.backend.name, torch_engine.backend.name) == ("onnxruntime", "torch")
    onnx_answers = list(onnx_engine.answer_many(examples))
    torch_answers = list(torch_engine.answer_many(examples))
    assert as_tuples(onnx_answers) == as_tuples(torch_answers)
    np.testing.assert_allclose([a.score for a in onnx_answers], [a.score for a in torch_answers], rtol=1e-4, atol=1e-6)
    assert onnx_engine.stats.windows > len(examples), "the examples should span several windows"


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_answers_do_not_depend_on_batching_or_repetition(tiny_model, tiny_onnx, backend):
    model = tiny_onnx if backend == "onnx" else tiny_model
    examples = make_examples(40, seed=1)
    one_batch = engine_for(model, max_batch_tokens=100_000, max_batch_windows=1000, lookahead=1000)
    reference = list(one_batch.answer_many(examples))
    for changes, repeats in (
        ({"max_batch_tokens": 1, "max_batch_windows": 1, "lookahead": 1}, 1),  # every window alone
        ({"max_batch_tokens": 400, "max_batch_windows": 5, "lookahead": 7, "prefetch": 1}, 2),
        ({"max_batch_tokens": 2000, "max_batch_windows": 64, "lookahead": 16}, 1),
    ):
        engine = engine_for(model, **changes)
        for _ in range(repeats):
            answers = list(engine.answer_many(examples))
            assert as_tuples(answers) == as_tuples(reference), changes
            np.testing.assert_allclose([a.score for a in answers], [a.score for a in reference], rtol=1e-4)


def test_graph_gets_only_its_own_inputs(tiny_distilbert):
    checkpoint, exported = tiny_distilbert
    onnx_engine = engine_for(exported)
    assert onnx_engine.backend.input_names == ("input_ids", "attention_mask")
    torch_engine = engine_for(checkpoint)
    assert "token_type_ids" not in torch_engine.backend.input_names
    examples = make_examples(20, seed=2)
    assert as_tuples(list(onnx_engine.answer_many(examples))) == as_tuples(list(torch_engine.answer_many(examples)))


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_torch_autocast_runs_and_returns_float32(tiny_model, dtype):
    engine = engine_for(tiny_model, torch_dtype=dtype)
    assert engine.backend.providers == (f"cpu:{dtype}",)
    batch = engine._prepare(make_examples(3, seed=10)).group.batches[0][1]
    start_logits, end_logits = engine.backend.run(batch)
    assert start_logits.dtype == end_logits.dtype == np.float32
    assert start_logits.shape == batch.input_ids.shape
    for answer, example in zip(engine.answer_many(make_examples(3, seed=10)), make_examples(3, seed=10)):
        assert answer.answer == example.context[answer.start : answer.end]


def test_record_shapes_ids_and_order(tiny_onnx):
    engine = engine_for(tiny_onnx, lookahead=3)
    examples = make_examples(8, seed=3)
    records = [
        examples[0],
        {"id": "given", "question": examples[1].question, "context": examples[1].context},
        {"question": examples[2].question, "context": examples[2].context},
        (examples[3].question, examples[3].context),
        {"id": 42, "question": examples[4].question, "context": examples[4].context},
    ]
    answers = list(engine.answer_many(records))
    assert [a.id for a in answers] == ["q0", "given", 3, 4, 42]  # records rule 2: kept as given, else the position
    for answer, example in zip(answers, examples):
        assert answer.answer == example.context[answer.start : answer.end]
        single = engine.answer(example.question, example.context, id=answer.id)
        assert (single.answer, single.start, single.end) == (answer.answer, answer.start, answer.end)
        assert single.score == pytest.approx(answer.score, rel=1e-5)


def test_answer_fields_and_score(tiny_onnx):
    engine = engine_for(tiny_onnx, decode=DecodeOptions(return_n_best=True, n_best=5))
    answer = next(engine.answer_many(make_examples(1, seed=4)))
    assert 0.0 < answer.score <= 1.0
    assert answer.n_best is not None and 1 <= len(answer.n_best) <= 5
    assert answer.score == pytest.approx(answer.n_best[0].probability)
    assert answer.answer == answer.n_best[0].answer
    record = answer.to_dict()
    assert list(record) == ["id", "answer", "score", "start", "end", "is_impossible", "n_best"]
    assert set(record["n_best"][0]) == {"answer", "score", "probability", "start", "end"}
    json.dumps(record)
    plain = engine_for(tiny_onnx).answer("what?", "river bridge")
    assert plain.n_best is None and "n_best" not in plain.to_dict()


def test_null_threshold_decides_no_answer_with_a_probability(tiny_onnx):
    examples = make_examples(5, seed=5)
    always_null = engine_for(tiny_onnx, decode=DecodeOptions(null_threshold=-1e6))
    for answer in always_null.answer_many(examples):
        assert answer.is_impossible and answer.answer == "" and (answer.start, answer.end) == (0, 0)
        assert 0.0 < answer.score < 1.0
    never_null = engine_for(tiny_onnx, decode=DecodeOptions(null_threshold=1e6))
    assert not any(answer.is_impossible for answer in never_null.answer_many(examples))


def test_empty_context_gets_an_empty_answer(tiny_onnx):
    engine = engine_for(tiny_onnx)
    answer = next(engine.answer_many([QAExample("blank", "what?", "   ")]))  # a QAExample is taken as it is
    assert (answer.answer, answer.score, answer.is_impossible) == ("", 0.0, True)
    with pytest.raises(DataFormatError, match=r'^record 1 \(id \'0\'\): field "context" is empty$'):  # a record: the rules
        engine.answer("what?", "   ")


def test_stats_count_work_and_padding(tiny_onnx):
    engine = engine_for(tiny_onnx, max_batch_tokens=512)
    examples = make_examples(30, seed=6)
    list(engine.answer_many(examples))
    stats = engine.stats
    assert stats.examples == 30 and stats.windows >= 30 and stats.batches >= 2
    assert 0 < stats.tokens <= stats.padded_tokens
    assert 0.0 <= stats.padding_fraction < 0.5  # length-sorted batches waste little
    assert stats.infer_seconds > 0 and stats.tokenize_seconds > 0 and stats.decode_seconds > 0
    engine.reset_stats()
    assert engine.stats.examples == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_record_fails_after_the_answers_before_it(tiny_onnx, workers):
    engine = engine_for(tiny_onnx, lookahead=4, workers=workers)
    records = [(e.question, e.context) for e in make_examples(10, seed=7)]
    records[6] = {"question": "no context here"}
    received = []
    with pytest.raises(DataFormatError, match=r'record 7: missing field "context"'):
        for answer in engine.answer_many(records):
            received.append(answer.id)
    assert received == [1, 2, 3, 4, 5, 6]


def test_errors_in_the_input_iterable_surface_in_the_caller(tiny_onnx):
    def broken():
        yield ("what?", "river")
        raise OSError("disk went away")

    engine = engine_for(tiny_onnx)
    with pytest.raises(OSError, match="disk went away"):
        list(engine.answer_many(broken()))
    with pytest.raises(DataFormatError, match=r'record 1: field "context" must be a string, got a JSON number'):
        list(engine.answer_many([("what?", 3)]))


def _prefetch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "spanqa-prefetch" and thread.is_alive()]


def test_answer_many_is_lazy_on_endless_input_and_stops_its_thread(tiny_onnx):
    pulled = itertools.count()
    examples = make_examples(10, seed=8)

    def endless():
        for index in itertools.count():
            next(pulled)
            yield examples[index % len(examples)]

    engine = engine_for(tiny_onnx, lookahead=5, prefetch=2)
    answers = engine.answer_many(endless())
    first = list(itertools.islice(answers, 12))
    assert len(first) == 12
    # Groups read: the 3 answered from, at most 2 queued, and 1 in the worker's hands.
    assert next(pulled) <= 6 * 5
    assert _prefetch_threads()
    del answers
    gc.collect()
    assert not _prefetch_threads()

    for _ in engine.answer_many(endless()):
        break
    gc.collect()
    assert not _prefetch_threads()


def test_device_buffer_runner_matches_plain_runs_on_the_cpu(tiny_onnx):
    from spanqa.engine.runtime.backends.onnx_backend import DeviceBufferRunner

    engine = engine_for(tiny_onnx, max_batch_tokens=300)
    session = engine.backend.session
    runner = DeviceBufferRunner(
        session, ("start_logits", "end_logits"), "cpu", pad_token_id=0, width_multiple=16, max_shapes=2
    )
    group = engine._prepare(make_examples(20, seed=9)).group
    for _ in range(2):
        for _, batch in group.batches:
            feeds = {name: getattr(batch, name) for name in engine.backend.input_names}
            expected = session.run(["start_logits", "end_logits"], feeds)
            got = runner.run(feeds)
            for want, have in zip(expected, got):
                assert have.shape == want.shape
                np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)
    assert len(runner.shapes) <= 2
    assert all(shape[0][1] % 16 == 0 for shape in runner.shapes)


def test_manifest_inputs_must_match_the_graph(tiny_onnx, tmp_path):
    import dataclasses
    import shutil

    from spanqa.engine.core.model_folder import ModelFolderError, read_manifest

    folder = tmp_path / "mismatch"
    shutil.copytree(tiny_onnx, folder)
    write_manifest(folder, dataclasses.replace(read_manifest(folder), input_names=("input_ids", "attention_mask")))
    mismatch = r"manifest\.json: input_names \['input_ids', 'attention_mask'\] do not match"
    with pytest.raises(ModelFolderError, match=mismatch):
        engine_for(folder)


@pytest.mark.slow
def test_shipped_model_scores_on_squad_dev_as_measured(squad_dir):
    """The shipped int8 model on the first 1000 SQuAD v1.1 dev questions (1020 windows): EM 76.70 / F1 82.20 with the
    batches of benchmarks/export_bench.py (all windows length-sorted, 32 per batch, no token budget) and with the
    engine's default batching (what qa-answer runs) alike, answer for answer: the model is static int8."""
    from spanqa.engine.core.data import load_examples
    from spanqa.engine.evaluation.scoring import evaluate

    examples = load_examples(squad_dir / "dev-v1.1.json.gz")[:1000]

    def scores(options: EngineOptions) -> tuple[str, str, int]:
        engine = QAEngine(device="cpu", options=options)  # no folder: the shipped model
        result = evaluate(examples, {answer.id: answer.answer for answer in engine.answer_many(examples)})
        return f"{result.exact_match:.2f}", f"{result.f1:.2f}", engine.stats.windows

    export_bench = EngineOptions(max_batch_tokens=10**9, max_batch_windows=32, lookahead=len(examples))
    assert scores(export_bench) == ("76.70", "82.20", 1020)
    assert scores(EngineOptions()) == ("76.70", "82.20", 1020)
