"""The systems qa-bench compares and what each needs.

A system is one way a user could answer SQuAD questions with the same trained checkpoint. The runners that drive
them live beside this file (seed.py, pipelines.py, spanqa.py); each runs in its own process (../worker.py), so this
module only describes them and must stay cheap to import.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache

# Which prepared model a system loads: the checkpoint itself, or an export cached in the work folder.
CHECKPOINT = "checkpoint"
OPTIMUM_FP32, OPTIMUM_INT8 = "optimum-fp32", "optimum-int8"
SPANQA_FP32, SPANQA_INT8 = "spanqa-fp32", "spanqa-int8"
SPANQA_OPENVINO = "spanqa-openvino"  # qa-export --openvino: the int8 folder with its OpenVINO graph


@dataclass(frozen=True)
class SystemSpec:
    name: str
    family: str  # seed | hf-pipeline | optimum | spanqa: the column groups of the report
    runtime: str
    precision: str  # fp32 | int8 | fp16 | bf16
    model: str  # one of the prepared-model names above
    description: str
    devices: tuple[str, ...] = ("cpu", "cuda")  # where it can run; ONNX Runtime here is the CPU build
    needs: tuple[str, ...] = ()  # QA_PIPELINE and/or OPTIMUM: what the installed stack must offer


# transformers 5 removed pipeline("question-answering"), and optimum-onnx pins transformers<4.58: the pipeline and
# Optimum baselines run on the pinned stack only (pip install -e ".[dev,optimum]").
QA_PIPELINE, OPTIMUM, OPENVINO = "qa-pipeline", "optimum", "openvino"
PINNED_STACK = "pinned stack: pip install -e '.[dev,optimum]'"


@cache
def missing(requirement: str) -> str | None:
    """Why `requirement` is not available on this install, or None."""
    if requirement == OPENVINO:
        missing_openvino = importlib.util.find_spec("openvino") is None
        return "openvino is not installed (pip install 'spanqa[openvino-export]')" if missing_openvino else None
    if requirement == OPTIMUM:
        if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("optimum.onnxruntime") is None:
            return f"optimum-onnx is not installed ({PINNED_STACK})"
        return None
    from transformers import __version__
    from transformers.pipelines import SUPPORTED_TASKS

    if "question-answering" not in SUPPORTED_TASKS:
        return f"transformers {__version__} has no question-answering pipeline ({PINNED_STACK})"
    return None


def unavailable(spec: SystemSpec) -> str | None:
    return next((reason for reason in map(missing, spec.needs) if reason), None)


SYSTEMS: dict[str, SystemSpec] = {
    spec.name: spec
    for spec in (
        SystemSpec("seed", "seed", "PyTorch eager", "fp32", CHECKPOINT,
                   "the notebook's way: every window padded to 384, batches of 16, its Python n-best post-processing"),
        SystemSpec("hf-pipeline", "hf-pipeline", "PyTorch eager", "fp32", CHECKPOINT,
                   'transformers pipeline("question-answering") at its best batch size', needs=(QA_PIPELINE,)),
        SystemSpec("hf-pipeline-fp16", "hf-pipeline", "PyTorch eager", "fp16", CHECKPOINT,
                   "the same pipeline with the model in fp16", devices=("cuda",), needs=(QA_PIPELINE,)),
        SystemSpec("optimum-fp32", "optimum", "ONNX Runtime", "fp32", OPTIMUM_FP32,
                   "ORTModelForQuestionAnswering (Optimum's export) through the pipeline", devices=("cpu",),
                   needs=(OPTIMUM, QA_PIPELINE)),
        SystemSpec("optimum-int8", "optimum", "ONNX Runtime", "int8", OPTIMUM_INT8,
                   "the same, dynamically quantized by Optimum's ORTQuantizer (avx512_vnni, per channel)",
                   devices=("cpu",), needs=(OPTIMUM, QA_PIPELINE)),
        SystemSpec("spanqa-fp32", "spanqa", "ONNX Runtime", "fp32", SPANQA_FP32,
                   "QAEngine on qa-export's fp32 model", devices=("cpu",)),
        SystemSpec("spanqa-int8", "spanqa", "ONNX Runtime", "int8", SPANQA_INT8,
                   "QAEngine on qa-export's int8 model", devices=("cpu",)),
        SystemSpec("spanqa-openvino", "spanqa", "OpenVINO", "bf16", SPANQA_OPENVINO,
                   "QAEngine on the int8 folder's OpenVINO graph (qa-export --openvino: fp32 graph, fp16 weights), "
                   "OpenVINO's CPU plugin in bf16 where the CPU has it (--backend openvino; auto runs ONNX Runtime)",
                   devices=("cpu",), needs=(OPENVINO,)),
        SystemSpec("spanqa-torch", "spanqa", "PyTorch eager", "fp32", CHECKPOINT,
                   "QAEngine's torch backend on the checkpoint"),
        SystemSpec("spanqa-fp16", "spanqa", "PyTorch eager", "fp16", CHECKPOINT,
                   "QAEngine's torch backend, fp16 autocast", devices=("cuda",)),
    )  # fmt: skip
}

DEFAULT_SYSTEMS = {
    "cpu": ("seed", "hf-pipeline", "optimum-fp32", "optimum-int8", "spanqa-fp32", "spanqa-int8",
            "spanqa-openvino", "spanqa-torch"),
    "cuda": ("seed", "hf-pipeline", "hf-pipeline-fp16", "spanqa-torch", "spanqa-fp16"),
}


def resolve_systems(requested: str | None, device: str) -> tuple[SystemSpec, ...]:
    """The systems named in a comma-separated list (default: all that run on `device` with this install; see
    `skipped_defaults`); ValueError names any problem, including a named system this install cannot run."""
    if not requested:
        return tuple(SYSTEMS[name] for name in DEFAULT_SYSTEMS[device] if unavailable(SYSTEMS[name]) is None)
    names = tuple(n.strip() for n in requested.split(",") if n.strip())
    if not names:
        raise ValueError("--systems: no system named")
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        raise ValueError(f"--systems: unknown {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--systems: {', '.join(repeated)} named more than once")
    elsewhere = [name for name in names if device not in SYSTEMS[name].devices]
    if elsewhere:
        where = "; ".join(f"{name} runs on {'/'.join(SYSTEMS[name].devices)} only" for name in elsewhere)
        raise ValueError(f"--systems: not runnable with --device {device}: {where}")
    for name in names:
        if reason := unavailable(SYSTEMS[name]):
            raise ValueError(f"--systems: {name} cannot run here: {reason}")
    return tuple(SYSTEMS[name] for name in names)


def skipped_defaults(device: str) -> dict[str, str]:
    """The default systems this install cannot run, with the reason (reported, so a table never silently shrinks)."""
    return {name: reason for name in DEFAULT_SYSTEMS[device] if (reason := unavailable(SYSTEMS[name]))}
