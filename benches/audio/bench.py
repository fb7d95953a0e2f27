#!/usr/bin/env python3
"""Helpers for benches/audio/bench.sh.

  bench.py gen DIR [--count N] [--seed S]
      Writes N deterministic WAV clips into DIR (and DIR/manifest.json): 1-10 s
      (uniform), 8/16/22.05/44.1/48 kHz, mono or stereo, PCM16 or float32; content is a
      mixture of tones, chirps and noise with envelopes and silent gaps. Does nothing if
      DIR already holds the complete set.

  bench.py librosa DIR OUT [--runs R]
      In this one process: warm-up on one clip (untimed; numba JIT, soxr), then R timed
      passes over every clip: soundfile.read(float32) -> mean over channels ->
      librosa.resample(res_type soxr_hq) when sr != 16000 -> feature.melspectrogram ->
      power_to_db -> np.save(OUT/<stem>.npy). Before each pass it waits for any cargo /
      rustc to finish. Prints one JSON line (best_s, runs, waits, versions).

  bench.py compare DIR CAPSTREAM_OUT LIBROSA_OUT
      Parity of the two sets of .npy files. Prints one JSON line.

  bench.py speak BIN [--reps R] [--pin]
      Real-time factors of `BIN speak TEXT --out X.wav` and of `espeak-ng --stdout TEXT`
      (stdout to /dev/null) for 20 caption-like sentences. Prints one JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = [8000, 16000, 22050, 44100, 48000]
TARGET_SR = 16000
N_FFT, HOP, N_MELS = 1024, 256, 80
BUSY_LIMIT_S = 20 * 60


# --------------------------------------------------------------------------- waiting


def build_busy():
    """PIDs of running rustc / cargo processes (a CI build on this machine)."""
    pids = []
    for args in (["pgrep", "-x", "rustc"], ["pgrep", "cargo"]):
        r = subprocess.run(args, capture_output=True, text=True)
        pids += r.stdout.split()
    return pids


def wait_idle(label, waits):
    """Polls until no cargo/rustc runs (at most BUSY_LIMIT_S); records any wait."""
    if os.environ.get("BENCH_NO_WAIT"):  # smoke tests only
        return
    t0 = time.monotonic()
    busy = build_busy()
    while busy and time.monotonic() - t0 < BUSY_LIMIT_S:
        time.sleep(10)
        busy = build_busy()
    waited = time.monotonic() - t0
    if waited > 1 or busy:
        note = {"before": label, "waited_s": round(waited, 1), "still_busy": bool(busy)}
        waits.append(note)
        print(f"  waited {waited:.0f}s for cargo/rustc before {label}"
              + (" (gave up: still running)" if busy else ""), file=sys.stderr)


# --------------------------------------------------------------------------- data


def _clip(rng, sr, n):
    """Mono float64 signal of n samples at sr: tones + chirps + noise, enveloped."""
    import numpy as np

    t = np.arange(n) / sr
    nyq = sr / 2
    y = np.zeros(n)
    # Tones (some with harmonics and vibrato).
    for _ in range(int(rng.integers(1, 5))):
        f0 = rng.uniform(60, min(4000, 0.8 * nyq))
        amp = rng.uniform(0.05, 0.3)
        vib = rng.uniform(0, 6) * np.sin(2 * np.pi * rng.uniform(2, 7) * t)
        for h in range(1, int(rng.integers(1, 5)) + 1):
            if f0 * h < 0.9 * nyq:
                y += amp / h * np.sin(2 * np.pi * f0 * h * t + vib * h + rng.uniform(0, 2 * np.pi))
    # Chirps (linear or exponential sweeps over part of the clip).
    for _ in range(int(rng.integers(0, 3))):
        f_a, f_b = rng.uniform(50, 0.9 * nyq, size=2)
        a, b = sorted(rng.uniform(0, n, size=2).astype(int))
        if b - a < sr // 10:
            continue
        tt = np.arange(b - a) / sr
        T = tt[-1] if tt[-1] > 0 else 1.0
        if rng.random() < 0.5:
            phase = 2 * np.pi * (f_a * tt + (f_b - f_a) * tt**2 / (2 * T))
        else:
            k = (f_b / f_a) ** (1 / T)
            phase = 2 * np.pi * f_a * (k**tt - 1) / np.log(k) if abs(k - 1) > 1e-9 else 2 * np.pi * f_a * tt
        win = np.hanning(b - a)
        y[a:b] += rng.uniform(0.05, 0.3) * win * np.sin(phase)
    # Noise: white, or low-passed (brown-ish) via a one-pole filter.
    kind = rng.integers(0, 3)
    noise = rng.standard_normal(n)
    if kind == 1:
        from scipy.signal import lfilter

        noise = lfilter([0.1], [1, -0.9], noise)
    y += rng.uniform(0.002, 0.08) * noise
    # Slow amplitude envelope and, sometimes, a silent gap (tests the top_db floor).
    env = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 1.5) * t + rng.uniform(0, 6.3))
    y *= env
    if rng.random() < 0.3:
        a = int(rng.uniform(0, n * 0.7))
        y[a : a + int(rng.uniform(0.05, 0.3) * n)] = 0.0
    peak = np.max(np.abs(y))
    if peak > 0:
        y *= rng.uniform(0.3, 0.95) / peak
    return y


def gen(args):
    import numpy as np
    import soundfile as sf

    out = Path(args.dir)
    manifest = out / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        if (m.get("count") == args.count and m.get("seed") == args.seed
                and all((out / c["file"]).exists() for c in m["clips"])):
            print(f"{out}: {args.count} clips present, kept", file=sys.stderr)
            return
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    clips = []
    for i in range(args.count):
        sr = int(rng.choice(RATES))
        dur = float(rng.uniform(1.0, 10.0))
        ch = 2 if rng.random() < 0.25 else 1
        subtype = "FLOAT" if rng.random() < 0.2 else "PCM_16"
        n = int(round(dur * sr))
        y = _clip(rng, sr, n)
        if ch == 2:
            # Second channel: the first, delayed and scaled, plus its own noise.
            d = int(rng.integers(0, sr // 100 + 1))
            y2 = np.roll(y, d) * rng.uniform(0.5, 1.0) + 0.01 * rng.standard_normal(n)
            y2 *= 0.95 / max(0.95, np.max(np.abs(y2)))
            data = np.stack([y, y2], axis=1)
        else:
            data = y
        name = f"clip{i:03d}_{sr}_{'st' if ch == 2 else 'mo'}_{'f32' if subtype == 'FLOAT' else 'i16'}.wav"
        sf.write(out / name, data.astype(np.float32), sr, subtype=subtype)
        clips.append({"file": name, "sr": sr, "channels": ch, "subtype": subtype,
                      "frames": n, "seconds": n / sr})
    manifest.write_text(json.dumps({"count": args.count, "seed": args.seed, "clips": clips}, indent=1))
    print(f"{out}: wrote {args.count} clips", file=sys.stderr)


# --------------------------------------------------------------------------- librosa


def run_librosa(args):
    import librosa
    import numba
    import numpy as np
    import scipy
    import soundfile as sf
    import soxr

    files = sorted(Path(args.dir).glob(args.glob))
    out = Path(args.out)
    stage = {}

    def tick(name, t0):
        t1 = time.perf_counter()
        stage[name] = stage.get(name, 0.0) + t1 - t0
        return t1
    out.mkdir(parents=True, exist_ok=True)

    def one(path):
        t = time.perf_counter()
        y, sr = sf.read(path, dtype="float32")
        if y.ndim > 1:
            y = y.mean(axis=1)
        t = tick("read+mono", t)
        if sr != TARGET_SR:
            y = librosa.resample(y, orig_sr=sr, target_sr=TARGET_SR)
            t = tick("resample", t)
        S = librosa.feature.melspectrogram(
            y=y, sr=TARGET_SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, center=True,
            pad_mode="constant", power=2.0, htk=False, norm="slaney")
        t = tick("melspectrogram", t)
        S = librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0)
        t = tick("power_to_db", t)
        np.save(out / (path.stem + ".npy"), S)
        tick("np.save", t)

    # Warm-up (untimed): one resampled clip and one at 16 kHz, so numba, the mel
    # filterbank cache and soxr are all initialised.
    warm = [f for f in files if not f.stem.split("_")[1] == str(TARGET_SR)][:1]
    warm += [f for f in files if f.stem.split("_")[1] == str(TARGET_SR)][:1]
    t0 = time.perf_counter()
    for f in warm:
        one(f)
    warm_s = time.perf_counter() - t0

    waits, times, stages = [], [], []
    for r in range(args.runs):
        wait_idle(f"librosa run {r + 1}{args.label}", waits)
        stage.clear()
        t0 = time.perf_counter()
        for f in files:
            one(f)
        dt = time.perf_counter() - t0
        busy_after = bool(build_busy())
        times.append(round(dt, 3))
        stages.append({k: round(v, 3) for k, v in stage.items()})
        print(f"  librosa run {r + 1}{args.label}: {dt:.3f}s" + ("  (cargo/rustc running at end!)" if busy_after else ""),
              file=sys.stderr)
        if busy_after:
            waits.append({"after": f"librosa run {r + 1}{args.label}", "busy_at_end": True})
    print(json.dumps({
        "best_s": min(times), "runs": times, "stages_best": stages[times.index(min(times))],
        "files": len(files), "warmup_s": round(warm_s, 3),
        "waits": waits, "librosa": librosa.__version__, "numpy": np.__version__,
        "scipy": scipy.__version__, "soxr": soxr.__version__, "numba": numba.__version__,
        "soundfile": sf.__version__, "libsndfile": sf.__libsndfile_version__,
        "python": sys.version.split()[0],
    }))


# --------------------------------------------------------------------------- parity


def compare(args):
    import numpy as np

    m = json.loads((Path(args.dir) / "manifest.json").read_text())
    cs, lr = Path(args.capstream_out), Path(args.librosa_out)
    same = {"clips": 0, "max_abs": 0.0, "shape_mismatch": 0}
    res = {"clips": 0, "frames_equal": 0, "frames_diff": [], "diffs": [], "max_abs": 0.0,
           "max_abs_passband": 0.0, "median_abs_passband": None, "frac_over_1db": None,
           "worst": None, "worst_passband": None, "by_sr": {}}
    pb_diffs = []
    import librosa  # only for the band centres

    edges = librosa.mel_frequencies(n_mels=N_MELS + 2, fmin=0.0, fmax=TARGET_SR / 2)
    centres, uppers = edges[1:-1], edges[2:]
    missing = []
    for c in m["clips"]:
        stem = Path(c["file"]).stem
        a_p, b_p = cs / f"{stem}.npy", lr / f"{stem}.npy"
        if not a_p.exists() or not b_p.exists():
            missing.append(stem)
            continue
        a, b = np.load(a_p), np.load(b_p)
        if c["sr"] == TARGET_SR:
            same["clips"] += 1
            if a.shape != b.shape:
                same["shape_mismatch"] += 1
                continue
            same["max_abs"] = max(same["max_abs"], float(np.max(np.abs(a.astype(np.float64) - b))))
        else:
            res["clips"] += 1
            if a.shape == b.shape:
                res["frames_equal"] += 1
            else:
                res["frames_diff"].append([stem, a.shape[1], b.shape[1]])
            k = min(a.shape[1], b.shape[1])
            d = np.abs(a[:, :k].astype(np.float64) - b[:, :k])
            res["diffs"].append(d.ravel())
            mx = float(d.max())
            if mx > res["max_abs"]:
                res["max_abs"] = mx
                band, frame = np.unravel_index(int(d.argmax()), d.shape)
                res["worst"] = {"clip": stem, "band": int(band), "band_hz": round(float(centres[band])),
                                "frame": int(frame), "capstream": float(a[band, frame]),
                                "librosa": float(b[band, frame])}
            # Passband: bands whose upper edge is below 85% of the lower Nyquist (source
            # or target), away from both resamplers' transition bands.
            pb = uppers < 0.85 * min(c["sr"], TARGET_SR) / 2
            dp = d[pb]
            pb_diffs.append(dp.ravel())
            # ... and away from the clip edges (frames whose window reaches past either end).
            e = N_FFT // HOP
            if dp.shape[1] > 2 * e:
                res["max_abs_passband_interior"] = max(res.get("max_abs_passband_interior", 0.0),
                                                       float(dp[:, e:-e].max()))
            if float(dp.max()) > res["max_abs_passband"]:
                res["max_abs_passband"] = float(dp.max())
                band, frame = np.unravel_index(int(dp.argmax()), dp.shape)
                res["worst_passband"] = {"clip": stem, "band": int(band), "band_hz": round(float(centres[band])),
                                         "frame": int(frame), "capstream": float(a[band, frame]),
                                         "librosa": float(b[band, frame])}
            s = res["by_sr"].setdefault(str(c["sr"]), {"clips": 0, "med": [], "max": 0.0})
            s["clips"] += 1
            s["med"].append(float(np.median(d)))
            s["max"] = max(s["max"], mx)
    allres = np.concatenate(res.pop("diffs")) if res["clips"] else np.zeros(1)
    res["median_abs"] = float(np.median(allres))
    res["p99_abs"] = float(np.percentile(allres, 99))
    res["mean_abs"] = float(allres.mean())
    res["frac_over_1db"] = float(np.mean(allres > 1.0))
    if pb_diffs:
        pb_all = np.concatenate(pb_diffs)
        res["median_abs_passband"] = float(np.median(pb_all))
        res["p99_abs_passband"] = float(np.percentile(pb_all, 99))
    for s in res["by_sr"].values():
        s["median_of_clip_medians"] = float(np.median(s.pop("med")))
    print(json.dumps({"same_rate": same, "resampled": res, "missing": missing}))


# --------------------------------------------------------------------------- speech

SENTENCES = [
    "A brown dog runs across a grassy field.",
    "Two people sitting on a bench near the water.",
    "A red double-decker bus drives down a busy city street.",
    "A plate of pasta with tomato sauce and basil leaves.",
    "A child in a yellow raincoat jumps into a puddle.",
    "A cat sleeping on top of a laptop keyboard.",
    "Snow-covered mountains under a clear blue sky.",
    "A man riding a bicycle past a row of parked cars.",
    "A bowl of fruit on a wooden kitchen table.",
    "An airplane taking off from a runway at sunset.",
    "A group of friends laughing around a campfire at night.",
    "A black and white photo of an old lighthouse on a rocky coast.",
    "Close-up of a bee collecting pollen from a purple flower.",
    "A woman holding an umbrella walks through heavy rain.",
    "A train crossing a stone bridge over a river valley.",
    "Several sailboats floating in a calm harbor.",
    "A skateboarder performing a trick on a concrete ramp.",
    "A stack of pancakes topped with berries and syrup.",
    "A small wooden cabin surrounded by tall pine trees in autumn, with fallen leaves covering the path.",
    "Street market stalls selling vegetables.",
]
ESPEAK_ARGS = ["-v", "en-us", "-s", "175", "-p", "50"]  # capstream speak's defaults


def speak(args):
    pin = ["taskset", "-c", "0"] if args.pin else []
    tmp = Path(tempfile.mkdtemp(prefix="capstream-speak-"))
    waits = []

    def timed(cmd, **kw):
        t0 = time.perf_counter()
        r = subprocess.run(pin + cmd, **kw)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({r.returncode}): {r.stderr!r}")
        return dt, r

    # Warm-up (page cache for the binary, libtorch and espeak-ng data), untimed.
    subprocess.run(pin + [args.bin, "speak", "Warm up.", "--out", str(tmp / "w.wav")],
                   capture_output=True, check=True)
    subprocess.run(pin + ["espeak-ng", *ESPEAK_ARGS, "--stdout", "Warm up."],
                   stdout=subprocess.DEVNULL, check=True)
    # Process start-up of the binary alone (libtorch is linked in).
    startup = []
    for _ in range(args.reps + 1):
        startup.append(timed([args.bin, "--version"], capture_output=True)[0])

    rows = []
    wait_idle("speech", waits)
    for i, text in enumerate(SENTENCES[: args.n]):
        out = tmp / f"s{i:02d}.wav"
        cs_t = min(timed([args.bin, "speak", text, "--out", str(out)], capture_output=True, text=True)[0]
                   for _ in range(args.reps))
        # Audio length from the WAV capstream wrote (16 kHz PCM16, 44-byte header).
        import soundfile as sf

        info = sf.info(out)
        cs_audio = info.frames / info.samplerate
        es_t = min(timed(["espeak-ng", *ESPEAK_ARGS, "--stdout", text],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)[0]
                   for _ in range(args.reps))
        # espeak-ng's own audio length (22.05 kHz, 16-bit mono), from an untimed run.
        raw = subprocess.run(["espeak-ng", *ESPEAK_ARGS, "--stdout", text], capture_output=True).stdout
        es_audio = (len(raw) - 44) / 2 / 22050
        rows.append({"i": i, "chars": len(text), "audio_s": round(cs_audio, 3),
                     "espeak_audio_s": round(es_audio, 3), "capstream_s": round(cs_t, 4),
                     "espeak_s": round(es_t, 4), "rtf_capstream": cs_t / cs_audio,
                     "rtf_espeak": es_t / es_audio})
    if build_busy():
        waits.append({"after": "speech", "busy_at_end": True})
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    import statistics as st

    def mean(k):
        return st.mean(r[k] for r in rows)

    ver = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()
    print(json.dumps({
        "n": len(rows), "reps": args.reps, "pinned": args.pin,
        "startup_s": round(min(startup), 4),
        "mean_audio_s": mean("audio_s"), "mean_capstream_s": mean("capstream_s"),
        "mean_espeak_s": mean("espeak_s"),
        "rtf_capstream_mean": mean("rtf_capstream"), "rtf_espeak_mean": mean("rtf_espeak"),
        "rtf_capstream_median": st.median(r["rtf_capstream"] for r in rows),
        "rtf_espeak_median": st.median(r["rtf_espeak"] for r in rows),
        "overhead_mean_s": mean("capstream_s") - mean("espeak_s"),
        "audio_len_max_diff_s": max(abs(r["audio_s"] - r["espeak_audio_s"]) for r in rows),
        "espeak": ver, "rows": rows, "waits": waits,
    }))


# --------------------------------------------------------------------------- formatting


def fmt(args):
    """Markdown fragments from the JSON the other subcommands print (for bench.sh)."""
    v = json.loads(args.json)
    k = args.kind
    if k == "waits":
        for w in v["waits"]:
            if "before" in w:
                print("before %s: waited %.0fs for cargo/rustc%s" % (
                    w["before"], w["waited_s"], " (still running: timing contaminated)" if w["still_busy"] else ""))
            else:
                print("%s: cargo/rustc running when it ended" % w["after"])
    elif k == "by_sr":
        b = v["resampled"]["by_sr"]
        for sr in sorted(b, key=int):
            x = b[sr]
            print("| %g kHz | %d | %.3g | %.3g |" % (int(sr) / 1000, x["clips"], x["median_of_clip_medians"], x["max"]))
    elif k in ("worst", "worst_pb"):
        w = v["resampled"]["worst" if k == "worst" else "worst_passband"]
        if not w:
            print("-")
        else:
            print("%s, band %d (~%d Hz), frame %d: capstream %.2f dB, librosa %.2f dB" % (
                w["clip"], w["band"], w["band_hz"], w["frame"], w["capstream"], w["librosa"]))
    elif k == "frames_diff":
        d = v["resampled"]["frames_diff"]
        print("none" if not d else "; ".join("%s: %d vs %d" % tuple(x) for x in d[:5]) + (" ..." if len(d) > 5 else ""))
    elif k == "stages":
        st = v["stages_best"]
        print(", ".join("%s %.2fs" % (n, t) for n, t in sorted(st.items(), key=lambda x: -x[1]))
              + " (sum %.2fs of %.2fs)" % (sum(st.values()), v["best_s"]))
    elif k == "sp_rows":
        for r in v["rows"]:
            print("| %d | %d | %.2f | %.0f | %.4f | %.0f | %.4f |" % (
                r["i"], r["chars"], r["audio_s"], r["capstream_s"] * 1000, r["rtf_capstream"],
                r["espeak_s"] * 1000, r["rtf_espeak"]))
    else:
        raise SystemExit(f"fmt: unknown kind {k}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--count", type=int, default=200)
    g.add_argument("--seed", type=int, default=20260)
    lr = sub.add_parser("librosa")
    lr.add_argument("dir")
    lr.add_argument("out")
    lr.add_argument("--runs", type=int, default=2)
    lr.add_argument("--glob", default="*.wav", help="which clips in DIR")
    lr.add_argument("--label", default="", help="suffix for run labels")
    c = sub.add_parser("compare")
    c.add_argument("dir")
    c.add_argument("capstream_out")
    c.add_argument("librosa_out")
    s = sub.add_parser("speak")
    s.add_argument("bin")
    s.add_argument("--reps", type=int, default=2)
    s.add_argument("--pin", action="store_true")
    s.add_argument("--n", type=int, default=len(SENTENCES), help="first N sentences (smoke tests)")
    f = sub.add_parser("fmt")
    f.add_argument("kind")
    f.add_argument("json")
    a = p.parse_args()
    {"gen": gen, "librosa": run_librosa, "compare": compare, "speak": speak, "fmt": fmt}[a.cmd](a)


if __name__ == "__main__":
    main()
