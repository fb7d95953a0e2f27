#!/usr/bin/env python3
"""Captioning throughput of the shipped default model: capstream against transformers.

    .venv/bin/python benches/default_model/bench.py [--model models/default] [--runs 3]

Both caption the 100 held-out sample images (models/default/samples/heldout.parquet) at
batch 16, greedy, with the model's generation_config.json (max_new_tokens, stop at
[SEP]), 2 threads, CPU. capstream is timed as a whole process (`capstream caption`)
and, to leave out start-up and model loading, as that minus a one-image run;
transformers in-process after loading (`BlipForConditionalGeneration.generate`), with
its own image processor. Best of --runs. Prints a markdown table and the ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq


def capstream_seconds(binary: str, model: Path, images: list[Path], batch: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [binary, "caption", "--model", str(model), "--batch-size", str(batch), "--threads", "2",
         "--device", "cpu", *map(str, images)],
        check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def transformers_seconds(model: Path, images: list[Path], batch: int, runs: int) -> tuple[float, list[list[int]]]:
    import torch
    from PIL import Image
    from transformers import BlipForConditionalGeneration, BlipImageProcessor

    torch.set_num_threads(2)
    m = BlipForConditionalGeneration.from_pretrained(model).eval()
    # BLIP's generate hands over to its text decoder, which does not read the model
    # folder's generation_config.json (it warns and stops at 20 new tokens), so the
    # file's length is passed explicitly: the same one capstream reads. (BLIP's generate
    # already stops at sep_token_id, the file's eos_token_id.)
    gen = json.loads((model / "generation_config.json").read_text())
    stop = {"max_new_tokens": gen["max_new_tokens"]}
    proc = BlipImageProcessor.from_pretrained(model)
    pils = [Image.open(p).convert("RGB") for p in images]
    best, ids = float("inf"), []
    for _ in range(runs):
        out = []
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(pils), batch):
                px = proc(images=pils[i : i + batch], return_tensors="pt")["pixel_values"]
                out += m.generate(pixel_values=px, num_beams=1, do_sample=False, **stop).tolist()
        best = min(best, time.perf_counter() - t0)
        ids = out
    return best, ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    ap.add_argument("--capstream", default="target/release/capstream")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    rows = pq.read_table(a.model / "samples" / "heldout.parquet").to_pylist()
    with tempfile.TemporaryDirectory() as d:
        images = []
        for r in rows:
            p = Path(d) / f"{r['id']}.jpg"
            p.write_bytes(r["image"])
            images.append(p)
        capstream_seconds(a.capstream, a.model, images[:1], a.batch)  # warm the page cache
        one = min(capstream_seconds(a.capstream, a.model, images[:1], a.batch) for _ in range(a.runs))
        whole = min(capstream_seconds(a.capstream, a.model, images, a.batch) for _ in range(a.runs))
        hf, _ = transformers_seconds(a.model, images, a.batch, a.runs)
    n = len(images)
    inner = max(whole - one, 1e-9)
    print(f"{n} images, batch {a.batch}, 2 threads, best of {a.runs}\n")
    print("| what | seconds | images/s |")
    print("|---|---|---|")
    print(f"| capstream caption, whole process | {whole:.2f} | {n / whole:.0f} |")
    print(f"| capstream caption, less a one-image run ({one:.2f} s: start-up, loading) | {inner:.2f} | {n / inner:.0f} |")
    print(f"| transformers generate, in-process | {hf:.2f} | {n / hf:.0f} |")
    print(f"\ncapstream (less start-up) / transformers: {hf / inner:.2f}x the throughput")


if __name__ == "__main__":
    main()
