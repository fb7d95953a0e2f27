#!/usr/bin/env bash
# Reproduces models/default from nothing: `make default-model` (after `make build`).
#
#   1. dataset synth: 8,475 drawn scenes (the original dataset's size), seed 0, with
#      eSpeak NG audio of one caption each; dataset split: 10% test, stratified by shape.
#   2. train caption: a small BLIP (models/recipe/caption_config.json) from scratch on
#      the train split, its WordPiece vocabulary built from the training captions.
#   3. train audio: mel generator + vocoder (models/recipe/audio_config.json) on the
#      caption model's image embeddings and the spoken references of the train split.
#   4. eval: the test split through the whole pipeline; models/default/README.md (the
#      model card) is written from the logs and eval.json.
#
# Seeds, thread counts and options are fixed here, so a rerun on the same machine type
# gives the same weights. WORK holds the intermediate files; OUT receives the model.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CAPSTREAM:-target/release/capstream}
WORK=${WORK:-out/default-model}
OUT=${OUT:-models/default}
THREADS=${THREADS:-2}
COUNT=${COUNT:-8475}
CAPTION_EPOCHS=${CAPTION_EPOCHS:-16}
AUDIO_EPOCHS=${AUDIO_EPOCHS:-2}
AUDIO_LIMIT=${AUDIO_LIMIT:-4000}

rm -rf "$WORK"
mkdir -p "$WORK"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0)) s] $*"; }

stamp "synth: $COUNT scenes"
"$BIN" dataset synth --count "$COUNT" --seed 0 --format jpeg --threads "$THREADS" \
  --out "$WORK/synth.parquet"
"$BIN" dataset split --in "$WORK/synth.parquet" --out "$WORK/synth.parquet" \
  --by shape --test 0.1 --seed 0
t_data=$(date +%s)

stamp "train caption"
"$BIN" train caption --data "$WORK/synth.parquet" --out "$WORK/caption" \
  --config models/recipe/caption_config.json \
  --epochs "$CAPTION_EPOCHS" --batch-size 32 --lr 1e-3 --warmup-steps 200 \
  --min-lr-ratio 0.05 --weight-decay 0.05 --grad-clip 1.0 --val-fraction 0.03 \
  --val-caption-images 200 --seed 0 --threads "$THREADS" --device cpu
t_caption=$(date +%s)

stamp "train audio"
"$BIN" train audio --data "$WORK/synth.parquet" --out "$WORK/audio" \
  --caption-model "$WORK/caption" --config models/recipe/audio_config.json \
  --limit "$AUDIO_LIMIT" --epochs "$AUDIO_EPOCHS" --batch-size 16 --lr 1e-3 \
  --seed 0 --threads "$THREADS" --device cpu
t_audio=$(date +%s)

stamp "eval on the test split"
"$BIN" eval --model "$WORK/caption" --audio-model "$WORK/audio" \
  --data "$WORK/synth.parquet" --split test --out "$WORK/eval" --no-progress
t_eval=$(date +%s)

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
    --seconds-data $((t_data - t0)) --seconds-caption $((t_caption - t_data)) \
    --seconds-audio $((t_audio - t_caption)) --seconds-eval $((t_eval - t_audio))
}
card
# The held-out samples the tests check, scored by the shipped folder itself.
"$BIN" eval --model "$OUT" --audio-model "$OUT/audio" --data "$OUT/samples/heldout.parquet" \
  --split test --out "$WORK/samples-eval" --no-progress --constant-baseline 0 >/dev/null
cp "$WORK/samples-eval/run/eval.json" "$OUT/samples/eval.json"
card
stamp "done: $OUT ($(du -sh "$OUT" | cut -f1))"
