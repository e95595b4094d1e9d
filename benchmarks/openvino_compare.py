"""OpenVINO against ONNX Runtime on qa-export folders: model-only speed on the engine's own batches, and EM/F1 of
each runtime's answers, in one process.

    python -m spanqa.benchmarks.openvino_compare --limit 1000 --repeats 5 \\
        --system ort-int8 ort engine/models/minilm-l6-squad-int8 --system ov-f32 ov-f32 FP32_DIR \\
        [--system LABEL KIND DIR ...] [--workers 1 --threads 2] [--json out.json] [--markdown out.md]

KIND is `ort` (the engine's OnnxBackend with the engine's session options), `ov-f32` / `ov-bf16` (OpenVINO reading
the same model.onnx, its CPU plugin told to compute in that precision; bf16 is its own default on CPUs with AMX or
AVX512-BF16), or `ov-nncf-f32` / `ov-nncf-bf16` (the graph made static int8 by NNCF post-training quantization,
its activation ranges calibrated on TRAINING windows, never dev). The first --system is the reference every ratio
is taken against; the ov kinds need `pip install 'spanqa[openvino]'`, the nncf ones also `pip install nncf`.
OpenVINO has no conversion for ORT's QAttention / QEmbedLayerNormalization, so it cannot load a fused int8 export;
it does load fused fp32 exports and plain (`qa-export --no-optimize`) ones, int8 included.

Each system answers the questions once (warm-up; the engine's batches, its decoder, the answers scored); then
`repeats` rounds time `backend.run` over exactly the batches qa-answer would give that backend (the engine's
batching rule, in OpenVINO's width buckets for the ov kinds), tokenized beforehand, the order of systems rotated
every round. Ratios are per round (reference seconds / system seconds), so they hold on a loaded machine.
The rule for making OpenVINO the CPU default: >= 1.2x the reference's questions/s (median of the per-round ratios,
and no round slower than the reference) with F1 no more than --f1-tolerance below the reference's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

import numpy as np

from spanqa.benchmarks.engine_overhead import prepared_groups
from spanqa.benchmarks.measure import (
    add_data_arguments, load_questions, machine_note, markdown_table, report, squad_folder, timed, write_markdown,
)  # fmt: skip

TRAIN_FILE = "train-v1.1.reconstructed.json.gz"
# kind -> (runtime, OpenVINO inference precision, NNCF static int8)
KINDS = {
    "ort": ("onnxruntime", None, False),
    "ov-f32": ("openvino", "f32", False),
    "ov-bf16": ("openvino", "bf16", False),
    "ov-nncf-f32": ("openvino", "f32", True),
    "ov-nncf-bf16": ("openvino", "bf16", True),
}


@dataclass(frozen=True)
class System:
    label: str
    kind: str
    folder: str

    @property
    def runtime(self) -> str:
        return KINDS[self.kind][0]

    @property
    def precision(self) -> str | None:
        return KINDS[self.kind][1]

    @property
    def nncf(self) -> bool:
        return KINDS[self.kind][2]


def parse_systems(parser: argparse.ArgumentParser, specs: list[list[str]]) -> list[System]:
    """--system LABEL KIND DIR, repeated; labels must differ and the kind must be known (a usage error otherwise)."""
    systems = [System(*spec) for spec in specs]
    for system in systems:
        if system.kind not in KINDS:
            parser.error(f"--system {system.label}: kind must be one of {', '.join(KINDS)}, got {system.kind!r}")
    labels = [system.label for system in systems]
    if len(set(labels)) != len(labels) or len(systems) < 2:
        parser.error(f"--system: give at least two, with different labels (got {labels})")
    return systems


def calibration_feeds(engine, examples: list) -> list[dict[str, np.ndarray]]:
    """The engine's own batches of these (training) questions, as model inputs."""
    names = engine.backend.input_names
    batches = (batch for group in prepared_groups(engine, examples) for _, batch in group.batches)
    return [{name: getattr(batch, name) for name in names} for batch in batches]


def nncf_int8(model, feeds: list[dict[str, np.ndarray]]):
    import nncf

    # TRANSFORMER keeps softmax, layer norms and the like in float, as NNCF advises for BERT-style models.
    return nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds))


