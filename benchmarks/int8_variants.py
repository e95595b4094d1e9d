"""int8 graph variants of one fp32 checkpoint, each measured for model speed, F1 drop and batch independence in one
run, so that the fastest whose F1 drop is at most 0.5 (and whose answers do not depend on batching) can be kept.

    python -m spanqa.benchmarks.int8_variants --checkpoint CHECKPOINT --calibration TRAIN_FILE --work DIR
        [--data DEV_FILE] [--limit 1000] [--rounds 3] [--variants a,b,...] [--json benchmarks/results/int8_variants.json]

Every variant starts from one plain (unfused) fp32 graph that qa-export's export_model writes; the variants are
then built with qa-export's stages (fuse_graph, quantize_int8, calibrate_int8, infer_types) and, where qa-export
has no stage, ONNX Runtime's own tools (optimize_model with other FusionOptions, quantize_dynamic per tensor,
quantize_static over training windows). A variant that cannot be built is recorded with the error; the rest run.

Measurement, all in this process: the dev questions are windowed and batched by the engine's own functions
(prepare_group: make_windows and the batching rule, the engine's default budget and lookahead), and each variant
runs them through the engine's OnnxBackend (the engine's session options) on a qa-export folder written for it.
Model time is the sum of OnnxBackend.run over all batches; rounds interleave the variants (order rotated each
round) so that other processes' load falls on all alike, and each variant's speed-up over the fp32 reference is
taken within each round. F1 comes from the engine's decoder (OrderedDecoder) and scorer at the default budget;
batch independence is the share of answers (text and offsets) identical at 512 and at 4096 tokens per batch.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spanqa.benchmarks.measure import REPO_ROOT, add_data_arguments, load_questions, machine_note, markdown_table, report

REFERENCE = "fp32-fused"
MAX_F1_DROP = 0.5
INDEPENDENCE_BUDGETS = (512, 4096)
COUNTED_OPS = ("Attention", "QAttention", "MultiHeadAttention", "MatMul", "MatMulInteger", "QLinearMatMul",
               "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear", "EmbedLayerNormalization",
               "QEmbedLayerNormalization", "SkipLayerNormalization")  # fmt: skip


# ---- pure logic: summaries and the choice of a winner (tests/benchmarks/test_int8_variants.py) ----

def round_order(labels: Sequence[str], round_index: int) -> list[str]:
    """The variants' order in a round: rotated by one each round, so none always runs first or last."""
    shift = round_index % len(labels) if labels else 0
    return list(labels[shift:]) + list(labels[:shift])


def speed_summary(seconds: Sequence[float], reference_seconds: Sequence[float]) -> dict[str, float]:
    """Median and spread of a variant's per-round model seconds, and of its speed-up over the reference taken
    within each round (reference seconds / its seconds in the same round)."""
    if not seconds or len(seconds) != len(reference_seconds):
        raise ValueError(f"need one reference time per round: {len(seconds)} rounds, {len(reference_seconds)} times")
    ratios = [ref / own for own, ref in zip(seconds, reference_seconds, strict=True)]
    return {"median_seconds": statistics.median(seconds), "min_seconds": min(seconds), "max_seconds": max(seconds),
            "speedup_median": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios)}


def identical_share(first: Sequence[tuple], second: Sequence[tuple]) -> float:
    """Percent of questions whose answer (text, start, end) is the same in both runs."""
    if len(first) != len(second) or not first:
        raise ValueError(f"cannot compare {len(first)} answers with {len(second)}")
    return 100.0 * sum(a == b for a, b in zip(first, second, strict=True)) / len(first)


def choose_winner(rows: Mapping[str, Mapping[str, Any]], reference: str = REFERENCE, max_f1_drop: float = MAX_F1_DROP,
                  require_independent: bool = True) -> str | None:  # fmt: skip
    """The fastest (highest median speed-up) measured variant other than the reference whose F1 drop is at most
    `max_f1_drop` and, if required, whose answers were all identical at both batch budgets; None if there is none."""
    candidates = [
        label for label, row in rows.items()
        if label != reference and row.get("error") is None and row["f1_drop"] <= max_f1_drop
        and (not require_independent or row["identical_percent"] == 100.0)
    ]  # fmt: skip
    return max(candidates, key=lambda label: rows[label]["speedup_median"], default=None)


