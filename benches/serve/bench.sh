#!/usr/bin/env bash
# `capstream serve` (dynamic batching) against a minimal FastAPI + uvicorn server around
# transformers' BlipForConditionalGeneration (benches/serve/peer.py, no batching), under
# load from `hey` at concurrency 1, 8 and 32, on each model.
#
#   bash benches/serve/bench.sh            (from anywhere; it cd's to the repository root)
#
# Per model, one server at a time (never both: they would share the 2 cores):
#   1. `capstream caption --batch-size 1` over 1 and over K copies of the image (median of
#      BENCH_CAPTION_RUNS each): per-image time without start-up = (t(K) - t(1)) / (K - 1).
#   2. capstream serve --pipeline <copy of pipelines/serve.toml> --http 127.0.0.1:PORT --model DIR:
#      wait for /readyz, one check request (caption + token ids kept), warm-up, then hey at
#      each concurrency, /metrics scraped before and after each run (mean caption batch).
#      SIGTERM, wait for it to drain and exit.
#   3. The peer on another free port: the same steps, then SIGTERM.
# Then a markdown report (stdout and BENCH_OUT): images/s, p50, p99 per run, and the target
# ratios (c=32: capstream/peer images/s >= 2x, capstream p99 / peer p99 < 2x; c=1: serve p50
# within 10% of the `capstream caption` per-image time).
#
# One body per model: hey sends the same file on every request (models/default's first
# sample JPEG; for base, benches/blip's img00.png re-encoded as JPEG q95).
# Requests per run: by default chosen so that each run lasts about BENCH_SECONDS: at c=1 from
# the warm-up's median latency, at c=8 and c=32 from the previous level's measured images/s,
# rounded up to a multiple of c (hey gives each of its c workers n/c requests) and at least c.
# Set BENCH_N_<MODEL> (e.g. BENCH_N_DEFAULT=600,2400,4800) to fix them for both servers.
# The base model at c=32 needs at least 32 requests, one per worker: a burst of ~70 s on the
# peer, not a steady state, and its p99 is the slowest of 32.
#
# Needs: target/release/capstream (cargo build --release), .venv with torch, transformers,
# pillow (fastapi and uvicorn are installed into it, pinned, when missing), hey (Debian
# package `hey`; installed with apt-get when missing and running as root), curl.
# Env: CAPSTREAM (binary), PYTHON (interpreter, default .venv/bin/python),
#      BENCH_MODELS (comma list: default, base, or model folders; default "default,base"),
#      BENCH_OUT (markdown file, default benches/serve/RESULTS.md; "-" for none),
#      BENCH_CONCURRENCY (default 1,8,32), BENCH_SECONDS (target seconds per run, default 30),
#      BENCH_N_<MODEL> (fixed requests per level, see above), BENCH_MAX_N (default 20000),
#      BENCH_WARMUP_<MODEL> (sequential warm-up requests; default 10, base 2),
#      BENCH_WARMUP_ROUNDS (then, where one request takes < 0.5 s, a burst of this many requests
#      per worker at the highest concurrency; default 4, 0 for none),
#      BENCH_SERVERS (default capstream,peer: which servers, in this order),
#      BENCH_CAPTION_TIMING (default 1; 0 skips the `capstream caption` timing),
#      BENCH_KEEP (1: keep the work folder with logs, hey CSVs and /metrics scrapes),
#      BENCH_THREADS (default 2), BENCH_CAPTION_RUNS (default 3),
#      BENCH_CAPTION_K / BENCH_CAPTION_K_<MODEL> (images in the long `capstream caption` run;
#      default 9 for base and model folders, 101 for default, whose ~15 ms per image would
#      otherwise drown in the ~50 ms run-to-run jitter of a 0.6 s start-up),
#      BENCH_RUN_LIMIT (hard limit per hey run in seconds, default 600),
#      BENCH_REQUEST_TIMEOUT (hey -t, default 300), BENCH_READY_TIMEOUT (default 300),
#      BENCH_BLIP_DATA (benches/blip's cache, default target/bench-data/blip),
#      BENCH_IMAGE_<MODEL> (the body file), BENCH_PIPELINE (default pipelines/serve.toml),
#      BENCH_WAIT (seconds to wait for cargo/rustc to finish before each timed step, default 1800).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

