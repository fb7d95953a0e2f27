#!/usr/bin/env bash
# BLIP captioning end to end on CPU: `capstream caption` against transformers'
# BlipForConditionalGeneration.generate, same images, same thread count, greedy,
# exactly $BENCH_TOKENS new tokens, batch 1 and batch 8.
#
#   bash benches/blip/bench.sh            (from anywhere; it cd's to the repository root)
#
# Needs target/release/capstream (cargo build --release) and .venv with transformers,
# torch, pillow, numpy, safetensors (no torchvision: BlipImageProcessor stays on PIL).
# The checkpoint is RANDOM with the real blip-image-captioning-base shapes
# (benches/blip/make_base_checkpoint.py; its [SEP] bias of -10000 means no early stop),
# so the numbers are speed / memory only; captions are gibberish.
# Env: CAPSTREAM (binary), PYTHON (interpreter), BENCH_DATA (cache dir, default
#      target/bench-data/blip), BENCH_COUNT (images, default 8), BENCH_RUNS (default 3,
#      best is kept), BENCH_THREADS (default 2), BENCH_TOKENS (default 20),
#      BENCH_WAIT (seconds to wait for cargo/rustc or other CPU load to go away before
#      each timed run, default 1800), BENCH_OUT (markdown file, default
#      benches/blip/RESULTS.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN=${CAPSTREAM:-target/release/capstream}
PY=${PYTHON:-.venv/bin/python}
DATA=${BENCH_DATA:-target/bench-data/blip}
COUNT=${BENCH_COUNT:-8}
RUNS=${BENCH_RUNS:-3}
THREADS=${BENCH_THREADS:-2}
TOKENS=${BENCH_TOKENS:-20}
WAIT_MAX=${BENCH_WAIT:-1800}
OUT_MD=${BENCH_OUT:-benches/blip/RESULTS.md}
MODEL=$DATA/base
IMAGES_DIR=$DATA/images
HELP=benches/blip/bench.py

[[ -x $BIN ]] || { echo "no $BIN: run cargo build --release first" >&2; exit 1; }
[[ -x $PY ]] || { echo "no $PY: create the venv first" >&2; exit 1; }

export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/capstream-blip-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# 1. Checkpoint (cached; built into a temporary folder, then renamed).
if [[ ! -s $MODEL/model.safetensors || ! -s $MODEL/tokenizer.json || ! -s $MODEL/config.json ]]; then
    echo "== building the random BLIP base checkpoint in $MODEL" >&2
    rm -rf "$MODEL.tmp"
    "$PY" benches/blip/make_base_checkpoint.py "$MODEL.tmp" --variant base >&2
    rm -rf "$MODEL"
    mv "$MODEL.tmp" "$MODEL"
fi
WEIGHTS=$(stat -c %s "$MODEL/model.safetensors")

