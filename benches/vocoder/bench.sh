#!/usr/bin/env bash
# Vocoder real-time factor on CPU: capstream `vocode` (neural vocoder, default and
# fixture sizes; Griffin-Lim) against librosa's `feature.inverse.mel_to_audio`
# (Griffin-Lim) on the same log-mels of spoken captions, one core each.
#
#   bash benches/vocoder/bench.sh          (from the repository root)
#
# Needs target/release/capstream, .venv with librosa/numpy/soundfile, espeak-ng.
# Writes the markdown section to stdout and benches/vocoder/RESULTS.md.
# Env: CAPSTREAM, PYTHON, BENCH_RUNS (default 3; best kept).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${CAPSTREAM:-target/release/capstream}
PY=${PYTHON:-.venv/bin/python}
RUNS=${BENCH_RUNS:-3}
[[ -x $BIN ]] || { echo "no $BIN: run cargo build --release first" >&2; exit 1; }
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1
PIN=()
taskset -c 0 true 2>/dev/null && PIN=(taskset -c 0)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/capstream-vocoder-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"/{wav,mel,out}

# 20 caption-like sentences, spoken at 16 kHz, as the default model's log-mel
# (16 kHz, n_fft 1024, hop 512, 80 Slaney mels, dB, top_db 80).
"$PY" benches/vocoder/bench.py sentences | while IFS=$'\t' read -r i text; do
    "$BIN" speak "$text" --out "$WORK/wav/s$i.wav" --sample-rate 16000 >/dev/null
done
"$BIN" features "$WORK"/wav/*.wav --out-dir "$WORK/mel" --sr 16000 --n-fft 1024 --hop 512 --n-mels 80 --db >/dev/null

# The shipped default model's vocoder (a small Vocos, trained: its spectral convergence
# means something), and the test fixture's tiny one.
DEFAULT_MODEL=${DEFAULT_MODEL:-models/default/audio}

best() { sort -g | head -1; }
run_capstream() {  # MODEL VOCODER -> best vocode_seconds over RUNS, and whole-process seconds
    local model=$1 vocoder=$2 inner=() whole=()
    for _ in $(seq "$RUNS"); do
        local t0 t1 line
        t0=$(date +%s.%N)
        line=$("${PIN[@]}" "$BIN" vocode --model "$model" --vocoder "$vocoder" --threads 1 --device cpu \
            --out-dir "$WORK/out/$vocoder" "$WORK"/mel/*.npy 2>&1 >/dev/null | tail -1)
        t1=$(date +%s.%N)
        inner+=("$(echo "$line" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["vocode_seconds"])')")
        whole+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
    done
    echo "$(printf '%s\n' "${inner[@]}" | best) $(printf '%s\n' "${whole[@]}" | best)"
}
read -r NEURAL_IN NEURAL_WHOLE < <(run_capstream "$DEFAULT_MODEL" neural)
cp -r "$WORK/out/neural" "$WORK/out/neural_default"
read -r SMALL_IN SMALL_WHOLE < <(run_capstream tests/fixtures/neural_audio/model neural)
read -r GL_IN GL_WHOLE < <(run_capstream "$DEFAULT_MODEL" griffin-lim)
LIBROSA=$("${PIN[@]}" "$PY" benches/vocoder/bench.py librosa "$WORK" "$RUNS")

"$PY" benches/vocoder/bench.py report "$WORK" "$RUNS" "$NEURAL_IN" "$NEURAL_WHOLE" "$SMALL_IN" "$SMALL_WHOLE" \
    "$GL_IN" "$GL_WHOLE" "$LIBROSA" "$("$BIN" --version)" "$BIN" | tee benches/vocoder/RESULTS.md
