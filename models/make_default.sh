#!/usr/bin/env bash
# Reproduces models/default from nothing: `make default-model` (after `make build`).
#
#   1. dataset synth: 8,475 drawn scenes (the original dataset's size), seed 0, with
#      eSpeak NG audio of one caption each; dataset split: 10% test, stratified by shape.
#   2. train caption: a small BLIP (models/recipe/caption_config.json) from scratch, its
#      WordPiece vocabulary built from the train split's captions; every epoch draws
#      fresh scenes (--synth-per-epoch, seed 1, never the test split's seed 0), and the
#      train split's held-out rows validate it.
#   3. train audio: mel generator (caption text + image embedding) and vocoder
#      (models/recipe/audio_config.json) on the caption model's image embeddings and
#      the spoken references of the train split.
#   4. eval: the test split through the whole pipeline; models/default/README.md (the
#      model card) is written from the logs and eval.json.
#
# Seeds, thread counts and options are fixed here, so a rerun on the same machine type
# gives the same weights. WORK holds the intermediate files; OUT receives the model.
# FROM=caption|audio|eval starts at that step, reusing WORK's earlier results;
# UNTIL=data|caption|audio stops after that step.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CAPSTREAM:-target/release/capstream}
WORK=${WORK:-out/default-model}
OUT=${OUT:-models/default}
THREADS=${THREADS:-2}
COUNT=${COUNT:-8475}
CAPTION_EPOCHS=${CAPTION_EPOCHS:-18}
SCENES_PER_EPOCH=${SCENES_PER_EPOCH:-7400}
AUDIO_EPOCHS=${AUDIO_EPOCHS:-12}
AUDIO_LIMIT=${AUDIO_LIMIT:-4000}
FROM=${FROM:-data}
UNTIL=${UNTIL:-}

case "$FROM" in
  data) rm -rf "$WORK" ;;
  caption | audio | eval) test -f "$WORK/synth.parquet" || { echo "FROM=$FROM needs $WORK/synth.parquet" >&2; exit 2; } ;;
  *) echo "FROM must be data, caption, audio or eval" >&2; exit 2 ;;
esac
mkdir -p "$WORK"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0)) s] $*"; }
# Each step's seconds are kept in WORK, so that a run started at a later step still
# writes every step's time on the card.
took() { echo $(($(date +%s) - $2)) > "$WORK/seconds-$1"; }
seconds() { cat "$WORK/seconds-$1" 2>/dev/null || echo 0; }
after() { # after STEP: is FROM at or before STEP?
  local order="data caption audio eval" s
  for s in $order; do
    [ "$s" = "$FROM" ] && return 0
    [ "$s" = "$1" ] && return 1
  done
}

# step NAME FN: runs FN when FROM is at or before NAME, keeps its seconds, and ends the
# recipe there when UNTIL is NAME.
step() {
  after "$1" || return 0
  local t
  t=$(date +%s)
  "$2"
  took "$1" "$t"
  if [ "$UNTIL" = "$1" ]; then exit 0; fi
}

data() {
  stamp "synth: $COUNT scenes"
  "$BIN" dataset synth --count "$COUNT" --seed 0 --format jpeg --threads "$THREADS" \
    --out "$WORK/synth.parquet"
  "$BIN" dataset split --in "$WORK/synth.parquet" --out "$WORK/synth.parquet" \
    --by shape --test 0.1 --seed 0
}

caption() {
  stamp "train caption"
  rm -rf "$WORK/caption"
  "$BIN" train caption --data "$WORK/synth.parquet" --out "$WORK/caption" \
    --config models/recipe/caption_config.json \
    --synth-per-epoch "$SCENES_PER_EPOCH" --synth-seed 1 \
    --epochs "$CAPTION_EPOCHS" --batch-size 32 --lr 1e-3 --warmup-steps 200 \
    --min-lr-ratio 0.05 --weight-decay 0.05 --grad-clip 1.0 --val-fraction 0.03 \
    --val-caption-images 200 --seed 0 --threads "$THREADS" --device cpu
}

audio() {
  stamp "train audio"
  rm -rf "$WORK/audio"
  "$BIN" train audio --data "$WORK/synth.parquet" --out "$WORK/audio" \
    --caption-model "$WORK/caption" --config models/recipe/audio_config.json \
    --limit "$AUDIO_LIMIT" --epochs "$AUDIO_EPOCHS" --batch-size 16 --lr 1e-3 \
    --segment-frames 32 --seed 0 --threads "$THREADS" --device cpu
}

step data data
step caption caption
step audio audio

t=$(date +%s)
stamp "eval on the test split"
rm -rf "$WORK/eval"
"$BIN" eval --model "$WORK/caption" --audio-model "$WORK/audio" \
  --data "$WORK/synth.parquet" --split test --out "$WORK/eval" --no-progress
took eval "$t"

stamp "writing $OUT"
rm -rf "$OUT"
mkdir -p "$OUT/audio" "$OUT/logs/caption" "$OUT/logs/audio"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json vocab.txt \
  special_tokens_map.json preprocessor_config.json generation_config.json; do
  cp "$WORK/caption/$f" "$OUT/"
done
cp "$WORK/audio/config.json" "$WORK/audio/model.safetensors" "$OUT/audio/"
# `capstream report models/default/logs` draws both.
cp "$WORK/caption/train_log.jsonl" "$OUT/logs/caption/train_log.jsonl"
cp "$WORK/audio/train_log.jsonl" "$OUT/logs/audio/train_log.jsonl"
cp "$WORK/eval/run/eval.json" "$OUT/eval.json"
# The audio config names where its embeddings came from: the folder it ships beside.
sed -i "s#\"embedding_source\": .*#\"embedding_source\": \"..\"#" "$OUT/audio/config.json"
card() {
  .venv/bin/python models/write_card.py --work "$WORK" --out "$OUT" \
    --seconds-data "$(seconds data)" --seconds-caption "$(seconds caption)" \
    --seconds-audio "$(seconds audio)" --seconds-eval "$(seconds eval)"
}
card
# The held-out samples the tests check, scored by the shipped folder itself.
"$BIN" eval --model "$OUT" --audio-model "$OUT/audio" --data "$OUT/samples/heldout.parquet" \
  --split test --out "$WORK/samples-eval" --no-progress --constant-baseline 0 >/dev/null
cp "$WORK/samples-eval/run/eval.json" "$OUT/samples/eval.json"
card
stamp "done: $OUT ($(du -sh "$OUT" | cut -f1))"
