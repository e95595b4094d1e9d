"""Where a qa-export model's time goes, operator by operator: ONNX Runtime's own profiler over real dev batches.

    python -m spanqa.benchmarks.op_profile --model int8=engine/models/minilm-l6-squad-int8 --model fp32=FP32_DIR \\
        --limit 512 [--warmup-batches 4] [--threads 0] [--json benchmarks/results/op_profile.json]

The questions are windowed and batched by the engine itself (QAEngine's tokenizer, window options and
prepare_group, as answer_many cuts them), and every batch goes through the engine's OnnxBackend.run; the only
difference from answering is the session under it: the engine's SessionOptions with enable_profiling on. The
models run interleaved, batch i of each before batch i + 1 of any, so their times compare within one run on a
shared machine. Each model's first --warmup-batches runs are left out of the sums (the trace's model_run events say
which nodes ran in which run). Per op type: the summed duration of its "Node" events, its share of all node time,
and its call count; then the same time in groups (int8 GEMMs, attention, layer norms, GELU, (de)quantization, ...;
see op_trace.py for the sums and the groups).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spanqa.benchmarks.engine_overhead import prepared_groups
from spanqa.benchmarks.measure import add_data_arguments, load_questions, machine_note, make_engine, markdown_table, report
from spanqa.benchmarks.op_trace import GROUP_NOTES, GROUPS, OTHER, scale_nodes, summarise_trace

CPU = "CPUExecutionProvider"


def optimized_graph(model_path: Path, settings_for, scratch: Path, disabled: tuple[str, ...] = ()):
    """The graph ONNX Runtime runs (after its fusions), written by a session with the engine's settings."""
    import onnx
    import onnxruntime as ort

    settings = settings_for()
    scratch.mkdir(parents=True, exist_ok=True)
    settings.optimized_model_filepath = str(scratch / "optimized.onnx")
    ort.InferenceSession(str(model_path), settings, providers=[CPU], disabled_optimizers=list(disabled))
    return onnx.load(settings.optimized_model_filepath).graph


@dataclass
class Profiled:
    """One model being profiled: the engine (its backend now on a profiling session), its batches, its graph."""

    folder: str
    engine: Any
    batches: list
    graph: Any  # the optimized onnx GraphProto
    warmup_runs: int = 0


def open_profiled(folder: str, examples: list, threads: int, scratch: Path) -> Profiled:
    import onnxruntime as ort

    from spanqa.engine.runtime.backends.onnx_backend import disabled_optimizers, session_options

    engine = make_engine(folder, threads=threads)
    if engine.manifest is None:
        raise ValueError(f"{folder}: not a qa-export folder (no manifest.json); op_profile profiles ONNX models")
    batches = [batch for group in prepared_groups(engine, examples) for _, batch in group.batches]
    disabled = disabled_optimizers(engine.options.session, CPU)  # as the engine's own session
    graph = optimized_graph(engine.backend.model_path, lambda: session_options(engine.options.session), scratch, disabled)
    settings = session_options(engine.options.session)
    settings.enable_profiling = True
    settings.profile_file_prefix = str(scratch / "trace")
    # The engine's backend keeps its feeds and checks; only the session under it now profiles.
    engine.backend.session = ort.InferenceSession(str(engine.backend.model_path), settings, providers=[CPU],
                                                  disabled_optimizers=list(disabled))  # fmt: skip
    return Profiled(str(folder), engine, batches, graph)


def run_interleaved(models: list[Profiled], warmup_batches: int, passes: int) -> None:
    """Warm every model up, then run batch i of every model before batch i + 1 of any, so that a change in the
    machine's load falls on all of them alike and their times compare within this one run."""
    for model in models:
        model.warmup_runs = min(warmup_batches, len(model.batches))
        for batch in model.batches[: model.warmup_runs]:
            model.engine.backend.run(batch)
    for _ in range(passes):
        for index in range(max(len(model.batches) for model in models)):
            for model in models:
                if index < len(model.batches):
                    model.engine.backend.run(model.batches[index])


def finish(model: Profiled, questions: int, passes: int) -> dict[str, Any]:
    """Stop the model's profiler and sum its trace."""
    trace = Path(model.engine.backend.session.end_profiling())
    events = json.loads(trace.read_text(encoding="utf-8"))
    summary = summarise_trace(events, model.warmup_runs, scale_nodes(model.graph))
    graph_ops = sorted({node.op_type for node in model.graph.node})
    batches = model.batches
    return {"folder": model.folder, "precision": model.engine.manifest.precision, "questions": questions,
            "batches": len(batches), "passes": passes, "windows": sum(len(batch.input_ids) for batch in batches),
            "padded_tokens": sum(batch.input_ids.size for batch in batches), "graph_op_types": graph_ops,
            "graph_ops_not_in_trace": [op for op in graph_ops if op not in summary["ops"]], **summary}  # fmt: skip


