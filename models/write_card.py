#!/usr/bin/env python3
"""Writes the model card of models/default and its held-out samples.

Called by models/make_default.sh as its last step:

    .venv/bin/python models/write_card.py --work WORK --out OUT --seconds-data S ...

Reads WORK/caption/train_log.jsonl, WORK/audio/train_log.jsonl, WORK/eval/run/eval.json
and WORK/synth.parquet; writes OUT/README.md (the card), OUT/loss_curves.svg and
OUT/samples/ (held-out rows of the test split: heldout.parquet with the first
SAMPLE_ROWS rows, audio kept on the first AUDIO_ROWS, and images/ with the first
IMAGE_FILES images as JPEG files). Every number in the card comes from those files.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SAMPLE_ROWS = 100
AUDIO_ROWS = 16
IMAGE_FILES = 12


def read_log(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def loss_svg(caption_log: list[dict], audio_log: list[dict]) -> str:
    """Training loss per optimizer step (caption) as a small hand-made SVG."""
    series = [
        ("caption loss", [e["loss"] for e in caption_log if e.get("event") == "step"], "#1f77b4"),
        ("audio generator loss", [e["generator_loss"] for e in audio_log if e.get("event") == "step"], "#ff7f0e"),
        ("vocoder loss", [e["vocoder_loss"] for e in audio_log if e.get("event") == "step"], "#2ca02c"),
    ]
    w, h, pad = 720, 240, 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(series)}" height="{h}" font-family="sans-serif" font-size="12">']
    for k, (name, ys, colour) in enumerate(series):
        ox = k * w
        ys = [y for y in ys if y is not None]
        if not ys:
            continue
        lo, hi = min(ys), max(ys)
        span = (hi - lo) or 1.0
        pts = " ".join(
            f"{ox + pad + (w - 2 * pad) * i / max(len(ys) - 1, 1):.1f},{h - pad - (h - 2 * pad) * (y - lo) / span:.1f}"
            for i, y in enumerate(ys)
        )
        parts.append(f'<rect x="{ox + pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="none" stroke="#ccc"/>')
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1"/>')
        parts.append(f'<text x="{ox + pad}" y="{pad - 8}">{name} per step ({len(ys)} steps): {ys[0]:.3f} to {ys[-1]:.3f}</text>')
        parts.append(f'<text x="{ox + 4}" y="{pad + 10}">{hi:.2f}</text><text x="{ox + 4}" y="{h - pad}">{lo:.2f}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    for k in ("data", "caption", "audio", "eval"):
        ap.add_argument(f"--seconds-{k}", type=int, required=True)
    ap.add_argument("--note", default="", help="a paragraph about this run, printed in the card")
    a = ap.parse_args()

    cap_log = read_log(a.work / "caption" / "train_log.jsonl")
    aud_log = read_log(a.work / "audio" / "train_log.jsonl")
    ev = json.loads((a.work / "eval" / "run" / "eval.json").read_text())
    cap_start = next(e for e in cap_log if e["event"] == "start")
    cap_epochs = [e for e in cap_log if e["event"] == "epoch"]
    aud_start = next(e for e in aud_log if e["event"] == "start")
    aud_epochs = [e for e in aud_log if e["event"] == "epoch"]
    cm = ev["caption_metrics"]
    corpus = cm.get("corpus", cm)
    m = ev["mentions"]
    const = ev.get("best_constant_caption") or {}
    cider = corpus.get("cider_d")
    ratio = cider / const["cider_d"] if const.get("cider_d") else None

    # Held-out samples: the first rows of the test split, in file order.
    table = pq.read_table(a.work / "synth.parquet")
    test = table.filter(pc.equal(table["split"], "test"))
    samples = test.slice(0, SAMPLE_ROWS)
    audio = samples["audio"].to_pylist()
    audio = [x if i < AUDIO_ROWS else None for i, x in enumerate(audio)]
    samples = samples.set_column(
        samples.schema.get_field_index("audio"), samples.schema.field("audio"), pa.array(audio, pa.binary())
    )
    sdir = a.out / "samples"
    (sdir / "images").mkdir(parents=True, exist_ok=True)
    pq.write_table(samples, sdir / "heldout.parquet", compression="zstd")
    for row in samples.slice(0, IMAGE_FILES).to_pylist():
        (sdir / "images" / f"{row['id']}.jpg").write_bytes(row["image"])

    (a.out / "loss_curves.svg").write_text(loss_svg(cap_log, aud_log))
    # Written by make_default.sh's second call, after `capstream eval` on the samples.
    sample_eval = sdir / "eval.json"
    if sample_eval.is_file():
        se = json.loads(sample_eval.read_text())["mentions"]
        sample_line = (
            f"On the {se['images']} committed held-out samples (samples/heldout.parquet; "
            f"tests/default_model.rs checks these): object accuracy {fmt(se['object_accuracy'])}, "
            f"colour accuracy {fmt(se['colour_accuracy'])}."
        )
    else:
        sample_line = ""

    size_mb = sum(f.stat().st_size for f in a.out.rglob("*") if f.is_file()) / 1e6
    total = a.seconds_data + a.seconds_caption + a.seconds_audio + a.seconds_eval
    opts = cap_start["options"]
    aopts = aud_start["options"]
    last = cap_epochs[-1]
    alast = aud_epochs[-1]

    epoch_rows = "\n".join(
        f"| {e['epoch']} | {e['step']} | {fmt(e['train_loss'])} | {fmt(e.get('val_loss'))} | {fmt(e.get('val_bleu_4'))} | {fmt(e.get('val_cider_d'))} | {fmt(e['train_seconds'], 0)} |"
        for e in cap_epochs
    )
    audio_rows = "\n".join(
        f"| {e['epoch']} | {fmt(e['train_generator_loss'])} | {fmt(e['train_vocoder_loss'])} | {fmt(e.get('val_mel_mse_db2'), 1)} | {fmt(e.get('val_vocoder_snr_db'), 2)} | {fmt(e.get('val_vocoder_sc'))} | {fmt(e.get('val_end_to_end_sc'))} |"
        for e in aud_epochs
    )
    card = f"""# capstream default model