def repo_relative(value: Any, root: Path = REPO_ROOT) -> Any:
    """`value` (nested dicts/lists of strings included) with absolute paths under the repository's parent written
    relative to the repository, as the other results name them: the JSON carries no machine paths."""
    if isinstance(value, dict):
        return {key: repo_relative(item, root) for key, item in value.items()}
    if isinstance(value, list):
        return [repo_relative(item, root) for item in value]
    if isinstance(value, str):
        return value.replace(f"{root}/", "").replace(f"{root.parent}/", "../")
    return value


# ---- building the variants ----

@dataclass(frozen=True)
class Variant:
    label: str
    description: str
    needs: tuple[str, ...]  # graphs (variant labels or "plain") it is built from
    build: Callable[[Any, list[Path], Path], None]  # (context, the needed graphs, target graph)


@dataclass(frozen=True)
class BuildContext:
    config: Any  # the checkpoint's transformers config
    family: Any
    calibration_windows: Any  # Windows of the training file
    calibration_feeds: list  # the same windows in engine batches, as ONNX feeds (for quantize_static)
    pad_token_id: int


def _fusion_options(mask_raw: bool = False, multi_head: bool = False):
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")  # what fuse_graph uses (mask index for BERT, Attention ops)
    options.use_raw_attention_mask(mask_raw)
    options.use_multi_head_attention = multi_head
    return options


def _fuse_with(options) -> Callable:
    """ORT's optimizer with other FusionOptions, called as fuse_graph calls it (fuse_graph takes no options)."""
    def build(context: BuildContext, sources: list[Path], target: Path) -> None:
        from onnxruntime.transformers.optimizer import optimize_model

        from spanqa.export.families import attention_heads_and_width

        heads, width = attention_heads_and_width(context.config)
        optimize_model(str(sources[0]), model_type="bert", num_heads=heads, hidden_size=width,
                       optimization_options=options, opt_level=0).save_model_to_file(str(target))  # fmt: skip
    return build


def _fuse(context: BuildContext, sources: list[Path], target: Path) -> None:
    from spanqa.export.optimize import fuse_graph

    fuse_graph(sources[0], target, context.config, context.family)


def _quantize(context: BuildContext, sources: list[Path], target: Path) -> None:
    from spanqa.export.quantize import quantize_int8

    quantize_int8(sources[0], target)


def _calibrate(rule: str) -> Callable:
    def build(context: BuildContext, sources: list[Path], target: Path) -> None:
        from spanqa.export.calibrate import calibrate_int8

        calibrate_int8(sources[0], target, context.calibration_windows, context.pad_token_id, rule)
    return build


