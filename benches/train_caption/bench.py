#!/usr/bin/env python3
"""Caption training speed: `capstream train caption` against the same training in
PyTorch + transformers, same data, config, tokenizer, batch size and thread count.

    .venv/bin/python benches/train_caption/bench.py [--count 640] [--threads 2] [--epochs 1]

Steps:
  1. `capstream dataset synth` draws COUNT scenes (seed 1, no audio) and `dataset split`
     marks none as test (--test 0), so every row trains.
  2. `capstream train caption --config models/recipe/caption_config.json` (the default
     model's recipe): EPOCHS epochs, batch 32, no validation; its train_log.jsonl gives the
     seconds of the training loop alone (start-up, data decoding and checkpoint writing
     excluded).
  3. transformers: BlipForConditionalGeneration built from the config.json capstream
     wrote (same shapes, same vocabulary), the same images resized by PIL bicubic and
     normalized as BlipImageProcessor does, the same kind of batches (32 images, one
     reference each, right padding, labels -100 on padding, label smoothing 0.1), AdamW
     (weight decay 0.05), clip_grad_norm_ 1.0, the same number of optimizer steps; timed
     around the loop only.
Prints one line per side and the ratio (transformers seconds / capstream seconds: above
1 means capstream is faster). Numbers are training throughput only; the two runs do not
see identical batches (order and reference choice differ), which does not change the
work per step.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=640)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--capstream", default=str(ROOT / "target/release/capstream"))
    a = ap.parse_args()
    os.environ.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads),
                      TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from PIL import Image
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration

    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-train-caption-"))
    data = work / "synth.parquet"
    run = lambda *args: subprocess.run([a.capstream, *args], check=True, capture_output=True)
    run("dataset", "synth", "--count", str(a.count), "--seed", "1", "--no-speak",
        "--format", "jpeg", "--out", str(data))
    run("dataset", "split", "--in", str(data), "--out", str(data), "--test", "0")

    out = work / "capstream"
    t0 = time.perf_counter()
    run("train", "caption", "--data", str(data), "--out", str(out),
        "--config", str(ROOT / "models/recipe/caption_config.json"),
        "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--lr", "1e-3",
        "--warmup-steps", "10", "--val-fraction", "0", "--threads", str(a.threads),
        "--device", "cpu", "--seed", "0")
    cs_wall = time.perf_counter() - t0
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    epochs = [r for r in log if r["event"] == "epoch"]
    steps = epochs[-1]["step"]
    cs_loop = sum(r["train_seconds"] for r in epochs)
    cs_loss = [r["loss"] for r in log if r["event"] == "step"]

    # transformers on the same config and tokenizer.
    cfg = BlipConfig.from_pretrained(out)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(cfg).train()
    tok = BertTokenizerFast.from_pretrained(out)
    table = pq.read_table(data).to_pylist()
    size = cfg.vision_config.image_size
    mean = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
    pix = []
    for r in table:
        im = Image.open(io.BytesIO(r["image"])).convert("RGB").resize((size, size), Image.BICUBIC)
        pix.append(((np.asarray(im, np.float32) / 255.0 - mean) / std).transpose(2, 0, 1))
    pix = torch.from_numpy(np.stack(pix))
    bos, sep, pad = cfg.text_config.bos_token_id, cfg.text_config.sep_token_id, cfg.text_config.pad_token_id
    rng = random.Random(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=0.1)
    order = list(range(len(table)))
    done, tr_loss = 0, []
    t0 = time.perf_counter()
    while done < steps:
        rng.shuffle(order)
        for s in range(0, len(order), a.batch_size):
            if done == steps:
                break
            idx = order[s:s + a.batch_size]
            seqs = [[bos] + tok(rng.choice(table[i]["captions"]), add_special_tokens=False).input_ids[:38] + [sep] for i in idx]
            t = max(map(len, seqs))
            ids = torch.tensor([q + [pad] * (t - len(q)) for q in seqs])
            mask = (torch.arange(t)[None, :] < torch.tensor([len(q) for q in seqs])[:, None]).long()
            labels = ids.masked_fill(mask == 0, -100)
            opt.zero_grad()
            img = model.vision_model(pixel_values=pix[idx])[0]
            logits = model.text_decoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=img).logits
            loss = loss_fn(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tr_loss.append(loss.item())
            done += 1
    tf_loop = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters (transformers count), {steps} steps of batch {a.batch_size}, {a.threads} threads, torch {torch.__version__}")
    print(f"capstream:    {cs_loop:7.2f} s loop ({steps / cs_loop:.2f} steps/s; whole command {cs_wall:.1f} s); loss {cs_loss[0]:.3f} -> {cs_loss[-1]:.3f}")
    print(f"transformers: {tf_loop:7.2f} s loop ({steps / tf_loop:.2f} steps/s); loss {tr_loss[0]:.3f} -> {tr_loss[-1]:.3f}")
    print(f"ratio (transformers / capstream, loop): {tf_loop / cs_loop:.2f}x")


if __name__ == "__main__":
    main()
