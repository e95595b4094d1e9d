"""qa-train --teacher: the distillation loss, the character-offset map between two tokenizers, the options, and a
tiny MPNet teacher (its own word-piece vocabulary) that lowers a tiny BERT student's dev loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForQuestionAnswering,
    BertModel,
    MPNetConfig,
    MPNetForQuestionAnswering,
    PreTrainedTokenizerFast,
)

from spanqa.engine.core.data import QAExample
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, make_windows
from spanqa.training import TrainingInputError, TrainOptions, train
from spanqa.training.cli import main
from spanqa.training.dataset import windows_dataset
from spanqa.training.distill import UNMATCHED, distillation_loss, gather_teacher_logits, masked_kl
from spanqa.training.distill_trainer import DistillCollator
from spanqa.training.teacher import END_INDEX, START_INDEX, Teacher, with_teacher_columns

from test_training import QUICK, record, run_expecting_error, write_jsonl  # noqa: E402 - same folder

pytestmark = pytest.mark.filterwarnings("ignore:mtime may not be reliable:UserWarning")


def other_tokenizer(corpus: list[str], folder: Path, vocab_size: int) -> PreTrainedTokenizerFast:
    """An MPNet-style tokenizer built offline: cased word pieces learnt from `corpus`, `<s> q </s></s> c </s>`."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFC()  # cased, unlike the student's uncased BERT vocabulary
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tokenizer.token_to_id("<s>")), ("</s>", tokenizer.token_to_id("</s>"))],
    )
    tokenizer.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>", model_input_names=["input_ids", "attention_mask"],
        model_max_length=512,
    )  # fmt: skip
    fast.save_pretrained(folder)
    return fast


def tiny_mpnet(folder: Path, tokenizer: PreTrainedTokenizerFast) -> Path:
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id, bos_token_id=0, eos_token_id=2,
    )  # fmt: skip
    MPNetForQuestionAnswering(config).save_pretrained(folder)
    return folder


# --- the loss ------------------------------------------------------------------------------------------------


def random_batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    student = [torch.randn(3, 10, generator=generator) for _ in range(2)]
    teacher = [torch.randn(3, 10, generator=generator) * 3 for _ in range(2)]
    matched = torch.ones(3, 10, dtype=torch.bool)
    matched[:, 7:] = False  # padding
    matched[1, :3] = False  # the question
    labels = [torch.tensor([0, 4, 6]), torch.tensor([0, 5, 12])]  # 12: past the window, ignored
    return student, teacher, matched, labels


def test_weight_zero_is_the_models_own_cross_entropy(tokenizer):
    torch.manual_seed(0)
    model = BertForQuestionAnswering(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=32)).eval()  # fmt: skip
    ids = torch.randint(0, tokenizer.vocab_size, (3, 12))
    starts, ends = torch.tensor([0, 3, 20]), torch.tensor([0, 5, 20])
    output = model(input_ids=ids, start_positions=starts, end_positions=ends)
    teacher = torch.randn(3, 12)
    matched = torch.ones(3, 12, dtype=torch.bool)
    loss = distillation_loss(output.start_logits, output.end_logits, teacher, teacher, matched, matched,
                             starts, ends, weight=0.0, temperature=2.0)  # fmt: skip
    torch.testing.assert_close(loss, output.loss)


def test_weight_one_is_the_kl_divergence_scaled_by_t_squared():
    (s_start, s_end), (t_start, t_end), matched, (starts, ends) = random_batch()
    for temperature in (1.0, 2.0, 4.0):
        loss = distillation_loss(s_start, s_end, t_start, t_end, matched, matched, starts, ends, 1.0, temperature)
        expected = 0.0
        for student, teacher in ((s_start, t_start), (s_end, t_end)):
            for row in range(3):  # the KL of each row over its matched positions only, by torch's own kl_div
                keep = matched[row]
                log_student = F.log_softmax(student[row, keep] / temperature, dim=-1)
                log_teacher = F.log_softmax(teacher[row, keep] / temperature, dim=-1)
                kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="sum")
                expected += kl * temperature**2 / 3 / 2
        torch.testing.assert_close(loss, torch.as_tensor(expected, dtype=loss.dtype))


