#!/usr/bin/env python3
"""Odd-image corpus: how often does capstream's decode_image agree with Pillow?

Run from the repository root (after `cargo build --release`):

    .venv/bin/python benches/images/odd_corpus.py [--out DIR] [--count 600] [--seed 1]
        [--size 64] [--capstream target/release/capstream] [--failures 30]

1. Generates a randomized corpus of odd images into DIR/images/<category>/: every
   category of tests/fixtures/odd_images (orientation carried by EXIF in JPEG/PNG/WebP,
   eXIf after IDAT, XMP in JPEG/PNG/WebP, ImageMagick raw profiles, TIFF Orientation;
   tRNS in L/RGB/P PNGs, LA/RGBA 8/16-bit, GIF transparency, BMP alpha; BMP RLE8/RLE4,
   OS/2, 1/4/8-bit, BITFIELDS, top-down; TIFF multi-page, 16-bit, planar, tiled, LZW,
   deflate, PackBits, predictor, JPEG (RGB and YCbCr), CMYK, bilevel (G3/G4), float,
   alpha, palette) plus JPEG and WebP variants. Sides are random in 7..300, orientations
   1..8, modes, bit depths, compressions and transparency random. The encoders are those
   of tests/fixtures/odd_images/make_fixtures.py (imported from there).
2. Computes Pillow's reference per file, the BlipImageProcessor PIL path:
   ImageOps.exif_transpose -> transformers convert_to_rgb -> resize((S, S), BICUBIC).
3. Runs `capstream run` over DIR/images with a decode_image-only pipeline that writes
   every column, reads DIR/rows/part-*.parquet, and prints:
   * agreement = files capstream decodes among the files Pillow decodes,
   * pixel match = files whose every sample is within 2 levels of Pillow's, among the
     files both decode,
   * a per-category table, the dominant capstream errors per category, the first
     failures, and the files capstream decodes although Pillow refuses them.

It exits 0 when the measurement ran (failures are the measurement, not an error) and
2 when capstream could not be run at all. The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
FIXTURE_SCRIPT = REPO / "tests" / "fixtures" / "odd_images" / "make_fixtures.py"


def load_encoders():
    spec = importlib.util.spec_from_file_location("odd_images_make_fixtures", FIXTURE_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


mf = load_encoders()

GROSS_MEAN = 1.0  # mean |d| above this is a different image, not resampling noise

PIPELINE = """name = "odd-corpus"
[source]
type = "files"
id = "path"
[[stage]]
type = "decode_image"
image_size = {size}
[sink]
type = "parquet"
columns = "all"
"""


# ==========================================================================
# Random content helpers
# ==========================================================================


def rsize(rng, lo: int = 7, hi: int = 300) -> tuple[int, int]:
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def rscene(rng, w: int, h: int) -> np.ndarray:
    return mf.scene(w, h, seed=int(rng.integers(1 << 30)), noise_sigma=float(rng.uniform(2, 12)))


def ralpha(rng, w: int, h: int) -> np.ndarray:
    kind = rng.choice(["field", "binary", "constant", "opaque", "zero"], p=[0.5, 0.2, 0.1, 0.1, 0.1])
    if kind == "field":
        return mf.alpha_field(w, h)
    if kind == "binary":
        return np.where(mf.alpha_field(w, h) > 127, 255, 0).astype(np.uint8)
    if kind == "constant":
        return np.full((h, w), int(rng.integers(1, 255)), np.uint8)
    if kind == "opaque":
        return np.full((h, w), 255, np.uint8)
    return np.zeros((h, w), np.uint8)


def rorient(rng) -> int:
    return int(rng.integers(1, 9))


def rgb16(rng, rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb.astype(np.int32) * 257 + rng.integers(-120, 120, rgb.shape), 0, 65535).astype(np.uint16)


def jpeg_bytes(rng, img: Image.Image) -> tuple[bytes, str]:
    q = int(rng.integers(50, 98))
    kw = {"quality": q}
    desc = f"q{q}"
    if img.mode == "RGB":
        sub = int(rng.integers(0, 3))
        kw["subsampling"] = sub
        desc += " " + ["4:4:4", "4:2:2", "4:2:0"][sub]
    if rng.random() < 0.3:
        kw["progressive"] = True
        desc += " progressive"
    if rng.random() < 0.2:
        kw["optimize"] = True
    return mf.pil_jpeg(img, **kw), desc


def exif_payload(rng, o: int) -> tuple[bytes, str]:
    endian = str(rng.choice(["MM", "II"]))
    camera = bool(rng.random() < 0.7)
    return mf.exif_tiff(o, endian, camera=camera), f"EXIF {endian}"


# ==========================================================================
# Generators: each returns (extension, bytes, description)
# ==========================================================================


def g_control_png(rng):
    """Plain 8-bit RGB PNG, no metadata: the baseline (decode is trivial, so any
    difference here comes from the resize)."""
    w, h = rsize(rng)
    return "png", mf.pil_png(Image.fromarray(rscene(rng, w, h))), "PNG RGB 8-bit (control)"


def g_orient_jpeg_exif(rng):
    w, h = rsize(rng)
    o = rorient(rng)
    jpg, d = jpeg_bytes(rng, Image.fromarray(rscene(rng, w, h)))
    ex, ed = exif_payload(rng, o)
    jpg = mf.jpeg_insert_app(jpg, 0xE1, mf.jpeg_exif_app1(ex))
    desc = f"JPEG {d}, {ed} Orientation={o}"
    if rng.random() < 0.25:
        o2 = rorient(rng)
        jpg = mf.jpeg_insert_app(jpg, 0xE1, mf.jpeg_xmp_app1(mf.xmp_packet(o2, "attr")))
        desc += f", XMP Orientation={o2} too"
    return "jpg", jpg, desc


def g_orient_jpeg_xmp(rng):
    w, h = rsize(rng)
    o = rorient(rng)
    form = str(rng.choice(["attr", "elem"]))
    jpg, d = jpeg_bytes(rng, Image.fromarray(rscene(rng, w, h)))
    jpg = mf.jpeg_insert_app(jpg, 0xE1, mf.jpeg_xmp_app1(mf.xmp_packet(o, form)))
    return "jpg", jpg, f"JPEG {d}, XMP only ({form}) Orientation={o}"


def g_orient_png_exif(rng):
    w, h = rsize(rng)
    o = rorient(rng)
    where = str(rng.choice(["before_idat", "after_idat"]))
    ex, ed = exif_payload(rng, o)
    png = mf.png_insert(mf.pil_png(Image.fromarray(rscene(rng, w, h))), b"eXIf", ex, where)
    return "png", png, f"PNG eXIf {where} {ed} Orientation={o}"


def g_orient_png_xmp(rng):
    w, h = rsize(rng)
    o = rorient(rng)
    form = str(rng.choice(["attr", "elem"]))
    comp = bool(rng.random() < 0.3)
    png = mf.png_insert(mf.pil_png(Image.fromarray(rscene(rng, w, h))), b"iTXt",
                        mf.png_itxt("XML:com.adobe.xmp", mf.xmp_packet(o, form), compressed=comp))
    return "png", png, f"PNG iTXt XMP ({form}{', compressed' if comp else ''}) Orientation={o}"


def g_orient_png_rawprofile(rng):
    w, h = rsize(rng)
    o = rorient(rng)
    ex, ed = exif_payload(rng, o)
    png = mf.png_insert(mf.pil_png(Image.fromarray(rscene(rng, w, h))), b"zTXt", mf.png_raw_profile_exif(ex))
    return "png", png, f"PNG zTXt 'Raw profile type exif' {ed} Orientation={o}"


def _webp(rng, img):
    if rng.random() < 0.5:
        return {"lossless": True}, "lossless"
    q = int(rng.integers(50, 95))
    return {"quality": q}, f"lossy q{q}"


def g_orient_webp_exif(rng):
    w, h = rsize(rng)
    o = rorient(rng)
    img = Image.fromarray(rscene(rng, w, h))
    kw, d = _webp(rng, img)
    ex, ed = exif_payload(rng, o)
    return "webp", mf.pil_webp(img, exif=ex, **kw), f"WebP {d}, {ed} Orientation={o}"


def g_orient_webp_xmp(rng):
    w, h = rsize(rng)
    o = rorient(rng)
    form = str(rng.choice(["attr", "elem"]))
    img = Image.fromarray(rscene(rng, w, h))
    kw, d = _webp(rng, img)
    return "webp", mf.pil_webp(img, xmp=mf.xmp_packet(o, form), **kw), f"WebP {d}, XMP only ({form}) Orientation={o}"


def g_orient_tiff(rng):
    w, h = rsize(rng)
    o = rorient(rng)
    comp = int(rng.choice([1, 5, 8, 32773]))
    endian = str(rng.choice(["II", "MM"]))
    page = mf.tiff_page(rscene(rng, w, h), photometric=2, compression=comp, orientation=o,
                        rows_per_strip=int(rng.integers(1, h + 1)), endian=endian)
    return "tif", mf.tiff_build([page], endian), f"TIFF {endian} compression={comp} Orientation={o}"


def g_png_trns(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    kind = str(rng.choice(["L", "RGB", "P", "P", "L_lowbit", "L16", "RGB16"]))
    if kind == "L_lowbit":
        bits = int(rng.choice([1, 2, 4]))
        g = (mf.gray(rgb) >> (8 - bits)).astype(np.uint8)
        key = int(g[int(rng.integers(h)), int(rng.integers(w))])
        return "png", mf.png_from_samples(g[..., None], 0, bits, trns=struct.pack(">H", key)), \
            f"PNG grey {bits}-bit tRNS key={key}"
    if kind == "L16":
        g16 = rgb16(rng, mf.gray(rgb)[..., None])
        key = int(g16[int(rng.integers(h)), int(rng.integers(w)), 0])
        return "png", mf.png_from_samples(g16, 0, 16, trns=struct.pack(">H", key)), f"PNG grey 16-bit tRNS key={key}"
    if kind == "RGB16":
        c16 = rgb.astype(np.uint16) * 257 if rng.random() < 0.5 else rgb16(rng, rgb)
        key = tuple(int(v) for v in c16[int(rng.integers(h)), int(rng.integers(w))])
        return "png", mf.png_from_samples(c16, 2, 16, trns=struct.pack(">HHH", *key)), \
            f"PNG RGB 16-bit tRNS key={key}"
    if kind == "L":
        g = mf.gray(rgb)
        key = int(g[int(rng.integers(h)), int(rng.integers(w))])
        return "png", mf.pil_png(Image.fromarray(g, "L"), transparency=key), f"PNG L tRNS key={key}"
    if kind == "RGB":
        key = tuple(int(v) for v in rgb[int(rng.integers(h)), int(rng.integers(w))])
        if rng.random() < 0.5:
            key = (250, 20, 20)
        return "png", mf.pil_png(Image.fromarray(rgb), transparency=key), f"PNG RGB tRNS key={key}"
    colors = int(rng.choice([2, 4, 16, 64, 256]))
    idx, pal = mf.quantize(rgb, colors)
    n_t = int(rng.integers(1, min(colors, 8) + 1))
    alpha = np.full(colors, 255, np.uint8)
    pick = rng.choice(colors, n_t, replace=False)
    alpha[pick] = rng.integers(0, 255, n_t)
    last = int(np.max(np.flatnonzero(alpha < 255))) + 1
    p = Image.fromarray(idx, "P")
    p.putpalette(pal.reshape(-1).tolist())
    bits = {2: 1, 4: 2, 16: 4}.get(colors, 8)
    return "png", mf.pil_png(p, transparency=alpha[:last].tobytes(), bits=bits), \
        f"PNG P {colors} colours ({bits}-bit), tRNS on {n_t} entries"


def g_png_alpha(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    a = ralpha(rng, w, h)
    kind = str(rng.choice(["LA8", "RGBA8", "RGBA16", "LA16"]))
    if kind == "LA8":
        return "png", mf.pil_png(Image.fromarray(np.dstack([mf.gray(rgb), a]), "LA")), "PNG LA 8-bit"
    if kind == "RGBA8":
        return "png", mf.pil_png(Image.fromarray(np.dstack([rgb, a]), "RGBA")), "PNG RGBA 8-bit"
    filt = str(rng.choice(["none", "mixed"]))
    a16 = np.clip(a.astype(np.int32) * 257 + rng.integers(-50, 50, a.shape), 0, 65535).astype(np.uint16)
    if kind == "RGBA16":
        s = np.dstack([rgb16(rng, rgb), a16])
        return "png", mf.png_from_samples(s, 6, 16, filters=filt, rng=rng), f"PNG RGBA 16-bit, filters {filt}"
    g16 = rgb16(rng, mf.gray(rgb)[..., None])[..., 0]
    return "png", mf.png_from_samples(np.dstack([g16, a16]), 4, 16, filters=filt, rng=rng), \
        f"PNG LA 16-bit, filters {filt}"


def g_png_16bit(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    filt = str(rng.choice(["none", "mixed"]))
    if rng.random() < 0.5:
        g16 = rgb16(rng, mf.gray(rgb)[..., None])
        if rng.random() < 0.3:
            g16 = (g16 // 256).astype(np.uint16)  # "16-bit" file holding 8-bit values
            return "png", mf.png_from_samples(g16, 0, 16, filters=filt, rng=rng), "PNG grey 16-bit holding 0..255"
        return "png", mf.png_from_samples(g16, 0, 16, filters=filt, rng=rng), f"PNG grey 16-bit, filters {filt}"
    return "png", mf.png_from_samples(rgb16(rng, rgb), 2, 16, filters=filt, rng=rng), f"PNG RGB 16-bit, filters {filt}"


def g_gif(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    colors = int(rng.choice([2, 8, 32, 128, 256]))
    idx, pal = mf.quantize(rgb, colors)
    p = Image.fromarray(idx, "P")
    p.putpalette(pal.reshape(-1).tolist())
    kw = {"interlace": bool(rng.random() < 0.5)}
    desc = f"GIF {colors} colours{' interlaced' if kw['interlace'] else ''}"
    if rng.random() < 0.7:
        t = int(rng.integers(colors))
        kw["transparency"] = t
        desc += f", transparent index {t}"
    return "gif", mf.pil_gif(p, **kw), desc


def g_bmp_alpha(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    a = ralpha(rng, w, h)
    kind = str(rng.choice(["v4_bgra", "v5_bgra", "bi_rgb_alpha", "bi_rgb_zero_alpha", "v5_rgba_order",
                           "info_bitfields_bgrx"]))
    px = mf.bmp_pack_rows(np.dstack([rgb, a]), 32)
    if kind in ("v4_bgra", "v5_bgra"):
        data = mf.bmp_file(w, h, 32, px, header=kind[:2], compression=3,
                           masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000))
    elif kind == "bi_rgb_alpha":
        data = mf.bmp_file(w, h, 32, px)
    elif kind == "bi_rgb_zero_alpha":
        data = mf.bmp_file(w, h, 32, mf.bmp_pack_rows(np.dstack([rgb, np.zeros_like(a)]), 32))
    elif kind == "v5_rgba_order":
        px = mf.bmp_pack_rows(np.dstack([rgb[..., ::-1], a]), 32)  # bytes R,G,B,A
        data = mf.bmp_file(w, h, 32, px, header="v5", compression=3,
                           masks=(0xFF, 0xFF00, 0xFF0000, 0xFF000000))
    else:
        data = mf.bmp_file(w, h, 32, px, compression=3, masks=(0xFF0000, 0xFF00, 0xFF))
    return "bmp", data, f"BMP 32-bit {kind}"


def g_bmp_palette(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    bpp = int(rng.choice([1, 4, 8]))
    n = 1 << bpp
    if rng.random() < 0.2:
        g = mf.gray(rgb)
        pal = np.repeat(np.linspace(0, 255, n).round().astype(np.uint8)[:, None], 3, 1)
        idx = np.rint(g.astype(np.float64) * (n - 1) / 255).astype(np.uint8)
        return "bmp", mf.bmp_file(w, h, bpp, mf.bmp_pack_rows(idx, bpp), palette=pal), f"BMP {bpp}-bit grey palette"
    used = n if rng.random() < 0.5 else int(rng.integers(2, n + 1))
    idx, pal = mf.quantize(rgb, used)
    top = bool(rng.random() < 0.2)
    data = mf.bmp_file(w, h, bpp, mf.bmp_pack_rows(idx, bpp, top_down=top), palette=pal[:used], top_down=top)
    return "bmp", data, f"BMP {bpp}-bit palette, {used} colours used{' top-down' if top else ''}"


def _rle_holes(rng, w: int, h: int, idx: np.ndarray) -> np.ndarray:
    idx = idx.copy()
    for _ in range(int(rng.integers(1, 5))):
        y0, x0 = int(rng.integers(h)), int(rng.integers(w))
        idx[y0:y0 + int(rng.integers(1, max(2, h // 3))), x0:x0 + int(rng.integers(1, max(2, w // 2)))] = 0
    if rng.random() < 0.5:
        y0 = int(rng.integers(h))
        idx[y0:y0 + int(rng.integers(1, 4)), :] = 0
    return idx


def g_bmp_rle(rng):
    w, h = rsize(rng)
    rle4 = bool(rng.random() < 0.5)
    colors = 16 if rle4 else int(rng.choice([16, 64, 256]))
    idx, pal = mf.quantize(rscene(rng, w, h), colors - 1)
    idx = idx.astype(np.uint8) + 1
    pal = np.vstack([mf.RLE_BG, pal[: colors - 1]])
    idx = _rle_holes(rng, w, h, idx)
    delta = bool(rng.random() < 0.8)
    early = bool(rng.random() < 0.12)
    blank = bool(rng.random() < 0.12)
    enc = mf.rle_encode(idx, rle4=rle4, use_delta=delta, early_eob=early, blank_row_eol=blank)
    data = mf.bmp_file(w, h, 4 if rle4 else 8, enc, compression=2 if rle4 else 1, palette=pal)
    return "bmp", data, (f"BMP RLE{'4' if rle4 else '8'}{' +delta' if delta else ''}"
                         f"{' early-EOB' if early else ''}{' blank-row-EOL' if blank else ''}")


def g_bmp_os2(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    bpp = int(rng.choice([1, 4, 8, 24]))
    if bpp == 24:
        return "bmp", mf.bmp_file(w, h, 24, mf.bmp_pack_rows(rgb, 24), header="core"), "OS/2 1.x BMP 24-bit"
    idx, pal = mf.quantize(rgb, 1 << bpp)
    return "bmp", mf.bmp_file(w, h, bpp, mf.bmp_pack_rows(idx, bpp), header="core", palette=pal), \
        f"OS/2 1.x BMP {bpp}-bit"


def g_bmp_bitfields(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h).astype(np.uint32)
    a = ralpha(rng, w, h).astype(np.uint32)
    kind = str(rng.choice(["565", "555_bitfields", "555_bi_rgb", "4444", "1555", "32_xrgb_swapped",
                           "32_10_10_10"]))
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if kind == "565":
        word = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
        return "bmp", mf.bmp_file(w, h, 16, mf.bmp_pack_rows(word, 16), compression=3,
                                  masks=(0xF800, 0x7E0, 0x1F)), "BMP 16-bit BITFIELDS 565"
    if kind in ("555_bitfields", "555_bi_rgb"):
        word = ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3)
        if kind == "555_bi_rgb":
            return "bmp", mf.bmp_file(w, h, 16, mf.bmp_pack_rows(word, 16)), "BMP 16-bit BI_RGB (555)"
        return "bmp", mf.bmp_file(w, h, 16, mf.bmp_pack_rows(word, 16), compression=3,
                                  masks=(0x7C00, 0x3E0, 0x1F)), "BMP 16-bit BITFIELDS 555"
    if kind == "4444":
        word = ((a >> 4) << 12) | ((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4)
        return "bmp", mf.bmp_file(w, h, 16, mf.bmp_pack_rows(word, 16), header="v4", compression=3,
                                  masks=(0xF00, 0xF0, 0xF, 0xF000)), "BMP 16-bit ARGB4444 (V4)"
    if kind == "1555":
        word = ((a >> 7) << 15) | ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3)
        return "bmp", mf.bmp_file(w, h, 16, mf.bmp_pack_rows(word, 16), header="v5", compression=3,
                                  masks=(0x7C00, 0x3E0, 0x1F, 0x8000)), "BMP 16-bit ARGB1555 (V5)"
    if kind == "32_xrgb_swapped":
        # bytes X,B,G,R -> masks R=0xFF000000, G=0xFF0000, B=0xFF00 (Pillow's "XBGR")
        word = (r << 24) | (g << 16) | (b << 8)
        px = mf.bmp_pack_rows(np.dstack([(word >> s) & 0xFF for s in (16, 8, 0, 24)]).astype(np.uint8), 32)
        return "bmp", mf.bmp_file(w, h, 32, px, compression=3, masks=(0xFF000000, 0xFF0000, 0xFF00)), \
            "BMP 32-bit BITFIELDS R,G,B in the high bytes"
    word = ((r * 1023 // 255) << 20) | ((g * 1023 // 255) << 10) | (b * 1023 // 255)
    px = mf.bmp_pack_rows(np.dstack([(word >> s) & 0xFF for s in (16, 8, 0, 24)]).astype(np.uint8), 32)
    return "bmp", mf.bmp_file(w, h, 32, px, header="v5", compression=3,
                              masks=(0x3FF00000, 0xFFC00, 0x3FF, 0)), "BMP 32-bit BITFIELDS 10-10-10"


def g_bmp_topdown(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    bpp = int(rng.choice([8, 24, 32]))
    if bpp == 8:
        idx, pal = mf.quantize(rgb, 256)
        return "bmp", mf.bmp_file(w, h, 8, mf.bmp_pack_rows(idx, 8, top_down=True), palette=pal, top_down=True), \
            "BMP 8-bit top-down"
    vals = rgb if bpp == 24 else np.dstack([rgb, np.full((h, w), 255, np.uint8)])
    hdr = str(rng.choice(["info", "v5"]))
    return "bmp", mf.bmp_file(w, h, bpp, mf.bmp_pack_rows(vals, bpp, top_down=True), header=hdr, top_down=True), \
        f"BMP {bpp}-bit top-down ({hdr} header)"


COMPRESSIONS = [1, 5, 8, 32946, 32773]


def _tiff_layout(rng, w: int, h: int, allow_jpeg: bool = False) -> tuple[dict, str]:
    kw: dict = {}
    if rng.random() < 0.3:
        t = int(rng.choice([16, 32, 64]))
        kw["tile"] = (t, t)
        desc = f"tiled {t}x{t}"
    else:
        kw["rows_per_strip"] = int(rng.integers(1, h + 1))
        desc = f"strips of {kw['rows_per_strip']}"
    return kw, desc


def g_tiff_multipage(rng):
    n = int(rng.integers(2, 5))
    endian = str(rng.choice(["II", "MM"]))
    pages, sizes = [], []
    for i in range(n):
        w, h = rsize(rng)
        lay, _ = _tiff_layout(rng, w, h)
        comp = int(rng.choice(COMPRESSIONS))
        pages.append(mf.tiff_page(rscene(rng, w, h), photometric=2, compression=comp, endian=endian, **lay))
        sizes.append(f"{w}x{h}")
    return "tif", mf.tiff_build(pages, endian), f"TIFF {endian} {n} pages {', '.join(sizes)}"


def g_tiff_16bit(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    endian = str(rng.choice(["II", "MM"]))
    kind = str(rng.choice(["gray16", "rgb16", "rgba16"]))
    comp = int(rng.choice([1, 5, 8, 32773]))
    pred = 2 if comp in (5, 8) and rng.random() < 0.5 else 1
    lay, ld = _tiff_layout(rng, w, h)
    if kind == "gray16":
        arr, ph, ex = rgb16(rng, mf.gray(rgb)[..., None]), 1, ()
    elif kind == "rgb16":
        arr, ph, ex = rgb16(rng, rgb), 2, ()
    else:
        a16 = ralpha(rng, w, h).astype(np.uint16)[..., None] * 257
        arr, ph, ex = np.dstack([rgb16(rng, rgb), a16]), 2, (2,)
    page = mf.tiff_page(arr, photometric=ph, bps=16, compression=comp, predictor=pred, extra_samples=ex,
                        endian=endian, **lay)
    return "tif", mf.tiff_build([page], endian), f"TIFF {endian} {kind} compression={comp} predictor={pred} {ld}"


def g_tiff_planar(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    endian = str(rng.choice(["II", "MM"]))
    bps = int(rng.choice([8, 16]))
    alpha = bool(rng.random() < 0.3)
    arr = rgb if bps == 8 else rgb16(rng, rgb)
    ex = ()
    if alpha:
        a = ralpha(rng, w, h)
        arr = np.dstack([arr, a if bps == 8 else a.astype(np.uint16) * 257])
        ex = (2,)
    comp = int(rng.choice(COMPRESSIONS))
    pred = 2 if comp in (5, 8) and rng.random() < 0.4 else 1
    lay, ld = _tiff_layout(rng, w, h)
    page = mf.tiff_page(arr, photometric=2, bps=bps, planar=2, compression=comp, predictor=pred,
                        extra_samples=ex, endian=endian, **lay)
    return "tif", mf.tiff_build([page], endian), \
        f"TIFF {endian} planar {bps}-bit {'RGBA' if alpha else 'RGB'} compression={comp} predictor={pred} {ld}"


def g_tiff_tiled(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    endian = str(rng.choice(["II", "MM"]))
    t = int(rng.choice([16, 32, 48, 64, 128]))
    th = t if rng.random() < 0.7 else int(rng.choice([16, 32, 64]))
    comp = int(rng.choice(COMPRESSIONS + [7]))
    if comp == 7:
        sub = [(1, 1), (2, 1), (2, 2)][int(rng.integers(3))]
        page = mf.tiff_page(rgb, photometric=6, compression=7, ycbcr_subsampling=sub, tile=(t, th),
                            jpeg_quality=int(rng.integers(60, 95)), endian=endian)
        return "tif", mf.tiff_build([page], endian), f"TIFF {endian} tiled {t}x{th} JPEG YCbCr {sub}"
    gray_ = bool(rng.random() < 0.3)
    arr = mf.gray(rgb) if gray_ else rgb
    pred = 2 if comp in (5, 8) and rng.random() < 0.4 else 1
    page = mf.tiff_page(arr, photometric=1 if gray_ else 2, compression=comp, predictor=pred, tile=(t, th),
                        endian=endian)
    return "tif", mf.tiff_build([page], endian), \
        f"TIFF {endian} tiled {t}x{th} {'grey' if gray_ else 'RGB'} compression={comp} predictor={pred}"


def g_tiff_compression(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    gray_ = bool(rng.random() < 0.3)
    if rng.random() < 0.3:  # libtiff's own encoder, through Pillow
        comp = str(rng.choice(["tiff_lzw", "tiff_adobe_deflate", "packbits", "tiff_deflate"]))
        img = Image.fromarray(mf.gray(rgb), "L") if gray_ else Image.fromarray(rgb)
        return "tif", mf.pil_tiff(img, compression=comp), f"TIFF (libtiff) {comp} {'grey' if gray_ else 'RGB'}"
    endian = str(rng.choice(["II", "MM"]))
    comp = int(rng.choice([5, 8, 32946, 32773]))
    pred = 2 if comp in (5, 8, 32946) and rng.random() < 0.5 else 1
    rps = int(rng.integers(1, h + 1))
    page = mf.tiff_page(mf.gray(rgb) if gray_ else rgb, photometric=1 if gray_ else 2, compression=comp,
                        predictor=pred, rows_per_strip=rps, endian=endian)
    return "tif", mf.tiff_build([page], endian), \
        f"TIFF {endian} {'grey' if gray_ else 'RGB'} compression={comp} predictor={pred} strips of {rps}"


def g_tiff_jpeg(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    kind = str(rng.choice(["libtiff_rgb", "ycbcr", "ycbcr", "gray"]))
    q = int(rng.integers(60, 95))
    if kind == "libtiff_rgb":
        return "tif", mf.pil_tiff(Image.fromarray(rgb), compression="jpeg", quality=q), \
            f"TIFF JPEG Photometric=RGB (libtiff) q{q}"
    endian = str(rng.choice(["II", "MM"]))
    if kind == "gray":
        rps = int(rng.choice([8, 16, 64, h]))
        page = mf.tiff_page(mf.gray(rgb), photometric=1, compression=7, rows_per_strip=rps, jpeg_quality=q,
                            endian=endian)
        return "tif", mf.tiff_build([page], endian), f"TIFF {endian} JPEG grey strips of {rps}"
    sub = [(1, 1), (2, 1), (2, 2)][int(rng.integers(3))]
    mcu = 8 * sub[1]
    rps = int(rng.choice([mcu, 2 * mcu, 4 * mcu, -(-h // mcu) * mcu]))
    page = mf.tiff_page(rgb, photometric=6, compression=7, ycbcr_subsampling=sub, rows_per_strip=rps,
                        jpeg_quality=q, endian=endian)
    return "tif", mf.tiff_build([page], endian), f"TIFF {endian} JPEG YCbCr {sub} strips of {rps} q{q}"


def g_tiff_cmyk(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h).astype(np.int32)
    k = 255 - rgb.max(axis=-1)
    denom = np.maximum(255 - k, 1)[..., None]
    cmyk = np.dstack([(255 - rgb - k[..., None]) * 255 // denom, k]).astype(np.uint8)
    if rng.random() < 0.3:
        return "tif", mf.pil_tiff(Image.fromarray(cmyk, "CMYK"), compression=str(rng.choice(["raw", "tiff_lzw"]))), \
            "TIFF CMYK (Pillow)"
    endian = str(rng.choice(["II", "MM"]))
    comp = int(rng.choice(COMPRESSIONS))
    lay, ld = _tiff_layout(rng, w, h)
    planar = 2 if rng.random() < 0.2 else 1
    page = mf.tiff_page(cmyk, photometric=5, compression=comp, planar=planar, endian=endian, **lay)
    return "tif", mf.tiff_build([page], endian), f"TIFF {endian} CMYK compression={comp} planar={planar} {ld}"


def g_tiff_bilevel(rng):
    w, h = rsize(rng)
    bw = mf.gray(rscene(rng, w, h)) > int(rng.integers(80, 170))
    kind = str(rng.choice(["group4", "group3", "raw_min_is_white", "raw_min_is_black", "packbits"]))
    if kind in ("group4", "group3"):
        img = Image.fromarray(bw.astype(np.uint8) * 255, "L").convert("1", dither=Image.Dither.NONE)
        return "tif", mf.pil_tiff(img, compression=kind), f"TIFF bilevel CCITT {kind} (libtiff)"
    endian = str(rng.choice(["II", "MM"]))
    ph = 0 if kind == "raw_min_is_white" else 1
    bits = (~bw if ph == 0 else bw).astype(np.uint8)
    comp = 32773 if kind == "packbits" else 1
    page = mf.tiff_page(bits, photometric=ph, bps=1, compression=comp, rows_per_strip=int(rng.integers(1, h + 1)),
                        endian=endian)
    return "tif", mf.tiff_build([page], endian), f"TIFF {endian} bilevel Photometric={ph} compression={comp}"


def g_tiff_float(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h).astype(np.float32)
    endian = str(rng.choice(["II", "MM"]))
    scale = str(rng.choice(["unit", "levels", "wide"]))
    f = {"unit": 1 / 255.0, "levels": 1.0, "wide": 4.0}[scale]
    if rng.random() < 0.25:
        page = mf.tiff_page(rgb * f, photometric=2, bps=32, sample_format=3, endian=endian)
        return "tif", mf.tiff_build([page], endian), f"TIFF {endian} float32 RGB ({scale})"
    g = mf.gray(rgb.astype(np.uint8)).astype(np.float32) * f
    comp = int(rng.choice([1, 8]))
    page = mf.tiff_page(g, photometric=1, bps=32, sample_format=3, compression=comp, endian=endian)
    return "tif", mf.tiff_build([page], endian), f"TIFF {endian} float32 grey ({scale}) compression={comp}"


def g_tiff_alpha(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    a = ralpha(rng, w, h)
    endian = str(rng.choice(["II", "MM"]))
    kind = str(rng.choice(["rgba_unassoc", "rgba_assoc", "la_unassoc", "rgba_unspecified"]))
    comp = int(rng.choice(COMPRESSIONS))
    lay, ld = _tiff_layout(rng, w, h)
    if kind == "la_unassoc":
        arr, ph, ex = np.dstack([mf.gray(rgb), a]), 1, (2,)
    elif kind == "rgba_assoc":
        pre = np.rint(rgb.astype(np.float64) * a[..., None] / 255).astype(np.uint8)
        arr, ph, ex = np.dstack([pre, a]), 2, (1,)
    else:
        arr, ph, ex = np.dstack([rgb, a]), 2, ((2,) if kind == "rgba_unassoc" else (0,))
    page = mf.tiff_page(arr, photometric=ph, compression=comp, extra_samples=ex, endian=endian, **lay)
    return "tif", mf.tiff_build([page], endian), f"TIFF {endian} {kind} compression={comp} {ld}"


def g_tiff_palette(rng):
    w, h = rsize(rng)
    bps = int(rng.choice([2, 4, 8]))
    idx, pal = mf.quantize(rscene(rng, w, h), 1 << bps)
    endian = str(rng.choice(["II", "MM"]))
    comp = int(rng.choice(COMPRESSIONS))
    page = mf.tiff_page(idx, photometric=3, bps=bps, colormap=pal, compression=comp,
                        rows_per_strip=int(rng.integers(1, h + 1)), endian=endian)
    return "tif", mf.tiff_build([page], endian), f"TIFF {endian} palette {bps}-bit compression={comp}"


def g_jpeg_variants(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    kind = str(rng.choice(["gray", "cmyk", "rgb", "rgb_keep_rgb"]))
    if kind == "gray":
        jpg, d = jpeg_bytes(rng, Image.fromarray(mf.gray(rgb), "L"))
        return "jpg", jpg, f"JPEG grey {d}"
    if kind == "cmyk":
        q = int(rng.integers(60, 95))
        return "jpg", mf.pil_jpeg(Image.fromarray(rgb).convert("CMYK"), quality=q), f"JPEG CMYK (Adobe) q{q}"
    if kind == "rgb_keep_rgb":
        q = int(rng.integers(60, 95))
        return "jpg", mf.pil_jpeg(Image.fromarray(rgb), quality=q, keep_rgb=True, subsampling=0), \
            f"JPEG RGB components (no YCbCr transform) q{q}"
    jpg, d = jpeg_bytes(rng, Image.fromarray(rgb))
    return "jpg", jpg, f"JPEG {d}"


def g_webp_alpha(rng):
    w, h = rsize(rng)
    rgb = rscene(rng, w, h)
    a = ralpha(rng, w, h)
    img = Image.fromarray(np.dstack([rgb, a]), "RGBA")
    kw, d = _webp(rng, img)
    if rng.random() < 0.3:
        kw["exact"] = True
        d += " exact"
    return "webp", mf.pil_webp(img, **kw), f"WebP RGBA {d}"


GENERATORS = {
    "control_png": g_control_png,
    "orient_jpeg_exif": g_orient_jpeg_exif,
    "orient_jpeg_xmp": g_orient_jpeg_xmp,
    "orient_png_exif": g_orient_png_exif,
    "orient_png_xmp": g_orient_png_xmp,
    "orient_png_rawprofile": g_orient_png_rawprofile,
    "orient_webp_exif": g_orient_webp_exif,
    "orient_webp_xmp": g_orient_webp_xmp,
    "orient_tiff": g_orient_tiff,
    "png_trns": g_png_trns,
    "png_alpha": g_png_alpha,
    "png_16bit": g_png_16bit,
    "gif": g_gif,
    "webp_alpha": g_webp_alpha,
    "jpeg_variants": g_jpeg_variants,
    "bmp_alpha": g_bmp_alpha,
    "bmp_palette": g_bmp_palette,
    "bmp_rle": g_bmp_rle,
    "bmp_os2": g_bmp_os2,
    "bmp_bitfields": g_bmp_bitfields,
    "bmp_topdown": g_bmp_topdown,
    "tiff_multipage": g_tiff_multipage,
    "tiff_16bit": g_tiff_16bit,
    "tiff_planar": g_tiff_planar,
    "tiff_tiled": g_tiff_tiled,
    "tiff_compression": g_tiff_compression,
    "tiff_jpeg": g_tiff_jpeg,
    "tiff_cmyk": g_tiff_cmyk,
    "tiff_bilevel": g_tiff_bilevel,
    "tiff_float": g_tiff_float,
    "tiff_alpha": g_tiff_alpha,
    "tiff_palette": g_tiff_palette,
}


# ==========================================================================
# Corpus, reference, capstream, report
# ==========================================================================


def generate(out: Path, count: int, seed: int) -> list[dict]:
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    cats = list(GENERATORS)
    files = []
    for i in range(count):
        cat = cats[i % len(cats)]
        rng = np.random.default_rng([seed, i])
        try:
            ext, data, desc = GENERATORS[cat](rng)
        except Exception as e:  # noqa: BLE001 - a generator bug must not hide the rest
            print(f"generator {cat} #{i} failed: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        d = images / cat
        d.mkdir(exist_ok=True)
        p = d / f"{i:05d}_{cat}.{ext}"
        p.write_bytes(data)
        files.append({"path": str(p.resolve()), "category": cat, "desc": desc, "bytes": len(data)})
    return files


def run_capstream(binary: str, out: Path, size: int) -> tuple[bool, str]:
    rows = out / "rows"
    if rows.exists():
        for p in rows.iterdir():
            if p.is_file():
                p.unlink()
    text = PIPELINE.format(size=size)
    for attempt in ("with columns", "without columns"):
        (out / "pipeline.toml").write_text(text)
        cmd = [binary, "run", "--pipeline", str(out / "pipeline.toml"), "--input", str(out / "images"),
               "--output", str(rows), "--no-progress"]
        t0 = time.time()
        try:
            proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, f"{type(e).__name__}: {e}"
        dt = time.time() - t0
        if proc.returncode == 0:
            note = "" if attempt == "with columns" else " (this binary rejects [sink] columns; ran without it)"
            return True, f"capstream ran in {dt:.1f}s{note}: {proc.stdout.strip().splitlines()[-1:]}"
        if attempt == "with columns" and "columns" in (proc.stderr + proc.stdout):
            text = "\n".join(l for l in text.splitlines() if not l.startswith("columns")) + "\n"
            continue
        return False, f"capstream exited {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}"
    return False, "unreachable"


def read_rows(out: Path) -> dict[str, dict]:
    import pyarrow.parquet as pq

    rows = {}
    for part in sorted((out / "rows").glob("part-*.parquet")):
        t = pq.read_table(part)
        cols = set(t.column_names)
        want = [c for c in ("uri", "status", "error_kind", "error", "pixels", "pixels_width", "pixels_height",
                            "width", "height") if c in cols]
        for r in t.select(want).to_pylist():
            uri = r.get("uri")
            if uri is None:
                continue
            rows[os.path.realpath(os.path.join(out, uri))] = r
    return rows


def short_error(msg: str | None) -> str:
    if not msg:
        return ""
    m = re.sub(r"^record \S+( \([^)]*\))?: ", "", msg)
    return m


def norm_error(msg: str | None) -> str:
    """For grouping: numbers and sizes folded."""
    return re.sub(r"\d+", "N", short_error(msg))[:160]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="working folder (default: a new temp folder)")
    ap.add_argument("--count", type=int, default=640, help="number of images (spread over all categories)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=64, help="output side S (decode_image image_size)")
    ap.add_argument("--capstream", default=str(REPO / "target" / "release" / "capstream"))
    ap.add_argument("--failures", type=int, default=30, help="how many individual failures to list")
    ap.add_argument("--tolerance", type=int, default=2, help="pixel match: max |diff| per sample")
    args = ap.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="odd_corpus_"))
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    if (out / "images").exists():
        for p in sorted((out / "images").rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    print(f"corpus folder: {out}")

    t0 = time.time()
    files = generate(out, args.count, args.seed)
    print(f"generated {len(files)} images in {len(GENERATORS)} categories in {time.time() - t0:.1f}s "
          f"({sum(f['bytes'] for f in files) / 1e6:.1f} MB)")

    t0 = time.time()
    refs = {}
    for f in files:
        r = mf.pillow_reference(Path(f["path"]), args.size)
        r.pop("decoded_rgb", None)
        refs[f["path"]] = r
    print(f"Pillow references in {time.time() - t0:.1f}s")

    ok, msg = run_capstream(args.capstream, out, args.size)
    print(msg)
    if not ok:
        print(f"SUMMARY odd_corpus: capstream could not run ({args.capstream}); no measurement")
        return 2
    rows = read_rows(out)

    S = args.size
    results = []
    for f in files:
        ref = refs[f["path"]]
        row = rows.get(f["path"])
        res = {**f, "pillow_ok": ref["pillow_ok"], "pillow_error": ref["pillow_error"],
               "pillow_mode": ref.get("mode"), "cs_ok": False, "cs_error": None, "cs_kind": None,
               "max_diff": None, "match": False, "gross": False, "dims_ok": None}
        if row is None:
            res["cs_error"] = "no output row for this file"
        elif row["status"] == "ok":
            res["cs_ok"] = True
        else:
            res["cs_error"] = short_error(row.get("error"))
            res["cs_kind"] = row.get("error_kind")
        if res["cs_ok"] and ref["pillow_ok"]:
            px = row.get("pixels")
            if px is None or len(px) != S * S * 3 or row.get("pixels_width") != S or row.get("pixels_height") != S:
                res["max_diff"] = 255
                res["cs_error"] = f"pixels are {row.get('pixels_width')}x{row.get('pixels_height')}, not {S}x{S}"
            else:
                a = np.frombuffer(px, np.uint8).reshape(S, S, 3).astype(np.int16)
                res["max_diff"] = int(np.max(np.abs(a - ref["expected"].astype(np.int16))))
                res["mean_diff"] = float(np.mean(np.abs(a - ref["expected"].astype(np.int16))))
            res["match"] = res["max_diff"] <= args.tolerance
            # gross: not a resampling-level difference (other size, or a visibly different image)
            res["gross"] = (not res["match"]) and (res.get("mean_diff", 255.0) > GROSS_MEAN)
            res["dims_ok"] = (row.get("width"), row.get("height")) == (ref["width"], ref["height"])
            res["gross"] = res["gross"] or not res["dims_ok"]
            res["cs_dims"] = f"{row.get('width')}x{row.get('height')}"
            res["pil_dims"] = f"{ref['width']}x{ref['height']}"
        results.append(res)

    # ---- overall
    pil_ok = [r for r in results if r["pillow_ok"]]
    both = [r for r in pil_ok if r["cs_ok"]]
    match = [r for r in both if r["match"]]
    extra = [r for r in results if r["cs_ok"] and not r["pillow_ok"]]
    agree_rate = len(both) / max(1, len(pil_ok))
    match_rate = len(match) / max(1, len(both))

    print()
    print(f"files: {len(results)}   Pillow decodes {len(pil_ok)}   capstream decodes "
          f"{sum(r['cs_ok'] for r in results)}   both {len(both)}")
    print(f"agreement  (capstream ok among Pillow ok):        {len(both)}/{len(pil_ok)} = {agree_rate:.1%}")
    print(f"pixel match (every sample within {args.tolerance} of Pillow):    {len(match)}/{len(both)} = {match_rate:.1%}")
    print(f"capstream decodes, Pillow refuses:                {len(extra)}")

    # ---- per category
    print()
    print(f"columns: n files; pil_ok / cs_ok decoded by Pillow / capstream; agree both; match every sample "
          f"within {args.tolerance}; gross: other dimensions or mean |d| > {GROSS_MEAN} (not resampling noise); "
          f"dims: same size after orientation")
    hdr = f"{'category':22s} {'n':>4s} {'pil_ok':>6s} {'cs_ok':>6s} {'agree':>6s} {'match':>6s} {'gross':>6s} {'dims':>5s} {'maxdiff':>7s}  agree%  match%"
    print(hdr)
    print("-" * len(hdr))
    by_cat = collections.defaultdict(list)
    for r in results:
        by_cat[r["category"]].append(r)
    for cat in GENERATORS:
        rs = by_cat.get(cat, [])
        if not rs:
            continue
        p = [r for r in rs if r["pillow_ok"]]
        b = [r for r in p if r["cs_ok"]]
        m = [r for r in b if r["match"]]
        dims = sum(1 for r in b if r["dims_ok"])
        md = max((r["max_diff"] for r in b if r["max_diff"] is not None), default=None)
        gross = sum(1 for r in b if r["gross"])
        print(f"{cat:22s} {len(rs):4d} {len(p):6d} {sum(r['cs_ok'] for r in rs):6d} {len(b):6d} {len(m):6d} "
              f"{gross:6d} {dims:5d} {('-' if md is None else md):>7}  {len(b) / max(1, len(p)):6.0%}  "
              f"{(len(m) / len(b) if b else 0):6.0%}")

    gross_all = sum(1 for r in both if r["gross"])
    print("-" * len(hdr))
    print(f"{'all':22s} {len(results):4d} {len(pil_ok):6d} {sum(r['cs_ok'] for r in results):6d} {len(both):6d} "
          f"{len(match):6d} {gross_all:6d} {sum(1 for r in both if r['dims_ok']):5d} {'':>7}  "
          f"{agree_rate:6.0%}  {match_rate:6.0%}")

    # ---- dominant errors per category
    print()
    print("dominant capstream errors per category (files Pillow decodes):")
    for cat in GENERATORS:
        errs = collections.Counter(norm_error(r["cs_error"]) for r in by_cat.get(cat, [])
                                   if r["pillow_ok"] and not r["cs_ok"])
        mism = [r for r in by_cat.get(cat, []) if r["pillow_ok"] and r["cs_ok"] and not r["match"]]
        if not errs and not mism:
            continue
        print(f"  {cat}:")
        for e, n in errs.most_common(3):
            print(f"    {n:4d} x error: {e}")
        for label, group in (("grossly", [r for r in mism if r["gross"]]),
                             ("slightly", [r for r in mism if not r["gross"]])):
            if not group:
                continue
            dims_bad = sum(1 for r in group if not r["dims_ok"])
            descs = collections.Counter(
                re.sub(r"\s+", " ", re.sub(r"\d+x\d+|q\d+|strips of \d+|key=\S+|\d+ pages[ ,]*", "", r["desc"])).strip()
                for r in group)
            print(f"    {len(group):4d} x pixels differ {label} (max |d| {max(r['max_diff'] for r in group)}, "
                  f"mean up to {max(r.get('mean_diff', 0) for r in group):.2f}; {dims_bad} with other dimensions); "
                  "most: " + "; ".join(f"{d} ({n})" for d, n in descs.most_common(3)))

    # ---- where the slight (resampling-level) differences are: by shape of the decoded image
    slight = [r for r in both if not r["match"] and not r["gross"]]
    if slight:
        def shape(r):
            w, h = (int(v) for v in r["pil_dims"].split("x"))
            if w <= S and h <= S:
                return "upscale"
            return "taller-than-wide downscale" if h > w and min(w, h) > S else "other downscale"
        tot = collections.Counter(shape(r) for r in both)
        sl = collections.Counter(shape(r) for r in slight)
        print()
        print("slight differences by shape (resize, not decode): " + ", ".join(
            f"{k} {sl[k]}/{tot[k]}" for k in ("taller-than-wide downscale", "other downscale", "upscale")))

    # ---- first failures
    print()
    fails = [r for r in results if r["pillow_ok"] and (not r["cs_ok"] or not r["match"])]
    print(f"first {min(args.failures, len(fails))} of {len(fails)} failures:")
    for r in fails[: args.failures]:
        name = Path(r["path"]).name
        if not r["cs_ok"]:
            why = f"capstream error [{r['cs_kind']}]: {r['cs_error']}"
        else:
            why = (f"pixels differ: max |d| {r['max_diff']} mean {r.get('mean_diff', 0):.2f}; "
                   f"dims capstream {r.get('cs_dims')} vs Pillow {r.get('pil_dims')}")
        print(f"  {name:36s} {r['desc']} [Pillow mode {r['pillow_mode']}]\n      {why}")

    if extra:
        print()
        print(f"capstream decodes, Pillow refuses ({len(extra)}):")
        for r in extra[: args.failures]:
            print(f"  {Path(r['path']).name:36s} {r['desc']}\n      Pillow: {r['pillow_error']}")
    refused_both = [r for r in results if not r["cs_ok"] and not r["pillow_ok"]]
    if refused_both:
        print(f"both refuse: {len(refused_both)} file(s) "
              f"({', '.join(sorted({r['category'] for r in refused_both}))})")

    summary = {
        "files": len(results), "pillow_ok": len(pil_ok), "capstream_ok": sum(r["cs_ok"] for r in results),
        "both": len(both), "pixel_match": len(match), "agreement_rate": round(agree_rate, 4),
        "pixel_match_rate": round(match_rate, 4), "gross_mismatch": gross_all, "capstream_only": len(extra),
    }
    (out / "results.json").write_text(json.dumps({"summary": summary, "files": [
        {k: v for k, v in r.items()} for r in results]}, indent=1, default=str) + "\n")
    print()
    print(f"SUMMARY odd_corpus: {len(results)} files, agreement {len(both)}/{len(pil_ok)} = {agree_rate:.1%}, "
          f"pixel match {len(match)}/{len(both)} = {match_rate:.1%} (gross {gross_all}), "
          f"capstream-only {len(extra)} "
          f"(S={S}, seed={args.seed}, details in {out / 'results.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
