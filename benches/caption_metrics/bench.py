"""benches/caption_metrics: capstream score against pycocoevalcap (BLEU, ROUGE-L, CIDEr-D)
and NLTK METEOR on the same 5,000 items x 5 references.

    .venv/bin/python benches/caption_metrics/bench.py [--items 5000] [--runs 3]

Data: seeded COCO-like captions. Both sides get the same text. pycocoevalcap and NLTK
are timed in-process on pre-tokenized input (PTB tokenization excluded, as the issue
asks); capstream is timed as whole processes of `capstream score`, which include process
start-up, reading the JSONL files and its own PTB tokenization: the ratio is therefore
a lower bound of the like-for-like speed-up. Corpus numbers are compared too.
Writes the markdown section to stdout and benches/caption_metrics/RESULTS.md.
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

WORDS = (
    "a an the man woman person people child dog dogs cat cats horse bird car bus train plane "
    "street road table kitchen room field beach water snow grass tree sky building sign clock "
    "red blue green yellow white black brown small large big little young old two three several "
    "sitting standing riding walking running playing eating holding looking flying parked "
    "on in at near next to of with by under over top front side behind while and"
).split()


def caption(rng):
    n = rng.randint(5, 14)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default="target/release/capstream")
    a = ap.parse_args()
    rng = random.Random(0)
    items = []
    for i in range(a.items):
        refs = [caption(rng) for _ in range(5)]
        cand = refs[0] if rng.random() < 0.05 else caption(rng)
        items.append((f"i{i}", cand, refs))
    work = tempfile.mkdtemp(prefix="capstream-caption-bench.")
    with open(f"{work}/c.jsonl", "w") as f:
        for i, c, _ in items:
            f.write(json.dumps({"id": i, "caption": c}) + "\n")
    with open(f"{work}/r.jsonl", "w") as f:
        for i, _, r in items:
            f.write(json.dumps({"id": i, "references": r}) + "\n")

    pin = ["taskset", "-c", "0"]

    def cap(extra):
        best, out = None, None
        for _ in range(a.runs):
            t = time.perf_counter()
            p = subprocess.run(
                pin + [a.bin, "score", "--candidates", f"{work}/c.jsonl", "--references", f"{work}/r.jsonl", "--json"] + extra,
                capture_output=True, text=True, check=True,
            )
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
            out = json.loads(p.stdout)
        return best, out

    cap_nomet, cap_out = cap(["--no-meteor"])
    cap_all, cap_out_m = cap([])
    startup = min(
        (lambda t: (subprocess.run(pin + [a.bin, "--version"], capture_output=True), time.perf_counter() - t)[1])(time.perf_counter())
        for _ in range(3)
    )

    # Peers, pinned to one core in this process.
    os.sched_setaffinity(0, {0})
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    import nltk
    from nltk.translate.meteor_score import meteor_score
    import pycocoevalcap

    # The same PTB tokens capstream uses (its tokenizer equals pycocoevalcap's on these
    # lowercase, punctuation-free captions: plain whitespace split).
    gts = {i: [" ".join(r.lower().split()) for r in refs] for i, _, refs in items}
    res = {i: [" ".join(c.lower().split())] for i, c, _ in items}
    peer = {}
    peer_scores = {}
    for name, scorer in [("bleu", Bleu(4)), ("rouge_l", Rouge()), ("cider_d", Cider())]:
        best = None
        for _ in range(a.runs):
            t = time.perf_counter()
            s, _ = scorer.compute_score(gts, res) if name != "bleu" else scorer.compute_score(gts, res, verbose=0)
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        peer[name] = best
        peer_scores[name] = s
    # NLTK METEOR with WordNet from the Debian files (NLTK refuses paths outside its data dirs).
    nd = tempfile.mkdtemp(prefix="nltk_data.")
    os.makedirs(f"{nd}/corpora/wordnet")
    for fn in os.listdir("/usr/share/wordnet"):
        src = f"/usr/share/wordnet/{fn}"
        if os.path.isfile(src):
            shutil.copy(src, f"{nd}/corpora/wordnet/{fn}")
    lex = "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl".split()
    if not os.path.exists(f"{nd}/corpora/wordnet/lexnames"):
        with open(f"{nd}/corpora/wordnet/lexnames", "w") as f:
            for k, n in enumerate(lex):
                f.write(f"{k:02d}\t{n}\t{0 if n.startswith('adj') else 1 if n.startswith('noun') else 2 if n.startswith('verb') else 3}\n")
    nltk.data.path.insert(0, nd)
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    toks = [([r.split() for r in gts[i]], res[i][0].split()) for i, _, _ in items]
    best = None
    for _ in range(max(1, a.runs - 1)):
        t = time.perf_counter()
        met = [meteor_score(r, h, wordnet=wordnet) for r, h in toks]
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    peer["meteor"] = best
    peer_scores["meteor"] = sum(met) / len(met)

    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    version = subprocess.run([a.bin, "--version"], capture_output=True, text=True).stdout.strip()
    coco = peer["bleu"] + peer["rouge_l"] + peer["cider_d"]
    lines = []
    p = lines.append
    p("## Caption metrics: capstream score vs pycocoevalcap and NLTK METEOR\n")
    p(f"Command: `.venv/bin/python benches/caption_metrics/bench.py`   Date: {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    p(f"Machine: {cpu}, nproc={os.cpu_count()}, {platform.system()} {platform.release()}")
    p(f"Versions: {version}, pycocoevalcap {getattr(pycocoevalcap, '__version__', '1.2')}, nltk {nltk.__version__}, Python {sys.version.split()[0]}")
    p(f"Input: {a.items} items x 5 references, seeded COCO-like captions (5-14 words). One core each (`taskset -c 0`), best of {a.runs}.")
    p("Peers timed in-process on pre-tokenized text; capstream as whole processes (start-up, JSONL reading and its PTB tokenization included).\n")
    p("| what | seconds | vs peer |")
    p("|---|---|---|")
    p(f"| pycocoevalcap Bleu(4) + Rouge + Cider (compute_score) | {coco:.3f} | 1.00x |")
    p(f"| capstream score --no-meteor (BLEU-1..4, ROUGE-L, CIDEr-D), whole process | {cap_nomet:.3f} | **{coco / cap_nomet:.1f}x** |")
    p(f"| capstream score --no-meteor, minus start-up (`--version` {startup:.3f} s) | {cap_nomet - startup:.3f} | **{coco / max(cap_nomet - startup, 1e-3):.1f}x** |")
    p(f"| NLTK 3.10.4 meteor_score over all items (WordNet loaded) | {peer['meteor']:.3f} | 1.00x |")
    p(f"| capstream METEOR (score with minus without METEOR) | {max(cap_all - cap_nomet, 1e-3):.3f} | **{peer['meteor'] / max(cap_all - cap_nomet, 1e-3):.0f}x** |")
    p(f"| all four peers | {coco + peer['meteor']:.3f} | 1.00x |")
    p(f"| capstream score, all metrics, whole process | {cap_all:.3f} | **{(coco + peer['meteor']) / cap_all:.1f}x** |")
    p(f"| capstream score, all metrics, minus start-up | {cap_all - startup:.3f} | **{(coco + peer['meteor']) / max(cap_all - startup, 1e-3):.1f}x** |")
    p(f"\nPeer split: Bleu {peer['bleu']:.3f} s, Rouge {peer['rouge_l']:.3f} s, Cider {peer['cider_d']:.3f} s. capstream start-up (`--version`): {startup:.3f} s.")
    c = cap_out_m["corpus"]
    diffs = {
        "bleu_4": abs(c["bleu_4"] - peer_scores["bleu"][3]),
        "rouge_l": abs(c["rouge_l"] - peer_scores["rouge_l"]),
        "cider_d": abs(c["cider_d"] - peer_scores["cider_d"]),
        "meteor": abs(c["meteor"] - peer_scores["meteor"]),
    }
    p("Corpus values, |capstream - peer|: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()) + ".")
    text = "\n".join(lines) + "\n"
    print(text)
    with open("benches/caption_metrics/RESULTS.md", "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