A small BLIP captioner and a neural audio generator that capstream trained itself, so
that `make demo` runs with nothing to download. **It is a model of the synthetic world
of `capstream dataset synth`** (flat shapes in 10 colours on 5 kinds of background):
it names shapes, colours, sizes and counts in drawn scenes and knows nothing else. For
real photographs point capstream at a BLIP checkpoint folder
(Salesforce/blip-image-captioning-base or -large), which it loads as is:
`capstream run --model DIR ...`.

Reproduce it from scratch with `make default-model` (models/make_default.sh): it took
{total} s on this 2-core machine ({a.seconds_data} s data, {a.seconds_caption} s caption
training, {a.seconds_audio} s audio training, {a.seconds_eval} s evaluation).
{a.note}

## Files

| path | what |
|---|---|
| config.json, model.safetensors | `BlipForConditionalGeneration`, Hugging Face layout (transformers loads it; `models/check_with_transformers.py` checks greedy ids equal capstream's) |
| tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json | BERT WordPiece, {cap_start['config']['text_config']['vocab_size']} tokens built from the training captions |
| preprocessor_config.json, generation_config.json | BLIP image processor ({cap_start['config']['vision_config']['image_size']} px), generation defaults |
| audio/ | the neural audio model (mel generator + vocoder), `capstream_neural_audio` |
| logs/caption/, logs/audio/ | the training logs (`train_log.jsonl`; `capstream report models/default/logs` draws them) |
| eval.json | the held-out evaluation below, as `capstream eval` wrote it |
| samples/ | held-out test rows: heldout.parquet ({SAMPLE_ROWS} rows, audio on the first {AUDIO_ROWS}) and images/ ({IMAGE_FILES} JPEGs) |

Size: {size_mb:.1f} MB in all (fp32 safetensors).

## Data

`capstream dataset synth --count 8475 --seed 0 --format jpeg` (128 px scenes, 1-4
objects of 8 shapes, 10 colours, 3 sizes, spatial relations, 5 backgrounds, noise and
blur; 5 true captions per image; eSpeak NG audio of one), then `dataset split --by shape
--test 0.1 --seed 0`: {cap_start['train_images'] + cap_start['val_images']} train rows
({cap_start['val_images']} of them held out for validation during training) and
{ev['rows']} test rows. Nothing of the test split is seen in training, the vocabulary
included.

## Caption model

BLIP from scratch (models/recipe/caption_config.json): vision ViT
{cap_start['config']['vision_config']['hidden_size']} wide, {cap_start['config']['vision_config']['num_hidden_layers']} layers,
{cap_start['config']['vision_config']['image_size']} px in {cap_start['config']['vision_config']['patch_size']} px patches; text decoder
{cap_start['config']['text_config']['hidden_size']} wide, {cap_start['config']['text_config']['num_hidden_layers']} layers with cross-attention;
{cap_start['parameters']:,} parameters. `capstream train caption`: {opts['epochs']} epochs, one
reference drawn per image per epoch, batch {opts['batch_size']}, AdamW (weight decay
{opts['weight_decay']}), peak lr {opts['lr']} after {opts['warmup_steps']} warmup steps, cosine to
{opts['lr'] * opts['min_lr_ratio']:.2g}, gradient clip {opts['grad_clip']}, label smoothing
{cap_start['label_smoothing']}, seed {opts['seed']}, {cap_start['total_steps']} steps.

| epoch | step | train loss | val loss | val BLEU-4 | val CIDEr-D | seconds |
|---|---|---|---|---|---|---|
{epoch_rows}

Losses include label smoothing. Loss curves: loss_curves.svg.

## Held-out metrics (test split, {ev['ok_rows']} images, greedy, 20 new tokens)

| metric | value |
|---|---|
| BLEU-1 | {fmt(corpus.get('bleu_1'))} |
| BLEU-2 | {fmt(corpus.get('bleu_2'))} |
| BLEU-3 | {fmt(corpus.get('bleu_3'))} |
| BLEU-4 | {fmt(corpus.get('bleu_4'))} |
| METEOR | {fmt(corpus.get('meteor'))} |
| ROUGE-L | {fmt(corpus.get('rouge_l'))} |
| CIDEr-D | {fmt(cider)} |
| best constant caption ("{const.get('caption')}", best of the {const.get('candidates_tried')} most frequent training captions): CIDEr-D | {fmt(const.get('cider_d'))} |
| CIDEr-D / best constant | {fmt(ratio, 1)}x |
| object accuracy (named shape set = drawn shape set) | {fmt(m['object_accuracy'])} |
| object recall / precision | {fmt(m['object_recall'])} / {fmt(m['object_precision'])} |
| colour accuracy (named colour set = drawn colour set) | {fmt(m['colour_accuracy'])} |
| colour recall / precision | {fmt(m['colour_recall'])} / {fmt(m['colour_precision'])} |

{sample_line}

Metrics are capstream's (pycocoevalcap BLEU/ROUGE-L/CIDEr-D and NLTK METEOR, with
parity tests). Object and colour accuracy: the set of shape kinds (colours) the caption
names equals the set its references name, which synth makes the set drawn.

