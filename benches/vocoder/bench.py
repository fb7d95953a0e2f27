"""Helper of benches/vocoder/bench.sh: sentences, the librosa peer, and the report."""

import glob
import json
import os
import platform
import subprocess
import sys
import time

SENTENCES = [
    "a red circle on a white background",
    "two blue squares next to a green triangle",
    "a man riding a bicycle down a city street",
    "a plate of food with broccoli and rice",
    "a dog running across a grassy field",
    "three yellow stars above a small black cross",
    "a group of people standing around a kitchen",
    "a train traveling down the tracks near a station",
    "a cat sitting on top of a wooden table",
    "a large purple hexagon left of an orange circle",
    "a bowl of fruit on a counter",
    "a person holding an umbrella in the rain",
    "a stop sign at the corner of a street",
    "an airplane flying over a body of water",
    "a child playing with a kite on the beach",
    "four small pink diamonds on a striped background",
    "a clock tower in the middle of a town",
    "a bathroom with a sink and a mirror",
    "a herd of elephants walking through the grass",
    "a pizza with cheese and tomatoes on a tray",
]

SHAPE_WORDS = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "heart")


def mels(work):
    import numpy as np

    return [(p, np.load(p)) for p in sorted(glob.glob(f"{work}/mel/*.npy"))]


def librosa_peer(work, runs):
    import librosa
    import numpy as np

    clips = mels(work)
    # Warm-up (numba JIT), untimed.
    librosa.feature.inverse.mel_to_audio(librosa.db_to_power(clips[0][1]), sr=16000, n_fft=1024, hop_length=512, n_iter=2)
    best = None
    outs = {}
    for _ in range(runs):
        t = time.perf_counter()
        for p, m in clips:
            y = librosa.feature.inverse.mel_to_audio(
                librosa.db_to_power(m), sr=16000, n_fft=1024, hop_length=512, n_iter=32
            )
            outs[os.path.basename(p)[:-4]] = y
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    import soundfile as sf

    os.makedirs(f"{work}/out/librosa", exist_ok=True)
    for k, y in outs.items():
        sf.write(f"{work}/out/librosa/{k}.wav", y.astype(np.float32), 16000, subtype="FLOAT")
    print(best)


def sc(ref, est):
    import librosa
    import numpy as np

    n = min(len(ref), len(est))
    s = np.abs(librosa.stft(ref[:n], n_fft=1024, hop_length=512))
    e = np.abs(librosa.stft(est[:n], n_fft=1024, hop_length=512))
    return float(np.linalg.norm(s - e) / np.linalg.norm(s))


def pinned(binary, ref, est):
    """SC, LSD and MCD as capstream pins them (src/metrics/audio.rs: STFT 1024/256, LSD and
    MCD floored 80 dB below the reference's peak): the definitions the model card uses."""
    out = subprocess.run([binary, "audio-metrics", "--json", "--floor-db", "80", ref, est],
                         check=True, capture_output=True, text=True).stdout
    m = json.loads(out)
    return m["spectral_convergence"], m["lsd_db"], m["mcd"]