def profile_models(folders: dict[str, str], examples: list, warmup_batches: int, threads: int, passes: int = 1
                   ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Profile each labelled model folder over the engine's own batches for `examples`, the models interleaved batch
    by batch; the traces are parsed and deleted."""
    with tempfile.TemporaryDirectory(prefix="op-profile-") as scratch:
        models = {label: open_profiled(folder, examples, threads, Path(scratch) / str(index))
                  for index, (label, folder) in enumerate(folders.items())}  # fmt: skip
        run_interleaved(list(models.values()), warmup_batches, passes)
        return {label: finish(model, len(examples), passes) for label, model in models.items()}


def parse_model_flag(text: str) -> tuple[str, str]:
    label, separator, folder = text.partition("=")
    if not separator or not label or not folder:
        raise argparse.ArgumentTypeError(f"expected LABEL=FOLDER, got {text!r}")
    if not (Path(folder) / "manifest.json").is_file():
        raise argparse.ArgumentTypeError(f"{folder}: not a qa-export folder (no manifest.json)")
    return label, folder


def op_table(profile: dict[str, Any]) -> str:
    rows = [[op, ", ".join(row["groups"]), f"{row['ms']:,.1f}", f"{row['percent']:.1f}%", f"{row['calls']:,}"]
            for op, row in profile["ops"].items()]  # fmt: skip
    return markdown_table(["op type", "group", "total ms", "% of model time", "calls"], rows)


def group_table(profiles: dict[str, dict[str, Any]]) -> str:
    order = [*GROUPS, OTHER]
    present = [group for group in order if any(group in profile["groups"] for profile in profiles.values())]
    headers = ["group", *(f"{label} ms / %" for label in profiles)]
    rows = []
    for group in present:
        cells = []
        for profile in profiles.values():
            row = profile["groups"].get(group)
            cells.append(f"{row['ms']:,.1f} / {row['percent']:.1f}%" if row else "-")
        rows.append([group, *cells])
    rows.append(["all nodes", *(f"{profile['node_ms']:,.1f} / 100%" for profile in profiles.values())])
    return markdown_table(headers, rows)


def markdown(profiles: dict[str, dict[str, Any]]) -> str:
    parts = []
    for label, profile in profiles.items():
        missing = ", ".join(profile["graph_ops_not_in_trace"]) or "none"
        parts += [f"### {label} ({profile['precision']}, {profile['folder']})", "",
                  f"{profile['questions']} questions -> {profile['windows']} windows in {profile['batches']} batches "
                  f"({profile['padded_tokens']:,} padded tokens); {profile['timed_runs']} timed runs, "
                  f"{profile['warmup_runs']} warm-up runs excluded; node time {profile['node_ms']:,.1f} ms = "
                  f"{profile['node_share_of_run_percent']:.1f}% of the runs' {profile['run_ms']:,.1f} ms; "
                  f"graph op types missing from the trace: {missing}.", "", op_table(profile), ""]  # fmt: skip
    parts += ["### Grouped", "", group_table(profiles), "", *(f"- {note}" for note in GROUP_NOTES)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    from spanqa.engine.core.extras import missing_extra

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, limit=512)
    parser.add_argument("--model", action="append", type=parse_model_flag, required=True, metavar="LABEL=FOLDER",
                        help="a qa-export folder to profile, with its label in the tables (repeatable)")  # fmt: skip
    parser.add_argument("--warmup-batches", type=int, default=4, help="runs left out of the sums (default: %(default)s)")
    parser.add_argument("--passes", type=int, default=1, help="timed passes over all batches (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: the engine's default)")
    parser.add_argument("--json", help="also write the full result here")
    arguments = parser.parse_args(argv)
    labels = [label for label, _ in arguments.model]
    if len(set(labels)) != len(labels):
        parser.error(f"--model: labels must differ, got {', '.join(labels)}")
    if arguments.warmup_batches < 0 or arguments.passes < 1:
        parser.error("--warmup-batches must be >= 0 and --passes >= 1")
    missing = missing_extra("export", ("onnx",))  # the optimized graph is read with onnx
    if missing:
        parser.error(f"op_profile {missing}")
    examples = load_questions(arguments.data, arguments.limit)
    machine = machine_note()  # the load average before the runs; report() adds the one after
    profiles = profile_models(dict(arguments.model), examples, arguments.warmup_batches, arguments.threads,
                              arguments.passes)
    command = "python -m spanqa.benchmarks.op_profile " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"benchmark": "op_profile", "command": command, "data": arguments.data, "questions": len(examples),
              "machine": machine, "models": profiles}
    report(result, markdown(profiles), arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
