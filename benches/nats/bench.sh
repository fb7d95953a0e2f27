#!/usr/bin/env bash
# Distributed mode on one machine against embedded mode: the same stages over the same
# inputs (records/s and the ratio, model stage in the path), and the raw transport
# throughput of a no-model pipeline (source -> NATS -> exactly-once Parquet sink).
# Debian's nats-server with deploy/nats/single.conf (mutual TLS and a bcrypt user, from a
# deploy/nats/make-secrets.sh folder, as in production), loopback, store on local disk.
#   bash benches/nats/bench.sh            # N=400 model images, LOAD=20000 records
#   HEAVY=24 bash benches/nats/bench.sh   # also 24 images through a BLIP-base-sized model
#                                         # (target/bench-data/blip/base, made by
#                                         # benches/blip/bench.sh), batch 8, both modes
# OUT=FILE writes the results elsewhere (default benches/nats/RESULTS.md).
# Writes benches/nats/RESULTS.md; best of 2 runs per row, whole-process wall clock
# (capstream run starts its workers and sink as child processes in NATS mode).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=target/release/capstream
PY=${PY:-.venv/bin/python}
N=${N:-400}
LOAD=${LOAD:-20000}
MODEL=${MODEL:-models/default}
HEAVY=${HEAVY:-0}
HEAVY_MODEL=${HEAVY_MODEL:-target/bench-data/blip/base}
OUT=${OUT:-benches/nats/RESULTS.md}
work=$(mktemp -d)
server=""
open_server=""
cleanup() { for p in $server $open_server; do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); mport=$(free_port)
bash deploy/nats/make-secrets.sh "$work/secrets" >/dev/null
(. "$work/secrets/server.env" && NATS_STORE_DIR="$work/nats" exec /usr/sbin/nats-server \
  -c "$work/secrets/single.conf" -a 127.0.0.1 -p "$port" -m "$mport") >"$work/nats.log" 2>&1 &
server=$!
# An open server beside it (no TLS, no users) for the transport's cost of security.
oport=$(free_port)
/usr/sbin/nats-server -js -a 127.0.0.1 -p "$oport" -sd "$work/nats-open" >"$work/nats-open.log" 2>&1 &
open_server=$!
# The client side for every capstream command below, from the environment.
export CAPSTREAM_NATS_USER=capstream CAPSTREAM_NATS_PASSWORD_FILE="$work/secrets/password" \
  CAPSTREAM_NATS_TLS_CA_FILE="$work/secrets/ca.crt" CAPSTREAM_NATS_TLS_CERT_FILE="$work/secrets/client.crt" \
  CAPSTREAM_NATS_TLS_KEY_FILE="$work/secrets/client.key"
url="nats://127.0.0.1:$port"
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done

"$BIN" dataset synth --count "$N" --no-speak --size 128 --seed 7 --out "$work/images.parquet" >/dev/null
"$PY" - "$work/records.parquet" "$LOAD" <<'EOF'
import sys, pyarrow as pa, pyarrow.parquet as pq
n = int(sys.argv[2])
pq.write_table(pa.table({
    "id": [f"rec-{i:07d}" for i in range(n)],
    "image": [i.to_bytes(8, "little") for i in range(n)],
}), sys.argv[1], compression="zstd")
EOF

model_pipeline() { # $1 mode, $2 name, $3 records per message, $4 compression (default zstd), $5 chain (default false), $6 model (default $MODEL), $7 model batch (default 16)
cat <<EOF
name = "$2"
mode = "$1"
[batch]
max_rows = 16
max_delay_ms = 50
[nats]
compression = "${4:-zstd}"
records_per_message = $3
max_ack_pending = 512
commit_interval_ms = 500
idle_wait_ms = 500
[source]
type = "parquet"
[[stage]]
type = "decode_image"
[[stage]]
type = "caption"
chain = ${5:-false}
model = "$PWD/${6:-$MODEL}"
device = "cpu"
max_new_tokens = 20
[stage.batch]
max_rows = ${7:-16}
max_delay_ms = 100
[sink]
type = "parquet"
EOF
}
load_pipeline() { # $1 records per message, $2 name
cat <<EOF
name = "$2"
mode = "nats"
[batch]
max_rows = 64
[nats]
records_per_message = $1
max_ack_pending = 2048
commit_interval_ms = 500
idle_wait_ms = 300
[source]
type = "parquet"
[sink]
type = "parquet"
max_file_rows = 1000000
EOF
}
model_pipeline embedded bench_embedded 1 >"$work/embedded.toml"
model_pipeline nats bench_nats 1 >"$work/nats.toml"
model_pipeline nats bench_nats16 16 >"$work/nats16.toml"
model_pipeline nats bench_nats16_plain 16 none >"$work/nats16_plain.toml"
model_pipeline nats bench_chain 1 zstd true >"$work/chain.toml"
model_pipeline nats bench_chain16 16 zstd true >"$work/chain16.toml"
load_pipeline 1 bench_load1 >"$work/load1.toml"
load_pipeline 16 bench_load16 >"$work/load16.toml"