# 2. Images (cached).
"$PY" "$HELP" gen "$IMAGES_DIR" --count "$COUNT"
mapfile -t IMAGES < <(for ((i = 0; i < COUNT; i++)); do printf '%s/img%02d.png\n' "$IMAGES_DIR" "$i"; done)
N=${#IMAGES[@]}
# Warm the page cache so neither side pays for cold reads.
cat "$MODEL/model.safetensors" "${IMAGES[@]}" >/dev/null

# 3. Quiet machine: wait for cargo / rustc (and any other CPU hog) before each timed run.
WAITED=0
BUSY_NOTES=()
cpu_busy_pct() {  # whole-machine busy % over 2 s
    local a b
    a=($(head -n1 /proc/stat)); sleep 2; b=($(head -n1 /proc/stat))
    local ta=0 tb=0 i
    for ((i = 1; i < ${#a[@]}; i++)); do ta=$((ta + a[i])); tb=$((tb + b[i])); done
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) tot=$((tb - ta))
    echo $(( tot > 0 ? 100 * (tot - idle) / tot : 0 ))
}
builds_running() { pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null; }
wait_quiet() {
    local t0 waited_here=0 busy was_busy=0
    t0=$(date +%s)
    while :; do
        if builds_running; then
            busy=build
        else
            busy=$(cpu_busy_pct)
            ((busy < 20)) && break
        fi
        if ((was_busy == 0)); then
            echo "  waiting for the machine to go quiet ($( [[ $busy == build ]] && echo "cargo/rustc running" || echo "CPU ${busy}% busy"))..." >&2
        fi
        was_busy=1
        waited_here=$(( $(date +%s) - t0 ))
        if ((waited_here > WAIT_MAX)); then
            echo "warning: machine still busy after ${WAIT_MAX}s; timing anyway" >&2
            BUSY_NOTES+=("**Warning:** a run was timed while the machine was busy ($( [[ $busy == build ]] && echo "cargo/rustc running" || echo "CPU ${busy}% busy"))")
            break
        fi
        sleep 5
    done
    if ((was_busy)); then
        waited_here=$(( $(date +%s) - t0 ))
        WAITED=$((WAITED + waited_here))
        echo "  quiet after ${waited_here}s" >&2
    fi
}
# Machine-wide busy CPU seconds so far (all cores, /proc/stat, idle and iowait excluded).
TICK=$(getconf CLK_TCK)
busy_s() { awk -v t="$TICK" 'NR == 1 { b = 0; for (i = 2; i <= NF; i++) if (i != 5 && i != 6 && i < 10) b += $i; printf "%.2f", b / t; exit }' /proc/stat; }
# run_was_clean BUSY0 BUSY1 WALL TIMEFILE: a run is clean when no build is running at its end and
# the CPU time spent outside the timed process (machine busy - process user+sys) stays under
# 10% of one core over the run. Otherwise it is discarded and redone (up to 3 tries).
run_was_clean() {
    local other
    other=$(awk -v b0="$1" -v b1="$2" -v f="$4" 'BEGIN {
        while ((getline l < f) > 0) if (l ~ /(User|System) time \(seconds\)/) { sub(/.*: /, "", l); p += l }
        printf "%.2f", (b1 - b0) - p }')
    OTHER_S=$other
    ! builds_running && awk -v o="$other" -v w="$3" 'BEGIN { exit !(o < 0.1 * w) }'
}

wait_quiet  # a build in progress may be about to replace the binary
BIN_MTIME0=$(stat -c %Y "$BIN")

# peak_kib FILE: "Maximum resident set size" from /usr/bin/time -v output.
peak_kib() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }

# time_capstream LABEL OUTFILE ARGS...: best wall clock of $RUNS runs of `capstream caption`.
# Sets BEST (s), PEAK (KiB, max over runs), RUNS_S (list). OUTFILE gets the last run's stdout.
time_capstream() {
    local label=$1 outfile=$2; shift 2
    local r t0 t1 dt rc tries b0 b1
    BEST= PEAK=0 RUNS_S=
    for ((r = 1; r <= RUNS; r++)); do
        for ((tries = 0; tries < 3; tries++)); do
            wait_quiet
            b0=$(busy_s)
            t0=$(now)
            rc=0
            /usr/bin/time -v -o "$WORK/time.txt" "$BIN" caption --model "$MODEL" \
                --max-new-tokens "$TOKENS" --min-new-tokens "$TOKENS" --threads "$THREADS" \
                --device cpu --json "$@" >"$outfile" 2>"$WORK/cs.err" || rc=$?
            t1=$(now)
            b1=$(busy_s)
            dt=$(sub "$t1" "$t0")
            run_was_clean "$b0" "$b1" "$dt" "$WORK/time.txt" && break
            echo "  capstream $label run $r: other processes used ${OTHER_S} CPU-s during the ${dt}s run; redoing" >&2
            BUSY_NOTES+=("A capstream run was discarded and redone because other processes used the CPU during it")
        done
        echo "  capstream $label run $r: ${dt}s rc=$rc peak $(peak_kib "$WORK/time.txt") KiB" >&2
        if [[ -s $WORK/cs.err ]]; then sed 's/^/    stderr: /' "$WORK/cs.err" >&2; fi
        RC=$rc
        RUNS_S+="${RUNS_S:+, }$dt"
        local pk; pk=$(peak_kib "$WORK/time.txt")
        ((pk > PEAK)) && PEAK=$pk
        if [[ -z $BEST ]] || awk -v a="$dt" -v b="$BEST" 'BEGIN { exit !(a < b) }'; then BEST=$dt; fi
    done
}

echo "== capstream ($BIN, --threads $THREADS, $RUNS runs each, best kept)" >&2
printf 'not an image' >"$WORK/not-an-image.png"
# Load only: start-up + libtorch init + checkpoint load; the one input fails to decode (exit 1)
# before any inference.
time_capstream "load only (1 undecodable file)" "$WORK/cs_load.jsonl" --batch-size 1 "$WORK/not-an-image.png"
grep -q '"error"' "$WORK/cs_load.jsonl" || echo "warning: load-only run did not report a decode error" >&2
cs_load=$BEST cs_load_peak=$PEAK cs_load_runs=$RUNS_S

time_capstream "1 image, batch 1" "$WORK/cs_one.jsonl" --batch-size 1 "${IMAGES[0]}"
cs_one=$BEST cs_one_runs=$RUNS_S

time_capstream "batch 1" "$WORK/cs_b1.jsonl" --batch-size 1 "${IMAGES[@]}"
[[ $RC == 0 ]] || { echo "capstream batch 1 failed" >&2; cat "$WORK/cs_b1.jsonl" >&2; exit 1; }
cs_b1=$BEST cs_b1_peak=$PEAK cs_b1_runs=$RUNS_S

time_capstream "batch 8" "$WORK/cs_b8.jsonl" --batch-size 8 "${IMAGES[@]}"
[[ $RC == 0 ]] || { echo "capstream batch 8 failed" >&2; cat "$WORK/cs_b8.jsonl" >&2; exit 1; }
cs_b8=$BEST cs_b8_peak=$PEAK cs_b8_runs=$RUNS_S

# bf16 on both sides (capstream --dtype bf16 on CPU; transformers dtype=torch.bfloat16):
# the precision the CPU's AVX512-BF16 GEMMs run at about 2.5x the f32 rate.
time_capstream "bf16 load only" "$WORK/cs_load_bf16.jsonl" --dtype bf16 --batch-size 1 "$WORK/not-an-image.png"
cs_load_bf=$BEST cs_load_bf_peak=$PEAK
time_capstream "bf16 batch 8" "$WORK/cs_b8_bf16.jsonl" --dtype bf16 --batch-size 8 "${IMAGES[@]}"
[[ $RC == 0 ]] || { echo "capstream bf16 batch 8 failed" >&2; cat "$WORK/cs_b8_bf16.jsonl" >&2; exit 1; }
cs_b8_bf=$BEST cs_b8_bf_peak=$PEAK cs_b8_bf_runs=$RUNS_S

# time_hf B OUTFILE [DTYPE]: one Python process; best of $RUNS generate passes over all images.
time_hf() {
    local b=$1 outfile=$2 dtype=${3:-f32} tries b0 b1 t0 t1
    for ((tries = 0; tries < 3; tries++)); do
        wait_quiet
        b0=$(busy_s)
        t0=$(now)
        /usr/bin/time -v -o "$WORK/time_hf.txt" "$PY" "$HELP" hf "$MODEL" --batch-size "$b" \
            --runs "$RUNS" --threads "$THREADS" --max-new-tokens "$TOKENS" --min-new-tokens "$TOKENS" \
            --dtype "$dtype" --out "$outfile" "${IMAGES[@]}" 2>"$WORK/hf.err" \
            || { cat "$WORK/hf.err" >&2; exit 1; }
        t1=$(now)
        b1=$(busy_s)
        run_was_clean "$b0" "$b1" "$(sub "$t1" "$t0")" "$WORK/time_hf.txt" && break
        echo "  transformers batch $b: other processes used ${OTHER_S} CPU-s during the run; redoing" >&2
        BUSY_NOTES+=("A transformers process was discarded and redone because other processes used the CPU during it")
    done
    # Drop progress bars and the expected PIL-fallback notice.
    grep -vE 'Loading weights|falling back to `BlipImageProcessorPil`|^\s*$' "$WORK/hf.err" \
        | sed 's/^/    stderr: /' >&2 || true
    HF_PEAK_TIME=$(peak_kib "$WORK/time_hf.txt")
}
field() { "$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }

echo "== transformers (torch.set_num_threads($THREADS), OMP_NUM_THREADS=$THREADS, $RUNS runs each in one process, best kept)" >&2
time_hf 1 "$WORK/hf_b1.json"
hf_b1=$(field "$WORK/hf_b1.json" best_s) hf_b1_runs=$(field "$WORK/hf_b1.json" runs | tr -d '[]')
hf_b1_peak=$HF_PEAK_TIME hf_load=$(field "$WORK/hf_b1.json" load_s)
echo "  transformers batch 1: runs $hf_b1_runs s, load ${hf_load}s, peak $hf_b1_peak KiB" >&2
time_hf 8 "$WORK/hf_b8.json"
hf_b8=$(field "$WORK/hf_b8.json" best_s) hf_b8_runs=$(field "$WORK/hf_b8.json" runs | tr -d '[]')
hf_b8_peak=$HF_PEAK_TIME hf_load8=$(field "$WORK/hf_b8.json" load_s)
echo "  transformers batch 8: runs $hf_b8_runs s, load ${hf_load8}s, peak $hf_b8_peak KiB" >&2
hf_stable=$(field "$WORK/hf_b1.json" runs_stable)/$(field "$WORK/hf_b8.json" runs_stable)
time_hf 8 "$WORK/hf_b8_bf16.json" bf16
hf_b8_bf=$(field "$WORK/hf_b8_bf16.json" best_s) hf_b8_bf_runs=$(field "$WORK/hf_b8_bf16.json" runs | tr -d '[]')
hf_b8_bf_peak=$HF_PEAK_TIME
echo "  transformers bf16 batch 8: runs $hf_b8_bf_runs s, peak $hf_b8_bf_peak KiB" >&2

# 4. Token ids.
cmp() { "$PY" "$HELP" compare --summary "$1" "$2"; }
cmp_cs_hf_b1=$(cmp "$WORK/cs_b1.jsonl" "$WORK/hf_b1.json")
cmp_cs_hf_b8=$(cmp "$WORK/cs_b8.jsonl" "$WORK/hf_b8.json")
cmp_hf_b1_b8=$(cmp "$WORK/hf_b1.json" "$WORK/hf_b8.json")
cmp_cs_b1_b8=$(cmp "$WORK/cs_b1.jsonl" "$WORK/cs_b8.jsonl")
cmp_bf_cs_hf=$(cmp "$WORK/cs_b8_bf16.jsonl" "$WORK/hf_b8_bf16.json")
cmp_bf_cs_f32=$(cmp "$WORK/cs_b8_bf16.jsonl" "$WORK/cs_b8.jsonl")
cmp_bf_hf_f32=$(cmp "$WORK/hf_b8_bf16.json" "$WORK/hf_b8.json")
per_image=$("$PY" - "$WORK" <<'EOF'
import json, os, sys
sys.path.insert(0, "benches/blip")
from bench import _load_ids, _strip
w = sys.argv[1]
cs1, cs8 = _load_ids(f"{w}/cs_b1.jsonl"), _load_ids(f"{w}/cs_b8.jsonl")
hf1, hf8 = _load_ids(f"{w}/hf_b1.json"), _load_ids(f"{w}/hf_b8.json")
def eq(a, b):
    return "equal" if a is not None and b is not None and _strip(a) == _strip(b) else "**differ**"
for name in sorted(hf1):
    n = len(_strip(cs1[name])) if cs1.get(name) else "?"
    print(f"| {name} | {n} | {eq(cs1.get(name), hf1.get(name))} | {eq(cs8.get(name), hf8.get(name))} "
          f"| {eq(hf1.get(name), hf8.get(name))} | {eq(cs1.get(name), cs8.get(name))} |")
EOF
)
n_tokens=$("$PY" - "$WORK" <<'EOF'
import sys
sys.path.insert(0, "benches/blip")
from bench import _load_ids, _strip
w = sys.argv[1]
lens = sorted({len(_strip(v)) for f in ("cs_b1.jsonl", "cs_b8.jsonl", "hf_b1.json", "hf_b8.json")
               for v in _load_ids(f"{w}/{f}").values() if v is not None})
print(",".join(map(str, lens)))
EOF
)

BIN_MTIME1=$(stat -c %Y "$BIN")
[[ $BIN_MTIME0 == "$BIN_MTIME1" ]] || BUSY_NOTES+=("**Warning:** $BIN was rebuilt while the benchmark ran: capstream rows may mix two binaries")

# 5. Report.
ips() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.3f", n / s; else printf "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && b != "n/a") printf "%.2f", a / b; else printf "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
rss_ratio() { awk -v k="$1" -v w="$WEIGHTS" 'BEGIN { printf "%.2f", k * 1024 / w }'; }

cs_b1_ex=$(sub "$cs_b1" "$cs_load") cs_b8_ex=$(sub "$cs_b8" "$cs_load")
cs_b1_ips=$(ips "$N" "$cs_b1") cs_b8_ips=$(ips "$N" "$cs_b8")
cs_b1_ips_ex=$(ips "$N" "$cs_b1_ex") cs_b8_ips_ex=$(ips "$N" "$cs_b8_ex")
hf_b1_ips=$(ips "$N" "$hf_b1") hf_b8_ips=$(ips "$N" "$hf_b8")
cs_b8_bf_ex=$(sub "$cs_b8_bf" "$cs_load_bf")
cs_b8_bf_ips=$(ips "$N" "$cs_b8_bf") cs_b8_bf_ips_ex=$(ips "$N" "$cs_b8_bf_ex") hf_b8_bf_ips=$(ips "$N" "$hf_b8_bf")
cs_one_ex=$(sub "$cs_one" "$cs_load")

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|amx_tile)$' | tr '\n' ' ' | sed 's/ $//')
git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null && [[ -z $(git ls-files --others --exclude-standard src) ]] || echo "+dirty")"
tf_ver=$(field "$WORK/hf_b1.json" transformers) torch_ver=$(field "$WORK/hf_b1.json" torch)
pil_ver=$(field "$WORK/hf_b1.json" pillow) np_ver=$(field "$WORK/hf_b1.json" numpy)
hf_proc=$(field "$WORK/hf_b1.json" image_processor)
sizes=$("$PY" -c 'import sys; from PIL import Image; print(", ".join(sorted({"%dx%d" % Image.open(p).size for p in sys.argv[1:]})))' "${IMAGES[@]}")
notes=""
if ((WAITED > 0)); then
    notes+="Waited ${WAITED}s in all for cargo/rustc builds (or other CPU load) to finish before timed runs"
    if ! printf '%s\n' "${BUSY_NOTES[@]+"${BUSY_NOTES[@]}"}" | grep -q 'a run was timed while'; then
        notes+="; no kept run was timed during a build"
    fi
    notes+="."$'\n'