BIN=${CAPSTREAM:-target/release/capstream}
PY=${PYTHON:-.venv/bin/python}
MODELS=${BENCH_MODELS:-default,base}
OUT_MD=${BENCH_OUT:-benches/serve/RESULTS.md}
LEVELS=${BENCH_CONCURRENCY:-1,8,32}
TARGET_S=${BENCH_SECONDS:-30}
MAX_N=${BENCH_MAX_N:-20000}
THREADS=${BENCH_THREADS:-2}
CAPTION_RUNS=${BENCH_CAPTION_RUNS:-3}
CAPTION_K_ALL=${BENCH_CAPTION_K:-}
RUN_LIMIT=${BENCH_RUN_LIMIT:-600}
REQ_TIMEOUT=${BENCH_REQUEST_TIMEOUT:-300}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-300}
BLIP_DATA=${BENCH_BLIP_DATA:-target/bench-data/blip}
PIPELINE=${BENCH_PIPELINE:-pipelines/serve.toml}
WAIT_MAX=${BENCH_WAIT:-1800}
WARM_ROUNDS=${BENCH_WARMUP_ROUNDS:-4}
SERVERS=${BENCH_SERVERS:-capstream,peer}
CAPTION_TIMING=${BENCH_CAPTION_TIMING:-1}
KEEP=${BENCH_KEEP:-0}
FASTAPI_PIN=fastapi==0.163.2
UVICORN_PIN=uvicorn==0.54.0
HELP=benches/serve/report.py

[[ -x $BIN ]] || { echo "no $BIN: run cargo build --release first" >&2; exit 1; }
[[ -x $PY ]] || { echo "no $PY: create the venv first" >&2; exit 1; }
[[ -f $PIPELINE ]] || { echo "no $PIPELINE" >&2; exit 1; }
"$BIN" serve --help >/dev/null 2>&1 || { echo "$BIN has no 'serve' command" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time is needed (Debian package time)" >&2; exit 1; }
if ! command -v hey >/dev/null; then
    if [[ $(id -u) == 0 ]]; then
        echo "== installing hey (apt-get install -y hey)" >&2
        apt-get install -y hey >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y hey >/dev/null; }
    fi
    command -v hey >/dev/null || { echo "hey is needed: sudo apt-get install -y hey" >&2; exit 1; }
fi
if ! "$PY" -c 'import fastapi, uvicorn' 2>/dev/null; then
    echo "== installing $FASTAPI_PIN $UVICORN_PIN into $PY's environment" >&2
    "$PY" -m pip install -q "$FASTAPI_PIN" "$UVICORN_PIN"
fi

export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/capstream-serve-bench.XXXXXX")
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
SERVER_PID=
SERVER_NAME=