def report(work, runs, n_in, n_whole, s_in, s_whole, g_in, g_whole, lib, version, binary):
    import librosa
    import numpy as np
    import soundfile as sf

    refs = {os.path.basename(p)[:-4]: sf.read(p, dtype="float32")[0] for p in sorted(glob.glob(f"{work}/wav/*.wav"))}
    audio_s = sum(len(m[1][0]) - 1 for m in mels(work)) * 512 / 16000

    scored = {}

    def q(folder, keys=None):
        grid, card = [], []
        for k, r in refs.items():
            if keys is not None and k not in keys:
                continue
            p = f"{work}/out/{folder}/{k}.wav"
            if (folder, k) not in scored:
                scored[folder, k] = (sc(r, sf.read(p, dtype="float32")[0]), *pinned(binary, f"{work}/wav/{k}.wav", p))
            grid.append(scored[folder, k][0])
            card.append(scored[folder, k][1:])
        return (float(np.mean(grid)), *np.mean(np.array(card), axis=0).tolist())

    lib = float(lib)
    rows = [
        ("capstream vocode, neural, models/default/audio (Vocos, 6 x 128)", float(n_in), float(n_whole), q("neural_default")),
        ("capstream vocode, neural, test fixture (Vocos, 2 x 32, barely trained)", float(s_in), float(s_whole), q("neural")),
        ("capstream vocode, Griffin-Lim (32 iter, NNLS mel inverse)", float(g_in), float(g_whole), q("griffin-lim")),
        ("librosa mel_to_audio (Griffin-Lim, 32 iter)", lib, None, q("librosa")),
    ]
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    print("## Vocoder real-time factor (CPU, one core)\n")
    print(f"Command: `bash benches/vocoder/bench.sh`   Date: {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    print(f"Machine: {cpu}, nproc={os.cpu_count()}, {platform.system()} {platform.release()}")
    print(f"Versions: {version}, librosa {librosa.__version__}, numpy {np.__version__}")
    print(f"Input: {len(refs)} spoken captions (capstream speak, 16 kHz), {audio_s:.1f} s of audio, as 80-band log-mels")
    print("(16 kHz, n_fft 1024, hop 512, dB) from `capstream features`; each side vocodes every clip.")
    print(f"Timing: best of {runs}; `taskset -c 0`, 1 libtorch thread, OMP/numba 1 thread. capstream's 'in-process'")
    print("time is measured around vocoding only (model loaded, files read); 'whole process' adds start-up and I/O.")
    print("librosa is timed in-process after a numba warm-up. RTF = seconds / audio seconds (lower is faster).\n")
    print("Quality against the spoken clip, mean over clips: SC, LSD (dB) and MCD as pinned in")
    print("src/metrics/audio.rs (`capstream audio-metrics --floor-db 80`: STFT 1024/256, floor 80 dB")
    print("below the reference's peak), and SC on the mel's own STFT grid (1024/512, librosa).\n")
    print("| what | in-process s | RTF | x real time | whole process s | vs librosa (in-process) | SC | LSD dB | MCD | SC, hop 512 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, inner, whole, (grid, sc_p, lsd, mcd) in rows:
        w = f"{whole:.3f}" if whole is not None else ""
        print(f"| {name} | {inner:.3f} | {inner / audio_s:.4f} | {audio_s / inner:.0f} | {w} | {lib / inner:.2f}x "
              f"| {sc_p:.3f} | {lsd:.2f} | {mcd:.1f} | {grid:.3f} |")
    # The vocoder learnt from spoken shape-world captions only; the other sentences hold
    # words (and so phones) it never heard.
    world = {f"s{i:02d}" for i, t in enumerate(SENTENCES) if any(w in t for w in SHAPE_WORDS)}
    print(f"\nBy sentence kind (SC / LSD dB / MCD, pinned): {len(world)} in the shape world, "
          f"{len(refs) - len(world)} general English.\n")
    print("| what | shape-world SC | LSD | MCD | general SC | LSD | MCD |")
    print("|---|---|---|---|---|---|---|")
    for name, folder in [("neural, models/default/audio", "neural_default"),
                         ("capstream Griffin-Lim", "griffin-lim"), ("librosa Griffin-Lim", "librosa")]:
        a = q(folder, world)
        b = q(folder, set(refs) - world)
        print(f"| {name} | {a[1]:.3f} | {a[2]:.2f} | {a[3]:.1f} | {b[1]:.3f} | {b[2]:.2f} | {b[3]:.1f} |")
    print("\nThe default model's vocoder is the trained one `make demo` runs (these sentences are not")
    print("its training clips); the fixture's trained on 16 clips and is timed, not judged. Griffin-Lim")
    print("needs no training; its column compares the two implementations (different initial phases:")
    print("capstream zero, librosa random).")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "sentences":
        for i, s in enumerate(SENTENCES):
            print(f"{i:02d}\t{s}")
    elif cmd == "librosa":
        librosa_peer(sys.argv[2], int(sys.argv[3]))
    else:
        report(*sys.argv[2:])
