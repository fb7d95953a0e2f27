#!/usr/bin/env bash
# capstream on a GPU, in one script that fits 8 minutes on an H200 with the binary built
# elsewhere (target/release/capstream + capstream-torch carried to the GPU machine):
#
#   1. CUDA is found (torch in python AND capstream's own libtorch, `capstream doctor --json`);
#   2. greedy f32 token ids on the GPU equal the CPU ids on the fixtures (tiny_a, tiny_b,
#      models/default; batch 1 and all images in one batch), asserted;
#   3. bf16 and f16 caption throughput, capstream vs transformers on the same GPU, batch
#      1/8/32/64 (random BLIP-base checkpoint built offline by benches/blip/make_base_checkpoint.py);
#   4. the vision tower's achieved TFLOP/s against the GPU's datasheet peak (and a measured
#      bf16/f16 matmul ceiling);
#   5. peak GPU memory (transformers: torch.cuda.max_memory_allocated and NVML; capstream: NVML
#      polled from outside, as capstream reports none);
# and writes ONE JSON results file. Only correctness is asserted (ids equal, commands succeed,
# CUDA found); the numbers are reported, never compared with a threshold.
#
#   bash benches/gpu/run.sh [--dry-run] [--out FILE]
#
# --dry-run: the same code paths on the CPU with tiny sizes (tiny_b fixture, batch 1 and 2, f32
#            and bf16, 4 images, the "GPU" side is --device cpu), for CI; "dry_run": true in the file.
# --out FILE: results file (default $OUT/gpu-results.json when OUT is set, else
#            benches/gpu/results.json).
# Exit status: 0 when every check passed, 1 when one failed (the file is written either way,
#            with "ok" and "failures"), 2 on bad arguments or a missing binary / python.
#
# Env: PYTHON (interpreter with torch + transformers; default .venv/bin/python when it imports
#      torch, else python3), CAPSTREAM (binary, default target/release/capstream),
#      GPU_BENCH_DATA (cache folder for images and the base checkpoint, default
#      target/bench-data/gpu), GPU_BENCH_BUDGET_S (soft budget: sections that would start past it
#      are skipped and listed under "skipped"; default 450 full, 110 dry), GPU_BENCH_THREADS
#      (libtorch/torch CPU threads; default 2 in the dry run, libtorch's choice in full mode).
# No network is used: HF_HUB_OFFLINE=1, everything is built locally.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

DRY=0
OUT_FILE=
while (($#)); do
    case $1 in
        --dry-run) DRY=1 ;;
        --out) [[ $# -ge 2 ]] || { echo "--out needs a file" >&2; exit 2; }; OUT_FILE=$2; shift ;;
        --out=*) OUT_FILE=${1#--out=} ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ -z $OUT_FILE ]]; then
    if [[ -n ${OUT:-} ]]; then OUT_FILE=$OUT/gpu-results.json; else OUT_FILE=benches/gpu/results.json; fi
fi

BIN=${CAPSTREAM:-target/release/capstream}
[[ -x $BIN ]] || { echo "no $BIN: build it with cargo build --release (or set CAPSTREAM)" >&2; exit 2; }
[[ -x $(dirname "$BIN")/capstream-torch || -n ${CAPSTREAM_TORCH:-} ]] \
    || { echo "no $(dirname "$BIN")/capstream-torch beside $BIN (model commands need it)" >&2; exit 2; }

# The interpreter: the project's venv here; on the GPU machine (no .venv) its python3.
# capstream-torch's RUNPATH names the build machine's torch/lib; point the loader at this
# python's torch instead (same torch version), which matters where the repository was copied.
torch_lib() { "$1" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null; }
PY= TORCH_LIB=
for cand in ${PYTHON:-.venv/bin/python python3}; do
    if [[ -x $cand ]] || command -v "$cand" >/dev/null; then
        TORCH_LIB=$(torch_lib "$cand") && [[ -d $TORCH_LIB ]] && { PY=$cand; break; }
    fi
    [[ -n ${PYTHON:-} ]] && break
done
[[ -n $PY ]] || { echo "no python with torch (tried ${PYTHON:-.venv/bin/python python3}; set PYTHON)" >&2; exit 2; }
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    TRANSFORMERS_NO_ADVISORY_WARNINGS=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if ((DRY)); then
    T=${GPU_BENCH_THREADS:-2}
    export OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T GPU_BENCH_THREADS=$T
fi

DATA=${GPU_BENCH_DATA:-target/bench-data/gpu}
mkdir -p "$DATA"
args=(run --mode "$( ((DRY)) && echo dry || echo full)" --out "$OUT_FILE" --capstream "$BIN" --data "$DATA")
[[ -n ${GPU_BENCH_BUDGET_S:-} ]] && args+=(--budget-s "$GPU_BENCH_BUDGET_S")

echo "== capstream GPU bench ($( ((DRY)) && echo "dry run, CPU" || echo full)): $PY, torch lib $TORCH_LIB -> $OUT_FILE" >&2
t0=$(date +%s)
rc=0
"$PY" benches/gpu/gpu_check.py "${args[@]}" || rc=$?
echo "== done in $(( $(date +%s) - t0 ))s, exit $rc; results: $OUT_FILE" >&2
exit $rc
