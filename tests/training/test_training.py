"""qa-train: tiny end-to-end runs on a tiny random BERT, resume after a crash, bad input, data-parallel with gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer
from transformers import TrainerCallback, ViTConfig

from spanqa.engine.core.data import AnswerSpanError, DataFormatError, QAExample, load_examples, read_squad_json
from spanqa.engine.core.decoder import DecodeOptions
from spanqa.engine.core.windows import WindowOptions
from spanqa.training import TrainingInputError, TrainOptions, train
from spanqa.training.cli import main
from spanqa.training.output import CHECKPOINTS_FOLDER, REPORT_NAME, latest_checkpoint, publish
from spanqa.training.trainer import EvalSet, score_logits

# Checkpoint rotation warns about coarse file times on some filesystems, then orders checkpoints by step: harmless.
pytestmark = pytest.mark.filterwarnings("ignore:mtime may not be reliable:UserWarning")

PEOPLE = ["Ada", "Bruno", "Chen", "Dalia", "Emil", "Farah", "Goran", "Hana"]
PLACES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Accra", "Lima", "Riga", "Perth"]
# Small, fast settings shared by the runs below; each test adds what it is about.
QUICK = ["--max-length", "128", "--stride", "32", "--batch-size", "8", "--learning-rate", "3e-3",
         "--logging-steps", "2"]  # fmt: skip


def record(index: int, **changes) -> dict:
    person, place = PEOPLE[index % len(PEOPLE)], PLACES[(3 * index) % len(PLACES)]
    context = f"Last spring {person} moved to {place} and opened a small bakery near the old harbour."
    answer = {"text": place, "answer_start": context.index(place)}
    question = f"Where did {person} move?"
    return {"id": f"q{index}", "question": question, "context": context, "answers": [answer]} | changes


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in records), encoding="utf-8")
    return path


def outside_context(index: int) -> dict:
    """A record whose answer_start points past the end of its context."""
    return record(index, answers=[{"text": "Oslo", "answer_start": 500}])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    train_rows = [record(i) for i in range(48)] + [outside_context(100), outside_context(101)]
    validation_rows = [record(i) for i in range(200, 216)] + [outside_context(300)]
    return {
        "train": write_jsonl(folder / "train.jsonl", train_rows),
        "validation": write_jsonl(folder / "validation.jsonl", validation_rows),
        "clean": write_jsonl(folder / "clean.jsonl", [record(i) for i in range(16)]),
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model, data) -> Path:
    """One complete CLI run (3 epochs), shared by the tests that inspect its output."""
    output = tmp_path_factory.mktemp("run") / "model"
    code = main(["--train", str(data["train"]), "--validation", str(data["validation"]), "--output", str(output),
                 "--model", str(tiny_model), "--epochs", "3", *QUICK])  # fmt: skip
    assert code == 0
    return output


def read_report(output: Path) -> dict:
    return json.loads((output / REPORT_NAME).read_text(encoding="utf-8"))


# --- a complete run ---------------------------------------------------------------------------------------------


def test_run_writes_a_loadable_model_and_a_report(finished_run, data):
    model = AutoModelForQuestionAnswering.from_pretrained(finished_run)
    tokenizer = AutoTokenizer.from_pretrained(finished_run)
    assert model.config.hidden_size == 32 and tokenizer.is_fast
    report = read_report(finished_run)
    assert [epoch["epoch"] for epoch in report["epochs"]] == [1, 2, 3]
    for epoch in report["epochs"]:
        assert 0 <= epoch["validation"]["exact_match"] <= epoch["validation"]["f1"] <= 100
        assert epoch["validation"]["examples"] == 16
    assert report["final"]["validation"] == report["epochs"][-1]["validation"]
    assert report["global_step"] == 3 * 6 == report["epochs"][-1]["step"]  # 48 windows / batch 8, three times
    assert report["hyperparameters"]["learning_rate"] == 3e-3 and report["hyperparameters"]["weight_decay"] == 0.01
    assert report["data"]["train"]["sha256"] == __import__("hashlib").sha256(data["train"].read_bytes()).hexdigest()
    assert report["features_per_second"] > 0 and report["wall_seconds"] >= report["train_seconds"] > 0
    assert set(report["versions"]) >= {"torch", "transformers", "spanqa"}
    assert report["precision"] in ("fp32", "bf16") and report["world_size"] == 1
    assert sorted(path.name for path in (finished_run / CHECKPOINTS_FOLDER).iterdir()) == [
        "checkpoint-12", "checkpoint-18",  # one per epoch, the two newest kept
    ]


def test_answers_outside_the_context_are_skipped_and_counted(finished_run):
    report = read_report(finished_run)
    assert report["skipped_examples"] == {"train": 2, "validation": 1}
    assert report["splits"]["train"]["examples"] == 48
    assert report["splits"]["validation"]["examples"] == 16


def test_training_loss_goes_down(finished_run):
    losses = [epoch["train_loss"] for epoch in read_report(finished_run)["epochs"]]
    assert losses[-1] < 0.8 * losses[0], losses


def test_the_trained_model_answers_better_than_chance(finished_run):
    # Every answer is the city in one fixed sentence frame; a model that learned nothing scores near 0.
    assert read_report(finished_run)["final"]["validation"]["f1"] > 50


# --- resume ------------------------------------------------------------------------------------------------------


class CrashAfterSaving(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")


class CountSteps(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def test_resume_continues_from_the_last_complete_checkpoint(tmp_path, tiny_model, data):
    options = TrainOptions(
        train=str(data["clean"]), output=str(tmp_path / "model"), model=str(tiny_model), epochs=2,
        batch_size=4, max_length=128, stride=32, save_steps=3, logging_steps=2,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(options, callbacks=[CrashAfterSaving(step=6)])
    checkpoints = tmp_path / "model" / CHECKPOINTS_FOLDER
    assert not (tmp_path / "model" / "config.json").exists()  # no final model from a crashed run
    assert latest_checkpoint(checkpoints).name == "checkpoint-6"
    # A checkpoint cut short by the crash (no trainer state yet) must be passed over, and cleared away.
    (checkpoints / "checkpoint-7").mkdir()
    (checkpoints / "checkpoint-7" / "model.safetensors").write_bytes(b"partial")

    assert main(["--train", str(data["clean"]), "--output", str(tmp_path / "model"), "--model", str(tiny_model),
                 "--epochs", "2", *QUICK]) == 2  # fmt: skip  (checkpoints there, but no --resume)

    counter = CountSteps()
    report = train(replace(options, resume=True), callbacks=[counter])
    assert report.resumed_from.endswith("checkpoint-6")
    assert report.global_step == 8  # 16 windows / batch 4, two epochs
    assert counter.steps == 2  # only the steps after the checkpoint ran again
    assert not (checkpoints / "checkpoint-7").exists()
    assert [epoch.epoch for epoch in report.epochs] == [1, 2]  # the log history came back with the checkpoint

    # Batches are dealt from (seed, epoch) and the checkpoint restores the dropout generator, so the resumed run
    # ends where an uninterrupted one does.
    train(replace(options, output=str(tmp_path / "uninterrupted")))
    resumed = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "model").state_dict()
    uninterrupted = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "uninterrupted").state_dict()
    for name, weights in uninterrupted.items():
        torch.testing.assert_close(resumed[name], weights, msg=name)


# --- the notebook's splits, bf16 -------------------------------------------------------------------------------


def test_seed_splits_score_validation_and_test_in_bf16(tmp_path, tiny_model):
    train_file = write_jsonl(tmp_path / "big.jsonl", [record(i) for i in range(8000)])
    output = tmp_path / "model"
    code = main(["--train", str(train_file), "--seed-splits", "--output", str(output), "--model", str(tiny_model),
                 "--epochs", "1", "--max-train-examples", "16", "--max-eval-examples", "8", "--precision", "bf16",
                 *QUICK])  # fmt: skip
    assert code == 0
    report = read_report(output)
    assert report["precision"] == "bf16"
    assert {name: info["examples"] for name, info in report["splits"].items()} == {
        "train": 16, "validation": 8, "test": 8,
    }  # fmt: skip
    assert set(report["final"]) == {"validation", "test"}
    assert 0 <= report["final"]["test"]["f1"] <= 100


# --- bad input: one line, exit 2, no traceback ---------------------------------------------------------------


def run_expecting_error(capsys, arguments: list[str]) -> str:
    code = main([*QUICK, *arguments])  # later flags win, so a test can override QUICK
    error = capsys.readouterr().err
    assert code == 2, error
    lines = [line for line in error.splitlines() if line.startswith("qa-train: error:")]
    assert len(lines) == 1 and "Traceback" not in error, error
    return lines[0]


def test_missing_file(capsys, tmp_path, tiny_model):
    message = run_expecting_error(capsys, ["--train", str(tmp_path / "absent.json"), "--output", str(tmp_path / "o"),
                                           "--model", str(tiny_model)])  # fmt: skip
    assert "absent.json: no such file" in message


def test_malformed_json(capsys, tmp_path, tiny_model):
    (tmp_path / "broken.json").write_text('{"data": [\n  {"title": "x",\n  }\n]}', encoding="utf-8")
    message = run_expecting_error(capsys, ["--train", str(tmp_path / "broken.json"), "--output", str(tmp_path / "o"),
                                           "--model", str(tiny_model)])  # fmt: skip
    assert "broken.json:3: invalid JSON" in message
    # In JSONL a broken line is an error too: only unusable answers are skipped.
    lines = tmp_path / "broken.jsonl"
    lines.write_text(json.dumps(record(0)) + "\n{not json\n", encoding="utf-8")
    message = run_expecting_error(capsys, ["--train", str(lines), "--output", str(tmp_path / "o"),
                                           "--model", str(tiny_model)])  # fmt: skip
    assert "broken.jsonl:2: invalid JSON" in message


def test_empty_dataset(capsys, tmp_path, tiny_model):
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    message = run_expecting_error(capsys, ["--train", str(empty), "--output", str(tmp_path / "o"),
                                           "--model", str(tiny_model)])  # fmt: skip
    assert "empty.jsonl: holds no usable examples" in message
    all_skipped = write_jsonl(tmp_path / "skipped.jsonl", [outside_context(1), outside_context(2)])
    message = run_expecting_error(capsys, ["--train", str(all_skipped), "--output", str(tmp_path / "o"),
                                           "--model", str(tiny_model)])  # fmt: skip
    assert "holds no usable examples (2 skipped" in message
    assert not (tmp_path / "o").exists()  # nothing is written before the input is known to be good


def test_model_without_a_question_answering_head(capsys, tmp_path, data):
    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(
        tmp_path / "vit"
    )
    message = run_expecting_error(capsys, ["--train", str(data["clean"]), "--output", str(tmp_path / "o"),
                                           "--model", str(tmp_path / "vit")])  # fmt: skip
    assert "'vit' model has no question-answering head class" in message
    message = run_expecting_error(capsys, ["--train", str(data["clean"]), "--output", str(tmp_path / "o"),
                                           "--model", str(tmp_path / "no-such-model")])  # fmt: skip
    assert "no-such-model: no such model directory" in message


def test_output_that_holds_another_model(capsys, tmp_path, tiny_model, data):
    message = run_expecting_error(capsys, ["--train", str(data["clean"]), "--output", str(tiny_model),
                                           "--model", str(tiny_model)])  # fmt: skip
    assert "already holds a model" in message and "--overwrite" in message
    assert (tiny_model / "config.json").exists()


def test_examples_without_answers(capsys, tmp_path, tiny_model):
    without_answers = {key: value for key, value in record(1).items() if key != "answers"}
    unlabelled = write_jsonl(tmp_path / "unlabelled.jsonl", [record(0), without_answers])
    message = run_expecting_error(capsys, ["--train", str(unlabelled), "--output", str(tmp_path / "o"),
                                           "--model", str(tiny_model)])  # fmt: skip
    assert "1 train example(s) have no answers" in message and "'q1'" in message


def test_bad_options(capsys, tmp_path, tiny_model, data):
    common = ["--train", str(data["clean"]), "--output", str(tmp_path / "o"), "--model", str(tiny_model)]
    assert "epochs must be at least 1" in run_expecting_error(capsys, [*common, "--epochs", "0"])
    too_long = run_expecting_error(capsys, [*common, "--max-length", "600"])
    assert "exceeds the model's 512 position embeddings" in too_long
    assert "must exceed the stride" in run_expecting_error(capsys, [*common, "--max-length", "96", "--stride", "32"])
    assert "notebook splits need 8000 examples" in run_expecting_error(capsys, [*common, "--seed-splits"])
    assert main([*common, "--precision", "fp16"]) == 2  # argparse's own usage error
    with pytest.raises(TrainingInputError, match="pick one"):
        TrainOptions(train="t", output="o", resume=True, overwrite=True)


# --- pieces --------------------------------------------------------------------------------------------------


def test_a_half_precision_checkpoint_trains_from_fp32_weights(tmp_path, tiny_model, tokenizer):
    # transformers 5 keeps a checkpoint's stored dtype unless told otherwise (the H200 run carries an fp16 backbone).
    from spanqa.training.model import load_model

    half = tmp_path / "half"
    AutoModelForQuestionAnswering.from_pretrained(tiny_model).half().save_pretrained(half)
    tokenizer.save_pretrained(half)
    loaded = load_model(str(half))
    assert {parameter.dtype for parameter in loaded.model.parameters()} == {torch.float32}


def test_training_arguments_use_this_transformers_spelling(tmp_path):
    from transformers import TrainingArguments

    from spanqa.training.compat import groups_by_length, renamed_arguments

    for grouped in (True, False):
        args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                                 **renamed_arguments(0.25, grouped))  # fmt: skip
        assert groups_by_length(args) is grouped
        ratio = getattr(args, "warmup_ratio", None)
        assert (ratio if ratio is not None else args.warmup_steps) == 0.25


def test_lenient_readers_report_and_skip_bad_records(tmp_path):
    context = "Ada moved to Oslo."
    good = {"id": "a", "question": "Where?", "answers": [{"text": "Oslo", "answer_start": 13}]}
    past_end = {"id": "b", "question": "Where?", "answers": [{"text": "Oslo", "answer_start": 40}]}
    no_question = {"id": "c", "answers": [{"text": "Oslo", "answer_start": 13}]}
    document = {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [good, past_end, no_question]}]},
                         {"title": "broken", "paragraphs": "not a list"}]}  # fmt: skip
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(AnswerSpanError, match=r"qas\[1\] \(id 'b'\): answer_start 40 does not index"):
        read_squad_json(path)
    errors: list[DataFormatError] = []
    assert [example.id for example in load_examples(path, on_error=errors.append)] == ["a"]
    assert [type(error) for error in errors] == [AnswerSpanError, DataFormatError, DataFormatError]
    assert "qas[2] (id 'c'): missing field \"question\"" in str(errors[1]) and "data[1]" in str(errors[2])


def test_evaluation_maps_length_sorted_logits_back_to_their_windows(tokenizer):
    examples = []
    for index, repeats in enumerate([5, 0, 9, 2, 7, 1]):  # contexts of mixed lengths, so sorting reorders them
        context = "Long ago " * repeats + f"{PEOPLE[index]} moved to {PLACES[index]}."
        answer = (PLACES[index],), (context.rindex(PLACES[index]),)
        examples.append(QAExample(f"q{index}", f"Where did {PEOPLE[index]} move?", context, *answer))
    eval_set = EvalSet.build("tiny", examples, tokenizer, WindowOptions(max_length=64, stride=16, max_question_tokens=16))
    assert list(eval_set.order) != sorted(eval_set.order)  # the dataset really is in another order
    width = int(eval_set.windows.lengths.max())
    start_logits = np.full((len(eval_set.order), width), -10.0, dtype=np.float32)
    end_logits = start_logits.copy()
    for row, window in enumerate(eval_set.order):  # logits peak on each window's gold span, in dataset row order
        start_logits[row, eval_set.windows.start_positions[window]] = 10.0
        end_logits[row, eval_set.windows.end_positions[window]] = 10.0
    scores = score_logits(eval_set, start_logits, end_logits, tokenizer.pad_token_id, DecodeOptions())
    assert (scores.exact_match, scores.total) == (100.0, 6)


def test_publish_never_leaves_a_loadable_mix(tmp_path, monkeypatch):
    folder, staging = tmp_path / "model", tmp_path / "model" / ".staging-x"
    staging.mkdir(parents=True)
    for name, text in {"config.json": "old", "model.safetensors": "old", "merges.txt": "old"}.items():
        (folder / name).write_text(text)
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (staging / name).write_text("new")

    real_replace = os.replace
    calls = []

    def failing_replace(source, target):
        calls.append(Path(source).name)
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(source, target)

    monkeypatch.setattr("spanqa.training.output.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        publish(staging, folder)
    assert not (folder / "config.json").exists()  # interrupted: the folder no longer loads as any model
    assert calls[-1] != "config.json"

    # The rerun publishes from a fresh staging folder; the old model's leftovers (merges.txt) must not survive it.
    monkeypatch.setattr("spanqa.training.output.os.replace", real_replace)
    rerun = folder / ".staging-y"
    rerun.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (rerun / name).write_text("rerun")
    publish(rerun, folder)
    assert {path.name: path.read_text() for path in folder.iterdir() if path.is_file()} == {
        "config.json": "rerun", "model.safetensors": "rerun", "vocab.txt": "rerun",
    }  # fmt: skip
    assert not rerun.exists()


# --- data-parallel -------------------------------------------------------------------------------------------


def test_torchrun_two_cpu_processes(tmp_path, tiny_model, data, finished_run):
    output = tmp_path / "model"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "spanqa.training.cli", "--train", str(data["train"]), "--validation", str(data["validation"]),
        "--output", str(output), "--model", str(tiny_model), "--epochs", "2", *QUICK,
    ]  # fmt: skip
    environment = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = read_report(output)
    assert report["world_size"] == 2 and report["total_batch_size"] == 16
    assert report["global_step"] == 2 * 3  # 48 windows / (2 processes x batch 8), two epochs
    assert report["final"]["validation"]["examples"] == 16  # every question scored once, none twice
    assert sorted(path.name for path in output.iterdir()) == sorted(path.name for path in finished_run.iterdir())
    assert finished.stderr.count("training_report.json written to") == 1  # the first process only
    AutoModelForQuestionAnswering.from_pretrained(output)
