"""torch's compiler (Inductor) against ONNX Runtime's static int8 model: model-only speed on the engine's own
batches, and EM/F1 of each one's answers, in one process, one thread each.

    python -m spanqa.benchmarks.inductor_compare --limit 300 --rounds 6 --checkpoint CHECKPOINT_DIR \\
        --system inductor-int8-bf16 [--onnx-int8 engine/models/minilm-l6-squad-int8] [--json out.json]

Why: the CPU-throughput issue's 5x over the transformers pipeline needs the int8 model about 1.4-1.6x faster, and
what is left of its time is ONNX Runtime's unfused kernels around the GEMMs (attention core, GELU, quantizers, layer
norms; BENCHMARKS.md, "CPU throughput"). Inductor generates fused C++ kernels for exactly those, runs its GEMMs on
oneDNN (AMX where the CPU has it), and its attention on a flash kernel in bf16, so it is the one widely used
"fused end to end" CPU runtime not measured before. This asks whether it is the faster runtime; it is a benchmark,
not a spanqa path (torch stays off the answering path).

Systems (CHECKPOINT_DIR is the transformers checkpoint behind the ONNX folder; the reference is always `ort-int8`,
that folder's model.onnx on the engine's OnnxBackend):
  torch-bf16          the checkpoint cast to bf16, eager
  inductor-bf16       the same, exported (batch and width dynamic) and compiled by Inductor, weights frozen
  inductor-int8       the exported fp32 graph made static int8 by PT2E with torchao's X86InductorQuantizer
                      (per-channel weights; activation ranges calibrated on TRAINING windows, as qa-export's), compiled
  inductor-int8-bf16  the same graph run under bf16 autocast (int8 GEMMs, the rest in bf16)
The int8 systems need `torchao` (in the `[bench]` extra). One torch system per process, as it would run in use:
several compiled models in one process slowed each other (the best form measured about 1.0x there, 1.1-1.2x alone).
Both systems answer the questions once (the torch one compiles, warms up), and are scored; then `rounds` rounds time
each over exactly the batches qa-answer cuts for ONNX Runtime, tokenized beforehand, the order swapped every round;
ratios are per round (reference seconds / system seconds). torch and ONNX Runtime both run one intra-op thread (this
sets torch's process-wide count), as each of the engine's two workers does.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from spanqa.benchmarks.engine_overhead import prepared_groups
from spanqa.benchmarks.measure import (
    add_data_arguments, load_questions, machine_note, markdown_table, report, squad_folder, timed, write_markdown,
)  # fmt: skip
from spanqa.benchmarks.openvino_compare import TRAIN_FILE, answer_scores, rotated, summarize

SYSTEMS = ("torch-bf16", "inductor-bf16", "inductor-int8", "inductor-int8-bf16")
REFERENCE = "ort-int8"


@dataclass(frozen=True)
class TorchRunner:
    """A backend for the benchmark's purposes: `run(batch)` gives float32 start/end logits like the engine's."""

    module: Any
    input_names: tuple[str, ...]
    bf16_autocast: bool = False

    def run(self, batch) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self.bf16_autocast):
            outputs = self.module(**tensors(batch, self.input_names))
        start, end = outputs[:2] if isinstance(outputs, tuple) else (outputs.start_logits, outputs.end_logits)
        return start.float().numpy(), end.float().numpy()


def tensors(batch, names: tuple[str, ...]) -> dict:
    import torch

    return {name: torch.from_numpy(np.ascontiguousarray(getattr(batch, name))) for name in names}


def load_checkpoint(folder: str, bf16: bool):
    """The checkpoint as the engine's torch backend loads it (fp32, eval), optionally cast to bf16."""
    import torch

    from spanqa.engine.runtime.backends.torch_backend import TorchBackend

    model = TorchBackend(folder, device="cpu", dtype="fp32").model
    model.config.return_dict = False  # a tuple out of the exported graph
    return model.to(torch.bfloat16) if bf16 else model


def exported(model, runner_names: tuple[str, ...], example_batch):
    """torch.export's graph with the batch and width dimensions dynamic, so one compiled graph serves every batch
    shape (a width-specialized graph per shape would recompile on most batches)."""
    import torch

    feeds = tensors(example_batch, runner_names)
    longest = model.config.max_position_embeddings
    batch, width = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("width", min=2, max=longest)
    shapes = {name: {0: batch, 1: width} for name in runner_names}
    with torch.no_grad():
        return torch.export.export(model, (), feeds, dynamic_shapes=shapes, strict=False).module()