# Stop the running server (SIGTERM: capstream drains, uvicorn shuts down gracefully), at
# most 45 s, then SIGKILL. Sets STOP_RC.
stop_server() {
    STOP_RC=
    [[ -n $SERVER_PID ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 180; i++)); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "  $SERVER_NAME did not exit 45 s after SIGTERM; SIGKILL" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    STOP_RC=0
    wait "$SERVER_PID" 2>/dev/null || STOP_RC=$?
    SERVER_PID=
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server || true
    if [[ $KEEP == 1 ]]; then echo "(work files kept in $WORK)" >&2; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
jget() { "$PY" -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }

# Quiet machine: before each timed step (when no server of ours is busy), wait, at most
# BENCH_WAIT s in all, until no cargo / rustc runs and the machine is < 20% busy over 1 s.
WAITED=0
NOTES=()
builds_running() { pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null; }
cpu_busy_pct() {  # whole-machine busy % over 1 s (/proc/stat; idle and iowait excluded)
    local -a a b
    read -r -a a < /proc/stat; sleep 1; read -r -a b < /proc/stat
    local ta=0 tb=0 i
    for ((i = 1; i < 9 && i < ${#a[@]}; i++)); do ta=$((ta + a[i])); tb=$((tb + b[i])); done
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) tot=$((tb - ta))
    echo $(( tot > 0 ? 100 * (tot - idle) / tot : 0 ))
}
machine_busy() { builds_running && { BUSY_WHY="cargo/rustc running"; return 0; }
    local p; p=$(cpu_busy_pct); BUSY_WHY="CPU ${p}% busy"; ((p >= 20)); }
wait_quiet() {
    machine_busy || return 0
    echo "  waiting for the machine to go quiet ($BUSY_WHY)..." >&2
    local t0; t0=$(date +%s)
    while ((WAITED + $(date +%s) - t0 < WAIT_MAX)) && machine_busy; do sleep 4; done
    WAITED=$((WAITED + $(date +%s) - t0))
    if machine_busy; then
        echo "  warning: machine still busy ($BUSY_WHY) after ${WAIT_MAX}s of waiting in all; timing anyway" >&2
        NOTES+=("**Warning:** some steps were timed while the machine was busy with other work ($BUSY_WHY).")
    fi
}

# ---- models ------------------------------------------------------------------------------
model_dir() {  # NAME -> folder
    case $1 in
        default) echo "$ROOT/models/default" ;;
        base) echo "$ROOT/$BLIP_DATA/base" ;;
        *) realpath "$1" ;;
    esac
}
model_key() { basename "$1" | tr '[:lower:]' '[:upper:]' | tr -c 'A-Z0-9\n' '_'; }  # env suffix
ensure_model() {  # NAME: build base if needed
    if [[ $1 == base ]]; then
        local m=$BLIP_DATA/base
        if [[ ! -s $m/model.safetensors || ! -s $m/tokenizer.json || ! -s $m/config.json ]]; then
            echo "== building the random BLIP base checkpoint in $m (benches/blip/make_base_checkpoint.py)" >&2
            rm -rf "$m.tmp"
            "$PY" benches/blip/make_base_checkpoint.py "$m.tmp" --variant base >&2
            rm -rf "$m"
            mv "$m.tmp" "$m"
        fi
    fi
}
model_image() {  # NAME -> the body file (a JPEG)
    local key; key=$(model_key "$1")
    local var=BENCH_IMAGE_$key
    if [[ -n ${!var:-} ]]; then realpath "${!var}"; return; fi
    if [[ $1 == base ]]; then
        "$PY" benches/blip/bench.py gen "$BLIP_DATA/images" --count 8 >&2
        "$PY" "$HELP" jpeg "$BLIP_DATA/images/img00.png" "$WORK/base-img00.jpg"
        echo "$WORK/base-img00.jpg"
    else
        ls "$ROOT"/models/default/samples/images/*.jpg | sort | head -n1
    fi
}

# ---- servers -----------------------------------------------------------------------------
# start_server capstream|peer MODEL_DIR MAX_NEW_TOKENS: sets SERVER_PID, URL, READY_S.
start_server() {
    local which=$1 model=$2 tokens=$3 port t0
    port=$("$PY" "$HELP" port)
    URL=http://127.0.0.1:$port
    SERVER_NAME=$which
    t0=$(now)
    if [[ $which == capstream ]]; then
        "$BIN" serve --pipeline "$WORK/serve.toml" --http "127.0.0.1:$port" --model "$model" \
            >"$WORK/$which.log" 2>&1 &
    else
        "$PY" benches/serve/peer.py --model "$model" --host 127.0.0.1 --port "$port" \
            --threads "$THREADS" --max-new-tokens "$tokens" >"$WORK/$which.log" 2>&1 &
    fi
    SERVER_PID=$!
    local deadline=$(( $(date +%s) + READY_TIMEOUT ))
    while :; do
        if curl -sf -o /dev/null --max-time 2 "$URL/readyz"; then break; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "$which exited before it was ready; its log:" >&2
            tail -n 40 "$WORK/$which.log" >&2
            SERVER_PID=
            exit 1
        fi
        if (( $(date +%s) > deadline )); then
            echo "$which not ready after ${READY_TIMEOUT}s; its log:" >&2
            tail -n 40 "$WORK/$which.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    READY_S=$(sub "$(now)" "$t0")
    echo "  $which ready on $URL after ${READY_S}s (pid $SERVER_PID)" >&2
}

# CPU ticks: the whole machine's busy ones, and one process's (user + system, all threads).
machine_ticks() { awk 'NR == 1 { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICK=$(getconf CLK_TCK)

# hey_run N C CSV: one bounded hey run; sets HEY_RC (124: cut at BENCH_RUN_LIMIT) and
# OTHER_CPU_S: CPU seconds that processes other than the server and hey used meanwhile.
hey_run() {
    HEY_RC=0
    local m0 s0 m1 s1
    m0=$(machine_ticks); s0=$(proc_ticks "$SERVER_PID")
    /usr/bin/time -f '%U %S' -o "$3.time" timeout -k 30 -s INT "$RUN_LIMIT" hey -n "$1" -c "$2" -t "$REQ_TIMEOUT" -o csv -m POST \
        -T image/jpeg -D "$IMAGE" "$URL/v1/caption" >"$3" 2>"$3.err" || HEY_RC=$?
    m1=$(machine_ticks); s1=$(proc_ticks "$SERVER_PID")
    HEY_CPU_S=$(awk 'NF == 2 && $1 ~ /^[0-9.]+$/ { print $1 + $2 }' "$3.time" | tail -n1)
    HEY_CPU_S=${HEY_CPU_S:-0}
    SERVER_CPU_S=$(awk -v a="$s0" -v b="$s1" -v t="$TICK" 'BEGIN { printf "%.2f", (b - a) / t }')
    OTHER_CPU_S=$(awk -v a="$m0" -v b="$m1" -v s="$SERVER_CPU_S" -v h="$HEY_CPU_S" -v t="$TICK" \
        'BEGIN { o = (b - a) / t - s - h; printf "%.2f", (o < 0 ? 0 : o) }')
}

# bench_server capstream|peer NAME MODEL_DIR TOKENS
bench_server() {
    local which=$1 name=$2 model=$3 tokens=$4
    echo "== $name: $which" >&2
    wait_quiet
    start_server "$which" "$model" "$tokens"
    # Check request: the answer is kept for the same-answer check.
    curl -sf --max-time "$REQ_TIMEOUT" -H 'Content-Type: image/jpeg' --data-binary @"$IMAGE" \
        "$URL/v1/caption" >"$WORK/check.json" || { echo "$which: check request failed" >&2; tail -n 20 "$WORK/$which.log" >&2; exit 1; }
    "$PY" - "$WORK/check.json" "$name" "$which" "$READY_S" >>"$RESULTS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps(dict(kind="check", model=sys.argv[2], server=sys.argv[3], caption=r.get("caption"),
                      token_ids=r.get("token_ids"), status=r.get("status"), ready_s=float(sys.argv[4]))))
EOF
    echo "  check: $(jget "$(tail -n1 "$RESULTS")" caption)" >&2

    # Warm-up: sequential requests (their median latency sizes the c=1 run), then, where a
    # request is cheap (< 0.5 s), a burst at the highest concurrency.
    local key warm_var warm wn rate
    key=$(model_key "$name"); warm_var=BENCH_WARMUP_$key
    if [[ $name == base ]]; then wn=${!warm_var:-2}; else wn=${!warm_var:-10}; fi
    hey_run "$wn" 1 "$WORK/warm.csv"
    warm=$("$PY" "$HELP" hey "$WORK/warm.csv" --requests "$wn")
    local warm_p50; warm_p50=$(jget "$warm" p50_ms)
    [[ -n $warm_p50 ]] || { echo "$which: warm-up got no answer: $warm" >&2; cat "$WORK/warm.csv.err" >&2; exit 1; }
    rate=$(awk -v p="$warm_p50" 'BEGIN { printf "%.4f", 1000 / p }')
    echo "  warm-up: $wn sequential, p50 ${warm_p50} ms" >&2
    local cmax; cmax=$(tr ',' '\n' <<<"$LEVELS" | sort -n | tail -n1)
    if ((WARM_ROUNDS > 0)) && awk -v p="$warm_p50" 'BEGIN { exit !(p < 500) }'; then
        hey_run $((cmax * WARM_ROUNDS)) "$cmax" "$WORK/warm2.csv"
        echo "  warm-up: $((cmax * WARM_ROUNDS)) at c=$cmax: $("$PY" "$HELP" hey "$WORK/warm2.csv" --requests $((cmax * WARM_ROUNDS)))" >&2
    fi

    local fixed_var=BENCH_N_$key
    local -a fixed=()
    [[ -n ${!fixed_var:-} ]] && IFS=, read -r -a fixed <<<"${!fixed_var}"
    local i=0 c n res batch tout
    for c in ${LEVELS//,/ }; do
        if ((${#fixed[@]} > i)); then
            n=${fixed[i]}
        else
            n=$(awk -v t="$TARGET_S" -v r="$rate" -v c="$c" -v m="$MAX_N" 'BEGIN {
                n = t * r; k = int(n / c); if (k * c < n) k++; if (k < 1) k = 1
                while (k * c > m && k > 1) k--; print k * c }')
        fi
        ((n >= c)) || n=$c
        i=$((i + 1))
        wait_quiet
        rm -f "$WORK/m0.txt" "$WORK/m1.txt"
        [[ $which == capstream ]] && curl -sf --max-time 10 "$URL/metrics" >"$WORK/m0.txt" || true
        echo "  c=$c: $n requests..." >&2
        local t0; t0=$(now)
        hey_run "$n" "$c" "$WORK/run.csv"
        cp "$WORK/run.csv" "$WORK/$name-$which-c$c.csv"
        local dt; dt=$(sub "$(now)" "$t0")
        # Other work on the machine during the run (more than 5% of one core): flagged.
        if awk -v o="$OTHER_CPU_S" -v w="$dt" 'BEGIN { exit !(o > 0.05 * w) }'; then
            echo "  warning: other processes used ${OTHER_CPU_S} CPU-s during this ${dt}s run" >&2
            NOTES+=("**Warning:** other processes used ${OTHER_CPU_S} CPU-s during the ${dt} s $name $which c=$c run.")
        fi
        batch='{}'
        if [[ $which == capstream ]]; then
            curl -sf --max-time 10 "$URL/metrics" >"$WORK/m1.txt" || true
            batch=$("$PY" "$HELP" metrics "$WORK/m0.txt" "$WORK/m1.txt")
            cp "$WORK/m1.txt" "$WORK/$name-metrics-after-c$c.txt"
        fi
        res=$("$PY" "$HELP" hey "$WORK/run.csv" --requests "$n")
        tout=false; [[ $HEY_RC == 124 ]] && tout=true
        [[ $HEY_RC == 0 || $HEY_RC == 124 ]] || { echo "  hey failed (rc $HEY_RC):" >&2; cat "$WORK/run.csv.err" >&2; }
        "$PY" - "$res" "$batch" "$name" "$which" "$c" "$tout" "$dt" "$SERVER_CPU_S" "$HEY_CPU_S" "$OTHER_CPU_S" >>"$RESULTS" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
r.update(kind="run", batch=json.loads(sys.argv[2]), model=sys.argv[3], server=sys.argv[4], c=int(sys.argv[5]),
         timed_out=sys.argv[6] == "true", hey_s=float(sys.argv[7]), server_cpu_s=float(sys.argv[8]),
         hey_cpu_s=float(sys.argv[9]), other_cpu_s=float(sys.argv[10]))
print(json.dumps(r))
EOF
        echo "  c=$c: $(tail -n1 "$RESULTS")" >&2
        local got; got=$(jget "$res" ips)
        [[ -n $got ]] && awk -v g="$got" 'BEGIN { exit !(g > 0) }' && rate=$got
        # Stop early if the server died.
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "$which died; log:" >&2; tail -n 40 "$WORK/$which.log" >&2; exit 1; }
    done
    stop_server
    echo "  $which stopped (exit status $STOP_RC)" >&2
    "$PY" -c 'import json,sys; print(json.dumps(dict(kind="server", model=sys.argv[1], server=sys.argv[2], ready_s=float(sys.argv[3]), stop_rc=int(sys.argv[4]))))' \
        "$name" "$which" "$READY_S" "$STOP_RC" >>"$RESULTS"
    cp "$WORK/$which.log" "$WORK/$name-$which.log"
}

# caption_time NAME MODEL_DIR: median whole-process wall clock of `capstream caption
# --batch-size 1` over 1 image and over K copies of it.
caption_time() {
    local name=$1 model=$2 r t0 t1 dt
    local kvar=BENCH_CAPTION_K_$(model_key "$name")
    local CAPTION_K=${!kvar:-${CAPTION_K_ALL:-$([[ $name == default ]] && echo 101 || echo 9)}}
    echo "== $name: capstream caption (1 and $CAPTION_K images, batch 1, $CAPTION_RUNS runs each)" >&2
    mkdir -p "$WORK/copies"
    rm -f "$WORK/copies/"*
    local -a copies=()
    for ((r = 0; r < CAPTION_K; r++)); do cp "$IMAGE" "$WORK/copies/img$r.jpg"; copies+=("$WORK/copies/img$r.jpg"); done
    echo "  (K = $CAPTION_K)" >&2
    run_caption() {  # flags the run when other processes used > 5% of one core meanwhile
        local m0 m1 o
        m0=$(machine_ticks)
        /usr/bin/time -f '%e %U %S' -o "$WORK/cap.time" timeout -k 10 "$RUN_LIMIT" \
            "$BIN" caption --model "$model" --batch-size 1 --threads "$THREADS" --device cpu --json "$@" \
            >"$WORK/cap.jsonl" 2>"$WORK/cap.err" || { echo "capstream caption failed:" >&2; cat "$WORK/cap.err" "$WORK/cap.jsonl" >&2; exit 1; }
        m1=$(machine_ticks)
        o=$(awk -v a="$m0" -v b="$m1" -v t="$TICK" 'NF == 3 { o = (b - a) / t - $2 - $3; if (o > 0.05 * $1) printf "%.2f", o }' "$WORK/cap.time")
        if [[ -n $o ]]; then
            echo "  warning: other processes used ${o} CPU-s during this capstream caption run" >&2
            NOTES+=("**Warning:** other processes used ${o} CPU-s during a $name \`capstream caption\` timing run.")
        fi
    }
    wait_quiet
    run_caption "${copies[0]}"  # page cache, untimed
    local -a t1s=() tks=()
    for ((r = 0; r < CAPTION_RUNS; r++)); do
        wait_quiet
        t0=$(now); run_caption "${copies[0]}"; t1=$(now); t1s+=("$(sub "$t1" "$t0")")
        cp "$WORK/cap.jsonl" "$WORK/cap1.jsonl"
        t0=$(now); run_caption "${copies[@]}"; t1=$(now); tks+=("$(sub "$t1" "$t0")")
        echo "  run $((r + 1)): 1 image ${t1s[-1]}s, $CAPTION_K images ${tks[-1]}s" >&2
    done
    "$PY" - "$name" "$CAPTION_K" "$WORK/cap1.jsonl" "${t1s[*]}" "${tks[*]}" >>"$RESULTS" <<'EOF'
import json, statistics, sys
name, k, cap = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t1 = [float(x) for x in sys.argv[4].split()]
tk = [float(x) for x in sys.argv[5].split()]
m1, mk = statistics.median(t1), statistics.median(tk)
line = json.loads(open(cap).readline())
print(json.dumps(dict(kind="caption", model=name, k=k, t1_s=m1, tk_s=mk, t1_runs=t1, tk_runs=tk,
                      per_image_ms=round((mk - m1) / (k - 1) * 1e3, 2))))
print(json.dumps(dict(kind="check", model=name, server="caption-cli", caption=line.get("caption"),
                      token_ids=line.get("token_ids"))))
EOF
}

# ---- main --------------------------------------------------------------------------------
wait_quiet
BIN_MTIME0=$(stat -c %Y "$BIN")
for name in ${MODELS//,/ }; do
    ensure_model "$name"
    MODEL=$(model_dir "$name")
    [[ -s $MODEL/config.json ]] || { echo "$name: no model at $MODEL" >&2; exit 1; }
    IMAGE=$(model_image "$name")
    TOKENS=$("$PY" "$HELP" gen-config "$MODEL")
    # The pipeline as shipped, with its caption model made absolute (--model overrides it too).
    sed -E "s#^model = \".*\"#model = \"$MODEL\"#" "$PIPELINE" >"$WORK/serve.toml"
    cat "$MODEL/model.safetensors" "$IMAGE" >/dev/null  # page cache
    echo "== model $name: $MODEL, body $IMAGE ($(stat -c %s "$IMAGE") bytes), max_new_tokens $TOKENS" >&2
    "$PY" -c 'import json,sys; print(json.dumps(dict(kind="model", model=sys.argv[1], dir=sys.argv[2], image=sys.argv[3], bytes=int(sys.argv[4]), max_new_tokens=int(sys.argv[5]))))' \
        "$name" "$MODEL" "$IMAGE" "$(stat -c %s "$IMAGE")" "$TOKENS" >>"$RESULTS"
    [[ $CAPTION_TIMING == 1 ]] && caption_time "$name" "$MODEL"
    for which in ${SERVERS//,/ }; do
        bench_server "$which" "$name" "$MODEL" "$TOKENS"
    done
done
[[ $(stat -c %Y "$BIN") == "$BIN_MTIME0" ]] || NOTES+=("**Warning:** $BIN was rebuilt while the benchmark ran.")

# ---- report ------------------------------------------------------------------------------
tables=$("$PY" "$HELP" render "$RESULTS")
models_md=$("$PY" - "$RESULTS" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in recs:
    if r["kind"] == "model":
        srv = [s for s in recs if s["kind"] == "server" and s["model"] == r["model"]]
        why = {143: " (uvicorn re-raises SIGTERM after its graceful shutdown: its normal exit)"}
        ready = ", ".join(f"{s['server']} ready in {s['ready_s']:.1f} s, exit status {s['stop_rc']} after SIGTERM"
                          f"{why.get(s['stop_rc'], '') if s['server'] == 'peer' else ''}" for s in srv)
        print(f"- {r['model']}: `{r['dir']}`, body `{r['image']}` ({r['bytes']} bytes), "
              f"max_new_tokens {r['max_new_tokens']}; {ready}.")
EOF
)
N_RULE="sized for about ${TARGET_S} s each (at c=1 from the warm-up's median latency, then from the previous level's images/s; a multiple of c, at least c)"
for name in ${MODELS//,/ }; do
    v=BENCH_N_$(model_key "$name")
    [[ -n ${!v:-} ]] && N_RULE+="; $name fixed by $v=${!v} (levels $LEVELS)"
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet HEAD -- src cli Cargo.toml Cargo.lock 2>/dev/null || echo "+dirty")"
versions=$("$PY" -c 'import torch, transformers, fastapi, uvicorn, PIL; print(f"torch {torch.__version__}, transformers {transformers.__version__}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, pillow {PIL.__version__}")')
hey_ver=$(dpkg-query -W -f='${Version}' hey 2>/dev/null || echo "?")
notes=""
((WAITED > 0)) && notes+="Waited ${WAITED}s in all for the machine to go quiet (no cargo/rustc, < 20% CPU busy) before timed steps."$'\n'
((${#NOTES[@]} > 0)) && notes+=$(printf '%s\n' "${NOTES[@]}" | sort | uniq)$'\n'

report=$(cat <<EOF
## capstream serve vs a FastAPI + transformers server (CPU)

Command: \`bash benches/serve/bench.sh\` (BENCH_MODELS=$MODELS)   Date: $(date -u +%Y-%m-%dT%H:%MZ)
Machine: $cpu, nproc=$(nproc), $mem RAM, no GPU used. capstream git $git_rev, binary built $(date -u -d "@$BIN_MTIME0" +%Y-%m-%dT%H:%MZ).
Versions: $versions, hey $hey_ver.
Servers, one at a time on 127.0.0.1, $THREADS intra-op threads each (OMP_NUM_THREADS=$THREADS):
- capstream: \`capstream serve --pipeline $PIPELINE --http 127.0.0.1:PORT --model DIR\` (the pipeline as shipped: caption batches up to 16 rows, max_delay_ms 0).
- peer: \`benches/serve/peer.py\`: FastAPI + uvicorn, one worker, BlipForConditionalGeneration.generate on one image per request (no batching) in the thread pool under a lock (one generate at a time), greedy, the same max_new_tokens.
Load: \`hey -n N -c C -t $REQ_TIMEOUT -o csv -m POST -T image/jpeg -D IMAGE URL/v1/caption\`, keep-alive, the same body on every request; after a check request and a warm-up. images/s = 200 answers / time to the last answer; p50 / p99 nearest-rank over the 200 answers (the p99 of fewer than 100 requests is their slowest). Requests per run: ${N_RULE}. Mean caption batch = delta capstream_stage_batch_rows_sum / delta _count {stage="caption"} over the run, from /metrics.

$models_md

$tables

${notes}
EOF
)
echo "$report"
if [[ $OUT_MD != - ]]; then
    mkdir -p "$(dirname "$OUT_MD")"
    printf '%s\n' "$report" >"$OUT_MD"
    echo "(written to $OUT_MD)" >&2
fi
