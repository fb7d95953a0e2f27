#!/usr/bin/env python3
"""Build a RANDOM BLIP captioning checkpoint with the real blip-image-captioning-base shapes.

For benchmarks only (speed / memory), never for accuracy: the weights are random and the
tokenizer's words past the common ones are synthetic. Nothing is downloaded.

    .venv/bin/python benches/blip/make_base_checkpoint.py OUT_DIR [--variant base|large]
                     [--seed 0] [--sep-bias -10000] [--dtype float32|float16|bfloat16]

Writes OUT_DIR/{config.json, generation_config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, vocab.txt, preprocessor_config.json, processor_config.json}.
base: 224 M parameters, ~900 MB in float32 (large: 446 M, ~1.8 GB). Not committed.

Shapes (transformers 5.24 BlipForConditionalGeneration):
    base : vision 768 / 12 layers / 12 heads / MLP 3072, text 768 / 12 / 12 / 3072
    large: vision 1024 / 24 layers / 16 heads / MLP 4096, text 768 / 12 / 12 / 3072
    both : image 384, patch 16 (577 vision tokens), vocab 30524, max positions 512,
           text encoder_hidden_size = vision hidden size, [DEC]=30522 (bos), [ENC]=30523,
           pad 0, [CLS] 101, [SEP] 102 (generation stops on it), config eos 2 (unused).

By default the LM-head bias of [SEP] is set to -10000 so that greedy decoding never stops early
and every benchmark run decodes exactly max_new_tokens tokens. Pass --sep-bias 0 to keep it random.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import (
    BertTokenizerFast,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipProcessor,
    BlipTextConfig,
    BlipVisionConfig,
)
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

VOCAB_SIZE = 30524
PAD, UNK, CLS, SEP, MASK, DEC, ENC = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]"

WORDS = """
a an the of on in at to with and or is are was be being there this that it its
picture photo image drawing painting illustration graphic icon logo sign art design
red blue green yellow orange purple pink white black gray grey brown dark light bright
circle circles square squares triangle triangles shape shapes line lines dot dots star
heart ball box round flat small large big tiny little two three four five one many some
several left right above below next top bottom middle center corner side front back
behind under over between near by from into out off up down close background foreground
man woman person people group child boy girl dog cat bird car street road tree house
sitting standing looking holding playing flying walking running lying table room water
""".split()
SUFFIXES = "##s ##es ##ed ##ing ##er ##est ##ly ##y".split()
CHARS = list("!\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~")


def build_vocab() -> list[str]:
    """bert-base-uncased layout: 0 [PAD], 1-99 [unused0-98], 100-103 specials, 104-998 [unused99-993],
    then characters, words, ## pieces; synthetic syllable words fill up to 30522; [DEC], [ENC] last."""
    vocab = [PAD] + [f"[unused{i}]" for i in range(99)] + [UNK, CLS, SEP, MASK]
    vocab += [f"[unused{i}]" for i in range(99, 994)]
    assert len(vocab) == 999
    seen = set(vocab)

    def add(t):
        if t not in seen and len(vocab) < VOCAB_SIZE - 2:
            vocab.append(t)
            seen.add(t)

    for t in CHARS + WORDS + ["##" + c for c in "0123456789abcdefghijklmnopqrstuvwxyz"] + SUFFIXES:
        add(t)
    cons, vows = "bcdfghjklmnprstvwz", "aeiou"
    syl = [c + v for c, v in itertools.product(cons, vows)]  # 90 syllables
    for n in (2, 3):
        for parts in itertools.product(syl, repeat=n):
            w = "".join(parts)
            add(w)
            add("##" + w)
            if len(vocab) >= VOCAB_SIZE - 2:
                break
        if len(vocab) >= VOCAB_SIZE - 2:
            break
    vocab += [DEC, ENC]
    assert len(vocab) == VOCAB_SIZE and vocab.index(DEC) == 30522 and vocab.index(SEP) == 102
    return vocab


def build_tokenizer(vocab: list[str]) -> BertTokenizerFast:
    ids = {t: i for i, t in enumerate(vocab)}
    tk = Tokenizer(WordPiece(ids, unk_token=UNK, max_input_chars_per_word=100))
    tk.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                               strip_accents=None, lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, ids[CLS]), (SEP, ids[SEP])])
    tk.decoder = decoders.WordPiece(prefix="##")
    tk.add_special_tokens([PAD, UNK, CLS, SEP, MASK, DEC, ENC])
    tok = BertTokenizerFast(tokenizer_object=tk, bos_token=DEC, unk_token=UNK, sep_token=SEP, pad_token=PAD,
                            cls_token=CLS, mask_token=MASK, additional_special_tokens=[ENC],
                            model_max_length=512, do_lower_case=True)
    assert len(tok) == VOCAB_SIZE and tok.bos_token_id == 30522
    return tok


VARIANTS = {
    "base": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
    "large": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="base")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sep-bias", type=float, default=-10000.0,
                    help="LM-head bias of [SEP] (102); very negative = never stop early (default)")
    ap.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    args = ap.parse_args(argv)

    t0 = time.time()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab()
    tok = build_tokenizer(vocab)

    vision = BlipVisionConfig(**VARIANTS[args.variant], image_size=384, patch_size=16, hidden_act="gelu",
                              layer_norm_eps=1e-5, initializer_range=0.02)  # real: 1e-10 (init only)
    text = BlipTextConfig(vocab_size=VOCAB_SIZE, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=12, max_position_embeddings=512, hidden_act="gelu",
                          layer_norm_eps=1e-12, initializer_range=0.02, bos_token_id=30522, eos_token_id=2,
                          pad_token_id=0, sep_token_id=102)
    cfg = BlipConfig(text_config=text, vision_config=vision)
    assert cfg.text_config.encoder_hidden_size == vision.hidden_size

    torch.manual_seed(args.seed)
    model = BlipForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[102] = args.sep_bias
    n_params = sum(p.numel() for p in model.parameters())
    print(f"built {args.variant}: {n_params / 1e6:.1f} M parameters in {time.time() - t0:.1f}s", flush=True)
    if args.dtype != "float32":
        model = model.to(getattr(torch, args.dtype))

    model.save_pretrained(out)  # transformers 5 omits the tied cls.predictions.decoder.{weight,bias}
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 384, "width": 384}),
                              tokenizer=tok)
    processor.save_pretrained(out)
    if not (out / "preprocessor_config.json").exists():
        processor.image_processor.save_pretrained(out)
    (out / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {out} ({size / 2**20:.0f} MiB) in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