def quantized_int8(graph, runner_names: tuple[str, ...], calibration_batches: list):
    """PT2E static int8: observers on the exported graph, one pass over the calibration batches, then convert."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(graph, quantizer)
    observe = TorchRunner(prepared, runner_names)
    for batch in calibration_batches:
        observe.run(batch)
    with torch.no_grad():
        return convert_pt2e(prepared)


def compiled(module):
    import torch
    import torch._inductor.config as inductor_config

    # Freezing: weights become constants, prepacked for oneDNN and folded into the kernels. It is set process-wide,
    # since `torch.compile(options={"freezing": True})` leaves PT2E's int8 weight prepacking unlowered (tried).
    inductor_config.freezing = True
    return torch.compile(module, dynamic=True)


def build(system: str, checkpoint: str, names: tuple[str, ...], example_batch, calibration_batches: list):
    if system == "torch-bf16":
        return TorchRunner(load_checkpoint(checkpoint, bf16=True), names)
    if system == "inductor-bf16":
        return TorchRunner(compiled(exported(load_checkpoint(checkpoint, bf16=True), names, example_batch)), names)
    graph = quantized_int8(exported(load_checkpoint(checkpoint, bf16=False), names, example_batch), names,
                           calibration_batches)  # fmt: skip
    return TorchRunner(compiled(graph), names, bf16_autocast=system == "inductor-int8-bf16")


def measure(engine, system: str, checkpoint: str, examples: list, calibration: list, rounds: int) -> dict:
    groups = prepared_groups(engine, examples)
    batches = [batch for group in groups for _, batch in group.batches]
    calibration_batches = [batch for group in prepared_groups(engine, calibration) for _, batch in group.batches]
    names = tuple(engine.backend.input_names)
    runners, rows, reference_answers = {REFERENCE: engine.backend}, {}, None
    for label in (REFERENCE, system):
        began = time.perf_counter()
        if label != REFERENCE:
            runners[label] = build(label, checkpoint, names, batches[0], calibration_batches)
        scores, answers = answer_scores(engine, runners[label], groups, examples)  # compiles every shape kind once
        reference_answers = answers if reference_answers is None else reference_answers
        same = sum(ours == theirs for ours, theirs in zip(answers, reference_answers, strict=True))
        rows[label] = {**scores, "answers_identical_to_reference": 100.0 * same / len(examples),
                       "build_and_first_pass_seconds": round(time.perf_counter() - began, 1)}  # fmt: skip
    walls: dict[str, list[float]] = {label: [] for label in runners}
    cpus: dict[str, list[float]] = {label: [] for label in runners}
    for round_index in range(rounds):
        for label in rotated(list(runners), round_index):
            _, reading = timed(lambda: [runners[label].run(batch) for batch in batches])
            walls[label].append(reading.wall_seconds)
            cpus[label].append(reading.cpu_seconds)
    timings = summarize(walls, cpus, len(examples), REFERENCE)
    return {label: {**rows[label], **timings[label]} for label in rows}


def table(rows: dict) -> str:
    return markdown_table(
        ["system", "questions/s (median, min-max)", "speed-up vs ort-int8 (median, min-max)", "EM", "F1",
         "answers = ort-int8", "build + first pass s"],
        [[label, f"{row['questions_per_second']:.1f} ({row['questions_per_second_min']:.1f}-"
          f"{row['questions_per_second_max']:.1f})", f"{row['speedup']:.2f}x ({row['speedup_min']:.2f}-"
          f"{row['speedup_max']:.2f})", f"{row['exact_match']:.2f}", f"{row['f1']:.2f}",
          f"{row['answers_identical_to_reference']:.1f}%", row["build_and_first_pass_seconds"]]
         for label, row in rows.items()],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, limit=300)
    parser.add_argument("--checkpoint", required=True, help="the transformers checkpoint behind --onnx-int8")
    parser.add_argument("--onnx-int8", default="engine/models/minilm-l6-squad-int8",
                        help="the reference qa-export folder (default: %(default)s)")  # fmt: skip
    parser.add_argument("--system", required=True, choices=SYSTEMS, help="the torch form timed against ort-int8")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default: %(default)s)")
    parser.add_argument("--calibration", default=str(squad_folder() / TRAIN_FILE),
                        help="training questions for the int8 calibration (default: $SPANQA_SQUAD_DIR/%s)" % TRAIN_FILE)
    parser.add_argument("--calibration-questions", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--markdown", help="also write the table and the command here")
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1 or arguments.calibration_questions < 1:
        parser.error("--rounds and --calibration-questions must be >= 1")
    import torch

    from spanqa.engine.runtime.engine import QAEngine
    from spanqa.engine.runtime.options import EngineOptions, SessionOptions

    torch.set_num_threads(1)
    options = EngineOptions(device="cpu", backend="onnx", workers=1, session=SessionOptions(intra_op_threads=1))
    engine = QAEngine(arguments.onnx_int8, options=options)
    examples = load_questions(arguments.data, arguments.limit)
    needs_calibration = "int8" in arguments.system
    calibration = load_questions(arguments.calibration, arguments.calibration_questions) if needs_calibration else []
    rows = measure(engine, arguments.system, arguments.checkpoint, examples, calibration, arguments.rounds)
    result = {"benchmark": "inductor_compare", "system": arguments.system, "questions": len(examples),
              "rounds": arguments.rounds, "threads": 1, "torch_version": torch.__version__, "machine": machine_note(),
              "systems": rows}  # fmt: skip
    text = table(rows)
    report(result, text, arguments.json)
    write_markdown(arguments.markdown, text, "spanqa.benchmarks.inductor_compare", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