def _dynamic_per_tensor(context: BuildContext, sources: list[Path], target: Path) -> None:
    """quantize_int8's settings with per-tensor weight scales (quantize_int8 fixes per_channel=True)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from spanqa.export.quantize import OP_TYPES_TO_QUANTIZE, infer_types

    typed = infer_types(onnx.load(sources[0]), sources[0])
    quantize_dynamic(typed, target, op_types_to_quantize=list(OP_TYPES_TO_QUANTIZE), per_channel=False,
                     reduce_range=False, weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})  # fmt: skip


def _static(quant_format: str) -> Callable:
    """ORT's quantize_static on the plain graph: every MatMul (the attention activation x activation ones too) and the
    embeddings, per-channel s8 weights, u8 activations with min-max ranges over the training windows."""
    def build(context: BuildContext, sources: list[Path], target: Path) -> None:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        from spanqa.export.quantize import infer_types

        class TrainingWindows(CalibrationDataReader):
            def __init__(self, feeds: list) -> None:
                self._feeds = iter(feeds)

            def get_next(self):
                return next(self._feeds, None)

        typed = infer_types(onnx.load(sources[0]), sources[0])
        quantize_static(typed, target, TrainingWindows(context.calibration_feeds),
                        quant_format=getattr(QuantFormat, quant_format), op_types_to_quantize=["MatMul", "Gather"],
                        per_channel=True, reduce_range=False, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": False})  # fmt: skip
    return build


VARIANTS = (
    Variant(REFERENCE, "fp32, fused (fuse_graph): the reference", ("plain",), _fuse),
    Variant("dyn-qattention", "dynamic int8 on the fused graph, QAttention (today's default)", (REFERENCE,), _quantize),
    Variant("static-qattention-meanminmax", "static: dyn-qattention calibrated (calibrate_int8, mean-minmax)",
            ("dyn-qattention",), _calibrate("mean-minmax")),
    Variant("static-qattention-minmax", "static: dyn-qattention calibrated (calibrate_int8, minmax)",
            ("dyn-qattention",), _calibrate("minmax")),
    Variant("dyn-plain", "dynamic int8 on the unfused graph", ("plain",), _quantize),
    Variant("dyn-qattention-pertensor", "dynamic int8 on the fused graph, per-tensor weight scales", (REFERENCE,),
            _dynamic_per_tensor),
    Variant("fp32-mha", "fp32 fused with MultiHeadAttention (not measured: a step)", ("plain",),
            _fuse_with(_fusion_options(multi_head=True))),
    Variant("dyn-mha", "fused with MultiHeadAttention, dynamic int8 projections", ("fp32-mha",), _quantize),
    Variant("static-qdq-plain", "quantize_static QDQ on the unfused graph, all MatMuls, per-channel", ("plain",),
            _static("QDQ")),
    Variant("static-qoperator-plain", "quantize_static QOperator on the unfused graph, all MatMuls, per-channel",
            ("plain",), _static("QOperator")),
    Variant("fp32-rawmask", "fp32 fused with the raw 2-D attention mask (not measured: a step)", ("plain",),
            _fuse_with(_fusion_options(mask_raw=True))),
    Variant("dyn-qattention-rawmask", "dyn-qattention with the raw 2-D mask instead of the mask index",
            ("fp32-rawmask",), _quantize),
    Variant("static-qattention-rawmask", "static-qattention-meanminmax with the raw 2-D mask",
            ("dyn-qattention-rawmask",), _calibrate("mean-minmax")),
    Variant("dyn-quantize-then-fuse", "dynamic int8 on the unfused graph, then ORT's optimizer (fuse_graph options)",
            ("dyn-plain",), _fuse_with(_fusion_options())),
)
STEPS_ONLY = ("fp32-mha", "fp32-rawmask")  # built for their children, not measured


def build_variants(variants: Sequence[Variant], plain_folder: Path, work: Path, context: BuildContext
                   ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Build each variant (in order: a variant's needs come before it) into its own qa-export folder under `work`."""
    import onnx

    from spanqa.engine.core.model_folder import MODEL_FILE, read_manifest, write_manifest
    from spanqa.export.optimize import count_fused_ops

    graphs = {"plain": plain_folder / MODEL_FILE}
    manifest = read_manifest(plain_folder)
    built: dict[str, dict[str, Any]] = {}
    for variant in variants:
        row: dict[str, Any] = {"description": variant.description, "error": None}
        built[variant.label] = row
        missing = [need for need in variant.needs if need not in graphs]
        if missing:
            row["error"] = f"needs {', '.join(missing)}, which was not built"
            continue
        folder = work / variant.label
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(plain_folder, folder, ignore=shutil.ignore_patterns(MODEL_FILE, "manifest.json"))
        started = time.perf_counter()
        try:
            variant.build(context, [graphs[need] for need in variant.needs], folder / MODEL_FILE)
            model = onnx.load(folder / MODEL_FILE)
        except Exception as error:  # noqa: BLE001 - a variant ORT cannot build is a result, not a crash
            row["error"] = f"build failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            continue
        ops = [node.op_type for node in model.graph.node]
        precision = "fp32" if variant.label.startswith("fp32") else "int8"
        write_manifest(folder, replace(manifest, precision=precision, fused_ops=count_fused_ops(model)))
        graphs[variant.label] = folder / MODEL_FILE
        row.update(folder=str(folder), build_seconds=round(time.perf_counter() - started, 1),
                   model_bytes=(folder / MODEL_FILE).stat().st_size,
                   op_counts={op: ops.count(op) for op in COUNTED_OPS if op in ops})  # fmt: skip
    return built


