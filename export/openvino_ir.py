"""qa-export --openvino: the same model a second time, as static int8 OpenVINO IR for OpenVINO's CPU plugin.

Why a second graph: OpenVINO has no conversion for ONNX Runtime's fused int8 nodes (QAttention,
QEmbedLayerNormalization), so the int8 model.onnx cannot run on it; yet on CPUs with bf16 units (AMX,
AVX512-BF16) OpenVINO runs the whole encoder there, and answered about 1.7x as many questions per second as ONNX
Runtime on the static int8 model.onnx, at no loss of F1 (BENCHMARKS.md, "CPU throughput"). The graph it gets is
the plain (unfused) fp32 export, quantized by NNCF's post-training quantization: NNCF, not this project, decides
where the quantizers go (ModelType.TRANSFORMER keeps softmax and the layer norms in float, as NNCF advises for
BERT-like encoders) and fixes their ranges on the same training windows static int8 calibrates on, so an answer
depends only on its own question here too (given the engine's width buckets, runtime/batching.py).

The IR is checked by the same parity gate as model.onnx, run on OpenVINO in the precision the plugin picks on this
machine, and the result goes into the manifest's `openvino` record. openvino and nncf are imported when asked for.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

from spanqa.engine.core.model_folder import OpenVinoGraph, ParityReport
from spanqa.engine.core.windows import Windows
from spanqa.export.calibrate import calibration_batches
from spanqa.export.options import ExportError
from spanqa.engine.runtime.batching import cut_batches
from spanqa.export.parity import Logits, ValidationSet, compare, torch_logits, word_aligner

OPENVINO_MODEL_FILE = "openvino_model.xml"  # and openvino_model.bin beside it (Optimum-Intel's names)
CALIBRATION_BATCH_WINDOWS = 8


def openvino_missing() -> str | None:
    """Why --openvino cannot run with this install, or None."""
    for package in ("openvino", "nncf"):
        try:
            metadata.version(package)
        except metadata.PackageNotFoundError:
            return f"--openvino needs the {package} package: pip install 'spanqa[openvino]' nncf"
    return None


def quantize_for_openvino(plain_graph: Path, stage: Path, windows: Windows, pad_token_id: int) -> int:
    """Write `stage`/openvino_model.{xml,bin}: `plain_graph` quantized by NNCF on `windows`' batches (every one of
    them, in length order, as calibrate.py sees them). Returns the number of calibration windows."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(plain_graph))
    names = [name for port in model.inputs for name in port.get_names()]
    feeds = [{name: getattr(batch, name) for name in names} for batch in
             calibration_batches(windows, CALIBRATION_BATCH_WINDOWS, pad_token_id)]  # fmt: skip
    quantized = nncf.quantize(
        model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds)
    )
    ov.save_model(quantized, str(stage / OPENVINO_MODEL_FILE))  # compresses nothing further: weights are int8
    return len(windows)


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
    return compare(validation, windows, reference, candidate, tokenizer.pad_token_id, "int8", thresholds,
                   word_aligner(tokenizer))  # fmt: skip


def openvino_record(calibration_windows: int, parity: ParityReport | None) -> OpenVinoGraph:
    return OpenVinoGraph(
        model_file=OPENVINO_MODEL_FILE, precision="int8", quantizer=f"nncf {metadata.version('nncf')}",
        openvino_version=metadata.version("openvino"), calibration_windows=calibration_windows, parity=parity,
    )  # fmt: skip


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
