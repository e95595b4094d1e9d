"""The seed notebook's way of answering questions, as a benchmark system.

Tokenize as the notebook's `prepare_test_features` (question stripped, only_second truncation, 384/128 windows,
padding="max_length"); run the model in PyTorch eager fp32 in batches of 16 (the notebook's `Trainer.predict` with
per_device_eval_batch_size=16, here as the plain loop it amounts to); decode with the notebook's post-processing as
written (spanqa.benchmarks.notebook_postprocess.notebook_as_written). Two departures, both in the seed's favour:
the features are built with one tokenizer call instead of `datasets.map` (no Arrow round trip), and offsets outside
the context are None, the masking the notebook's labelling implies (its decoder could otherwise return slices
addressed by question offsets).
"""

from __future__ import annotations

import time

import numpy as np

from spanqa.benchmarks.qa_bench.systems.timing import PassResult, StageClock, dtype_argument
from spanqa.benchmarks.notebook_postprocess import notebook_as_written
from spanqa.engine.core.data import QAExample

NOTEBOOK_MAX_LENGTH = 384
NOTEBOOK_STRIDE = 128
NOTEBOOK_BATCH_SIZE = 16
NOTEBOOK_N_BEST = 20
NOTEBOOK_MAX_ANSWER_LENGTH = 30


class SeedRunner:
    def __init__(self, checkpoint: str, device: str, batch_size: int = NOTEBOOK_BATCH_SIZE) -> None:
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        # Checkpoints may be stored in fp16; the notebook ran fp32.
        model = AutoModelForQuestionAnswering.from_pretrained(checkpoint, **dtype_argument(torch.float32))
        self.model = model.eval().to(device)
        self.device = device
        self.batch_size = batch_size
        self.settings = {"batch_size": batch_size, "padding": f"max_length ({NOTEBOOK_MAX_LENGTH})",
                         "torch_threads": torch.get_num_threads()}  # fmt: skip

    def _features(self, examples: list[QAExample]):
        tokenized = self.tokenizer(
            [example.question.strip() for example in examples],
            [example.context for example in examples],
            truncation="only_second",
            max_length=NOTEBOOK_MAX_LENGTH,
            stride=NOTEBOOK_STRIDE,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="max_length",
        )
        offset_lists = [
            [offset if sequence == 1 else None for offset, sequence in zip(offsets, tokenized.sequence_ids(window))]
            for window, offsets in enumerate(tokenized["offset_mapping"])
        ]
        names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in tokenized]
        tensors = {name: self._torch.tensor(tokenized[name]) for name in names}
        return tensors, offset_lists, np.asarray(tokenized["overflow_to_sample_mapping"])

    def _logits(self, tensors, clock: StageClock) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        windows = len(tensors["input_ids"])
        starts, ends = [], []

        def forward(batch):
            with torch.no_grad():
                output = self.model(**{name: tensor.to(self.device) for name, tensor in batch.items()})
            # .cpu() waits for the device, so the batch time is the model's, not a queued launch.
            return output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()

        timed_forward = clock.timed("infer", forward, batch_shape=lambda batch: tuple(batch["input_ids"].shape))
        for first in range(0, windows, self.batch_size):
            start, end = timed_forward({name: tensor[first : first + self.batch_size] for name, tensor in tensors.items()})
            starts.append(start)
            ends.append(end)
        return np.concatenate(starts), np.concatenate(ends)

    def run(self, examples: list[QAExample]) -> PassResult:
        clock = StageClock()
        started = time.perf_counter()
        tensors, offset_lists, example_index = clock.timed("tokenize", self._features)(examples)
        start_logits, end_logits = self._logits(tensors, clock)
        answers = clock.timed("decode", notebook_as_written)(
            [example.context for example in examples], start_logits, end_logits, offset_lists, example_index,
            NOTEBOOK_N_BEST, NOTEBOOK_MAX_ANSWER_LENGTH,
        )  # fmt: skip
        return PassResult.from_clock(time.perf_counter() - started, clock, answers)