def test_the_mix_and_the_edge_cases():
    (s_start, s_end), (t_start, t_end), matched, (starts, ends) = random_batch(1)
    both = [s_start, s_end, t_start, t_end, matched, matched, starts, ends]
    ce = distillation_loss(*both, 0.0, 2.0)
    kl = distillation_loss(*both, 1.0, 2.0)
    torch.testing.assert_close(distillation_loss(*both, 0.3, 2.0), 0.3 * kl + 0.7 * ce)
    # A student equal to its teacher has nothing to learn from it.
    assert masked_kl(t_start, t_start, matched, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    # A row with no matched position adds nothing, and does not count in the mean.
    no_match = matched.clone()
    no_match[2] = False
    two_rows = masked_kl(s_start[:2], t_start[:2], matched[:2], 2.0)
    torch.testing.assert_close(masked_kl(s_start, t_start, no_match, 2.0), two_rows)
    # Gradients reach the student only, and are finite despite the masked positions.
    student = s_start.clone().requires_grad_(True)
    masked_kl(student, t_start, matched, 2.0).backward()
    assert torch.isfinite(student.grad).all() and (student.grad[~matched] == 0).all()


def test_gathered_teacher_logits_follow_the_index():
    teacher = torch.arange(12.0).reshape(2, 6)
    index = torch.tensor([[0, 2, UNMATCHED, 5], [1, UNMATCHED, UNMATCHED, 0]])
    gathered, matched = gather_teacher_logits(teacher, index)
    assert matched.tolist() == [[True, True, False, True], [True, False, False, True]]
    assert gathered[matched].tolist() == [0.0, 2.0, 5.0, 7.0, 6.0]


# --- the offset map between two tokenizers -------------------------------------------------------------------


def examples_for_alignment() -> list[QAExample]:
    contexts = [
        "Last spring Ada Lovelace moved to Lisbon, opened a bakery and sold 1,204 croissants.",
        "In 1843 the Analytical Engine's notes were published; Ada's translation ran to 65 pages. " * 4,
    ]
    return [QAExample(f"q{i}", "Where did Ada move?", context, ("Lisbon",), (context.find("Lisbon"),))
            for i, context in enumerate(contexts)]  # fmt: skip


def teacher_view(teacher_tokenizer, student_tokenizer, examples, max_length=48):
    window_options = WindowOptions(max_length=max_length, stride=16, max_question_tokens=16)
    windows = make_windows(QATokenizer.from_transformers(student_tokenizer), examples, window_options, with_labels=True)
    teacher = Teacher(model=None, tokenizer=teacher_tokenizer, source="t", max_length=max_length + 16)
    options = TrainOptions(train="t", output="o", max_length=max_length, stride=16, max_question_tokens=16)
    dataset = with_teacher_columns(windows_dataset(windows), windows, examples, teacher, options)
    return windows, dataset


def test_offsets_map_bert_uncased_pieces_onto_another_vocabulary(tmp_path, tokenizer):
    examples = examples_for_alignment()
    # A small cased vocabulary: words split into other pieces than BERT-uncased's, at other positions.
    other = other_tokenizer([e.context + " " + e.question for e in examples], tmp_path / "other", vocab_size=70)
    windows, dataset = teacher_view(other, tokenizer, examples)
    assert len(windows) > 2  # the long context really is cut into several windows
    differently_split = truncated = 0
    for window in range(len(windows)):
        row = dataset[window]
        student_offsets = windows.offsets[windows.row_splits[window] : windows.row_splits[window + 1]]
        example = examples[windows.example_index[window]]
        ids = row["teacher_input_ids"]
        assert ids[0] == other.cls_token_id and len(ids) <= 48 + 16
        assert row[START_INDEX][windows.cls_index[window]] == 0 == row[END_INDEX][windows.cls_index[window]]
        # The teacher window, tokenized here again: the question with the characters this student window covers.
        low = int(student_offsets[student_offsets[:, 0] >= 0][:, 0].min())
        high = int(student_offsets[:, 1].max())
        pair = other(example.question.strip(), example.context[low:high], return_offsets_mapping=True,
                     truncation="only_second", max_length=48 + 16)  # fmt: skip
        assert pair["input_ids"] == ids
        sequence = pair.sequence_ids(0)
        teacher_end = low + max(end for (_, end), part in zip(pair["offset_mapping"], sequence) if part == 1)
        for position, (begin, end) in enumerate(student_offsets):
            start, stop = row[START_INDEX][position], row[END_INDEX][position]
            if begin < 0:  # question, separators: left out, except CLS
                if position != windows.cls_index[window]:
                    assert start == stop == UNMATCHED
                continue
            if stop == UNMATCHED:  # only past the end of a teacher window its finer pieces filled up
                assert end > teacher_end
                truncated += 1
                continue
            assert sequence[start] == 1 and sequence[stop] == 1  # context tokens of the teacher window
            t_begin, t_end = (value + low for value in pair["offset_mapping"][start])
            assert t_begin <= begin < t_end  # the teacher token covering the student token's first character
            t_begin, t_end = (value + low for value in pair["offset_mapping"][stop])
            assert t_begin < end <= t_end  # ... and its last
            differently_split += (t_begin, t_end) != (begin, end)
    assert differently_split > 10 and truncated > 0  # the vocabularies really disagree


def test_the_same_tokenizer_maps_each_context_token_onto_its_own_position(tokenizer):
    examples = examples_for_alignment()[:1]
    windows, dataset = teacher_view(tokenizer, tokenizer, examples, max_length=64)
    assert len(windows) == 1
    offsets = windows.offsets[: windows.row_splits[1]]
    context = np.flatnonzero(offsets[:, 0] >= 0)
    assert np.array_equal(np.asarray(dataset[0][START_INDEX])[context], context)
    assert np.array_equal(np.asarray(dataset[0][END_INDEX])[context], context)
    assert dataset[0]["teacher_input_ids"] == windows.input_ids[: windows.row_splits[1]].tolist()


def test_the_collator_pads_both_windows(tmp_path, tokenizer):
    examples = examples_for_alignment()
    other = other_tokenizer([e.context for e in examples], tmp_path / "other", vocab_size=70)
    _, dataset = teacher_view(other, tokenizer, examples)
    batch = DistillCollator(tokenizer, other)([dataset[i] for i in range(3)])
    assert "teacher_token_type_ids" not in batch and "length" not in batch  # MPNet-style: no segment ids
    assert batch[START_INDEX].shape == batch["input_ids"].shape == batch[END_INDEX].shape
    assert batch["teacher_input_ids"].shape == batch["teacher_attention_mask"].shape
    padded = batch["attention_mask"] == 0
    assert (batch[START_INDEX][padded] == UNMATCHED).all()


# --- options and a teacher that is no QA checkpoint ----------------------------------------------------------


def test_distillation_options():
    resolved = TrainOptions(train="t", output="o", teacher="x")
    assert (resolved.distill_weight, resolved.temperature) == (0.5, 2.0)
    for bad, message in (
        (dict(teacher="x", distill_weight=1.5), r"distill_weight must be in \[0, 1\], got 1.5"),
        (dict(teacher="x", distill_weight=-0.1), r"distill_weight must be in \[0, 1\]"),
        (dict(teacher="x", temperature=0.0), "temperature must be positive, got 0.0"),
        (dict(temperature=2.0), "--temperature needs --teacher"),
        (dict(distill_weight=0.5), "--distill-weight needs --teacher"),
    ):
        with pytest.raises(TrainingInputError, match=message):
            TrainOptions(train="t", output="o", **bad)


def test_a_teacher_without_a_trained_qa_head_is_refused(capsys, tmp_path, tiny_model, tokenizer):
    backbone = tmp_path / "backbone"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(backbone)  # fmt: skip
    tokenizer.save_pretrained(backbone)
    data = write_jsonl(tmp_path / "train.jsonl", [record(i) for i in range(8)])
    common = ["--train", str(data), "--output", str(tmp_path / "o"), "--model", str(tiny_model)]
    message = run_expecting_error(capsys, [*common, "--teacher", str(backbone)])
    assert "backbone: not a question-answering checkpoint" in message and "qa_outputs" in message
    message = run_expecting_error(capsys, [*common, "--teacher", str(tmp_path / "absent")])
    assert "absent: no such model directory" in message
    assert "temperature must be positive" in run_expecting_error(capsys, [*common, "--teacher", str(backbone),
                                                                           "--temperature", "-1"])  # fmt: skip


# --- end to end: a tiny teacher helps a tiny student ---------------------------------------------------------


def test_a_trained_teacher_lowers_the_students_dev_loss(tmp_path, tiny_model, one_torch_thread):
    teacher_train = write_jsonl(tmp_path / "teacher.jsonl", [record(i) for i in range(64)])
    student_train = write_jsonl(tmp_path / "student.jsonl", [record(i) for i in range(16)])
    dev = write_jsonl(tmp_path / "dev.jsonl", [record(i) for i in range(200, 232)])
    corpus = [json.loads(line)["context"] + " " + json.loads(line)["question"]
              for line in teacher_train.read_text().splitlines()]  # fmt: skip
    untrained = tiny_mpnet(tmp_path / "mpnet", other_tokenizer(corpus, tmp_path / "mpnet", vocab_size=120))
    common = ["--validation", str(dev), *QUICK]
    assert main(["--train", str(teacher_train), "--output", str(tmp_path / "teacher"), "--model", str(untrained),
                 "--epochs", "4", *common]) == 0  # fmt: skip
    teacher_report = json.loads((tmp_path / "teacher" / "training_report.json").read_text())
    assert teacher_report["final"]["validation"]["f1"] > 80  # an MPNet model trains through qa-train too

    def student(name: str, *flags: str) -> dict:
        assert main(["--train", str(student_train), "--output", str(tmp_path / name), "--model", str(tiny_model),
                     "--epochs", "3", *common, *flags]) == 0  # fmt: skip
        return json.loads((tmp_path / name / "training_report.json").read_text())

    plain = student("plain")
    taught = student("taught", "--teacher", str(tmp_path / "teacher"))
    assert taught["global_step"] == plain["global_step"] == 6
    assert taught["hyperparameters"]["distill_weight"] == 0.5 and taught["hyperparameters"]["temperature"] == 2.0
    # Same seed, same batches, same steps: only the teacher differs. (Measured: 2.640 against 2.657.)
    assert taught["final"]["validation"]["loss"] < plain["final"]["validation"]["loss"]


# --- resume and data-parallel with a teacher -----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_teacher(tmp_path_factory, tiny_model) -> Path:
    """The tiny BERT trained briefly: a QA checkpoint to distil from (its quality does not matter here)."""
    folder = tmp_path_factory.mktemp("teacher") / "model"
    data = write_jsonl(folder.parent / "train.jsonl", [record(i) for i in range(16)])
    assert main(["--train", str(data), "--output", str(folder), "--model", str(tiny_model), "--epochs", "1",
                 *QUICK]) == 0  # fmt: skip
    return folder


def test_resume_with_a_teacher_ends_where_an_uninterrupted_run_does(tmp_path, tiny_model, small_teacher):
    from dataclasses import replace

    from transformers import AutoModelForQuestionAnswering

    from test_training import CrashAfterSaving

    data = write_jsonl(tmp_path / "train.jsonl", [record(i) for i in range(16)])
    options = TrainOptions(
        train=str(data), output=str(tmp_path / "model"), model=str(tiny_model), teacher=str(small_teacher),
        epochs=2, batch_size=4, max_length=128, stride=32, save_steps=3, logging_steps=2, learning_rate=3e-3,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(options, callbacks=[CrashAfterSaving(step=3)])
    resumed = train(replace(options, resume=True))
    assert resumed.resumed_from.endswith("checkpoint-3") and resumed.global_step == 8
    train(replace(options, output=str(tmp_path / "uninterrupted")))
    ours = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "model").state_dict()
    for name, weights in AutoModelForQuestionAnswering.from_pretrained(tmp_path / "uninterrupted").state_dict().items():
        torch.testing.assert_close(ours[name], weights, msg=name)


@pytest.mark.slow
def test_torchrun_two_cpu_processes_with_a_teacher(tmp_path, tiny_model, small_teacher):
    import os
    import subprocess
    import sys

    data = write_jsonl(tmp_path / "train.jsonl", [record(i) for i in range(32)])
    dev = write_jsonl(tmp_path / "dev.jsonl", [record(i) for i in range(200, 208)])
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "spanqa.training.cli", "--train", str(data), "--validation", str(dev), "--output", str(tmp_path / "m"),
        "--model", str(tiny_model), "--teacher", str(small_teacher), "--epochs", "1", *QUICK,
    ]  # fmt: skip
    environment = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads((tmp_path / "m" / "training_report.json").read_text())
    assert report["world_size"] == 2 and report["global_step"] == 2  # 32 windows / (2 x 8)
    assert report["hyperparameters"]["teacher"] == str(small_teacher)
