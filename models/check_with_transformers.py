#!/usr/bin/env python3
"""Check that transformers captions a capstream (or any BLIP) checkpoint as capstream does.

Usage, from the repository root after `cargo build --release`:

    .venv/bin/python models/check_with_transformers.py --model DIR \\
        --capstream target/release/capstream [--max-new-tokens 20] [--device cpu] IMAGE...

DIR is a Hugging Face BLIP captioning folder (config.json, model.safetensors, tokenizer files,
preprocessor_config.json), e.g. one written by `capstream train`. The script

1. loads DIR with `BlipForConditionalGeneration.from_pretrained(DIR, output_loading_info=True)`
   (float32, CPU, one torch thread) and fails if a weight is missing other than the tied
   `text_decoder.cls.predictions.decoder.{weight,bias}` (transformers 5 does not save those);
2. preprocesses each image with DIR's image processor (the PIL backend: bicubic resize, alpha
   composited onto white, CLIP normalization, as capstream does) and runs greedy
   `generate(pixel_values, max_new_tokens=N, num_beams=1, do_sample=False)`;
3. runs `CAPSTREAM caption --model DIR --json --max-new-tokens N --device DEVICE IMAGE...`
   (one JSON line per image: {"image", "caption", "token_ids"});
4. compares the token ids image by image and prints one JSON summary line:
   {"model", "images", "equal", "mismatches": [...], "missing_keys", "unexpected_keys", ...}.

Exit status: 0 when every image gives the same ids and no required weight is missing,
1 otherwise, 2 when capstream or the model cannot be run at all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

TIED_KEYS = {
    "text_decoder.cls.predictions.decoder.weight",
    "text_decoder.cls.predictions.decoder.bias",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="BLIP checkpoint folder")
    p.add_argument("--capstream", required=True, type=Path, help="the capstream binary")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--device", default="cpu", help="capstream's --device (transformers runs on CPU)")
    p.add_argument("images", nargs="+", type=Path)
    return p.parse_args(argv)


def load(model_dir: Path):
    import torch
    import transformers
    from transformers import AutoTokenizer, BlipForConditionalGeneration

    try:  # the PIL backend resizes as capstream does; torchvision may be absent anyway
        from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import BlipImageProcessor as ImageProcessor

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(1)
    model, info = BlipForConditionalGeneration.from_pretrained(
        str(model_dir), output_loading_info=True, dtype=torch.float32
    )
    model = model.to("cpu").eval()
    image_processor = ImageProcessor.from_pretrained(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return model, info, image_processor, tokenizer


def transformers_ids(model, image_processor, images: list[Path], max_new_tokens: int) -> list[list[int]]:
    import torch
    from PIL import Image

    out = []
    with torch.no_grad():
        for path in images:
            with Image.open(path) as im:
                im.load()
                pv = image_processor(images=im, return_tensors="pt")["pixel_values"].to(torch.float32)
            ids = model.generate(pixel_values=pv, max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
            out.append([int(t) for t in ids[0].tolist()])
    return out


def capstream_rows(binary: Path, model_dir: Path, images: list[Path], max_new_tokens: int, device: str):
    cmd = [str(binary), "caption", "--model", str(model_dir), "--json", "--max-new-tokens", str(max_new_tokens),
           "--device", device, *map(str, images)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    return res, rows


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    summary: dict = {"model": str(args.model), "images": len(args.images), "equal": 0, "mismatches": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info, image_processor, tokenizer = load(args.model)
        hf = transformers_ids(model, image_processor, args.images, args.max_new_tokens)

    missing = sorted(info.get("missing_keys", []))
    summary["missing_keys"] = missing
    summary["unexpected_keys"] = sorted(info.get("unexpected_keys", []))
    summary["mismatched_keys"] = sorted(str(k) for k in info.get("mismatched_keys", []))
    required_missing = [k for k in missing if k not in TIED_KEYS]
    summary["required_keys_missing"] = required_missing

    res, rows = capstream_rows(args.capstream, args.model, args.images, args.max_new_tokens, args.device)
    if res.returncode != 0 or len(rows) != len(args.images):
        summary["capstream_error"] = {"status": res.returncode, "stderr": res.stderr[-2000:], "lines": len(rows)}
        print(json.dumps(summary))
        return 2

    for path, ids, row in zip(args.images, hf, rows):
        ours = row.get("token_ids")
        if row.get("image") != str(path):
            summary["mismatches"].append({"image": str(path), "reason": f"capstream line is for {row.get('image')!r}"})
        elif ours == ids:
            summary["equal"] += 1
        else:
            summary["mismatches"].append({
                "image": str(path),
                "transformers": ids,
                "capstream": ours,
                "transformers_caption": tokenizer.decode(ids, skip_special_tokens=True),
                "capstream_caption": row.get("caption", row.get("error")),
            })
    print(json.dumps(summary))
    ok = summary["equal"] == len(args.images) and not required_missing and not summary["mismatched_keys"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
