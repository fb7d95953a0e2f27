#!/usr/bin/env python3
"""Does the caption model's vision encoder see shapes? A linear probe, for the card.

    .venv/bin/python models/recipe/probe_vision.py --model models/default \
        --data out/default-model/synth.parquet [--steps 300]

The shape-set accuracy of the default captioner is low (issue 16). This tells the two
causes apart: if a linear read-out of the frozen vision tokens finds the shapes, the
encoder sees them and the text decoder fails to name them; if not, the encoder is the
bottleneck. It fits one multi-label logistic regression (8 shape words present or not)
on the train split's pooled vision features and scores the test split, for the trained
encoder and for a randomly initialised one of the same shape (what the patch embedding
alone preserves). Labels are the shape words of the row's five true captions. Prints a
markdown table. Diagnostic only: nothing here is shipped or used by the recipe.
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

import pyarrow.parquet as pq
import torch
from PIL import Image
from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

SHAPES = ["circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "heart"]


def labels(captions: list[str]) -> list[float]:
    words = set(re.findall(r"[a-z]+", " ".join(captions).lower()))
    return [1.0 if words & {s, s + "s", s + "es"} else 0.0 for s in SHAPES]


def features(vision, proc, images: list[bytes], batch: int = 64) -> dict[str, torch.Tensor]:
    pooled, cls, tokens = [], [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            pils = [Image.open(io.BytesIO(b)).convert("RGB") for b in images[i : i + batch]]
            px = proc(images=pils, return_tensors="pt")["pixel_values"]
            h = vision(pixel_values=px).last_hidden_state
            cls.append(h[:, 0])
            pooled.append(h[:, 1:].mean(1))
            tokens.append(h[:, 1:])
    return {"mean of patch tokens": torch.cat(pooled), "CLS token": torch.cat(cls),
            "max over patch tokens": torch.cat(tokens)}


def probe(xtr, ytr, xte, yte, steps: int) -> tuple[float, float, float]:
    """Logistic regression on `[n, dim]` features; on `[n, tokens, dim]` the logit is the
    max over tokens of a per-token linear read-out (a shape is present if some patch
    shows it), which a mean over the background would wash out."""
    flat = xtr.reshape(-1, xtr.shape[-1])
    mu, sd = flat.mean(0), flat.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    lin = torch.nn.Linear(xtr.shape[-1], ytr.shape[1])

    def logits(x):
        z = lin(x)
        return z.amax(1) if z.dim() == 3 else z

    opt = torch.optim.Adam(lin.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(xtr), ytr)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = (logits(xte) > 0).float()
    set_acc = (pred == yte).all(1).float().mean().item()
    tp = (pred * yte).sum()
    f1 = (2 * tp / (pred.sum() + yte.sum())).item()
    return set_acc, f1, loss.item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    ap.add_argument("--data", type=Path, default=Path("out/default-model/synth.parquet"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rows = pq.read_table(a.data, columns=["image", "captions", "split"]).to_pylist()
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    ytr = torch.tensor([labels(r["captions"]) for r in train])
    yte = torch.tensor([labels(r["captions"]) for r in test])
    proc = BlipImageProcessor.from_pretrained(a.model)
    trained = BlipForConditionalGeneration.from_pretrained(a.model).vision_model.eval()
    random = BlipForConditionalGeneration(BlipConfig.from_pretrained(a.model)).vision_model.eval()
    print(f"{len(train)} train rows, {len(test)} test rows; shapes per image: "
          f"{yte.sum(1).mean():.2f} (test); always-absent set accuracy "
          f"{(yte.sum(1) == 0).float().mean():.3f}\n")
    p = ytr.mean(0)
    prior = -(p * p.log() + (1 - p) * (1 - p).log()).mean().item()
    print(f"Train BCE of the prior alone (each shape's base rate, no features): {prior:.3f}\n")
    print("| encoder | features | train BCE | test shape-set accuracy | shape F1 |")
    print("|---|---|---|---|---|")
    for name, enc in [("trained (models/default)", trained), ("random init, same config", random)]:
        ftr = features(enc, proc, [r["image"] for r in train])
        fte = features(enc, proc, [r["image"] for r in test])
        for kind in ftr:
            acc, f1, bce = probe(ftr[kind], ytr, fte[kind], yte, a.steps)
            print(f"| {name} | {kind} | {bce:.3f} | {acc:.3f} | {f1:.3f} |", flush=True)


if __name__ == "__main__":
    main()
