#!/usr/bin/env python3
"""Helpers for benches/preprocess.sh.

  preprocess.py gen DIR [--count N] [--seed S]
      Writes N deterministic synthetic JPEGs (quality 90) into DIR, 0.3-12 megapixels
      (log-uniform), mixed aspect ratios. Does nothing if DIR already holds a complete set.

  preprocess.py hf DIR [--runs R] [--mode blip|pil]
      Times, in this one process, load + preprocess of every *.jpg in DIR and prints
      one JSON line with the best of R runs:
        blip: Image.open -> ImageOps.exif_transpose -> BlipImageProcessor(...)(return_tensors="np")
        pil:  Image.open -> ImageOps.exif_transpose -> convert("RGB") -> resize((384,384), BICUBIC)
              (the part of BlipImageProcessor that capstream's decode_image stage does:
              no rescale/normalize/CHW float conversion)
      Imports and processor construction are outside the timed region.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

SIZE = 384
ASPECTS = [(1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (16, 9), (9, 16), (2, 1)]
MIN_MP, MAX_MP = 0.3, 12.0


def _synth(rng, w, h):
    """Smooth-ish content: colored gradients, a low-frequency field, shapes, mild noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    # A low-res random field, upsampled bicubically: large smooth blobs.
    lw, lh = max(2, w // 64), max(2, h // 64)
    field = rng.integers(0, 256, size=(lh, lw, 3), dtype=np.uint8)
    base = Image.fromarray(field, "RGB").resize((w, h), Image.BICUBIC)
    # Two linear gradients mixed in.
    gx = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    gy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    grad = gx * c0 + gy * c1
    arr = np.asarray(base, dtype=np.float32) * 0.6 + grad * 0.4
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    # Shapes with hard edges (give the JPEG some high-frequency content).
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(8, 30))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        sw = int(rng.integers(w // 40 + 1, w // 3 + 2))
        sh = int(rng.integers(h // 40 + 1, h // 3 + 2))
        color = tuple(int(v) for v in rng.integers(0, 256, size=3))
        box = [x0, y0, x0 + sw, y0 + sh]
        kind = int(rng.integers(0, 3))
        if kind == 0:
            d.rectangle(box, fill=color)
        elif kind == 1:
            d.ellipse(box, fill=color)
        else:
            d.line(box, fill=color, width=max(1, min(w, h) // 200))
    img = img.filter(ImageFilter.GaussianBlur(radius=0.8))
    # Sensor-like noise.
    noise = rng.normal(0, 4.0, size=(h, w, 3)).astype(np.float32)
    arr = np.asarray(img, dtype=np.float32) + noise
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def gen(args):
    import numpy as np

    out = Path(args.dir)
    stamp = out / ".complete"
    want = f"count={args.count} seed={args.seed} v1"
    if stamp.exists() and stamp.read_text().strip() == want:
        print(f"using cached images in {out}", file=sys.stderr)
        return
    out.mkdir(parents=True, exist_ok=True)
    for p in out.glob("*.jpg"):
        p.unlink()
    rng = np.random.default_rng(args.seed)
    total_px = 0
    total_bytes = 0
    for i in range(args.count):
        mp = math.exp(rng.uniform(math.log(MIN_MP), math.log(MAX_MP)))
        aw, ah = ASPECTS[int(rng.integers(0, len(ASPECTS)))]
        h = int(round(math.sqrt(mp * 1e6 * ah / aw)))
        w = int(round(mp * 1e6 / h))
        img = _synth(rng, w, h)
        path = out / f"img_{i:04d}.jpg"
        img.save(path, "JPEG", quality=90)
        total_px += w * h
        total_bytes += path.stat().st_size
    stamp.write_text(want + "\n")
    print(
        f"wrote {args.count} JPEGs to {out}: {total_px / 1e6:.0f} MP, "
        f"{total_bytes / 2**20:.0f} MiB",
        file=sys.stderr,
    )


def hf(args):
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from PIL import Image, ImageOps
    import PIL
    import transformers

    files = sorted(Path(args.dir).glob("*.jpg"))
    if not files:
        sys.exit(f"no *.jpg in {args.dir}")

    if args.mode == "blip":
        from transformers import BlipImageProcessor

        proc = BlipImageProcessor(size={"height": SIZE, "width": SIZE})
        backend = type(proc).__name__

        def one(path):
            img = Image.open(path)
            img = ImageOps.exif_transpose(img)
            out = proc(images=img, return_tensors="np")
            return out["pixel_values"]

        # Sanity: one image outside the timed region.
        pv = one(files[0])
        assert pv.shape == (1, 3, SIZE, SIZE) and pv.dtype == np.float32, (pv.shape, pv.dtype)
    else:
        backend = "PIL"

        def one(path):
            img = Image.open(path)
            img = ImageOps.exif_transpose(img)
            return img.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC)

        one(files[0])

    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        for p in files:
            one(p)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(
        json.dumps(
            {
                "mode": args.mode,
                "backend": backend,
                "images": len(files),
                "runs_s": [round(t, 3) for t in times],
                "best_s": round(best, 3),
                "images_per_s": round(len(files) / best, 2),
                "transformers": transformers.__version__,
                "pillow": PIL.__version__,
                "numpy": np.__version__,
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "affinity": sorted(os.sched_getaffinity(0)),
            }
        )
    )


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--count", type=int, default=200)
    g.add_argument("--seed", type=int, default=20240611)
    g.set_defaults(fn=gen)
    h = sub.add_parser("hf")
    h.add_argument("dir")
    h.add_argument("--runs", type=int, default=2)
    h.add_argument("--mode", choices=["blip", "pil"], default="blip")
    h.set_defaults(fn=hf)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