def open_system(system: System, threads: int, calibration: list | None, workers: int = 1):
    """(engine, backends, details): a CPU QAEngine on the folder, on ONNX Runtime, whose tokenizer and batching cut
    the batches, and the `workers` backends that run them (`threads` each): that engine's own OnnxBackends, or
    OpenVinoBackends on the same graph forced to the system's precision."""
    from spanqa.engine.runtime.engine import QAEngine
    from spanqa.engine.runtime.options import EngineOptions, SessionOptions

    session = SessionOptions(intra_op_threads=threads)
    options = EngineOptions(device="cpu", backend="onnx", workers=workers, session=session)
    engine = QAEngine(system.folder, options=options)
    info: dict = {"runtime": system.runtime, "kind": system.kind, "folder": system.folder}
    if system.runtime == "onnxruntime":
        return engine, engine.worker_backends, info
    import openvino as ov

    from spanqa.engine.runtime.backends.openvino_backend import OpenVinoBackend

    model = None
    if system.nncf:
        feeds = calibration_feeds(engine, calibration or [])
        source = ov.Core().read_model(str(engine.backend.model_path))
        model, reading = timed(lambda: nncf_int8(source, feeds))
        info.update(calibration_batches=len(feeds), quantize_seconds=round(reading.wall_seconds, 1))
    backend = OpenVinoBackend(system.folder, engine.manifest, session, system.precision, model)
    info.update(config=backend.config, openvino_version=ov.__version__)
    return engine, (backend, *(backend.replica() for _ in range(workers - 1))), info


def run_batches(backends: tuple, groups: list) -> None:
    """Every batch, on the backends at once as the engine's workers run them (runtime.pool.BatchPool)."""
    from spanqa.engine.runtime.pool import BatchPool

    with BatchPool(backends, lambda backend, batch: backend.run(batch)) as pool:
        for _ in pool.run(batch for group in groups for _, batch in group.batches):
            pass


def group_answers(backend, group, decode) -> list[str]:
    """A group's answers as QAEngine makes them: each batch's logits handed to the engine's OrderedDecoder in batching
    order, then its answers."""
    from spanqa.engine.core.ordered_decode import OrderedDecoder

    decoder = OrderedDecoder(group.windows.example_index, len(group.examples), decode)
    for rows, batch in group.batches:
        decoder.add(rows, *backend.run(batch), batch)
    examples = group.examples
    answers = decoder.answers([example.context for example in examples], ids=[example.id for example in examples])
    return [answer.answer for answer in answers]


def answer_scores(engine, backend, groups: list, examples: list) -> tuple[dict, list[str]]:
    from spanqa.engine.evaluation.scoring import evaluate

    answers = [answer for group in groups for answer in group_answers(backend, group, engine.options.decode)]
    scores = evaluate(examples, {example.id: answer for example, answer in zip(examples, answers, strict=True)})
    return {"exact_match": scores.exact_match, "f1": scores.f1}, answers


def rotated(items: list, round_index: int) -> list:
    """The systems in round `round_index`'s order: each round starts one system later, so none is always first."""
    shift = round_index % len(items) if items else 0
    return items[shift:] + items[:shift]


def summarize(walls: dict[str, list[float]], cpus: dict[str, list[float]], questions: int, reference: str) -> dict:
    """Per system: questions/s (median, min, max over rounds), questions per CPU-second, and the per-round speed-up
    over the reference (reference wall seconds / this system's, round by round)."""
    rows = {}
    for label, seconds in walls.items():
        rates = [questions / value for value in seconds]
        ratios = [ref / value for ref, value in zip(walls[reference], seconds, strict=True)]
        rows[label] = {
            "wall_seconds": seconds, "cpu_seconds": cpus[label],
            "questions_per_second": statistics.median(rates), "questions_per_second_min": min(rates),
            "questions_per_second_max": max(rates),
            "questions_per_cpu_second": statistics.median(questions / value for value in cpus[label]),
            "speedup_per_round": ratios, "speedup": statistics.median(ratios),
            "speedup_min": min(ratios), "speedup_max": max(ratios),
        }  # fmt: skip
    return rows


def decide(rows: dict, reference: str, min_speedup: float, f1_tolerance: float) -> dict:
    """Which OpenVINO systems pass the rule: median speed-up >= min_speedup AND its worst round >= 1.0 (a win must
    not be a coin toss), with F1 at most f1_tolerance below the reference's. The best passing one wins."""
    verdicts = {}
    for label, row in rows.items():
        if label == reference or row["runtime"] != "openvino":
            continue
        fast = row["speedup"] >= min_speedup and row["speedup_min"] >= 1.0
        accurate = row["f1"] >= rows[reference]["f1"] - f1_tolerance
        verdicts[label] = {"fast_enough": fast, "f1_equal": accurate, "passes": fast and accurate}
    passing = [label for label, verdict in verdicts.items() if verdict["passes"]]
    winner = max(passing, key=lambda label: rows[label]["speedup"]) if passing else None
    return {"reference": reference, "min_speedup": min_speedup, "f1_tolerance": f1_tolerance,
            "systems": verdicts, "winner": winner}  # fmt: skip


