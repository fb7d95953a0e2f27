#!/usr/bin/env bash
# Chaos run of distributed mode (not in CI): N records (default 5,000) through
# decode_image -> caption (models/default) -> speak on the secured 3-node R3 cluster
# (deploy/nats/cluster via make-secrets.sh), every role a process of its own, and every
# few seconds for DURATION seconds (default 300) a random role killed with kill -9 and
# started again, as a supervisor would. Then the output is checked: every id committed
# exactly once (0 lost, 0 duplicated).
#   bash benches/nats/chaos.sh                  # N=5000 DURATION=300
#   N=500 DURATION=60 bash benches/nats/chaos.sh
# Prints the kills per role, the time to finish, lost/duplicated/error rows, and
# appends the same as a Markdown block to benches/nats/CHAOS.md (OUT=FILE elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$PWD/target/release/capstream
PY=${PY:-.venv/bin/python}
N=${N:-5000}
DURATION=${DURATION:-300}
SEED=${SEED:-1}
OUT=${OUT:-benches/nats/CHAOS.md}
work=$(mktemp -d)
declare -A pids=()
servers=()
cleanup() {
  for p in "${pids[@]}" "${servers[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
RANDOM=$SEED

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The cluster, secured as shipped.
bash deploy/nats/make-secrets.sh "$work/secrets" >/dev/null
ports=(); cports=()
for i in 1 2 3; do ports+=("$(free_port)"); cports+=("$(free_port)"); done
routes=$(printf 'nats-route://127.0.0.1:%s,' "${cports[@]}"); routes=${routes%,}
for i in 1 2 3; do
  (. "$work/secrets/server.env" && NATS_STORE_DIR="$work/store-$i" exec /usr/sbin/nats-server \
     -c "$work/secrets/nats-$i.conf" -a 127.0.0.1 -p "${ports[$((i-1))]}" -m "$(free_port)" \
     --cluster "nats://127.0.0.1:${cports[$((i-1))]}" --routes "$routes") >"$work/nats-$i.log" 2>&1 &
  servers+=($!)
done
urls=$(printf 'nats://127.0.0.1:%s,' "${ports[@]}"); urls=${urls%,}
export CAPSTREAM_NATS_USER=capstream CAPSTREAM_NATS_PASSWORD_FILE="$work/secrets/password" \
  CAPSTREAM_NATS_TLS_CA_FILE="$work/secrets/ca.crt" CAPSTREAM_NATS_TLS_CERT_FILE="$work/secrets/client.crt" \
  CAPSTREAM_NATS_TLS_KEY_FILE="$work/secrets/client.key"

"$BIN" dataset synth --count "$N" --no-speak --size 64 --seed 11 --out "$work/images.parquet" >/dev/null
cat >"$work/chaos.toml" <<EOF
name = "chaos"
mode = "nats"
[batch]
max_rows = 16
max_delay_ms = 20
[nats]
replicas = 3
ack_wait_ms = 5000
# Deliveries cut short by a kill count: leave room for many before a record would
# be dead-lettered as an error row.
max_deliver = 50
nak_delay_ms = 200
commit_interval_ms = 500
idle_wait_ms = 500
max_backlog = 200
stall_after_ms = 5000
[source]
type = "parquet"
[[stage]]
type = "decode_image"
[[stage]]
type = "caption"
model = "$PWD/models/default"
device = "cpu"
threads = 1
[stage.batch]
max_rows = 8
max_delay_ms = 50
[[stage]]
type = "speak"
[sink]
type = "parquet"
max_file_rows = 500
EOF

# The cluster is up once it takes R3 streams: an empty submission creates them.
"$PY" -c "import pyarrow as pa, pyarrow.parquet as pq; pq.write_table(pa.table({'id': pa.array([], pa.string()), 'image': pa.array([], pa.binary())}), '$work/none.parquet')"
for _ in $(seq 60); do
  "$BIN" submit --pipeline "$work/chaos.toml" --nats "$urls" --input "$work/none.parquet" >/dev/null 2>&1 && break
  sleep 1
done

roles=(decode caption speak-1 speak-2 sink submit)
declare -A args=(
  [decode]="worker --stage decode_image"
  [caption]="worker --stage caption"
  [speak-1]="worker --stage speak"
  [speak-2]="worker --stage speak"
  [sink]="sink --output $work/out"
  [submit]="submit --input $work/images.parquet --submission chaos-run"
)
declare -A kills=() starts=()
start() {
  local r=$1
  starts[$r]=$(( ${starts[$r]:-0} + 1 ))
  # shellcheck disable=SC2086
  "$BIN" ${args[$r]} --pipeline "$work/chaos.toml" --nats "$urls" \
    >>"$work/$r.out" 2>>"$work/$r.log" &
  pids[$r]=$!
}
for r in "${roles[@]}"; do start "$r"; kills[$r]=0; done

began=$(date +%s)
submit_done=0
# A submit that finished is done for good; any other role that exited is restarted.
supervise() {
  for r in "${roles[@]}"; do
    kill -0 "${pids[$r]}" 2>/dev/null && continue
    if [ "$r" = submit ]; then
      (( submit_done )) && continue
      if wait "${pids[submit]}"; then submit_done=1; continue; fi
    fi
    start "$r"
  done
}
while (( $(date +%s) - began < DURATION )); do
  sleep $(( 2 + RANDOM % 4 ))
  supervise
  r=${roles[$((RANDOM % ${#roles[@]}))]}
  [ "$r" = submit ] && (( submit_done )) && continue
  kill -9 "${pids[$r]}" 2>/dev/null || true
  wait "${pids[$r]}" 2>/dev/null || true
  kills[$r]=$(( kills[$r] + 1 ))
  start "$r"
done
chaos_end=$(date +%s)

# Calm: let the submit finish, then wait for every id.
until (( submit_done )); do supervise; sleep 1; done
count() {
  "$PY" - "$work/out" <<'PYEOF'
import sys, glob, collections, pyarrow.parquet as pq
ids, errors = [], 0
for p in sorted(glob.glob(sys.argv[1] + "/part-*.parquet")):
    t = pq.read_table(p, columns=["id", "status"])
    ids += t.column("id").to_pylist()
    errors += sum(1 for s in t.column("status").to_pylist() if s != "ok")
c = collections.Counter(ids)
print(len(ids), len(c), sum(1 for v in c.values() if v > 1), errors)
PYEOF
}
deadline=$(( $(date +%s) + 900 ))
while :; do
  supervise
  read -r rows unique dup errors < <(count)
  (( unique >= N || $(date +%s) > deadline )) && break
  sleep 2
done
finished=$(date +%s)
lost=$(( N - unique ))
total_kills=0; for r in "${roles[@]}"; do total_kills=$(( total_kills + kills[$r] )); done
{
  echo
  echo "### Chaos run, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Command: \`N=$N DURATION=$DURATION SEED=$SEED bash benches/nats/chaos.sh\`"
  echo "(capstream git $(git describe --always --dirty), $(/usr/sbin/nats-server --version), 3-node R3 cluster, mutual TLS, $(nproc) cores)"
  echo
  echo "| role | kill -9 | starts |"
  echo "|---|---|---|"
  for r in "${roles[@]}"; do echo "| $r | ${kills[$r]} | ${starts[$r]} |"; done
  echo
  echo "- $total_kills kills in $(( chaos_end - began )) s; every id committed $(( finished - began )) s after the start."
  echo "- records: $N; rows committed: $rows; distinct ids: $unique; **lost: $lost; duplicated: $dup**; error rows: $errors."
} | tee -a "$OUT"
(( lost == 0 && dup == 0 )) || { echo "chaos: FAILED (lost $lost, duplicated $dup)" >&2; exit 1; }