def select_variants(variants: Sequence[Variant], wanted: Sequence[str] | None) -> list[Variant]:
    """The variants named (all for None), the reference and every graph they are built from, in build order."""
    by_label = {variant.label: variant for variant in variants}
    unknown = [label for label in wanted or () if label not in by_label]
    if unknown:
        raise ValueError(f"unknown variant {', '.join(unknown)} (known: {', '.join(by_label)})")
    keep = set(by_label) if wanted is None else {REFERENCE, *wanted}
    pending = list(keep)
    while pending:
        for need in by_label[pending.pop()].needs:
            if need in by_label and need not in keep:
                keep.add(need)
                pending.append(need)
    return [variant for variant in variants if variant.label in keep]


# ---- measuring them ----

def engine_batches(tokenizer, examples: list, window, pad_token_id: int, max_tokens: int) -> list[tuple[Any, list]]:
    """The engine's groups (its lookahead) and batches (its rule, `max_tokens` and its window cap), padded once here
    so that padding is not in the model time."""
    from spanqa.engine.runtime.batching import prepare_group
    from spanqa.engine.runtime.options import EngineOptions

    defaults = EngineOptions()
    groups = []
    for first in range(0, len(examples), defaults.lookahead):
        group = prepare_group(tokenizer, examples[first : first + defaults.lookahead], window, pad_token_id,
                              max_tokens, defaults.max_batch_windows)  # fmt: skip
        groups.append((group, list(group.batches)))
    return groups


def run_pass(backend, groups: list[tuple[Any, list]]) -> tuple[float, list]:
    """Model seconds (OnnxBackend.run only) over every batch, and the answers the engine's decoder gives."""
    from spanqa.engine.core.decoder import DecodeOptions
    from spanqa.engine.core.ordered_decode import OrderedDecoder

    seconds, answers = 0.0, []
    for group, batches in groups:
        decoder = OrderedDecoder(group.windows.example_index, len(group.examples), DecodeOptions())
        for rows, batch in batches:
            started = time.perf_counter()
            start_logits, end_logits = backend.run(batch)
            seconds += time.perf_counter() - started
            decoder.add(rows, start_logits, end_logits, batch)
        answers += decoder.answers([e.context for e in group.examples], ids=[e.id for e in group.examples])
    return seconds, answers


