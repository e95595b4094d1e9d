# Sourced by tools/h200_*.sh on the device: install spanqa into the image's Python without touching what it has.
#
# The H200 image has torch (CUDA) and transformers 5.x, which spanqa supports, so nothing of theirs is replaced:
# spanqa goes in with --no-deps, and of the other packages the run needs only those the image lacks are installed,
# from the wheels tools/build_gpu_carry.sh put in .gpu/whl (the device reaches no package index).
# Arguments: the import names the run needs, as module=distribution pairs (a bare name means both are the same).

h200_install() {
    local PY=${PY:-python3} missing=() pair module distribution
    for pair in "$@"; do
        module=${pair%%=*}
        distribution=${pair#*=}
        "$PY" -c "import $module" 2>/dev/null || missing+=("$distribution")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "h200: installing what the image lacks: ${missing[*]}"
        [ -d .gpu/whl ] || { echo "h200: no .gpu/whl to install from: run tools/build_gpu_carry.sh and carry .gpu/whl" >&2; return 2; }
        "$PY" -m pip install -q --no-index --find-links .gpu/whl --no-deps "${missing[@]}" || return 1
    fi
    # The build backend (setuptools>=77) comes from .gpu/whl too when the image's is older.
    "$PY" -m pip install -q --no-index --find-links .gpu/whl --no-deps -e . || return 1
    "$PY" -c "import torch, transformers, spanqa.engine; print('h200: torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
}
