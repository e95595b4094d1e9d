"""The baselines users reach for first: transformers' question-answering pipeline on PyTorch, and the same pipeline
on Optimum's ONNX Runtime model (fp32, and dynamically quantized to int8 by Optimum's own ORTQuantizer).

Every pipeline runs with the settings the other systems use (384-token windows, stride 128, questions up to 64
tokens, answers up to 30 tokens, the single best answer) and at its best batch size: before the timed passes, a few
batch sizes are tried on a slice of the questions and the fastest is kept (the report lists what each took).

Stage times come from wrapping the pipeline's own `preprocess` (tokenize: tokenizer call and per-window feature
building), `forward` (infer: one model call per batch, tensors moved to and from the device included) and
`postprocess` (decode) methods. What lies between them, collating windows into padded batches and unbatching the
outputs, belongs to none of the three and shows up as the rest of the wall time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from spanqa.benchmarks.qa_bench.systems.timing import PassResult, StageClock, dtype_argument
from spanqa.engine.core.data import QAExample

PIPELINE_ARGUMENTS = {"top_k": 1, "max_answer_len": 30, "max_seq_len": 384, "doc_stride": 128, "max_question_len": 64,
                      "handle_impossible_answer": False}  # fmt: skip
QUANTIZED_FILE = "model_quantized.onnx"


def _batch_shape(model_inputs) -> tuple[int, int]:
    rows, width = model_inputs["input_ids"].shape  # [windows, padded width], also for a batch of one
    return int(rows), int(width)


class PipelineRunner:
    def __init__(self, pipe, settings: dict, batch_size: int = 1) -> None:
        self.pipe = pipe
        self.settings = {**settings, "batch_size": batch_size}
        self.batch_size = batch_size

    def tune(self, examples: list[QAExample], batch_sizes: tuple[int, ...]) -> None:
        """Keep the fastest of `batch_sizes` on `examples` (each tried once untimed, then timed once)."""
        if len(batch_sizes) > 1:
            self.batch_size = self._fastest_batch_size(batch_sizes, examples)
        else:
            self.batch_size = batch_sizes[0]
        self.settings["batch_size"] = self.batch_size

    def _fastest_batch_size(self, batch_sizes: tuple[int, ...], examples: list[QAExample]) -> int:
        seconds = {}
        for batch_size in batch_sizes:
            self._answer(examples, batch_size, StageClock())  # warm-up for this batch size: not timed
            started = time.perf_counter()
            self._answer(examples, batch_size, StageClock())
            seconds[batch_size] = time.perf_counter() - started
        self.settings["batch_size_search"] = {
            "questions": len(examples),
            "seconds": {str(size): round(value, 4) for size, value in seconds.items()},
        }
        return min(seconds, key=seconds.get)

    def _answer(self, examples: list[QAExample], batch_size: int, clock: StageClock) -> list[str]:
        pipe = self.pipe
        # Instance attributes shadow the class's methods; get_iterator looks them up on every call.
        originals = type(pipe).preprocess, type(pipe).forward, type(pipe).postprocess
        pipe.preprocess = clock.timed_generator("tokenize", originals[0].__get__(pipe))
        pipe.forward = clock.timed("infer", originals[1].__get__(pipe), batch_shape=_batch_shape)
        pipe.postprocess = clock.timed("decode", originals[2].__get__(pipe))
        try:
            outputs = pipe(
                question=[example.question for example in examples],
                context=[example.context for example in examples],
                batch_size=batch_size,
                **PIPELINE_ARGUMENTS,
            )
        finally:
            del pipe.preprocess, pipe.forward, pipe.postprocess
        if isinstance(outputs, dict):  # a single question comes back unwrapped
            outputs = [outputs]
        return [output["answer"] for output in outputs]

    def run(self, examples: list[QAExample]) -> PassResult:
        clock = StageClock()
        started = time.perf_counter()
        answers = self._answer(examples, self.batch_size, clock)
        return PassResult.from_clock(time.perf_counter() - started, clock, answers)


def hf_pipeline_runner(checkpoint: str, device: str, precision: str) -> PipelineRunner:
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, pipeline

    dtype = {"fp32": torch.float32, "fp16": torch.float16}[precision]
    model = AutoModelForQuestionAnswering.from_pretrained(checkpoint, **dtype_argument(dtype))
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    pipe = pipeline("question-answering", model=model, tokenizer=tokenizer, device=device)
    settings = {"torch_threads": torch.get_num_threads(), "device": device, "dtype": precision}
    return PipelineRunner(pipe, settings)


def optimum_runner(folder: str) -> PipelineRunner:
    from optimum.onnxruntime import ORTModelForQuestionAnswering, pipeline
    from transformers import AutoTokenizer

    file_name = QUANTIZED_FILE if (Path(folder) / QUANTIZED_FILE).is_file() else "model.onnx"
    model = ORTModelForQuestionAnswering.from_pretrained(folder, file_name=file_name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pipe = pipeline("question-answering", model=model, tokenizer=tokenizer)
    options = model.model.get_session_options()
    settings = {"onnx_file": file_name, "intra_op_threads": options.intra_op_num_threads or "onnxruntime default",
                "providers": model.model.get_providers()}  # fmt: skip
    return PipelineRunner(pipe, settings)


def export_optimum(checkpoint: str, output: Path, quantize: bool) -> None:
    """Optimum's own export (and, for int8, its own dynamic quantization), written to `output`.

    Written into a sibling folder and renamed at the end, so an interrupted export never looks finished."""
    import shutil

    from optimum.onnxruntime import ORTModelForQuestionAnswering, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    from transformers import AutoTokenizer

    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model = ORTModelForQuestionAnswering.from_pretrained(checkpoint, export=True)
    model.save_pretrained(partial)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(partial)
    if quantize:
        quantizer = ORTQuantizer.from_pretrained(partial)
        config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
        quantizer.quantize(save_dir=partial, quantization_config=config)
        (partial / "model.onnx").unlink()  # keep one graph in the folder, so loading it cannot pick the wrong one
        (partial / "quantization.json").write_text(json.dumps({"config": "avx512_vnni(is_static=False, per_channel=True)"}))
    shutil.rmtree(output, ignore_errors=True)
    partial.rename(output)