def measure(folders: dict[str, str], examples: list, tokenizer, window, pad_token_id: int, rounds: int, threads: int
            ) -> dict[str, dict[str, Any]]:  # fmt: skip
    import os

    from spanqa.engine.core.model_folder import read_manifest
    from spanqa.engine.evaluation.scoring import evaluate
    from spanqa.engine.runtime.backends.onnx_backend import OnnxBackend
    from spanqa.engine.runtime.options import EngineOptions, SessionOptions

    default_budget = EngineOptions().max_batch_tokens
    timed_groups = engine_batches(tokenizer, examples, window, pad_token_id, default_budget)
    rows: dict[str, dict[str, Any]] = {}
    backends = {}
    for label, folder in folders.items():
        try:
            backends[label] = OnnxBackend(folder, read_manifest(folder), device="cpu",
                                          options=SessionOptions(intra_op_threads=threads), pad_token_id=pad_token_id)
        except Exception as error:  # noqa: BLE001 - a graph ORT cannot load is recorded, the others still run
            rows[label] = {"error": f"session failed: {type(error).__name__}: {str(error).splitlines()[0]}"}
    for label, backend in list(backends.items()):  # warm-up: thread pool, arena, kernels' first use; not timed
        try:
            for _, batch in timed_groups[0][1][:2]:
                backend.run(batch)
        except Exception as error:  # noqa: BLE001 - a graph ORT loads but cannot run is recorded too
            rows[label] = {"error": f"run failed: {type(error).__name__}: {str(error).splitlines()[0]}"}
            del backends[label]
    if REFERENCE not in backends:
        raise RuntimeError(f"the reference {REFERENCE} did not run: {rows[REFERENCE]['error']}")
    labels = list(backends)
    seconds: dict[str, list[float]] = {label: [] for label in labels}
    first_answers: dict[str, list] = {}
    repeatable = {label: True for label in labels}
    loads = []
    for round_index in range(rounds):
        for label in round_order(labels, round_index):
            elapsed, answers = run_pass(backends[label], timed_groups)
            seconds[label].append(elapsed)
            keys = [(a.answer, a.start, a.end) for a in answers]
            first_answers.setdefault(label, answers)
            repeatable[label] &= keys == [(a.answer, a.start, a.end) for a in first_answers[label]]
        loads.append([round(value, 2) for value in os.getloadavg()])
        print(f"round {round_index + 1}/{rounds} done, load {loads[-1]}", file=sys.stderr)
    at_budget = {}
    for budget in INDEPENDENCE_BUDGETS:
        groups = engine_batches(tokenizer, examples, window, pad_token_id, budget)
        at_budget[budget] = {label: [(a.answer, a.start, a.end) for a in run_pass(backends[label], groups)[1]]
                             for label in labels}  # fmt: skip
    for label in labels:
        scores = evaluate(examples, {a.id: a.answer for a in first_answers[label]})
        low, high = (at_budget[budget][label] for budget in INDEPENDENCE_BUDGETS)
        rows[label] = {"error": None, "exact_match": scores.exact_match, "f1": scores.f1,
                       "identical_percent": identical_share(low, high),
                       "answers_differing": sum(a != b for a, b in zip(low, high, strict=True)),
                       "repeatable_across_rounds": repeatable[label], "round_seconds": seconds[label],
                       **speed_summary(seconds[label], seconds[REFERENCE])}  # fmt: skip
    for label in labels:
        rows[label]["f1_drop"] = rows[REFERENCE]["f1"] - rows[label]["f1"]
    batches = timed_groups
    shape = {"questions": len(examples), "windows": sum(len(g.windows) for g, _ in batches),
             "batches": sum(len(b) for _, b in batches), "padded_tokens": sum(g.padded_tokens for g, _ in batches),
             "max_batch_tokens": default_budget, "load_average_after_each_round": loads}  # fmt: skip
    return {"variants": rows, "batches": shape}


def results_table(rows: Mapping[str, Mapping[str, Any]], built: Mapping[str, Mapping[str, Any]]) -> str:
    table = []
    for label, build in built.items():
        if label in STEPS_ONLY and build.get("error") is None:
            continue
        row = rows.get(label) or {"error": build.get("error")}
        size = f"{build['model_bytes'] / 1e6:.1f}" if "model_bytes" in build else "-"
        if row.get("error"):
            table.append([label, "-", "-", "-", "-", "-", size, row["error"]])
            continue
        table.append([label, f"{row['median_seconds']:.2f} ({row['min_seconds']:.2f}-{row['max_seconds']:.2f})",
                      f"{row['speedup_median']:.2f}x ({row['speedup_min']:.2f}-{row['speedup_max']:.2f})",
                      f"{row['f1']:.2f}", f"{row['f1_drop']:+.2f}", f"{row['identical_percent']:.1f}%", size,
                      build["description"]])  # fmt: skip
    headers = ["variant", "model s, median (range)", "speed-up vs fp32, median (range)", "F1", "F1 drop",
               f"identical {INDEPENDENCE_BUDGETS[0]} vs {INDEPENDENCE_BUDGETS[1]}", "MB", "what"]  # fmt: skip
    return markdown_table(headers, table)


def prepare_plain(checkpoint: str, work: Path) -> Path:
    """The one plain fp32 graph every variant starts from, as a qa-export folder (export_model, no fusion)."""
    from spanqa.export.options import ExportOptions
    from spanqa.export.run import export_model

    folder = work / "plain"
    export_model(ExportOptions(checkpoint=checkpoint, output=str(folder), precision="fp32", optimize=False,
                               skip_parity=True, overwrite=True))  # fmt: skip
    return folder