## Audio model

`capstream train audio` (models/recipe/audio_config.json) on the pooled image
embeddings of the caption model above and the spoken references: the first
{aud_start['train_examples'] + aud_start['val_examples']} rows of the train split
({aud_start['val_examples']} validate), {aopts['epochs']} epochs, batch {aopts['batch_size']}, Adam lr
{aopts['lr']}, seed {aopts['seed']}. The mel generator maps an image to 80 x 64 log-mel
frames (16 kHz, hop 512: 2 s); the vocoder maps log-mel to a waveform.

| epoch | generator loss | vocoder loss | val mel MSE (dB²) | val vocoder SNR (dB) | val vocoder SC | val image→audio SC |
|---|---|---|---|---|---|---|
{audio_rows}

On the test split, in the pipeline (image → caption model embedding → generator →
vocoder, against each row's spoken reference clip; {cm.get('audio_rows_scored')} rows):
MSE {fmt(cm.get('audio', {}).get('audio_mse'), 4)}, MAE {fmt(cm.get('audio', {}).get('audio_mae'), 4)},
SNR {fmt(cm.get('audio', {}).get('audio_snr_db'), 2)} dB, spectral convergence
{fmt(cm.get('audio', {}).get('audio_spectral_convergence'))}, LSD {fmt(cm.get('audio', {}).get('audio_lsd_db'), 1)} dB.

Baseline on the same validation log-mels: Griffin-Lim (32 iterations) SNR
{fmt(alast.get('griffin_lim_snr_db'), 2)} dB, spectral convergence {fmt(alast.get('griffin_lim_sc'))}.
The vocoder is {'better' if (alast.get('val_vocoder_sc') or 9) < (alast.get('griffin_lim_sc') or 0) else 'worse'} than Griffin-Lim on spectral convergence
after this short training. The generated audio is a texture of speech-like sound
conditioned on the image, not words: the spoken description (eSpeak NG) is the
intelligible audio of the product.

## Limits

Trained on one drawn world at 64 px: no photographs, no text in images, no objects
beyond the 8 shapes. It confuses similar shapes at the small size (see the accuracy
above). Numbers are from a CPU run with {opts.get('seed')} as seed and 2 threads; other
thread counts change the floating-point order and may change a few captions.
"""
    (a.out / "README.md").write_text(card)


if __name__ == "__main__":
    main()
