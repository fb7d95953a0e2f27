"""Start-up cost of the lean `capstream` binary against eSpeak NG itself.

Runs each command N times (after one warm-up) for wall time, and once under GNU
time for peak RSS (a child forked from Python would report Python's pages), and prints median/min wall, max peak RSS and
capstream's overhead over espeak-ng. Issue 15's targets: `--version` and `speak`
at most 30 ms above espeak-ng and under 40 MB peak RSS.

    .venv/bin/python benches/lean/bench.py [--n 30] [--capstream target/release/capstream]
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time

TEXT = "a red circle above a blue square"


def peak_rss_mib(cmd):
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, check=True)
    return int(p.stderr.strip().splitlines()[-1]) / 1024


def measure(cmd, n):
    walls = []
    for i in range(n + 1):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status = os.waitpid(p.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.read().decode()}")
        p.stderr.close()
        if i == 0:
            continue  # warm-up: page cache, espeak-ng's voice data
        walls.append(wall * 1000)
    return statistics.median(walls), min(walls), peak_rss_mib(cmd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--capstream", default="target/release/capstream")
    a = ap.parse_args()
    out = os.path.join(tempfile.mkdtemp(), "s.wav")
    rows = [
        ("espeak-ng", ["espeak-ng", "-v", "en-us", "--stdout", TEXT]),
        ("capstream --version", [a.capstream, "--version"]),
        ("capstream speak", [a.capstream, "speak", TEXT, "--out", out]),
    ]
    res = {name: measure(cmd, a.n) for name, cmd in rows}
    base_med, base_min, _ = res["espeak-ng"]
    print(f"n = {a.n} runs each, text = {TEXT!r}")
    print(f"{'command':22} {'median ms':>10} {'min ms':>8} {'peak RSS MiB':>13} {'over espeak-ng (median)':>24}")
    for name, (med, mn, rss) in res.items():
        over = "" if name == "espeak-ng" else f"{med - base_med:+.1f} ms"
        print(f"{name:22} {med:10.1f} {mn:8.1f} {rss:13.1f} {over:>24}")


if __name__ == "__main__":
    main()
