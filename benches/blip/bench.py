#!/usr/bin/env python3
"""Helpers for benches/blip/bench.sh.

  bench.py gen DIR [--count N] [--seed S]
      Writes N deterministic synthetic PNGs into DIR (sizes around 384 px, mixed aspect
      ratios, smooth blobs + gradients + shapes). Does nothing if DIR already holds them.

  bench.py hf MODEL_DIR --batch-size B --out FILE [--runs R] [--max-new-tokens 20]
              [--min-new-tokens 20] [--threads 2] IMAGES...
      One process: loads BlipForConditionalGeneration + BlipProcessor (PIL image processor),
      eval(), no_grad(), then times R runs of greedy generate over all IMAGES
      (batch 1: one generate call per image; batch B > 1: chunks of B images per call).
      Preprocessing of every run is inside the timed region (as capstream's is), model
      load and imports are not. Writes FILE: one JSON object with the best run's seconds,
      every run's seconds, load seconds, peak RSS (ru_maxrss) and per-image token ids
      (from the last run; every run is checked to give the same ids).

  bench.py compare A B
      A and B are each a capstream --json JSONL file or a `bench.py hf` JSON file. Prints one
      JSON line comparing the generated token ids per image (matched by file name; the leading
      [DEC] and trailing [PAD]s dropped): {"equal": n, "total": n, "details": [...]};
      with --summary, one line such as "8/8 equal".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ASPECTS = [(384, 384), (480, 360), (360, 480), (512, 384), (400, 300), (384, 512), (640, 427), (300, 300)]


def cmd_gen(args) -> int:
    import numpy as np
    from PIL import Image, ImageDraw

    out = Path(args.dir)
    names = [out / f"img{i:02d}.png" for i in range(args.count)]
    if all(p.exists() for p in names):
        print(f"{out}: {args.count} images already there", file=sys.stderr)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(names):
        rng = np.random.default_rng(args.seed * 1000 + i)
        w, h = ASPECTS[i % len(ASPECTS)]
        field = rng.integers(0, 256, size=(max(2, h // 48), max(2, w // 48), 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(field, "RGB").resize((w, h), Image.BICUBIC), dtype=np.float32)
        gx = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        gy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
        arr = base * 0.6 + (gx * c0 + gy * c1) * 0.4
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(4, 12))):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
            color = tuple(int(v) for v in rng.integers(0, 256, size=3))
            (d.rectangle if rng.integers(0, 2) else d.ellipse)([x0, y0, x1, y1], fill=color)
        img.save(path, format="PNG")
    print(f"wrote {args.count} images to {out}", file=sys.stderr)
    return 0


def cmd_hf(args) -> int:
    import resource

    import numpy as np
    import PIL
    import torch
    import transformers
    from PIL import Image
    from transformers import BlipForConditionalGeneration, BlipProcessor

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = BlipForConditionalGeneration.from_pretrained(args.model_dir, dtype=dtype).eval()
    processor = BlipProcessor.from_pretrained(args.model_dir)
    load_s = time.perf_counter() - t0
    images = [str(p) for p in args.images]
    gen = dict(max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
               do_sample=False, num_beams=1)

    def one_run():
        ids = []
        with torch.no_grad():
            for k in range(0, len(images), args.batch_size):
                chunk = images[k:k + args.batch_size]
                pics = [Image.open(p).convert("RGB") for p in chunk]
                inputs = processor(images=pics, return_tensors="pt")
                out = model.generate(pixel_values=inputs["pixel_values"].to(dtype), **gen)
                ids.extend(out.tolist())
        return ids

    times, ids_runs = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        ids_runs.append(one_run())
        times.append(time.perf_counter() - t)
    stable = all(r == ids_runs[0] for r in ids_runs)
    res = dict(
        batch_size=args.batch_size, images=len(images), runs=[round(t, 3) for t in times],
        best_s=round(min(times), 3), load_s=round(load_s, 3),
        peak_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        threads=torch.get_num_threads(), runs_stable=stable, dtype=args.dtype,
        image_processor=type(processor.image_processor).__name__,
        transformers=transformers.__version__, torch=torch.__version__,
        pillow=PIL.__version__, numpy=np.__version__,
        token_ids={p: i for p, i in zip(images, ids_runs[-1])},
    )
    Path(args.out).write_text(json.dumps(res) + "\n")
    return 0


def _load_ids(path: str) -> dict[str, list[int]]:
    """{image basename: token ids} from a capstream --json JSONL file or a `bench.py hf` JSON file."""
    text = Path(path).read_text()
    first = text.lstrip()[:1]
    out = {}
    if first == "{" and "\"token_ids\": {" in text.split("\n", 1)[0]:
        for p, ids in json.loads(text.split("\n", 1)[0])["token_ids"].items():
            out[os.path.basename(p)] = ids
        return out
    for line in text.splitlines():
        if line.strip():
            obj = json.loads(line)
            out[os.path.basename(obj["image"])] = obj.get("token_ids")  # None on an error line
    return out


def _strip(ids, bos=30522, pad=0):
    """Drop the leading [DEC] and trailing padding so both sides compare on generated tokens."""
    ids = list(ids)
    if ids and ids[0] == bos:
        ids = ids[1:]
    while ids and ids[-1] == pad:
        ids.pop()
    return ids


def cmd_compare(args) -> int:
    a, b = _load_ids(args.a), _load_ids(args.b)
    details, equal = [], 0
    for name in sorted(set(a) | set(b)):
        ia, ib = a.get(name), b.get(name)
        sa = _strip(ia) if ia is not None else None
        sb = _strip(ib) if ib is not None else None
        ok = sa is not None and sa == sb
        equal += ok
        d = dict(image=name, equal=ok, n_a=None if sa is None else len(sa), n_b=None if sb is None else len(sb))
        if not ok:
            first = next((k for k, (x, y) in enumerate(zip(sa or [], sb or [])) if x != y), None)
            d.update(first_diff=first, a=ia, b=ib)
        details.append(d)
    if args.summary:
        bad = [f"{d['image']}: first difference at token {d.get('first_diff')}, lengths {d['n_a']}/{d['n_b']}"
               for d in details if not d["equal"]]
        print(f"{equal}/{len(details)} equal" + (" (" + "; ".join(bad) + ")" if bad else ""))
    else:
        print(json.dumps(dict(equal=equal, total=len(details), details=details)))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--count", type=int, default=8)
    g.add_argument("--seed", type=int, default=0)
    h = sub.add_parser("hf")
    h.add_argument("model_dir")
    h.add_argument("images", nargs="+")
    h.add_argument("--batch-size", type=int, required=True)
    h.add_argument("--out", required=True)
    h.add_argument("--runs", type=int, default=1)
    h.add_argument("--threads", type=int, default=2)
    h.add_argument("--max-new-tokens", type=int, default=20)
    h.add_argument("--min-new-tokens", type=int, default=20)
    h.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--summary", action="store_true", help="one line of text instead of JSON")
    args = ap.parse_args(argv)
    return {"gen": cmd_gen, "hf": cmd_hf, "compare": cmd_compare}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
