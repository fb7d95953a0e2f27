#!/usr/bin/env bash
# Audio front end: capstream `features` (log-mel, librosa definitions) against librosa
# 0.11 per core, output parity, and real-time factors of `capstream speak` vs espeak-ng.
#
#   bash benches/audio/bench.sh            (from the repository root)
#
# Needs target/release/capstream (cargo build --release), .venv with librosa, soundfile,
# scipy, numpy, and espeak-ng on PATH. Writes the markdown section to stdout and to
# benches/audio/RESULTS.md.
# Env: CAPSTREAM (binary), PYTHON (interpreter), BENCH_DATA (cache dir),
#      BENCH_COUNT (clips, default 200), BENCH_RUNS (default 2, best is kept),
#      SPEAK_REPS (runs per sentence, default 2, best is kept).
# Before every timed run it waits (polling, up to 20 min) while a cargo/rustc process
# runs on the machine, and reports any wait in the results.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN=${CAPSTREAM:-target/release/capstream}
PY=${PYTHON:-.venv/bin/python}
DATA=${BENCH_DATA:-target/bench-data/audio}
COUNT=${BENCH_COUNT:-200}
RUNS=${BENCH_RUNS:-2}
SPEAK_REPS=${SPEAK_REPS:-2}
CLIPS=$DATA/clips
HELPER=benches/audio/bench.py
RESULTS=benches/audio/RESULTS.md
FEAT_ARGS=(--sr 16000 --n-fft 1024 --hop 256 --n-mels 80 --db)

[[ -x $BIN ]] || { echo "no $BIN: run cargo build --release first" >&2; exit 1; }
[[ -x $PY ]] || { echo "no $PY: create the venv first" >&2; exit 1; }
command -v espeak-ng >/dev/null || { echo "espeak-ng not on PATH" >&2; exit 1; }

PIN=()
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then
    PIN=(taskset -c 0)
else
    echo "warning: taskset -c 0 unavailable; single-core runs are not pinned" >&2
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/capstream-audio-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# --- waiting for a concurrent build ------------------------------------------------
WAIT_NOTES=()
build_busy() { pgrep -x rustc >/dev/null || pgrep cargo >/dev/null; }
# wait_idle LABEL: poll every 10 s, at most 20 min, while cargo/rustc runs.
wait_idle() {
    local label=$1 t0 t1 waited
    [[ -n ${BENCH_NO_WAIT:-} ]] && return 0  # smoke tests only
    t0=$(date +%s)
    while build_busy && (($(date +%s) - t0 < 1200)); do sleep 10; done
    t1=$(date +%s)
    waited=$((t1 - t0))
    if build_busy; then
        echo "  WARNING: cargo/rustc still running after ${waited}s; timing $label anyway" >&2
        WAIT_NOTES+=("before $label: waited ${waited}s, build still running (timing contaminated)")
    elif ((waited > 0)); then
        echo "  waited ${waited}s for cargo/rustc before $label" >&2
        WAIT_NOTES+=("before $label: waited ${waited}s for cargo/rustc to finish")
    fi
}