def build_context(checkpoint: str, tokenizer, window, calibration: str, count: int, input_names) -> BuildContext:
    import numpy as np
    from transformers import AutoConfig

    from spanqa.engine.core.windows import make_windows
    from spanqa.engine.runtime.batching import pack_batches
    from spanqa.engine.runtime.options import EngineOptions
    from spanqa.export.calibrate import load_calibration_examples
    from spanqa.export.families import family_of

    config = AutoConfig.from_pretrained(checkpoint)
    windows = make_windows(tokenizer, load_calibration_examples(calibration, count), window)
    pad = tokenizer.pad_token_id or 0
    defaults = EngineOptions()
    feeds = []
    for rows in pack_batches(windows.lengths, defaults.max_batch_tokens, defaults.max_batch_windows):
        batch = windows.padded(rows, pad)
        feeds.append({name: np.ascontiguousarray(getattr(batch, name), dtype=np.int64) for name in input_names})
    return BuildContext(config, family_of(config, checkpoint), windows, feeds, pad)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a transformers BertForQuestionAnswering folder (fp32)")
    add_data_arguments(parser, limit=1000)
    parser.add_argument("--calibration", required=True, help="SQuAD TRAINING file whose windows calibrate (never dev)")
    parser.add_argument("--calibration-examples", type=int, default=256, help="(default: %(default)s)")
    parser.add_argument("--work", required=True, help="scratch folder for the variants' qa-export folders")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    parser.add_argument("--variants", help=f"comma-separated labels to build (default: all; {REFERENCE} always)")
    parser.add_argument("--json", help="also write the full result here")
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1:
        parser.error("--rounds must be >= 1")
    try:
        chosen = select_variants(VARIANTS, None if arguments.variants is None else arguments.variants.split(","))
    except ValueError as error:
        parser.error(f"--variants: {error}")
    from spanqa.engine.core.model_folder import read_manifest
    from spanqa.engine.core.tokenizer import QATokenizer

    machine = machine_note()
    examples = load_questions(arguments.data, arguments.limit)
    work = Path(arguments.work).absolute()
    work.mkdir(parents=True, exist_ok=True)
    plain = prepare_plain(arguments.checkpoint, work)
    manifest = read_manifest(plain)
    tokenizer = QATokenizer.from_folder(plain)
    context = build_context(arguments.checkpoint, tokenizer, manifest.window, arguments.calibration,
                            arguments.calibration_examples, manifest.input_names)  # fmt: skip
    built = build_variants(chosen, plain, work, context)
    for label, row in built.items():
        print(f"built {label}: {row['error'] or 'ok'}", file=sys.stderr)
    if built[REFERENCE]["error"]:
        sys.exit(f"the reference {REFERENCE} could not be built: {built[REFERENCE]['error']}")
    folders = {label: row["folder"] for label, row in built.items() if row["error"] is None and label not in STEPS_ONLY}
    measured = measure(folders, examples, tokenizer, manifest.window, context.pad_token_id, arguments.rounds,
                       arguments.threads)  # fmt: skip
    rows = measured["variants"]
    winner = choose_winner(rows)
    fastest_within_f1 = choose_winner(rows, require_independent=False)
    command = "python -m spanqa.benchmarks.int8_variants " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"benchmark": "int8_variants", "command": command, "checkpoint": arguments.checkpoint,
              "data": arguments.data, "calibration": arguments.calibration,
              "calibration_examples": arguments.calibration_examples, "rounds": arguments.rounds,
              "threads": arguments.threads, "machine": machine, "batches": measured["batches"],
              "rule": f"winner: highest median speed-up over {REFERENCE} with F1 drop <= {MAX_F1_DROP} and all answers "
                      f"identical at {INDEPENDENCE_BUDGETS[0]} and {INDEPENDENCE_BUDGETS[1]} tokens per batch",
              "winner": winner, "fastest_within_f1_drop": fastest_within_f1,
              "variants": {label: {**build, **rows.get(label, {})} for label, build in built.items()}}  # fmt: skip
    result = repo_relative(result)
    table = results_table(rows, built)
    table += f"\n\nwinner (F1 drop <= {MAX_F1_DROP}, batch-independent): {winner or 'none'}; "
    table += f"fastest with F1 drop <= {MAX_F1_DROP} regardless of batching: {fastest_within_f1 or 'none'}"
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
