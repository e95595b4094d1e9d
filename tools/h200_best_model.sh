#!/usr/bin/env bash
# Train the best MiniLM QA model we can on a lent H200, in one device call (see RESULTS.md for the figures it gave).
#
# 1. Here, once: `bash tools/build_gpu_carry.sh train` builds .gpu/ (ignored by git): the SQuAD v1.1 train and dev
#    files, the packaged all-MiniLM-L6-v2 in fp16 (the fp32 file is over the carry limit) and .gpu/whl, wheels of
#    the few packages the device image may lack.
# 2. On the device, one call:
#        run(command="bash tools/h200_best_model.sh", timeout_s=540,
#            carry=[".gpu/whl", ".gpu/dev-v1.1.json.gz", ".gpu/train-v1.1.reconstructed.json.gz", ".gpu/minilm"])
# The image has torch (CUDA) and transformers 5.x, both of which spanqa supports: they are used as they are, spanqa is
# installed with --no-deps, and only what the image lacks comes from .gpu/whl (tools/h200_env.sh).
# Two learning rates train side by side (the small model leaves the GPU mostly idle); the run with the better final
# dev F1 is brought back as fp16 safetensors cut into 15 MB parts (files over 16 MiB do not come back).
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}
EPOCHS=${EPOCHS:-3}
LIMITS=${LIMITS:-}   # e.g. "--max-train-examples 64 --max-eval-examples 32" for a smoke run
mkdir -p "$OUT" /tmp/runs
for needed in .gpu/train-v1.1.reconstructed.json.gz .gpu/dev-v1.1.json.gz .gpu/minilm/config.json; do
    [ -e "$needed" ] || { echo "missing $needed: run 'bash tools/build_gpu_carry.sh train' here and carry .gpu/ (see the header)" >&2; exit 2; }
done
. tools/h200_env.sh
h200_install torch transformers accelerate datasets dill multiprocess xxhash pyarrow numba tokenizers tqdm \
    safetensors || exit 1

train() {  # name learning-rate
    timeout "${RUN_LIMIT:-420}" $PY -m spanqa.training.cli \
        --train .gpu/train-v1.1.reconstructed.json.gz --validation .gpu/dev-v1.1.json.gz --model .gpu/minilm \
        --output "/tmp/runs/$1" --learning-rate "$2" --batch-size 32 --epochs "$EPOCHS" --warmup-ratio 0.1 \
        --eval-batch-size 256 --logging-steps 1000 $LIMITS > "/tmp/runs/$1.log" 2>&1
    echo "$1 exit $?"
}
train lr1e-4 1e-4 &
train lr5e-5 5e-5 &
wait
for run in lr1e-4 lr5e-5; do
    echo "== $run"; grep -E "eval_f1|eval_exact|train_runtime|Error|error" "/tmp/runs/$run.log" | tail -8
    cp "/tmp/runs/$run/training_report.json" "$OUT/report-$run.json" 2>/dev/null
done
$PY - "$OUT" <<'PY'
import json, os, subprocess, sys
from pathlib import Path
out = Path(sys.argv[1])
reports = {p.stem.removeprefix("report-"): json.loads(p.read_text()) for p in out.glob("report-*.json")}
if not reports:
    sys.exit("no run finished")
best = max(reports, key=lambda name: reports[name]["final"]["validation"]["f1"])
print("best:", best, {name: report["final"]["validation"] for name, report in reports.items()})
import torch
from safetensors.torch import load_file, save_file
state = load_file(f"/tmp/runs/{best}/model.safetensors")
save_file({k: v.half().contiguous() for k, v in state.items()}, "/tmp/best-fp16.safetensors", metadata={"format": "pt"})
(out / "best").mkdir(exist_ok=True)
(out / "best" / "config.json").write_text(Path(f"/tmp/runs/{best}/config.json").read_text())
(out / "best" / "name.txt").write_text(best + "\n")
subprocess.run(["split", "-b", "15M", "/tmp/best-fp16.safetensors", str(out / "best" / "model-fp16.safetensors.part-")], check=True)
PY
ls -la "$OUT" "$OUT/best"
