"""qa-export --openvino: the same model a second time, as OpenVINO IR for OpenVINO's CPU plugin (the engine's
openvino backend, `qa-answer --backend openvino`).

Why a second graph: OpenVINO has no conversion for ONNX Runtime's fused int8 nodes (QAttention,
QEmbedLayerNormalization), so the int8 model.onnx cannot run on it. The graph it gets is the plain (unfused) fp32
export with its weights stored in fp16 (OpenVINO's own weight compression: half the file, widened back when the
model is compiled, then computed in bf16 where the CPU has bf16 units, else f32). The engine runs it only when
asked: engine/runtime/backends/openvino_backend.py says why it is not the default.

Not NNCF's int8: its post-training quantization of the same graph was no faster either, and on OpenVINO 2026.4 in
bf16 it computed wrong logits for a window padded to 32 positions (a short passage's answer went from "1878" to
"1878 and fell in a storm in December 1879"; benchmarks/openvino_widths.py), where the fp32 graph stays close to
its f32 logits at every width.

The IR is checked by the same parity gate as model.onnx, run on OpenVINO in the precision the plugin picks on this
machine with the engine's width buckets (runtime/batching.py), and the result goes into the manifest's `openvino`
record. openvino is imported when asked for.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

from spanqa.engine.core.model_folder import OpenVinoGraph, ParityReport
from spanqa.engine.core.windows import Windows
from spanqa.engine.runtime.batching import cut_batches
from spanqa.export.options import ExportError
from spanqa.export.parity import Logits, ValidationSet, compare, torch_logits, word_aligner

OPENVINO_MODEL_FILE = "openvino_model.xml"  # and openvino_model.bin beside it (Optimum-Intel's names)


def openvino_missing() -> str | None:
    """Why --openvino cannot run with this install, or None."""
    try:
        metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return "--openvino needs the openvino package: pip install 'spanqa[openvino-export]'"
    return None


def write_openvino_graph(plain_graph: Path, stage: Path) -> None:
    """Write `stage`/openvino_model.{xml,bin}: `plain_graph` converted by OpenVINO, weights stored in fp16."""
    import openvino as ov

    ov.save_model(ov.Core().read_model(str(plain_graph)), str(stage / OPENVINO_MODEL_FILE), compress_to_fp16=True)


def openvino_parity(
    model, tokenizer, stage: Path, validation: ValidationSet, windows: Windows, batch_size: int, max_length: int,
    thresholds,
) -> ParityReport:
    """The parity gate of parity.run_parity, with OpenVINO's CPU plugin running the IR in `stage` (`max_length`:
    the window length, which caps the engine's width buckets)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(stage / OPENVINO_MODEL_FILE), "CPU")
    reference = torch_logits(model, tokenizer, windows, batch_size)
    candidate = _openvino_logits(compiled, windows, batch_size, tokenizer.pad_token_id, max_length)
    # The int8 gate's rule (F1 drop <= its limit): bf16 is not fp32, so fp32's agreement rule does not apply.
    return compare(validation, windows, reference, candidate, tokenizer.pad_token_id, "int8", thresholds,
                   word_aligner(tokenizer))  # fmt: skip


def openvino_record(parity: ParityReport | None) -> OpenVinoGraph:
    return OpenVinoGraph(model_file=OPENVINO_MODEL_FILE, weights="fp16", openvino_version=metadata.version("openvino"),
                         parity=parity)  # fmt: skip


def _openvino_logits(compiled, windows: Windows, batch_size: int, pad_token_id: int, max_length: int) -> Logits:
    """The IR's logits for every window, in batches cut as the engine cuts them for this backend (width buckets),
    so that the gate scores exactly the answers qa-answer will give."""
    import time

    from spanqa.engine.runtime.backends.openvino_backend import OpenVinoBackend

    names = [name for port in compiled.inputs for name in port.get_names()]
    request = compiled.create_infer_request()
    longest = int(windows.lengths.max()) if len(windows) else 0
    start = np.zeros((len(windows), longest), dtype=np.float32)
    end = np.zeros_like(start)
    seconds = 0.0
    multiple = OpenVinoBackend.width_multiple
    batches = cut_batches(windows, pad_token_id, batch_size * max_length, batch_size, multiple, max_length)
    for rows, batch in batches:
        began = time.perf_counter()
        outputs = request.infer({name: getattr(batch, name) for name in names})
        seconds += time.perf_counter() - began
        by_name = {name: value for port, value in outputs.items() for name in port.get_names()}
        if "start_logits" not in by_name or "end_logits" not in by_name:
            raise ExportError(f"the OpenVINO graph's outputs are {sorted(by_name)}, expected start_logits, end_logits")
        lengths = windows.lengths[rows]
        for row, length, row_start, row_end in zip(rows, lengths, by_name["start_logits"], by_name["end_logits"]):
            start[row, :length] = row_start[:length]
            end[row, :length] = row_end[:length]
    return Logits(start, end, seconds)
