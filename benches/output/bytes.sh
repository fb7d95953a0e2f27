#!/usr/bin/env bash
# Output bytes per row: `[sink] columns = "results"` (the default) against "all" (every
# intermediate: source image bytes are not kept either way; pixels, reference audio and
# log-mels are), on the same input, in the same run.
#
#   bash benches/output/bytes.sh          (from the repository root)
#
# Two pipelines: the default one (captions, speech and neural audio from models/default,
# 128 px) on the 12 sample images repeated N times, and decode_image alone at 384 px
# (BLIP base and large), where the pixels are 442 KB a row raw.
# Env: CAPSTREAM (binary), N (copies of the samples, default 8).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN=${CAPSTREAM:-target/release/capstream}
N=${N:-8}
[[ -x $BIN ]] || { echo "no $BIN: run cargo build --release first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Distinct copies of the samples (a trailing byte changes the content id, not the pixels).
mkdir -p "$work/in"
for k in $(seq 1 "$N"); do
  for f in models/default/samples/images/*.jpg; do
    b=$(basename "$f" .jpg)
    { cat "$f"; printf '%s' "$k"; } >"$work/in/$b-$k.jpg"
  done
done
rows=$(find "$work/in" -name '*.jpg' | wc -l)

bytes() { find "$1" -maxdepth 1 -name 'part-*.parquet' -printf '%s\n' | awk '{s+=$1} END {print s}'; }

run() { # pipeline-file columns label
  local p=$work/$3.toml out=$work/out-$3
  sed -e "s|\"\.\./models/|\"$PWD/models/|" -e "s|^columns = .*|columns = \"$2\"|" "$1" >"$p"
  grep -q "^columns = \"$2\"" "$p" || printf 'columns = "%s"\n' "$2" >>"$p"
  "$BIN" run --pipeline "$p" --input "$work/in" --output "$out" --no-progress >/dev/null 2>"$work/$3.log" \
    || { cat "$work/$3.log" >&2; exit 1; }
  echo "$(bytes "$out")"
}

decode384=$work/decode384.toml
cat >"$decode384" <<'TOML'
name = "decode384"
[source]
type = "files"
[[stage]]
type = "decode_image"
image_size = 384
[sink]
type = "parquet"
columns = "results"
TOML

printf '%-40s %12s %12s %10s\n' "pipeline ($rows rows)" "bytes/row" "total" "vs all"
for spec in "pipelines/default.toml:default" "$decode384:decode-384px"; do
  file=${spec%%:*}; name=${spec##*:}
  all=$(run "$file" all "$name-all")
  res=$(run "$file" results "$name-results")
  printf '%-40s %12d %12d %10s\n' "$name, columns = \"all\"" $((all / rows)) "$all" "1.00x"
  printf '%-40s %12d %12d %9.4fx\n' "$name, columns = \"results\"" $((res / rows)) "$res" \
    "$(awk -v a="$res" -v b="$all" 'BEGIN {print a / b}')"
done
echo "command: N=$N bash benches/output/bytes.sh ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
