#!/usr/bin/env python3
"""Helpers for benches/serve/bench.sh (standard library only).

  report.py port
      Prints a free TCP port on 127.0.0.1 (bound, read, released).

  report.py hey CSV --requests N
      Summarises one `hey -o csv` run: prints one JSON object
      {"requests", "ok", "failed", "status", "wall_s", "ips", "p50_ms", "p99_ms", "mean_ms", "max_ms"}.
      hey's CSV has one row per answered request (response-time and offset in seconds,
      status-code); requests that got no answer at all (timeout, reset) have no row, so
      failed = N - (rows with status 200). ips = 200-answers / wall, wall = the end of the
      last answer (offset + response-time) since hey started. Percentiles are
      nearest-rank over the 200 answers (p99 of fewer than 100 answers is their maximum).
      hey's own summary is not used: its percentile table leaves 99% empty below 100
      requests and takes no notice of failed requests in Requests/sec.

  report.py metrics BEFORE AFTER [--stage caption]
      Two /metrics scrapes (Prometheus text): prints JSON {"batches", "rows", "mean_rows",
      "mean_batch_s"} for the stage over the interval, from the cumulative
      capstream_stage_batch_rows_{sum,count} and capstream_stage_batch_duration_seconds_sum
      (label sets summed; null where a scrape lacks them).

  report.py gen-config MODEL_DIR
      Prints the max_new_tokens the caption stage uses for that folder: its
      generation_config.json's max_new_tokens, else 20.

  report.py jpeg SRC DST [--quality 95]
      Re-encodes an image as baseline JPEG (PIL), for the Content-Type the bench sends.

  report.py render RESULTS_JSONL
      Markdown tables and target ratios from the JSON lines bench.sh collected.
"""

import argparse
import json
import math
import re
import socket
import sys
from pathlib import Path


def cmd_port(a) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    return 0


def nearest_rank(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100 * len(sorted_vals)))
    return sorted_vals[min(k, len(sorted_vals)) - 1]


def summarise_hey(path: Path, n: int) -> dict:
    lines = path.read_text().splitlines() if path.exists() else []
    rows = []
    if lines and lines[0].startswith("response-time"):
        head = lines[0].split(",")
        i_rt, i_code, i_off = head.index("response-time"), head.index("status-code"), head.index("offset")
        for line in lines[1:]:
            f = line.split(",")
            if len(f) != len(head):
                continue
            try:
                rows.append((float(f[i_rt]), int(f[i_code]), float(f[i_off])))
            except ValueError:
                continue
    status = {}
    for _, code, _ in rows:
        status[str(code)] = status.get(str(code), 0) + 1
    ok = sorted(rt for rt, code, _ in rows if code == 200)
    wall = max((off + rt for rt, _, off in rows), default=0.0)
    ms = lambda v: None if v is None else round(v * 1e3, 1)  # noqa: E731
    return dict(
        requests=n, answered=len(rows), ok=len(ok), failed=n - len(ok), status=status,
        wall_s=round(wall, 3), ips=round(len(ok) / wall, 3) if wall > 0 else None,
        p50_ms=ms(nearest_rank(ok, 50)), p99_ms=ms(nearest_rank(ok, 99)),
        mean_ms=ms(sum(ok) / len(ok)) if ok else None, max_ms=ms(ok[-1] if ok else None),
    )


def cmd_hey(a) -> int:
    print(json.dumps(summarise_hey(Path(a.csv), a.requests)))
    return 0


METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')


