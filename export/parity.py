"""The parity gate: PyTorch fp32 and the exported graph answer the same validation questions, compared.

Both sides see the same windows (the engine's make_windows), batched the same way (sorted by length, each batch
padded to its longest window), and their logits go through the same decoder and the same official metric, so any
difference comes from the graph alone. The decoder is the engine's own, answers widened to whole words as qa-answer
widens them by default, so the gate scores the answers qa-answer will give. Recorded: the largest |logit difference| over real (unpadded) positions,
the share of questions whose answer text is identical, and EM/F1 of both sides.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spanqa.engine.core.data import DataFormatError, QAExample, load_examples, sample_questions_path
from spanqa.engine.core.answers import Answer
from spanqa.engine.core.decoder import DecodeOptions, decode_predictions
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import PaddedWindows, WindowOptions, Windows, make_windows
from spanqa.engine.core.word_align import WordAligner
from spanqa.engine.core.model_folder import ParityReport
from spanqa.engine.evaluation.scoring import evaluate

from spanqa.export.options import ExportError, ParityThresholds, Precision

BUILT_IN_SAMPLE = "built-in sample"
FEEDABLE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class ValidationSet:
    name: str  # recorded in the report: the file given, or "built-in sample"
    examples: list[QAExample]


@dataclass(frozen=True)
class Logits:
    start: np.ndarray  # float32 [windows, longest window]; positions past a window's length are 0
    end: np.ndarray
    seconds: float  # time spent in the model's forward passes


def load_validation(source: str | None) -> ValidationSet:
    """The questions the gate scores: `source` (SQuAD JSON/JSONL) or the built-in sample; each needs answers."""
    if source is None:
        path = sample_questions_path()
        if not path.is_file():
            raise ExportError(f"{path}: the built-in sample questions are missing; pass --validation DATA")
        name, where = BUILT_IN_SAMPLE, str(path)
    else:
        name = where = source
    examples = read_examples("--validation", where)
    unanswered = [example.id for example in examples if not example.answer_texts and not example.is_impossible]
    if unanswered:
        raise ExportError(
            f"--validation: {where}: {len(unanswered)} question(s) have no gold answers (e.g. {unanswered[0]!r}); "
            "the parity gate scores EM/F1 and needs them"
        )
    return ValidationSet(name, examples)


def read_examples(flag: str, source: str, split: str = "validation") -> list[QAExample]:
    """The questions of the data a flag names; every problem, an empty file included, an ExportError naming it."""
    try:
        examples = load_examples(source, split=split)
    except DataFormatError as error:
        raise ExportError(f"{flag}: {error}") from None
    except OSError as error:
        raise ExportError(f"{flag}: {source}: {error.strerror or error}") from None
    if not examples:
        raise ExportError(f"{flag}: {source}: holds no questions")
    return examples


def length_sorted_batches(
    windows: Windows, batch_size: int, pad_token_id: int
) -> Iterator[tuple[np.ndarray, PaddedWindows]]:
    """Windows in order of length, `batch_size` at a time, each batch padded only to its own longest window."""
    by_length = np.argsort(windows.lengths, kind="stable")
    for first in range(0, len(by_length), batch_size):
        rows = by_length[first : first + batch_size]
        yield rows, windows.padded(rows, pad_token_id)


def torch_logits(model, tokenizer, windows: Windows, batch_size: int) -> Logits:
    """The PyTorch fp32 reference, fed what the tokenizer gives the model (model_input_names it accepts)."""
    import torch

    accepted = inspect.signature(model.forward).parameters
    names = [name for name in tokenizer.model_input_names if name in accepted and name in FEEDABLE_INPUTS]
    start, end = _empty_logits(windows)
    seconds = 0.0
    with torch.inference_mode():
        for rows, batch in length_sorted_batches(windows, batch_size, tokenizer.pad_token_id):
            feeds = {name: torch.from_numpy(getattr(batch, name)) for name in names}
            began = time.perf_counter()
            outputs = model(**feeds)
            seconds += time.perf_counter() - began
            width = batch.input_ids.shape[1]
            start[rows, :width] = outputs.start_logits.float().numpy()
            end[rows, :width] = outputs.end_logits.float().numpy()
    return Logits(start, end, seconds)


def onnx_logits(session, windows: Windows, batch_size: int, pad_token_id: int) -> Logits:
    """The exported graph, fed exactly its declared inputs (a DistilBERT graph takes no token_type_ids)."""
    names = [value.name for value in session.get_inputs()]
    unknown = [name for name in names if name not in FEEDABLE_INPUTS]
    if unknown:
        raise ExportError(f"the exported graph expects inputs the engine cannot feed: {', '.join(unknown)}")
    start, end = _empty_logits(windows)
    seconds = 0.0
    for rows, batch in length_sorted_batches(windows, batch_size, pad_token_id):
        feeds = {name: getattr(batch, name) for name in names}
        began = time.perf_counter()
        start_batch, end_batch = session.run(["start_logits", "end_logits"], feeds)
        seconds += time.perf_counter() - began
        width = batch.input_ids.shape[1]
        start[rows, :width] = start_batch
        end[rows, :width] = end_batch
    return Logits(start, end, seconds)


def decode(
    examples: Sequence[QAExample], windows: Windows, logits: Logits, pad_token_id: int, aligner: WordAligner
) -> list[Answer]:
    everything = windows.padded(np.arange(len(windows)), pad_token_id)
    return decode_predictions(
        [example.context for example in examples], logits.start, logits.end, everything.offsets,
        everything.lengths, everything.cls_index, everything.example_index, DecodeOptions(), aligner=aligner,
    )  # fmt: skip


def compare(
    validation: ValidationSet,
    windows: Windows,
    reference: Logits,
    candidate: Logits,
    pad_token_id: int,
    precision: Precision,
    thresholds: ParityThresholds,
    aligner: WordAligner,
) -> ParityReport:
    """`aligner`: the checkpoint tokenizer's (`word_aligner`), which widens both sides' answers to whole words."""
    examples = validation.examples
    real = np.arange(reference.start.shape[1]) < windows.lengths[:, None]
    max_diff = max(
        float(np.abs(reference.start - candidate.start)[real].max(initial=0.0)),
        float(np.abs(reference.end - candidate.end)[real].max(initial=0.0)),
    )
    reference_answers = decode(examples, windows, reference, pad_token_id, aligner)
    answers = decode(examples, windows, candidate, pad_token_id, aligner)
    agreement = 100.0 * sum(a.answer == b.answer for a, b in zip(reference_answers, answers)) / len(examples)
    reference_score = evaluate(examples, {e.id: p.answer for e, p in zip(examples, reference_answers)})
    score = evaluate(examples, {e.id: p.answer for e, p in zip(examples, answers)})
    rule, passed = _gate(precision, thresholds, agreement, reference_score.f1 - score.f1)
    return ParityReport(
        validation=validation.name,
        examples=len(examples),
        windows=len(windows),
        max_abs_logit_diff=float(f"{max_diff:.6g}"),
        agreement=round(agreement, 4),
        reference_exact_match=round(reference_score.exact_match, 4),
        reference_f1=round(reference_score.f1, 4),
        exact_match=round(score.exact_match, 4),
        f1=round(score.f1, 4),
        threshold=rule,
        passed=passed,
    )


def prepare_windows(tokenizer, examples: Sequence[QAExample], window_options: WindowOptions) -> Windows:
    """The validation windows, made before the export so that window options the tokenizer cannot honour fail fast."""
    try:
        return make_windows(QATokenizer.from_transformers(tokenizer), examples, window_options)
    except ValueError as error:  # e.g. a max_length that leaves the context no room after the question
        raise ExportError(f"window options: {error}") from None


def run_parity(
    model,
    tokenizer,
    graph: Path,
    precision: Precision,
    validation: ValidationSet,
    windows: Windows,
    batch_size: int,
    thresholds: ParityThresholds,
) -> ParityReport:
    import onnxruntime

    from spanqa.engine.runtime.backends.onnx_backend import disabled_optimizers, session_options
    from spanqa.engine.runtime.options import SessionOptions

    reference = torch_logits(model, tokenizer, windows, batch_size)
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if precision == "fp16" else ["CPUExecutionProvider"]
    # The session the engine opens (its settings, and the optimizers it switches off on the CPU), so that the gate
    # measures the computation qa-answer will run, not one ONNX Runtime would fuse differently.
    engine_session = SessionOptions()
    session = onnxruntime.InferenceSession(
        str(graph), session_options(engine_session), providers=providers,
        disabled_optimizers=list(disabled_optimizers(engine_session, providers[0])),
    )  # fmt: skip
    if session.get_providers()[0] != providers[0]:
        # onnxruntime-gpu lists CUDA even where no GPU can be used, and then falls back to the CPU quietly.
        raise ExportError(f"the parity gate needs {providers[0]}, but ONNX Runtime could not use it here")
    candidate = onnx_logits(session, windows, batch_size, tokenizer.pad_token_id)
    return compare(validation, windows, reference, candidate, tokenizer.pad_token_id, precision, thresholds,
                   word_aligner(tokenizer))  # fmt: skip


def word_aligner(tokenizer) -> WordAligner:
    """The engine's word alignment over a transformers fast tokenizer (the folder's tokenizer.json is its own)."""
    return WordAligner(QATokenizer.from_transformers(tokenizer))


def _gate(precision: Precision, thresholds: ParityThresholds, agreement: float, f1_drop: float) -> tuple[str, bool]:
    if precision == "fp32":
        return f"agreement >= {thresholds.fp32_min_agreement}", agreement >= thresholds.fp32_min_agreement
    limit = thresholds.int8_max_f1_drop if precision == "int8" else thresholds.fp16_max_f1_drop
    return f"f1 drop <= {limit}", f1_drop <= limit


def _empty_logits(windows: Windows) -> tuple[np.ndarray, np.ndarray]:
    width = int(windows.lengths.max()) if len(windows) else 0
    shape = (len(windows), width)
    return np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.float32)
