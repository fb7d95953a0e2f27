#!/usr/bin/env bash
# Image decode + BLIP preprocessing: capstream's decode_image stage against
# transformers' BlipImageProcessor (PIL backend), per core.
#
#   bash benches/preprocess.sh            (from the repository root)
#
# Needs target/release/capstream (cargo build --release) and .venv with transformers,
# pillow, numpy and torch (no torchvision: BlipImageProcessor must stay on PIL).
# Env: CAPSTREAM (binary), PYTHON (interpreter), BENCH_DATA (cache dir),
#      BENCH_COUNT (images, default 200), BENCH_RUNS (default 2, best is kept).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${CAPSTREAM:-target/release/capstream}
PY=${PYTHON:-.venv/bin/python}
DATA=${BENCH_DATA:-target/bench-data/preprocess}
COUNT=${BENCH_COUNT:-200}
RUNS=${BENCH_RUNS:-2}
IMAGES=$DATA/images
PIPELINE=benches/preprocess.toml

[[ -x $BIN ]] || { echo "no $BIN: run cargo build --release first" >&2; exit 1; }
[[ -x $PY ]] || { echo "no $PY: create the venv first" >&2; exit 1; }

# 1. Data (cached).
"$PY" benches/preprocess.py gen "$IMAGES" --count "$COUNT"
n_files=$(find "$IMAGES" -name '*.jpg' | wc -l)
# Warm the page cache so neither side pays for cold reads.
cat "$IMAGES"/*.jpg >/dev/null

PIN=()
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then
    PIN=(taskset -c 0)
else
    echo "warning: taskset -c 0 unavailable; single-core runs are not pinned" >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/capstream-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }

# best_capstream LABEL PIPELINE [prefix command...]: best wall-clock of $RUNS runs.
# Sets BEST (seconds) and SUMMARY (the last summary line).
best_capstream() {
    local label=$1 pipeline=$2; shift 2
    local out=$WORK/out log=$WORK/log t0 t1 dt
    BEST=
    for ((r = 1; r <= RUNS; r++)); do
        rm -rf "$out"
        t0=$(now)
        if ! "$@" "$BIN" run --pipeline "$pipeline" --input "$IMAGES" --output "$out" \
            --no-progress >"$log" 2>"$log.err"; then
            echo "capstream ($label) failed:" >&2
            cat "$log" "$log.err" >&2
            exit 1
        fi
        t1=$(now)
        dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        SUMMARY=$(head -n1 "$log")
        echo "  capstream $label run $r: ${dt}s  | $SUMMARY" >&2
        if [[ -s $log.err ]]; then sed 's/^/    stderr: /' "$log.err" >&2; fi
        if [[ $SUMMARY != *"$n_files rows ($n_files ok, 0 errors"* ]]; then
            echo "warning: capstream ($label) did not decode all $n_files images: $SUMMARY" >&2
        fi
        if [[ -z $BEST ]] || awk -v a="$dt" -v b="$BEST" 'BEGIN { exit !(a < b) }'; then
            BEST=$dt
        fi
    done
    rm -rf "$out"
}

ips() { awk -v n="$n_files" -v s="$1" 'BEGIN { printf "%.1f", n / s }'; }

echo "== capstream ($BIN, $RUNS runs each, best kept)" >&2
# Process start-up (libtorch is linked in) on a one-image input, for reference.
mkdir -p "$WORK/one"
cp "$(find "$IMAGES" -name '*.jpg' | sort | head -n1)" "$WORK/one/"
t0=$(now)
"$BIN" run --pipeline "$PIPELINE" --input "$WORK/one" --output "$WORK/out1" --no-progress >/dev/null
t1=$(now)
startup=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
rm -rf "$WORK/out1"

best_capstream "workers=1, unpinned" "$PIPELINE"
cs_free=$BEST
best_capstream "workers=1, ${PIN[*]:-unpinned}" "$PIPELINE" "${PIN[@]}"
cs_pin=$BEST
cs_summary=$SUMMARY

NPROC=$(nproc)
sed "s/^workers = 1$/workers = $NPROC/" "$PIPELINE" >"$WORK/all.toml"
best_capstream "workers=$NPROC (all cores), unpinned" "$WORK/all.toml"
cs_all=$BEST

echo "== transformers (${PIN[*]:-unpinned}, OMP_NUM_THREADS=1, $RUNS runs each, best kept)" >&2
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# (transformers warns that it falls back to BlipImageProcessorPil: that is the point.)
hf_json=$("${PIN[@]}" "$PY" benches/preprocess.py hf "$IMAGES" --runs "$RUNS" --mode blip \
    2>"$WORK/hf.err") || { cat "$WORK/hf.err" >&2; exit 1; }
grep -v 'falling back to `BlipImageProcessorPil`' "$WORK/hf.err" >&2 || true
echo "  $hf_json" >&2
pil_json=$("${PIN[@]}" "$PY" benches/preprocess.py hf "$IMAGES" --runs "$RUNS" --mode pil)
echo "  $pil_json" >&2

field() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
hf_s=$(field "$hf_json" best_s)
hf_backend=$(field "$hf_json" backend)
pil_s=$(field "$pil_json" best_s)
tf_ver=$(field "$hf_json" transformers)
pil_ver=$(field "$hf_json" pillow)
torch_ver=$(field "$hf_json" torch)
np_ver=$(field "$hf_json" numpy)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mp=$("$PY" - "$IMAGES" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
px = [Image.open(p).size for p in sorted(Path(sys.argv[1]).glob("*.jpg"))]
mp = sorted(w * h / 1e6 for w, h in px)
size = sum(p.stat().st_size for p in Path(sys.argv[1]).glob("*.jpg"))
print(f"{sum(mp):.0f} MP total, {mp[0]:.2f}-{mp[-1]:.2f} MP (median {mp[len(mp)//2]:.2f}), {size/2**20:.0f} MiB")
EOF
)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

cat <<EOF

## Preprocess: capstream decode_image vs transformers BlipImageProcessor

Command: \`bash benches/preprocess.sh\`   Date: $(date -u +%Y-%m-%dT%H:%MZ)
Machine: $cpu, nproc=$NPROC, $(uname -sr)
Versions: $("$BIN" --version) (git $(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo "+dirty"), binary built $(date -u -r "$BIN" +%Y-%m-%dT%H:%MZ)), transformers $tf_ver ($hf_backend), pillow $pil_ver, torch $torch_ver, numpy $np_ver
Input: $n_files synthetic JPEGs (quality 90), $mp; decoded and resized to 384x384.
Best of $RUNS runs; capstream timed as whole-process wall clock (start-up on one image: ${startup}s).

| what | cores | seconds | images/s | vs transformers |
|---|---|---|---|---|
| capstream, workers=1, ${PIN[*]:-unpinned} | 1 | $cs_pin | $(ips "$cs_pin") | $(ratio "$cs_pin" "$hf_s")x |
| capstream, workers=1, unpinned | 1 decode worker, source/sink threads free | $cs_free | $(ips "$cs_free") | $(ratio "$cs_free" "$hf_s")x |
| capstream, workers=$NPROC, unpinned | $NPROC | $cs_all | $(ips "$cs_all") | $(ratio "$cs_all" "$hf_s")x |
| transformers BlipImageProcessor ($hf_backend), ${PIN[*]:-unpinned} | 1 | $hf_s | $(ips "$hf_s") | 1.00x |
| PIL only (open, exif_transpose, convert RGB, resize bicubic), ${PIN[*]:-unpinned} | 1 | $pil_s | $(ips "$pil_s") | $(ratio "$pil_s" "$hf_s")x |

Per-core ratio (capstream pinned / transformers pinned): **$(ratio "$cs_pin" "$hf_s")x** images/s.
Without capstream's process start-up (${startup}s, mostly loading libtorch): $(awk -v n="$n_files" -v s="$cs_pin" -v u="$startup" 'BEGIN { printf "%.1f", n / (s - u) }') images/s pinned, $(awk -v h="$hf_s" -v s="$cs_pin" -v u="$startup" 'BEGIN { printf "%.2f", h / (s - u) }')x.
transformers' time includes rescale + normalize to float32 CHW, which capstream's decode_image
stage leaves to the model stage (it emits 8-bit RGB); capstream's includes hashing the files
(content_hash ids) and writing zstd Parquet. The "PIL only" row is the like-for-like share.
capstream summary (pinned run): \`$cs_summary\`
EOF