# Best of 2 runs: seconds of one `capstream run`.
best() { # $1 pipeline, $2 input, rest: extra args
  local p=$1 in=$2; shift 2; local b=""
  for r in 1 2; do
    rm -rf "$work/out"
    local t0 t1 s
    t0=$(date +%s.%N)
    "$BIN" run --pipeline "$p" --input "$in" --output "$work/out" --no-progress "$@" >/dev/null 2>"$work/run.log" \
      || { cat "$work/run.log" >&2; exit 1; }
    t1=$(date +%s.%N)
    s=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$b" ] || (( $(echo "$s < $b" | bc -l) )); then b=$s; fi
  done
  printf '%.3f' "$b"
}

emb=$(best "$work/embedded.toml" "$work/images.parquet")
nat=$(best "$work/nats.toml" "$work/images.parquet" --nats "$url")
nat16=$(best "$work/nats16.toml" "$work/images.parquet" --nats "$url")
nat16p=$(best "$work/nats16_plain.toml" "$work/images.parquet" --nats "$url")
ch=$(best "$work/chain.toml" "$work/images.parquet" --nats "$url")
ch16=$(best "$work/chain16.toml" "$work/images.parquet" --nats "$url")
l1=$(best "$work/load1.toml" "$work/records.parquet" --nats "$url")
l16=$(best "$work/load16.toml" "$work/records.parquet" --nats "$url")
l16o=$(unset CAPSTREAM_NATS_USER CAPSTREAM_NATS_PASSWORD_FILE CAPSTREAM_NATS_TLS_CA_FILE \
  CAPSTREAM_NATS_TLS_CERT_FILE CAPSTREAM_NATS_TLS_KEY_FILE
  best "$work/load16.toml" "$work/records.parquet" --nats "nats://127.0.0.1:$oport")
if [ "$HEAVY" -gt 0 ]; then
  [ -s "$HEAVY_MODEL/model.safetensors" ] || { echo "no $HEAVY_MODEL: run benches/blip/bench.sh first" >&2; exit 1; }
  "$BIN" dataset synth --count "$HEAVY" --no-speak --size 384 --seed 8 --out "$work/heavy.parquet" >/dev/null
  model_pipeline embedded bench_heavy_emb 1 zstd false "$HEAVY_MODEL" 8 >"$work/heavy_emb.toml"
  model_pipeline nats bench_heavy_nats 1 zstd false "$HEAVY_MODEL" 8 >"$work/heavy_nats.toml"
  model_pipeline nats bench_heavy_chain 1 zstd true "$HEAVY_MODEL" 8 >"$work/heavy_chain.toml"
  hemb=$(best "$work/heavy_emb.toml" "$work/heavy.parquet")
  hnat=$(best "$work/heavy_nats.toml" "$work/heavy.parquet" --nats "$url")
  hch=$(best "$work/heavy_chain.toml" "$work/heavy.parquet" --nats "$url")
fi
rate() { echo "$1 / $2" | bc -l | xargs printf '%.0f'; }