fi
if ((${#BUSY_NOTES[@]} > 0)); then
    notes+=$(printf '%s\n' "${BUSY_NOTES[@]}" | sort | uniq -c | awk '{ n = $1; $1 = ""; sub(/^ /, ""); printf "%s (%d time%s).\n", $0, n, (n > 1 ? "s" : "") }')$'\n'
fi

report=$(cat <<EOF
## BLIP captioning (base, CPU): capstream caption vs transformers generate

Command: \`bash benches/blip/bench.sh\`   Date: $(date -u +%Y-%m-%dT%H:%MZ)
Machine: $cpu ($flags), nproc=$(nproc), $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 2^20 }' /proc/meminfo), $(uname -sr), no GPU
Versions: $("$BIN" --version) (git $git_rev, binary built $(date -u -r "$BIN" +%Y-%m-%dT%H:%MZ)), transformers $tf_ver ($hf_proc), torch $torch_ver, pillow $pil_ver, numpy $np_ver
Model: random checkpoint with the real blip-image-captioning-base shapes (\`benches/blip/make_base_checkpoint.py\`, seed 0, float32, 224 M parameters, [SEP] logit bias -10000 so no caption stops early); model.safetensors = $WEIGHTS bytes ($(mib $((WEIGHTS / 1024))) MiB).
Input: $N synthetic PNGs ($sizes), resized to 384x384 by each side's own preprocessing.
Generation: greedy, exactly $TOKENS new tokens per image (min = max = $TOKENS; generated lengths seen: $n_tokens), fp32, $THREADS intra-op threads on both sides (capstream \`--threads $THREADS --device cpu\`; transformers \`torch.set_num_threads($THREADS)\`, OMP_NUM_THREADS=$THREADS).
Best of $RUNS runs. capstream: whole-process wall clock of \`capstream caption --model DIR --max-new-tokens $TOKENS --min-new-tokens $TOKENS --batch-size B --threads $THREADS --device cpu --json IMAGES...\`, and the same minus a load-only run (start-up + libtorch init + checkpoint load: one undecodable input, best ${cs_load}s, peak RSS $(mib "$cs_load_peak") MiB). transformers: one process per batch size, model + processor loaded once (${hf_load}s, not timed), then image open + BlipProcessor + \`model.generate\` timed over all images (batch 1: one call per image; batch 8: one call).

| what | batch | seconds (runs) | images/s | vs transformers | peak RSS | RSS / weights |
|---|---|---|---|---|---|---|
| capstream, whole process | 1 | $cs_b1 ($cs_b1_runs) | $cs_b1_ips | $(ratio "$cs_b1_ips" "$hf_b1_ips")x | $(mib "$cs_b1_peak") MiB | $(rss_ratio "$cs_b1_peak") |
| capstream, minus load (${cs_load}s) | 1 | $cs_b1_ex | $cs_b1_ips_ex | **$(ratio "$cs_b1_ips_ex" "$hf_b1_ips")x** | | |
| transformers generate | 1 | $hf_b1 ($hf_b1_runs) | $hf_b1_ips | 1.00x | $(mib "$hf_b1_peak") MiB | $(rss_ratio "$hf_b1_peak") |
| capstream, whole process | 8 | $cs_b8 ($cs_b8_runs) | $cs_b8_ips | $(ratio "$cs_b8_ips" "$hf_b8_ips")x | $(mib "$cs_b8_peak") MiB | $(rss_ratio "$cs_b8_peak") |
| capstream, minus load (${cs_load}s) | 8 | $cs_b8_ex | $cs_b8_ips_ex | **$(ratio "$cs_b8_ips_ex" "$hf_b8_ips")x** | | |
| transformers generate | 8 | $hf_b8 ($hf_b8_runs) | $hf_b8_ips | 1.00x | $(mib "$hf_b8_peak") MiB | $(rss_ratio "$hf_b8_peak") |

Peak RSS is \`/usr/bin/time -v\` "Maximum resident set size" of the whole process (max over runs for
capstream; the transformers process includes the Python interpreter, torch and transformers imports and
$RUNS generate passes). Weights = model.safetensors, $(mib $((WEIGHTS / 1024))) MiB fp32. capstream load-only
peak: $(mib "$cs_load_peak") MiB ($(rss_ratio "$cs_load_peak")x weights).
capstream on 1 image at batch 1: ${cs_one}s whole process (${cs_one_ex}s minus load; runs: $cs_one_runs).

Token ids (generated ids after the leading [DEC], matched by file):
capstream vs transformers, batch 1: $cmp_cs_hf_b1; batch 8: $cmp_cs_hf_b8.
transformers batch 1 vs batch 8: $cmp_hf_b1_b8; capstream batch 1 vs batch 8: $cmp_cs_b1_b8.
transformers runs gave identical ids run to run (batch 1/batch 8): $hf_stable.

| image | new tokens | capstream = transformers (b1) | capstream = transformers (b8) | transformers b1 = b8 | capstream b1 = b8 |
|---|---|---|---|---|---|
$per_image

bf16 at batch 8 (\`--dtype bf16\` on CPU; transformers \`from_pretrained(dtype=torch.bfloat16)\`, pixel values cast to bf16; same images, threads and tokens; best of $RUNS):

| what | seconds (runs) | images/s | vs transformers bf16 | vs transformers f32 | peak RSS | RSS / f32 weights |
|---|---|---|---|---|---|---|
| capstream bf16, whole process | $cs_b8_bf ($cs_b8_bf_runs) | $cs_b8_bf_ips | $(ratio "$cs_b8_bf_ips" "$hf_b8_bf_ips")x | $(ratio "$cs_b8_bf_ips" "$hf_b8_ips")x | $(mib "$cs_b8_bf_peak") MiB | $(rss_ratio "$cs_b8_bf_peak") |
| capstream bf16, minus load (${cs_load_bf}s) | $cs_b8_bf_ex | $cs_b8_bf_ips_ex | **$(ratio "$cs_b8_bf_ips_ex" "$hf_b8_bf_ips")x** | **$(ratio "$cs_b8_bf_ips_ex" "$hf_b8_ips")x** | | |
| transformers generate bf16 | $hf_b8_bf ($hf_b8_bf_runs) | $hf_b8_bf_ips | 1.00x | $(ratio "$hf_b8_bf_ips" "$hf_b8_ips")x | $(mib "$hf_b8_bf_peak") MiB | $(rss_ratio "$hf_b8_bf_peak") |

capstream bf16 load-only peak: $(mib "$cs_load_bf_peak") MiB ($(rss_ratio "$cs_load_bf_peak")x the f32 weights).
Token ids in bf16: capstream vs transformers (both bf16): $cmp_bf_cs_hf; capstream bf16 vs capstream f32: $cmp_bf_cs_f32; transformers bf16 vs transformers f32: $cmp_bf_hf_f32.

${notes}The weights are random, so captions and ids are meaningless, but the FLOPs and memory are those of
the real base model, and equal ids mean both sides picked the same argmax at every one of the $TOKENS steps.
EOF
)

echo "$report"
mkdir -p "$(dirname "$OUT_MD")"
printf '%s\n' "$report" >"$OUT_MD"
echo "(written to $OUT_MD)" >&2