# --- 1. data ---------------------------------------------------------------------
"$PY" "$HELPER" gen "$CLIPS" --count "$COUNT"
mapfile -t FILES < <(find "$CLIPS" -name '*.wav' | sort)
n_files=${#FILES[@]}
read -r audio_s n16 nres mb < <("$PY" - "$CLIPS" <<'EOF'
import json, sys
from pathlib import Path
m = json.loads((Path(sys.argv[1]) / "manifest.json").read_text())
c = m["clips"]
size = sum((Path(sys.argv[1]) / x["file"]).stat().st_size for x in c)
print(f'{sum(x["seconds"] for x in c):.1f} {sum(x["sr"] == 16000 for x in c)} '
      f'{sum(x["sr"] != 16000 for x in c)} {size / 2**20:.0f}')
EOF
)
mix=$("$PY" - "$CLIPS" <<'EOF'
import json, sys, collections
from pathlib import Path
c = json.loads((Path(sys.argv[1]) / "manifest.json").read_text())["clips"]
sr = collections.Counter(x["sr"] for x in sorted(c, key=lambda x: x["sr"]))
print(", ".join(f"{k / 1000:g} kHz x{v}" for k, v in sr.items())
      + f'; {sum(x["channels"] == 2 for x in c)} stereo; {sum(x["subtype"] == "FLOAT" for x in c)} float32, '
      + f'{sum(x["subtype"] == "PCM_16" for x in c)} PCM16')
EOF
)
cat "${FILES[@]}" >/dev/null  # page cache

# --- 2. capstream ----------------------------------------------------------------
CS_OUT=$WORK/capstream
# best_capstream LABEL [prefix command...]: best wall clock of $RUNS runs over the clips
# in SEL (default: all), with EXTRA appended to the arguments -> BEST.
SEL=("${FILES[@]}")
EXTRA=()
best_capstream() {
    local label=$1 t0 t1 dt r
    shift
    BEST=
    for ((r = 1; r <= RUNS; r++)); do
        rm -rf "$CS_OUT"
        wait_idle "capstream $label run $r"
        t0=$(now)
        if ! "$@" "$BIN" features "${SEL[@]}" --out-dir "$CS_OUT" "${FEAT_ARGS[@]}" "${EXTRA[@]}" \
            >"$WORK/cs.log" 2>"$WORK/cs.err"; then
            echo "capstream ($label) failed:" >&2
            tail -n 20 "$WORK/cs.err" >&2
            exit 1
        fi
        t1=$(now)
        dt=$(elapsed "$t0" "$t1")
        echo "  capstream $label run $r: ${dt}s" >&2
        if build_busy; then
            WAIT_NOTES+=("capstream $label run $r: cargo/rustc running when it ended")
        fi
        if [[ -z $BEST ]] || awk -v a="$dt" -v b="$BEST" 'BEGIN { exit !(a < b) }'; then
            BEST=$dt
        fi
    done
    n_out=$(find "$CS_OUT" -name '*.npy' | wc -l)
    [[ $n_out == "${#SEL[@]}" ]] || echo "warning: capstream wrote $n_out of ${#SEL[@]} outputs" >&2
}

echo "== capstream features ($BIN, $RUNS runs each, best kept)" >&2
wait_idle "capstream start-up"
startup=
for r in 1 2 3; do
    t0=$(now)
    "${PIN[@]}" "$BIN" --version >/dev/null
    t1=$(now)
    dt=$(elapsed "$t0" "$t1")
    if [[ -z $startup ]] || awk -v a="$dt" -v b="$startup" 'BEGIN { exit !(a < b) }'; then startup=$dt; fi
done
best_capstream "unpinned"
cs_free=$BEST
best_capstream "${PIN[*]:-unpinned}" "${PIN[@]}"
cs_pin=$BEST  # outputs of this (last) run are the ones compared

# --- 3. librosa ------------------------------------------------------------------
echo "== librosa (${PIN[*]:-unpinned}, one process, warm-up untimed, $RUNS runs, best kept)" >&2
LR_OUT=$WORK/librosa
lr_json=$("${PIN[@]}" "$PY" "$HELPER" librosa "$CLIPS" "$LR_OUT" --runs "$RUNS")
echo "  $lr_json" >&2
fmt() { "$PY" "$HELPER" fmt "$@"; }
field() { "$PY" -c 'import json,sys; v=json.loads(sys.argv[1]); [v:=v[k] for k in sys.argv[2:]]; print(v)' "$@"; }
lr_s=$(field "$lr_json" best_s)
while IFS= read -r note; do [[ -n $note ]] && WAIT_NOTES+=("$note"); done < <(fmt waits "$lr_json")

echo "== parity" >&2
cmp_json=$("$PY" "$HELPER" compare "$CLIPS" "$CS_OUT" "$LR_OUT")
echo "  $cmp_json" >&2

# --- 3b. where the time goes (diagnostics, pinned) ----------------------------------
echo "== diagnostics (${PIN[*]:-unpinned})" >&2
mapfile -t SEL < <(printf '%s\n' "${FILES[@]}" | grep '_16000_')
n16sel=${#SEL[@]}
best_capstream "16 kHz clips only, ${PIN[*]:-unpinned}" "${PIN[@]}"
cs16=$BEST
lr16_json=$("${PIN[@]}" "$PY" "$HELPER" librosa "$CLIPS" "$WORK/lr16" --runs "$RUNS" \
    --glob '*_16000_*.wav' --label " (16 kHz clips only)")
lr16=$(field "$lr16_json" best_s)
while IFS= read -r note; do [[ -n $note ]] && WAIT_NOTES+=("$note"); done < <(fmt waits "$lr16_json")
mapfile -t SEL < <(printf '%s\n' "${FILES[@]}" | grep -v '_16000_')
nressel=${#SEL[@]}
best_capstream "resampled clips only, ${PIN[*]:-unpinned}" "${PIN[@]}"
csres=$BEST
# Clip names are clipNNN_RATE_...; 16000 is the only RATE starting with 1.
lrres_json=$("${PIN[@]}" "$PY" "$HELPER" librosa "$CLIPS" "$WORK/lrres" --runs "$RUNS" \
    --glob 'clip???_[!1]*.wav' --label " (resampled clips only)")
lrres=$(field "$lrres_json" best_s)
while IFS= read -r note; do [[ -n $note ]] && WAIT_NOTES+=("$note"); done < <(fmt waits "$lrres_json")
SEL=("${FILES[@]}")
declare -A CSQ
for q in fast balanced high; do
    EXTRA=(--resample-quality "$q")
    best_capstream "--resample-quality $q, ${PIN[*]:-unpinned}" "${PIN[@]}"
    CSQ[$q]=$BEST
done
EXTRA=()
# The high run was the last: its outputs are in $CS_OUT (the sinc filter at its longest).
cmp_sinc_json=$("$PY" "$HELPER" compare "$CLIPS" "$CS_OUT" "$LR_OUT")
echo "  high: $cmp_sinc_json" >&2
lr_stages=$(fmt stages "$lr_json")
audio16=$("$PY" - "$CLIPS" <<'EOF2'
import json, sys
from pathlib import Path
c = json.loads((Path(sys.argv[1]) / "manifest.json").read_text())["clips"]
print(f'{sum(x["seconds"] for x in c if x["sr"] == 16000):.1f} {sum(x["seconds"] for x in c if x["sr"] != 16000):.1f}')
EOF2
)
read -r audio16 audiores <<<"$audio16"

# --- 4. speech -------------------------------------------------------------------
echo "== speech (${PIN[*]:-unpinned}, $SPEAK_REPS runs per sentence, best kept)" >&2
wait_idle "speech"
sp_args=(--reps "$SPEAK_REPS")
((${#PIN[@]})) && sp_args+=(--pin)
sp_json=$("$PY" "$HELPER" speak "$BIN" "${sp_args[@]}")
while IFS= read -r note; do [[ -n $note ]] && WAIT_NOTES+=("$note"); done < <(fmt waits "$sp_json")

# --- 5. report -------------------------------------------------------------------
cps() { awk -v n="$n_files" -v s="$1" 'BEGIN { printf "%.1f", n / s }'; }
xrt() { awk -v a="$audio_s" -v s="$1" 'BEGIN { printf "%.0f", a / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
f3() { awk -v v="$1" 'BEGIN { printf "%.3g", v }'; }
# nostart SECONDS: capstream seconds less the start-up of one process.
nostart() { awk -v s="$1" -v u="$startup" 'BEGIN { printf "%.3f", s - u }'; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
dirty=$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo "+dirty")

same_max=$(field "$cmp_json" same_rate max_abs)
same_n=$(field "$cmp_json" same_rate clips)
same_shape=$(field "$cmp_json" same_rate shape_mismatch)
res_n=$(field "$cmp_json" resampled clips)
res_eq=$(field "$cmp_json" resampled frames_equal)
res_med=$(field "$cmp_json" resampled median_abs)
res_mean=$(field "$cmp_json" resampled mean_abs)
res_p99=$(field "$cmp_json" resampled p99_abs)
res_max=$(field "$cmp_json" resampled max_abs)
res_frac=$(field "$cmp_json" resampled frac_over_1db)
res_pb_med=$(field "$cmp_json" resampled median_abs_passband)
res_pb_p99=$(field "$cmp_json" resampled p99_abs_passband)
res_pb_max=$(field "$cmp_json" resampled max_abs_passband)
res_pb_int=$(field "$cmp_json" resampled max_abs_passband_interior)
by_sr=$(fmt by_sr "$cmp_json")
worst=$(fmt worst "$cmp_json")
worst_pb=$(fmt worst_pb "$cmp_json")
frames_diff=$(fmt frames_diff "$cmp_json")
sp() { field "$sp_json" "$@"; }
sp_rows=$(fmt sp_rows "$sp_json")
if ((${#WAIT_NOTES[@]})); then
    waits=$(printf -- '- %s\n' "${WAIT_NOTES[@]}")
else
    waits="- none: no cargo/rustc process was running before any timed run"
fi

section=$(cat <<EOF
## Audio: capstream features vs librosa, and capstream speak vs espeak-ng

Command: \`bash benches/audio/bench.sh\`   Date: $(date -u +%Y-%m-%dT%H:%MZ)
Machine: $cpu, nproc=$(env -u OMP_NUM_THREADS nproc), $(uname -sr), no GPU
Versions: $("$BIN" --version) (git $(git rev-parse --short HEAD 2>/dev/null || echo "?")$dirty, binary built $(date -u -r "$BIN" +%Y-%m-%dT%H:%MZ)), librosa $(field "$lr_json" librosa), soxr $(field "$lr_json" soxr), numba $(field "$lr_json" numba), numpy $(field "$lr_json" numpy), scipy $(field "$lr_json" scipy), soundfile $(field "$lr_json" soundfile) (libsndfile $(field "$lr_json" libsndfile)), Python $(field "$lr_json" python), espeak-ng $(sp espeak | awk '{ print $4 }')
Input: $n_files synthetic WAV clips (seeded; tones, chirps, noise), ${audio_s} s of audio in all, 1-10 s each, ${mb} MiB; $mix.
Features: 16 kHz, n_fft 1024, hop 256, 80 Slaney mels, power 2, dB (ref 1, amin 1e-10, top_db 80), center with zero padding; clips at other rates are resampled first (capstream: rubato's FFT resampler, the default \`--resample-quality fft\`; librosa: soxr_hq).
capstream: one process for all clips (\`features CLIP... --out-dir DIR ${FEAT_ARGS[*]}\`), whole-process wall clock including start-up (${startup}s for \`--version\` alone). librosa: one Python process, imports and warm-up (numba JIT, $(field "$lr_json" warmup_s)s) untimed; read + mono + resample + mel + dB + \`np.save\` per clip. OMP/MKL/OpenBLAS/numba threads = 1. Best of $RUNS runs.

| what | cores | seconds | clips/s | x real time | vs librosa |
|---|---|---|---|---|---|
| capstream features, ${PIN[*]:-unpinned} | 1 | $cs_pin | $(cps "$cs_pin") | $(xrt "$cs_pin") | $(ratio "$cs_pin" "$lr_s")x |
| capstream features, unpinned | 1 thread, free to move | $cs_free | $(cps "$cs_free") | $(xrt "$cs_free") | $(ratio "$cs_free" "$lr_s")x |
| librosa 0.11, ${PIN[*]:-unpinned} | 1 | $lr_s | $(cps "$lr_s") | $(xrt "$lr_s") | 1.00x |

Per-core ratio (capstream pinned / librosa pinned): **$(ratio "$cs_pin" "$lr_s")x** clips/s. Without capstream's start-up ($(nostart "$cs_pin") s, $(awk -v n="$n_files" -v s="$(nostart "$cs_pin")" 'BEGIN { printf "%.0f", n / s }') clips/s): **$(awk -v h="$lr_s" -v s="$cs_pin" -v u="$startup" 'BEGIN { printf "%.2f", h / (s - u) }')x**.
Runs: capstream unpinned/pinned best of $RUNS; librosa runs $(field "$lr_json" runs) s.

Where the time goes (${PIN[*]:-unpinned}, best of $RUNS):

| what | clips | seconds | clips/s | vs librosa (same clips) | seconds without start-up | vs librosa without start-up |
|---|---|---|---|---|---|---|
| capstream, 16 kHz clips only (no resampling; ${audio16} s of audio) | $n16sel | $cs16 | $(awk -v n="$n16sel" -v s="$cs16" 'BEGIN { printf "%.1f", n / s }') | $(ratio "$cs16" "$lr16")x | $(nostart "$cs16") | $(ratio "$(nostart "$cs16")" "$lr16")x |
| librosa, 16 kHz clips only | $n16sel | $lr16 | $(awk -v n="$n16sel" -v s="$lr16" 'BEGIN { printf "%.1f", n / s }') | 1.00x | | |
| capstream, resampled clips only (${audiores} s of audio) | $nressel | $csres | $(awk -v n="$nressel" -v s="$csres" 'BEGIN { printf "%.1f", n / s }') | $(ratio "$csres" "$lrres")x | $(nostart "$csres") | $(ratio "$(nostart "$csres")" "$lrres")x |
| librosa, resampled clips only | $nressel | $lrres | $(awk -v n="$nressel" -v s="$lrres" 'BEGIN { printf "%.1f", n / s }') | 1.00x | | |
| capstream, all clips, \`--resample-quality fast\` (64-tap) | $n_files | ${CSQ[fast]} | $(cps "${CSQ[fast]}") | $(ratio "${CSQ[fast]}" "$lr_s")x | $(nostart "${CSQ[fast]}") | $(ratio "$(nostart "${CSQ[fast]}")" "$lr_s")x |
| capstream, all clips, \`--resample-quality balanced\` (128-tap) | $n_files | ${CSQ[balanced]} | $(cps "${CSQ[balanced]}") | $(ratio "${CSQ[balanced]}" "$lr_s")x | $(nostart "${CSQ[balanced]}") | $(ratio "$(nostart "${CSQ[balanced]}")" "$lr_s")x |
| capstream, all clips, \`--resample-quality high\` (256-tap) | $n_files | ${CSQ[high]} | $(cps "${CSQ[high]}") | $(ratio "${CSQ[high]}" "$lr_s")x | $(nostart "${CSQ[high]}") | $(ratio "$(nostart "${CSQ[high]}")" "$lr_s")x |
| capstream, all clips, default (\`fft\`: rubato's FFT resampler, ~1024-frame sub-chunks) | $n_files | $cs_pin | $(cps "$cs_pin") | $(ratio "$cs_pin" "$lr_s")x | $(nostart "$cs_pin") | $(ratio "$(nostart "$cs_pin")" "$lr_s")x |

Every rate pair here is rational with few phases, so each sinc quality resamples with exact filter phases (one dot product per output sample); the tap count is the filter length at the input rate. The FFT resampler filters whole sub-chunks in the frequency domain.

librosa's time by step (best full run): $lr_stages.
librosa's time by step, resampled clips only: $(fmt stages "$lrres_json").
Estimated capstream time outside start-up and outside the 16 kHz clips (i.e. resampled clips incl. resampling): $(awk -v a="$cs_pin" -v b="$cs16" 'BEGIN { printf "%.2f", a - b }') s; librosa's resample step alone: $("$PY" -c 'import json,sys; print("%.2f" % json.loads(sys.argv[1])["stages_best"].get("resample", 0))' "$lr_json") s.

Parity (capstream .npy vs librosa .npy, dB):

- 16 kHz clips (no resampling): $same_n clips, shape mismatches $same_shape, **max abs difference $(f3 "$same_max") dB** (target < 1e-3).
- Resampled clips: $res_n clips, frame counts equal in $res_eq/$res_n (differences: $frames_diff); abs difference over all cells: median $(f3 "$res_med") dB, mean $(f3 "$res_mean") dB, p99 $(f3 "$res_p99") dB, max $(f3 "$res_max") dB; $(awk -v v="$res_frac" 'BEGIN { printf "%.2f", 100 * v }')% of cells differ by more than 1 dB.
  Largest: $worst.
  Passband only (mel bands whose upper edge is below 85% of the lower of the source and target Nyquist, i.e. outside both resamplers' transition bands): median $(f3 "$res_pb_med") dB, p99 $(f3 "$res_pb_p99") dB, max $(f3 "$res_pb_max") dB ($worst_pb); excluding the first and last 4 frames (windows that reach past the clip edges): max $(f3 "$res_pb_int") dB.

With the 256-tap sinc (\`--resample-quality high\`) instead, resampled clips: median $(f3 "$(field "$cmp_sinc_json" resampled median_abs)") dB, p99 $(f3 "$(field "$cmp_sinc_json" resampled p99_abs)") dB, max $(f3 "$(field "$cmp_sinc_json" resampled max_abs)") dB, $(awk -v v="$(field "$cmp_sinc_json" resampled frac_over_1db)" 'BEGIN { printf "%.2f", 100 * v }')% of cells over 1 dB; passband only: median $(f3 "$(field "$cmp_sinc_json" resampled median_abs_passband)") dB, p99 $(f3 "$(field "$cmp_sinc_json" resampled p99_abs_passband)") dB.

| source rate | clips | median of per-clip median abs diff (dB) | max abs diff (dB) |
|---|---|---|---|
$by_sr

Speech, ${PIN[*]:-unpinned}, $(sp n) caption-like sentences, best of $SPEAK_REPS per sentence; RTF = process wall clock / audio seconds (lower is faster).
\`capstream speak "TEXT" --out X.wav\` (espeak-ng 22.05 kHz, resampled to 16 kHz, PCM16 WAV) against \`espeak-ng $(printf '%s ' -v en-us -s 175 -p 50)--stdout "TEXT" >/dev/null\` (the same voice, rate and pitch capstream passes).

| what | mean s / sentence | mean RTF | median RTF |
|---|---|---|---|
| capstream speak | $(f3 "$(sp mean_capstream_s)") | $(f3 "$(sp rtf_capstream_mean)") | $(f3 "$(sp rtf_capstream_median)") |
| espeak-ng alone | $(f3 "$(sp mean_espeak_s)") | $(f3 "$(sp rtf_espeak_mean)") | $(f3 "$(sp rtf_espeak_median)") |

Mean audio per sentence $(f3 "$(sp mean_audio_s)") s. Wrapper overhead: $(awk -v v="$(sp overhead_mean_s)" 'BEGIN { printf "%.0f", v * 1000 }') ms per sentence on average, of which process start-up (\`capstream --version\`, ${PIN[*]:-unpinned}) is $(awk -v v="$(sp startup_s)" 'BEGIN { printf "%.0f", v * 1000 }') ms. Largest audio length difference capstream vs espeak-ng: $(f3 "$(sp audio_len_max_diff_s)") s.

<details><summary>Per sentence</summary>

| # | chars | audio s | capstream ms | RTF | espeak-ng ms | RTF |
|---|---|---|---|---|---|---|
$sp_rows

</details>

Waits for the concurrent CI build (cargo/rustc) before timed runs:
$waits
EOF
)

echo
echo "$section"
echo "$section" >"$RESULTS"
echo "(written to $RESULTS)" >&2