{
echo "Command: \`N=$N$([ "$HEAVY" -gt 0 ] && echo " HEAVY=$HEAVY") bash benches/nats/bench.sh\`   Date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), nproc=$(nproc), $(uname -sr)"
echo "Versions: capstream $("$BIN" --version | cut -d' ' -f2) (git $(git describe --always --dirty)), $(/usr/sbin/nats-server --version) (Debian, deploy/nats/single.conf: mutual TLS and a bcrypt user, file storage, loopback)"
echo "Input: $N synth scenes (128 px PNG, \`dataset synth --seed 7\`) through decode_image -> caption ($MODEL, CPU, batch 16); $LOAD 8-byte records through source -> sink."
echo
echo "| what | seconds | records/s | vs embedded |"
echo "|---|---|---|---|"
echo "| embedded, decode -> caption | $emb | $(rate "$N" "$emb") | 1.00x |"
echo "| NATS, decode -> caption, 1 record per message (3 processes + nats-server) | $nat | $(rate "$N" "$nat") | $(echo "$emb / $nat" | bc -l | xargs printf '%.2f')x |"
echo "| NATS, decode -> caption, 16 records per message | $nat16 | $(rate "$N" "$nat16") | $(echo "$emb / $nat16" | bc -l | xargs printf '%.2f')x |"
echo "| NATS, decode -> caption, 16 records per message, \`compression = \"none\"\` | $nat16p | $(rate "$N" "$nat16p") | $(echo "$emb / $nat16p" | bc -l | xargs printf '%.2f')x |"
echo "| NATS, decode + caption chained (\`chain = true\`: one worker, pixels stay in it), 1 record per message | $ch | $(rate "$N" "$ch") | $(echo "$emb / $ch" | bc -l | xargs printf '%.2f')x |"
echo "| NATS, decode + caption chained, 16 records per message | $ch16 | $(rate "$N" "$ch16") | $(echo "$emb / $ch16" | bc -l | xargs printf '%.2f')x |"
echo "| NATS, no model, 1 record per message | $l1 | $(rate "$LOAD" "$l1") | |"
echo "| NATS, no model, 16 records per message | $l16 | $(rate "$LOAD" "$l16") | |"
echo "| NATS, no model, 16 records per message, open server (plain TCP, no users) | $l16o | $(rate "$LOAD" "$l16o") | |"
echo
echo "Mutual TLS and user authentication cost the raw transport $(echo "($l16 / $l16o - 1) * 100" | bc -l | xargs printf '%.1f')% at 16 records per message (same run, open server beside it)."
echo
echo "NATS overhead with the model stage: $(echo "($nat / $emb - 1) * 100" | bc -l | xargs printf '%.1f')% at 1 record per message, $(echo "($nat16 / $emb - 1) * 100" | bc -l | xargs printf '%.1f')% at 16, $(echo "($nat16p / $emb - 1) * 100" | bc -l | xargs printf '%.1f')% at 16 uncompressed; chained: $(echo "($ch / $emb - 1) * 100" | bc -l | xargs printf '%.1f')% at 1 record per message, $(echo "($ch16 / $emb - 1) * 100" | bc -l | xargs printf '%.1f')% at 16 (target <= 15%)."
if [ "$HEAVY" -gt 0 ]; then
echo
echo "With a BLIP-base-sized model ($HEAVY_MODEL: 224 M parameters, 384 px, random weights, 20 new tokens, batch 8) on $HEAVY synth scenes at 384 px:"
echo
echo "| what | seconds | records/s | vs embedded |"
echo "|---|---|---|---|"
echo "| embedded, decode -> caption | $hemb | $(echo "$HEAVY / $hemb" | bc -l | xargs printf '%.2f') | 1.00x |"
echo "| NATS, decode -> caption, 1 record per message | $hnat | $(echo "$HEAVY / $hnat" | bc -l | xargs printf '%.2f') | $(echo "$hemb / $hnat" | bc -l | xargs printf '%.2f')x |"
echo "| NATS, decode + caption chained, 1 record per message | $hch | $(echo "$HEAVY / $hch" | bc -l | xargs printf '%.2f') | $(echo "$hemb / $hch" | bc -l | xargs printf '%.2f')x |"
echo
echo "NATS overhead with the BLIP-base-sized model: $(echo "($hnat / $hemb - 1) * 100" | bc -l | xargs printf '%.1f')% unchained, $(echo "($hch / $hemb - 1) * 100" | bc -l | xargs printf '%.1f')% chained (target <= 15%)."
fi
} | tee "$OUT"
