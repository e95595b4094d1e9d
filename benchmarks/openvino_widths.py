"""Does a graph's output on OpenVINO depend on how far a window is padded? One window, every padded width, compared
with the same window unpadded in f32.

    python -m spanqa.benchmarks.openvino_widths [--model DIR] [--plain FP32_PLAIN_FOLDER --calibration TRAIN]

Checked: the folder's OpenVINO graph (qa-export --openvino), in bf16 and f32; with --plain (a qa-export
--no-optimize fp32 folder) also that graph quantized by NNCF on --calibration's training windows (what
export/openvino_ir.py tried first; needs nncf). The window is a short question and passage written for this script
(27 tokens): short passages are what a reader behind a retriever sees. A width is reported when its start or end
logits differ from the unpadded f32 ones by more than --tolerance anywhere, and when the answer changes.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from spanqa.benchmarks.measure import load_questions, machine_note, markdown_table, report

QUESTION = "When did the bridge open?"
CONTEXT = "The bridge over the Tay was opened in 1878 and fell in a storm in December 1879."


def scan(compiled, windows, widths: range, reference: tuple[np.ndarray, np.ndarray], tolerance: float) -> dict:
    request = compiled.create_infer_request()
    names = [name for port in compiled.inputs for name in port.get_names()]
    length = int(windows.lengths[0])
    wrong, answers = [], {}
    for width in [None, *widths]:
        batch = windows.padded([0], 0, width)
        outputs = request.infer({name: getattr(batch, name) for name in names})
        by_name = {name: np.asarray(value) for port, value in outputs.items() for name in port.get_names()}
        start, end = by_name["start_logits"][0, :length], by_name["end_logits"][0, :length]
        difference = float(max(np.abs(start - reference[0]).max(), np.abs(end - reference[1]).max()))
        span = (int(start.argmax()), int(end.argmax()))
        answers[width] = span
        if width is not None and difference > tolerance:
            wrong.append({"width": width, "max_abs_diff": round(difference, 3), "span_changed": span != answers[None]})
    return {"widths_over_tolerance": wrong, "answer_unpadded": answers[None]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="engine/models/minilm-l6-squad-int8", help="a folder with an OpenVINO graph")
    parser.add_argument("--plain", help="a qa-export --no-optimize fp32 folder of the same model, for the NNCF row")
    parser.add_argument("--calibration", help="training data for NNCF (with --plain)")
    parser.add_argument("--calibration-questions", type=int, default=256)
    parser.add_argument("--tolerance", type=float, default=0.5, help="largest |logit difference| let pass")
    parser.add_argument("--json", help="also write the result here")
    arguments = parser.parse_args(argv)
    if (arguments.plain is None) != (arguments.calibration is None):
        parser.error("--plain and --calibration go together")
    import openvino as ov

    from spanqa.engine.core.data import QAExample
    from spanqa.engine.core.model_folder import read_manifest
    from spanqa.engine.core.tokenizer import QATokenizer
    from spanqa.engine.core.windows import make_windows

    manifest = read_manifest(arguments.model)
    if manifest.openvino is None:
        parser.error(f"--model {arguments.model}: no OpenVINO graph (export it with qa-export --openvino)")
    tokenizer = QATokenizer.from_folder(arguments.model)
    windows = make_windows(tokenizer, [QAExample("bridge", QUESTION, CONTEXT)], manifest.window)
    core = ov.Core()
    graphs = {"OpenVINO graph (fp16 weights)": core.read_model(f"{arguments.model}/{manifest.openvino.model_file}")}
    if arguments.plain:
        from spanqa.benchmarks.openvino_compare import nncf_int8
        from spanqa.engine.runtime.batching import prepare_group

        examples = load_questions(arguments.calibration, arguments.calibration_questions)
        group = prepare_group(tokenizer, examples, manifest.window, 0, 4096, 8)
        feeds = [{name: getattr(batch, name) for name in manifest.input_names} for _, batch in group.batches]
        plain = core.read_model(f"{arguments.plain}/model.onnx")
        graphs["NNCF int8 of the plain graph"] = nncf_int8(plain, feeds)
    single = {"INFERENCE_NUM_THREADS": 1}
    reference_model = core.compile_model(graphs["OpenVINO graph (fp16 weights)"], "CPU",
                                         {**single, "INFERENCE_PRECISION_HINT": "f32"})  # fmt: skip
    batch = windows.padded([0], 0)
    outputs = reference_model.create_infer_request().infer({name: getattr(batch, name) for name in manifest.input_names})
    by_name = {name: np.asarray(value) for port, value in outputs.items() for name in port.get_names()}
    reference = (by_name["start_logits"][0].copy(), by_name["end_logits"][0].copy())
    widths = range(int(windows.lengths[0]) + 1, manifest.window.max_length + 1)
    rows = {}
    for label, model in graphs.items():
        for precision in ("bf16", "f32"):
            compiled = core.compile_model(model, "CPU", {**single, "INFERENCE_PRECISION_HINT": precision})
            rows[f"{label}, {precision}"] = scan(compiled, windows, widths, reference, arguments.tolerance)
    result = {"benchmark": "openvino_widths", "model": arguments.model, "window_tokens": int(windows.lengths[0]),
              "widths": [widths.start, widths.stop - 1], "tolerance": arguments.tolerance,
              "openvino_version": ov.__version__, "machine": machine_note(), "rows": rows}  # fmt: skip
    table = markdown_table(
        ["graph, precision", "widths (of %d..%d) off by more than %.2f" % (widths.start, widths.stop - 1,
                                                                            arguments.tolerance), "answer changed at"],
        [[label, ", ".join(f"{item['width']} ({item['max_abs_diff']})" for item in row["widths_over_tolerance"])
          or "none", ", ".join(str(item["width"]) for item in row["widths_over_tolerance"] if item["span_changed"])
          or "none"] for label, row in rows.items()],
    )  # fmt: skip
    report(result, table, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