def measure(
    systems: list[System], examples: list, repeats: int, threads: int, calibration: list | None, workers: int = 1
) -> dict:
    runners, rows, groups, reference_answers = {}, {}, {}, None
    for system in systems:
        engine, backends, info = open_system(system, threads, calibration, workers)
        # The batches qa-answer gives this backend: OpenVINO's in its width buckets, not ONNX Runtime's shapes.
        prepared = prepared_groups(engine, examples, backends[0].width_multiple)
        scores, answers = answer_scores(engine, backends[0], prepared, examples)  # a batch's answers: any worker's
        run_batches(backends, prepared)  # warm-up of every worker (shapes compiled, pools started)
        if reference_answers is None:
            reference_answers = answers
        same = sum(ours == theirs for ours, theirs in zip(answers, reference_answers, strict=True))
        padded = sum(group.padded_tokens for group in prepared)
        rows[system.label] = {**info, **scores, "answers_identical_to_reference": 100.0 * same / len(examples),
                              "padding_fraction": 1.0 - sum(group.tokens for group in prepared) / padded}
        runners[system.label], groups[system.label] = backends, prepared
    walls: dict[str, list[float]] = {label: [] for label in runners}
    cpus: dict[str, list[float]] = {label: [] for label in runners}
    for round_index in range(repeats):
        for label in rotated(list(runners), round_index):
            _, reading = timed(lambda: run_batches(runners[label], groups[label]))
            walls[label].append(reading.wall_seconds)
            cpus[label].append(reading.cpu_seconds)
    timings = summarize(walls, cpus, len(examples), systems[0].label)
    return {label: {**rows[label], **timings[label]} for label in rows}


def table(rows: dict) -> str:
    return markdown_table(
        ["system", "runtime", "questions/s (median, min-max)", "speed-up vs first (median, min-max)", "EM", "F1",
         "answers = first", "padding"],
        [[label, row["kind"], f"{row['questions_per_second']:.1f} ({row['questions_per_second_min']:.1f}-"
          f"{row['questions_per_second_max']:.1f})", f"{row['speedup']:.2f}x ({row['speedup_min']:.2f}-"
          f"{row['speedup_max']:.2f})", f"{row['exact_match']:.2f}", f"{row['f1']:.2f}",
          f"{row['answers_identical_to_reference']:.1f}%", f"{row['padding_fraction']:.1%}"]
         for label, row in rows.items()],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, limit=1000)
    parser.add_argument("--system", nargs=3, action="append", required=True, metavar=("LABEL", "KIND", "DIR"),
                        help=f"a runtime on a qa-export folder; KIND is one of {', '.join(KINDS)}; the first is the "
                             "reference")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="backends running batches at once, as the engine's workers (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker (default: %(default)s)")
    parser.add_argument("--calibration", default=str(squad_folder() / TRAIN_FILE),
                        help="training questions for NNCF's calibration (default: $SPANQA_SQUAD_DIR/%s)" % TRAIN_FILE)
    parser.add_argument("--calibration-questions", type=int, default=256, help="(default: %(default)s)")
    parser.add_argument("--min-speedup", type=float, default=1.2, help="the rule's speed-up (default: %(default)s)")
    parser.add_argument("--f1-tolerance", type=float, default=0.5, help="the rule's F1 margin (default: %(default)s)")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--markdown", help="also write the table and the command here")
    arguments = parser.parse_args(argv)
    systems = parse_systems(parser, arguments.system)
    if min(arguments.repeats, arguments.threads, arguments.workers) < 1:
        parser.error("--repeats, --workers and --threads must be >= 1")
    examples = load_questions(arguments.data, arguments.limit)
    calibration = None
    if any(system.nncf for system in systems):
        calibration = load_questions(arguments.calibration, arguments.calibration_questions)
    rows = measure(systems, examples, arguments.repeats, arguments.threads, calibration, arguments.workers)
    verdict = decide(rows, systems[0].label, arguments.min_speedup, arguments.f1_tolerance)
    result = {"benchmark": "openvino_compare", "questions": len(examples), "repeats": arguments.repeats,
              "workers": arguments.workers, "threads": arguments.threads, "machine": machine_note(), "systems": rows,
              "decision": verdict}  # fmt: skip
    rule = f"rule: >= {arguments.min_speedup}x at F1 within {arguments.f1_tolerance}; winner: {verdict['winner']}"
    text = f"{table(rows)}\n\n{rule}"
    report(result, text, arguments.json)
    write_markdown(arguments.markdown, text, "spanqa.benchmarks.openvino_compare", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
