"""Score a PyTorch QA checkpoint on SQuAD-format data with the engine's windows, decoder and metrics.

    python -m spanqa.benchmarks.score_checkpoint runs/minilm --data ../shared/data/squad/dev-v1.1.json.gz --every 10

Until the ONNX engine and `qa-answer` exist this is how a trained folder gets a dev-set figure; it is also the
PyTorch fp32 reference that exported models will be compared with. Windows are sorted by length and padded per
batch, so the score does not depend on the batch size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from spanqa.engine.core.data import DataFormatError, QAExample, load_examples
from spanqa.engine.core.answers import Answer
from spanqa.engine.core.decoder import DecodeOptions, decode_predictions
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, make_windows
from spanqa.engine.evaluation.scoring import evaluate


@dataclass(frozen=True)
class CheckpointScore:
    checkpoint: str
    data: str
    questions: int
    windows: int
    exact_match: float
    f1: float
    forward_seconds: float


def predict(
    checkpoint: str, examples: list[QAExample], batch_size: int = 32, options: DecodeOptions = DecodeOptions()
) -> tuple[list[Answer], int, float]:
    """Predictions for `examples`, the number of windows, and the seconds spent in the model."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForQuestionAnswering.from_pretrained(checkpoint).eval()
    feeds_token_types = "token_type_ids" in tokenizer.model_input_names
    windows = make_windows(QATokenizer.from_transformers(tokenizer), examples, WindowOptions())
    width = int(windows.lengths.max())
    start_logits = np.zeros((len(windows), width), dtype=np.float32)
    end_logits = np.zeros_like(start_logits)
    by_length = np.argsort(windows.lengths, kind="stable")
    started = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(windows), batch_size):
            rows = by_length[first : first + batch_size]
            batch = windows.padded(rows, tokenizer.pad_token_id)
            inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
            if feeds_token_types:
                inputs["token_type_ids"] = batch.token_type_ids
            outputs = model(**{name: torch.from_numpy(array) for name, array in inputs.items()})
            start_logits[rows, : batch.input_ids.shape[1]] = outputs.start_logits.float().numpy()
            end_logits[rows, : batch.input_ids.shape[1]] = outputs.end_logits.float().numpy()
    forward_seconds = time.perf_counter() - started
    everything = windows.padded(np.arange(len(windows)), tokenizer.pad_token_id)
    predictions = decode_predictions(
        [example.context for example in examples], start_logits, end_logits, everything.offsets,
        everything.lengths, everything.cls_index, everything.example_index, options,
    )  # fmt: skip
    return predictions, len(windows), forward_seconds


def score_checkpoint(checkpoint: str, data: str, every: int = 1, batch_size: int = 32) -> CheckpointScore:
    examples = load_examples(data)[::every]
    predictions, num_windows, forward_seconds = predict(checkpoint, examples, batch_size)
    result = evaluate(examples, {example.id: p.answer for example, p in zip(examples, predictions)})
    return CheckpointScore(
        checkpoint, data, len(examples), num_windows, result.exact_match, result.f1, round(forward_seconds, 1)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a transformers question-answering model folder (or Hub name)")
    parser.add_argument("--data", required=True, help="SQuAD JSON (.json or .json.gz) or JSONL with answers")
    parser.add_argument("--every", type=int, default=1, help="score every Nth question only (default: all)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward batch (default: 32)")
    arguments = parser.parse_args(argv)
    try:
        score = score_checkpoint(arguments.checkpoint, arguments.data, arguments.every, arguments.batch_size)
    except (DataFormatError, OSError) as error:
        print(f"score_checkpoint: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(score)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