def scrape_sum(text: str, name: str, stage: str):
    """Sum of `name` over the label sets with stage="<stage>"; None when there is none."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = METRIC.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if labels.get("stage") != stage:
            continue
        try:
            total += float(m.group(3))
            seen = True
        except ValueError:
            pass
    return total if seen else None


def metrics_delta(before: str, after: str, stage: str) -> dict:
    def d(name):
        b, e = scrape_sum(before, name, stage), scrape_sum(after, name, stage)
        return None if e is None else e - (b or 0.0)

    rows, batches = d("capstream_stage_batch_rows_sum"), d("capstream_stage_batch_rows_count")
    secs = d("capstream_stage_batch_duration_seconds_sum")
    ok = rows is not None and batches
    return dict(batches=batches, rows=rows, mean_rows=round(rows / batches, 2) if ok else None,
                mean_batch_s=round(secs / batches, 4) if ok and secs is not None else None)


def cmd_metrics(a) -> int:
    before = Path(a.before).read_text() if Path(a.before).exists() else ""
    after = Path(a.after).read_text() if Path(a.after).exists() else ""
    print(json.dumps(metrics_delta(before, after, a.stage)))
    return 0


def cmd_gen_config(a) -> int:
    p = Path(a.model_dir) / "generation_config.json"
    n = json.loads(p.read_text()).get("max_new_tokens") if p.exists() else None
    print(n or 20)
    return 0


def cmd_jpeg(a) -> int:
    from PIL import Image

    Image.open(a.src).convert("RGB").save(a.dst, format="JPEG", quality=a.quality)
    return 0


def fmt(v, nd=1):
    if v is None:
        return "n/a"
    return f"{v:.{nd}f}"


def ms_(v):
    return "n/a" if v is None else f"{v:.1f} ms"


def ratio(a, b, nd=2):
    return f"{a / b:.{nd}f}x" if a is not None and b else "n/a"


def verdict(ok):
    return "" if ok is None else (" (met)" if ok else " (**not met**)")


def cmd_render(a) -> int:
    recs = [json.loads(l) for l in Path(a.results).read_text().splitlines() if l.strip()]
    runs = [r for r in recs if r.get("kind") == "run"]
    models = []
    for r in recs:
        if r.get("model") and r["model"] not in models:
            models.append(r["model"])
    out = []
    out.append("| model | server | concurrency | requests | failed | images/s | p50 ms | p99 ms | mean caption batch (rows, ms) |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        b = r.get("batch") or {}
        mb = f"{fmt(b.get('mean_rows'), 2)}, {fmt(b['mean_batch_s'] * 1e3 if b.get('mean_batch_s') is not None else None)}"
        out.append(
            f"| {r['model']} | {r['server']} | {r['c']} | {r['requests']} | {r['failed']}"
            f"{' (timed out)' if r.get('timed_out') else ''} | {fmt(r['ips'], 2)} | {fmt(r['p50_ms'])} "
            f"| {fmt(r['p99_ms'])} | {mb if r['server'] == 'capstream' else '1 (no batching)'} |")
    out.append("")
    out.append("Targets:")
    out.append("")
    out.append("| model | capstream/peer images/s at c=32 (target >= 2x) | capstream p99 / peer p99 at c=32 (target < 2x) "
               "| mean caption batch at c=32 | serve p50 at c=1 | `capstream caption` per image | serve p50 / caption (target: at most 1.10, serve adding at most 10%) |")
    out.append("|---|---|---|---|---|---|---|")
    for m in models:
        get = lambda s, c: next((r for r in runs if r["model"] == m and r["server"] == s and r["c"] == c), None)  # noqa: E731
        cs32, pe32, cs1 = get("capstream", 32), get("peer", 32), get("capstream", 1)
        cap = next((r for r in recs if r.get("kind") == "caption" and r["model"] == m), None)
        tput = p99 = lat = None
        if cs32 and pe32 and cs32["ips"] and pe32["ips"]:
            tput = cs32["ips"] / pe32["ips"]
        if cs32 and pe32 and cs32["p99_ms"] and pe32["p99_ms"]:
            p99 = cs32["p99_ms"] / pe32["p99_ms"]
        per = cap.get("per_image_ms") if cap else None
        if cs1 and cs1["p50_ms"] and per:
            lat = cs1["p50_ms"] / per
        out.append(
            f"| {m} | {ratio(cs32 and cs32['ips'], pe32 and pe32['ips'])}{verdict(None if tput is None else tput >= 2)} "
            f"| {ratio(cs32 and cs32['p99_ms'], pe32 and pe32['p99_ms'])}{verdict(None if p99 is None else p99 < 2)} "
            f"| {fmt(cs32 and cs32.get('batch', {}).get('mean_rows'), 2)} "
            f"| {ms_(cs1 and cs1['p50_ms'])} | {ms_(per)} "
            f"| {ratio(cs1 and cs1['p50_ms'], per, 3)}{verdict(None if lat is None else lat <= 1.10)} |")
    caps = [r for r in recs if r.get("kind") == "caption"]
    if caps:
        out.append("")
        out.append("`capstream caption` per image = (t(K) - t(1)) / (K - 1), t = median whole-process wall clock "
                   "of `capstream caption --batch-size 1` over 1 and over K copies of the image:")
        out.append("")
        for r in caps:
            out.append(f"- {r['model']}: K = {r['k']}, t(1) = {fmt(r['t1_s'], 3)} s (runs {r['t1_runs']}), "
                       f"t(K) = {fmt(r['tk_s'], 3)} s (runs {r['tk_runs']}) -> {fmt(r['per_image_ms'])} ms per image.")
    checks = [r for r in recs if r.get("kind") == "check"]
    if checks:
        out.append("")
        out.append("Same answer check (one request to each server before its timed runs):")
        out.append("")
        by_model = {}
        for r in checks:
            by_model.setdefault(r["model"], {})[r["server"]] = r
        strip = lambda ids: [t for t in ids[1:] if t != 0] if ids else ids  # noqa: E731
        for m, d in by_model.items():
            pe = d.get("peer")
            parts = []
            for who in ("capstream", "caption-cli"):
                cs = d.get(who)
                if not cs:
                    continue
                same = None
                if pe and cs.get("token_ids") is not None and pe.get("token_ids") is not None:
                    same = strip(cs["token_ids"]) == strip(pe["token_ids"])
                label = {"capstream": "capstream serve", "caption-cli": "capstream caption"}[who]
                parts.append(f"{label} = peer: " + ("yes" if same else ("**no**" if same is False else "not compared")))
            desc = "; ".join(f"{w}: {json.dumps(r.get('caption'))} ({len(r['token_ids']) if r.get('token_ids') else '?'} ids)"
                             for w, r in (("capstream serve", d.get("capstream")), ("capstream caption", d.get("caption-cli")),
                                          ("peer", pe)) if r)
            out.append(f"- {m}: " + (f"token ids {', '.join(parts)}. " if parts else "") + f"{desc}.")
    print("\n".join(out))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("port")
    h = sub.add_parser("hey")
    h.add_argument("csv")
    h.add_argument("--requests", type=int, required=True)
    m = sub.add_parser("metrics")
    m.add_argument("before")
    m.add_argument("after")
    m.add_argument("--stage", default="caption")
    g = sub.add_parser("gen-config")
    g.add_argument("model_dir")
    j = sub.add_parser("jpeg")
    j.add_argument("src")
    j.add_argument("dst")
    j.add_argument("--quality", type=int, default=95)
    r = sub.add_parser("render")
    r.add_argument("results")
    a = ap.parse_args(argv)
    return {"port": cmd_port, "hey": cmd_hey, "metrics": cmd_metrics, "gen-config": cmd_gen_config,
            "jpeg": cmd_jpeg, "render": cmd_render}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
