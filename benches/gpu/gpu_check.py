#!/usr/bin/env python3
"""GPU checks and benchmarks for capstream (driven by benches/gpu/run.sh).

    gpu_check.py run --mode full|dry --out FILE --capstream BIN --data DIR
        The whole check: every section below, one JSON results file, exit 1 when a check fails.
    gpu_check.py env
        One JSON object: python, torch, CUDA, device, transformers versions (own process, so the
        orchestrator never holds a CUDA context while capstream runs).
    gpu_check.py hf --model DIR --device cuda|cpu --dtypes bf16,f16 --batches 1,8 --extras 32,64
                    --tokens 20 --vision-batch 64 --out FILE IMAGES...
        transformers' BlipForConditionalGeneration on the same device: caption throughput per
        (dtype, batch), peak memory, the vision tower's achieved TFLOP/s, and a large matmul
        as a measured ceiling. FILE is rewritten after every measurement.

Sections of `run` (each records its own wall seconds):
  env         versions, device name, cuda_found (torch in python AND `capstream doctor`).
  prepare     synthetic images (benches/blip/bench.py gen) and, in full mode, the random
              BLIP-base checkpoint (benches/blip/make_base_checkpoint.py, offline, cached).
  ids         greedy f32 token ids of `capstream caption --device cuda` (batch 1 and batch N)
              against `--device cpu` batch 1, per fixture checkpoint. Asserted.
              (dry run: the "device" side is the CPU too.)
  transformers   `gpu_check.py hf` in a child process.
  throughput  `capstream caption --dtype D --batch-size B` images/s. capstream prints no
              timing, so the rate is marginal: two process runs, one of B images and one of
              B + E images (same first batch), and rate = E / (t2 - t1); model load, CUDA
              start-up and first-batch warm-up cancel. Peak GPU memory of the bigger run is
              polled with NVML (or nvidia-smi) from outside.
  vision_capstream_estimate   the same marginal method with --max-new-tokens 1: an upper bound
              on the vision tower's time (it includes CPU preprocessing and one decoder
              step), so a LOWER bound on its TFLOP/s.
Nothing here asserts a timing; only correctness (ids equal, commands succeed, CUDA found).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures/blip"
SCHEMA = "capstream-gpu-bench/1"

# Dense (no structured sparsity) tensor-core peaks in TFLOP/s from the vendors' datasheets,
# most specific name first (matched as a case-insensitive substring of the device name).
PEAK_TFLOPS = [
    ("GH200", {"bf16": 989.4, "f16": 989.4, "tf32": 494.7, "f32": 66.9}),
    ("H200", {"bf16": 989.4, "f16": 989.4, "tf32": 494.7, "f32": 66.9}),
    ("H100 NVL", {"bf16": 835.5, "f16": 835.5, "tf32": 417.5, "f32": 60.0}),
    ("H100 PCIe", {"bf16": 756.5, "f16": 756.5, "tf32": 378.0, "f32": 51.2}),
    ("H100", {"bf16": 989.4, "f16": 989.4, "tf32": 494.7, "f32": 66.9}),  # SXM / HBM3
    ("A100", {"bf16": 312.0, "f16": 312.0, "tf32": 156.0, "f32": 19.5}),
    ("L40S", {"bf16": 362.05, "f16": 362.05, "tf32": 183.0, "f32": 91.6}),
    ("L40", {"bf16": 181.0, "f16": 181.0, "tf32": 90.5, "f32": 90.5}),
    ("L4", {"bf16": 121.0, "f16": 121.0, "tf32": 60.0, "f32": 30.3}),
    ("A10", {"bf16": 125.0, "f16": 125.0, "tf32": 62.5, "f32": 31.2}),
]

UNSUPPORTED = {
    "vision_tower_timing": (
        "capstream cannot time its vision tower alone: `capstream caption` prints no timing and has "
        "no encoder-only mode. vision.rows[].capstream_lower_bound_tflops is therefore a LOWER bound on TFLOP/s from whole-process "
        "wall clock with --max-new-tokens 1 (includes CPU image decode/resize and one decoder step). "
        "Missing: e.g. `capstream caption --timings` adding per-batch preprocess/vision/decode seconds "
        "(CUDA-synchronised) to the --json output."
    ),
    "capstream_timing": (
        "`capstream caption` reports no wall time per batch; throughput is the marginal wall clock "
        "between two process runs (B and B+E images). Same missing `--timings` flag."
    ),
    "capstream_peak_gpu_memory": (
        "capstream reports no GPU memory; its peak is polled from outside (NVML per-process used memory, "
        "else the device's used memory minus the baseline), which includes the CUDA context and the "
        "caching allocator's reserve, so compare it with transformers' nvml figure, not with "
        "torch.cuda.max_memory_allocated. Missing: e.g. a peak_gpu_bytes field "
        "(c10 CUDACachingAllocator max allocated) in `--timings` output."
    ),
}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg: str) -> None:
    print(f"[gpu-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rnd(x, n=3):
    return None if x is None else round(float(x), n)


def sig(x, n=4):
    """n significant digits (tiny CPU figures in the dry run would round to 0.0 otherwise)."""
    return None if x is None else float(f"{float(x):.{n}g}")


# ---------------------------------------------------------------------------------------------
# FLOPs of the BLIP vision tower (multiply-add = 2 FLOPs), from config.json alone.

def vision_flops_per_image(cfg: dict) -> dict:
    v = cfg.get("vision_config", {})
    S = int(v.get("image_size", 384))
    P = int(v.get("patch_size", 16))
    D = int(v.get("hidden_size", 768))
    F = int(v.get("intermediate_size", 3072))
    L = int(v.get("num_hidden_layers", 12))
    n_patch = (S // P) ** 2
    T = n_patch + 1
    patch = 2 * n_patch * (3 * P * P) * D
    per_layer = 2 * T * D * 3 * D + 2 * T * D * D + 2 * 2 * T * D * F + 2 * 2 * T * T * D
    return dict(image_size=S, patch_size=P, tokens=T, hidden=D, mlp=F, layers=L,
                flops=patch + L * per_layer,
                formula="2*(S/P)^2*3P^2*D + L*(8*T*D^2 + 4*T*D*F + 4*T^2*D), T=(S/P)^2+1")


def peak_for(device_name: str | None) -> tuple[str | None, dict | None]:
    if not device_name:
        return None, None
    low = device_name.lower()
    for key, peaks in PEAK_TFLOPS:
        if key.lower() in low:
            return key, peaks
    return None, None


# ---------------------------------------------------------------------------------------------
# GPU memory polling from outside a process (NVML, else nvidia-smi).

class MemPoller:
    """Polls the GPU's memory while a process runs: that pid's used memory where NVML lists it,
    and the device's used memory minus the baseline taken at start."""

    def __init__(self, pid: int, index: int = 0, interval: float = 0.02):
        self.pid, self.index, self.interval = pid, index, interval
        self.proc_peak = None
        self.dev_peak = None
        self.baseline = None
        self.all_proc = self.all_dev = None  # never reset
        self.method = None
        self.samples = 0
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def reset_peak(self):
        """Start a new peak (the baseline stays)."""
        self.proc_peak = self.dev_peak = None

    def snapshot(self) -> dict:
        mib = lambda b: None if b is None else round(b / 2**20, 1)
        delta = None if self.dev_peak is None or self.baseline is None else self.dev_peak - self.baseline
        whole = None if self.all_dev is None or self.baseline is None else self.all_dev - self.baseline
        return dict(method=self.method, samples=self.samples, process_peak_mib=mib(self.proc_peak),
                    device_used_peak_mib=mib(self.dev_peak), device_baseline_mib=mib(self.baseline),
                    device_delta_peak_mib=mib(delta), process_peak_since_start_mib=mib(self.all_proc),
                    device_delta_peak_since_start_mib=mib(whole), error=self.error)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.snapshot()

    def _note(self, proc, dev):
        if proc is not None:
            self.all_proc = proc if self.all_proc is None else max(self.all_proc, proc)
        if dev is not None:
            self.all_dev = dev if self.all_dev is None else max(self.all_dev, dev)
        if proc is not None:
            self.proc_peak = proc if self.proc_peak is None else max(self.proc_peak, proc)
        if dev is not None:
            if self.baseline is None:
                self.baseline = dev
                self.dev_peak = dev
            self.dev_peak = dev if self.dev_peak is None else max(self.dev_peak, dev)
        self.samples += 1

    def _run(self):
        try:
            import pynvml  # nvidia-ml-py
            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            self.method = "nvml"
            while True:
                proc = None
                try:
                    for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                        if p.pid == self.pid and p.usedGpuMemory:
                            proc = p.usedGpuMemory
                except pynvml.NVMLError:
                    pass
                self._note(proc, pynvml.nvmlDeviceGetMemoryInfo(h).used)
                if self._stop.wait(self.interval):
                    break
            pynvml.nvmlShutdown()
            return
        except ImportError:
            pass
        except Exception as e:  # NVML present but broken: try nvidia-smi
            self.error = f"nvml: {e}"
        smi = shutil.which("nvidia-smi")
        if not smi:
            self.method = None
            self.error = (self.error + "; " if self.error else "") + "no pynvml and no nvidia-smi"
            return
        self.method = "nvidia-smi"
        while True:
            proc = dev = None
            try:
                out = subprocess.run([smi, "-i", str(self.index), "--query-gpu=memory.used",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                     timeout=5).stdout.strip()
                dev = int(float(out.splitlines()[0])) * 2**20
                out = subprocess.run([smi, "-i", str(self.index), "--query-compute-apps=pid,used_memory",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                     timeout=5).stdout
                for line in out.splitlines():
                    parts = [x.strip() for x in line.split(",")]
                    if len(parts) == 2 and parts[0] == str(self.pid) and parts[1].isdigit():
                        proc = int(parts[1]) * 2**20
            except Exception as e:
                self.error = f"nvidia-smi: {e}"
            self._note(proc, dev)
            if self._stop.wait(self.interval):
                break


# ---------------------------------------------------------------------------------------------
# Running a child with exact wall time, peak RSS, a timeout and optional GPU memory polling.

def run_child(cmd: list[str], timeout: float, poll_gpu: bool = False, env: dict | None = None,
              tee_stderr: bool = False) -> dict:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    poller = MemPoller(p.pid).start() if poll_gpu else None
    bufs = {"out": b"", "err": b""}

    def reader(stream, key):
        if key == "err" and tee_stderr:  # show a long child's progress as it happens
            chunks = []
            for line in iter(stream.readline, b""):
                chunks.append(line)
                sys.stderr.write("    " + line.decode("utf-8", "replace"))
                sys.stderr.flush()
            bufs[key] = b"".join(chunks)
        else:
            bufs[key] = stream.read()

    threads = [threading.Thread(target=reader, args=(p.stdout, "out"), daemon=True),
               threading.Thread(target=reader, args=(p.stderr, "err"), daemon=True)]
    for t in threads:
        t.start()
    killed = threading.Event()

    def kill():
        killed.set()
        try:
            p.kill()
        except OSError:
            pass

    timer = threading.Timer(max(1.0, timeout), kill)
    timer.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join(timeout=10)
    mem = poller.stop() if poller else None
    return dict(cmd=cmd, rc=p.returncode, timed_out=killed.is_set(), wall_s=wall,
                maxrss_mib=round(ru.ru_maxrss / 1024, 1),
                stdout=bufs["out"].decode("utf-8", "replace"),
                stderr=bufs["err"].decode("utf-8", "replace"), gpu_mem=mem)


def short_cmd(cmd: list[str], keep: int = 14) -> str:
    parts = [os.path.relpath(c, ROOT) if os.path.isabs(c) and c.startswith(str(ROOT)) else c for c in cmd]
    if len(parts) > keep:
        parts = parts[:keep] + [f"... (+{len(parts) - keep} args)"]
    return " ".join(parts)


def parse_jsonl(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                rows.append({"unparsed": line[:200]})
    return rows


def strip_pad(ids, pad=0):
    ids = list(ids or [])
    while ids and ids[-1] == pad:
        ids.pop()
    return ids


class Runner:
    def __init__(self, args):
        self.a = args
        self.dry = args.mode == "dry"
        self.t_start = time.perf_counter()
        self.budget = args.budget_s
        self.bin = str(Path(args.capstream).resolve())
        self.py = sys.executable
        self.data = Path(args.data)
        self.res: dict = dict(
            schema=SCHEMA, dry_run=self.dry, mode=args.mode, started=now_iso(),
            command="bash benches/gpu/run.sh" + (" --dry-run" if self.dry else ""),
            budget_s=self.budget, ok=None, failures=[], warnings=[], skipped=[],
            unsupported=dict(UNSUPPORTED), sections={},
        )
        self.failures = self.res["failures"]
        self.res["config"] = dict(dtypes=args.dtypes, batches=args.batches,
                                  timed_images_per_batch={str(k): v for k, v in args.extra.items()},
                                  new_tokens=args.tokens, distinct_images=args.images,
                                  vision_batch=args.vision_batch, vision_timed_images=args.vision_extra,
                                  vision_iters=args.vision_iters, matmul_n=args.matmul, threads=args.threads,
                                  device="cpu" if self.dry else "cuda")
        self.env = os.environ.copy()
        self.threads = args.threads

    # --- bookkeeping -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def left(self) -> float:
        return self.budget - self.elapsed()

    def fail(self, what: str):
        log("CHECK FAILED: " + what)
        self.failures.append(what)

    def warn(self, what: str):
        log("warning: " + what)
        self.res["warnings"].append(what)

    def write(self):
        self.res["wall_s_total"] = rnd(self.elapsed(), 1)
        self.res["ok"] = not self.failures
        out = Path(self.a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        tmp.write_text(json.dumps(self.res, indent=1) + "\n")
        tmp.replace(out)

    def section(self, name, fn):
        log(f"== {name} ({self.elapsed():.0f}s elapsed, {self.left():.0f}s of budget left)")
        t0 = time.perf_counter()
        entry = self.res["sections"].setdefault(name, {})
        try:
            fn(entry)
        except Exception as e:
            entry["error"] = f"{type(e).__name__}: {e}"
            entry["traceback"] = traceback.format_exc()[-3000:]
            self.fail(f"section {name} raised {type(e).__name__}: {e}")
        entry["wall_s"] = rnd(time.perf_counter() - t0, 2)
        self.write()

    def caption(self, model, images, device, dtype, batch, tokens=20, min_tokens=None, poll=False,
                timeout=None) -> dict:
        cmd = [self.bin, "caption", "--model", str(model), "--json", "--device", device, "--dtype", dtype,
               "--batch-size", str(batch), "--max-new-tokens", str(tokens)]
        if min_tokens is not None:
            cmd += ["--min-new-tokens", str(min_tokens)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        cmd += [str(p) for p in images]
        t = timeout if timeout is not None else max(10.0, min(240.0, self.left()))
        r = run_child(cmd, timeout=t, poll_gpu=poll, env=self.env)
        r["rows"] = parse_jsonl(r["stdout"])
        bad = [row for row in r["rows"] if "token_ids" not in row]
        r["ok"] = r["rc"] == 0 and not r["timed_out"] and len(r["rows"]) == len(images) and not bad
        if not r["ok"]:
            r["why"] = (f"rc={r['rc']} timed_out={r['timed_out']} lines={len(r['rows'])}/{len(images)}"
                        f" errors={[b.get('error', b.get('unparsed')) for b in bad][:3]}"
                        f" stderr={r['stderr'][-1500:]!r}")
        return r

    # --- sections ----------------------------------------------------------------------------
    def sec_env(self, e):
        r = run_child([self.py, __file__, "env"], timeout=120, env=self.env)
        try:
            info = json.loads(r["stdout"])
        except json.JSONDecodeError:
            info = {"error": f"env probe failed rc={r['rc']}: {r['stderr'][-1500:]}"}
            self.fail("python env probe failed")
        e["python"] = info
        d = run_child([self.bin, "doctor", "--json"], timeout=120, env=self.env)
        try:
            doctor = json.loads(d["stdout"])
        except json.JSONDecodeError:
            doctor = {"error": f"capstream doctor failed rc={d['rc']}: {d['stderr'][-1500:]}"}
            self.fail("capstream doctor --json failed (is libtorch found? LD_LIBRARY_PATH)")
        e["capstream_doctor"] = doctor
        lt = doctor.get("libtorch", {}) if isinstance(doctor, dict) else {}
        torch_cuda = bool(info.get("cuda_available"))
        cs_cuda = bool(lt.get("cuda_available"))
        self.res["cuda_found"] = torch_cuda and cs_cuda
        self.res["cuda_found_detail"] = {"torch_python": torch_cuda, "capstream_libtorch": cs_cuda,
                                         "capstream_cuda_devices": lt.get("cuda_devices"),
                                         "capstream_cudnn": lt.get("cudnn_available")}
        self.res["device"] = {
            "name": info.get("device_name") or ("cpu: " + (info.get("cpu") or platform.processor())),
            "capability": info.get("capability"), "total_memory_mib": info.get("total_memory_mib"),
            "multiprocessors": info.get("multiprocessors"), "driver": info.get("driver"),
        }
        self.res["versions"] = {
            "torch": info.get("torch"), "torch_cuda": info.get("torch_cuda"), "cudnn": info.get("cudnn"),
            "capstream_libtorch": lt.get("version"), "capstream_libtorch_path": lt.get("path"),
            "capstream": doctor.get("capstream") if isinstance(doctor, dict) else None,
            "transformers": info.get("transformers"), "python": info.get("python"),
            "python_executable": info.get("python_executable"),
            "capstream_binary": self.bin,
            "capstream_binary_mtime": _dt.datetime.fromtimestamp(os.path.getmtime(self.bin), _dt.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git": git_rev(),
        }
        if lt.get("version") and info.get("torch") and lt.get("version") != info.get("torch"):
            self.warn(f"capstream's libtorch {lt.get('version')} != python torch {info.get('torch')}")
        if not self.dry and not self.res["cuda_found"]:
            self.fail(f"CUDA not found (torch in python: {torch_cuda}, capstream libtorch: {cs_cuda})")
        if isinstance(info.get("transformers"), str) and info["transformers"].startswith("ERROR"):
            self.fail("transformers is not importable: " + info["transformers"])

    def sec_prepare(self, e):
        img_dir = self.data / "images"
        n = self.a.images
        r = run_child([self.py, str(ROOT / "benches/blip/bench.py"), "gen", str(img_dir), "--count", str(n)],
                      timeout=300, env=self.env)
        if r["rc"] != 0:
            raise RuntimeError(f"image generation failed: {r['stderr'][-1500:]}")
        self.images = [img_dir / f"img{i:02d}.png" for i in range(n)]
        e["images"] = {"dir": str(img_dir), "count": n, "generator": "benches/blip/bench.py gen"}
        if self.dry:
            self.bench_model = FIXTURES / "tiny_b"
            e["model"] = {"dir": str(self.bench_model), "what": "tiny_b fixture (dry run)"}
            return
        model = self.data / "base"
        cached = [model, ROOT / "target/bench-data/blip/base"]
        have = next((m for m in cached if all((m / f).is_file() and (m / f).stat().st_size > 0
                                              for f in ("model.safetensors", "config.json", "tokenizer.json"))),
                    None)
        if have is None:
            tmp = Path(str(model) + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            r = run_child([self.py, str(ROOT / "benches/blip/make_base_checkpoint.py"), str(tmp),
                           "--variant", "base"], timeout=600, env=self.env)
            e["build_wall_s"] = rnd(r["wall_s"], 1)
            if r["rc"] != 0:
                self.fail("building the BLIP-base checkpoint failed; throughput falls back to models/default: "
                          + r["stderr"][-1500:])
                self.bench_model = ROOT / "models/default"
                e["model"] = {"dir": str(self.bench_model), "what": "models/default (fallback)"}
                return
            shutil.rmtree(model, ignore_errors=True)
            tmp.rename(model)
            have = model
        self.bench_model = have
        e["model"] = {"dir": str(have), "what": "random BLIP-base shapes (benches/blip/make_base_checkpoint.py "
                      "--variant base, seed 0, [SEP] bias -10000), 224 M params",
                      "weights_bytes": (have / "model.safetensors").stat().st_size}
        # Warm the page cache so no process pays for cold reads.
        with open(have / "model.safetensors", "rb") as f:
            while f.read(1 << 24):
                pass

    def sec_ids(self, e):
        dev = "cpu" if self.dry else "cuda"
        fixture_imgs = sorted((FIXTURES / "images").glob("*.png"))
        cases = [("tiny_a", FIXTURES / "tiny_a", fixture_imgs, True),
                 ("tiny_b", FIXTURES / "tiny_b", fixture_imgs, True),
                 ("models/default", ROOT / "models/default",
                  fixture_imgs + ([] if self.dry else sorted((ROOT / "models/default/samples/images").glob("*.jpg"))),
                  True)]
        if not self.dry and getattr(self, "bench_model", None) is not None and self.bench_model.name == "base":
            cases.append(("bench base (random BLIP-base, informational)", self.bench_model, self.images[:4], False))
        e["what"] = (f"greedy f32 token ids, 20 new tokens: --device {dev} at batch 1 and batch N "
                     "against --device cpu at batch 1, compared exactly per image")
        e["reference"] = "cpu f32 batch 1"
        e["compared"] = f"{dev} f32 batch 1, {dev} f32 batch N(all images)"
        rows = []
        all_ok = True
        for name, model, imgs, asserted in cases:
            row = dict(fixture=name, model=str(model.relative_to(ROOT)) if str(model).startswith(str(ROOT))
                       else str(model), images=len(imgs), asserted=asserted)
            ref = self.caption(model, imgs, "cpu", "f32", 1)
            row["cpu_wall_s"] = rnd(ref["wall_s"], 2)
            if not ref["ok"]:
                row["error"] = "cpu reference run failed: " + ref["why"]
                if asserted:
                    self.fail(f"ids {name}: capstream cpu run failed")
                    all_ok = False
                rows.append(row)
                continue
            ref_ids = [r["token_ids"] for r in ref["rows"]]
            for label, batch in (("batch1", 1), ("batchN", len(imgs))):
                r = self.caption(model, imgs, dev, "f32", batch)
                row[f"{dev}_{label}_wall_s"] = rnd(r["wall_s"], 2)
                if not r["ok"]:
                    row[f"{label}_equal"] = None
                    row[f"{label}_error"] = r["why"]
                    if asserted:
                        self.fail(f"ids {name}: capstream --device {dev} --batch-size {batch} failed")
                        all_ok = False
                    continue
                ids = [x["token_ids"] for x in r["rows"]]
                eq = [a == b for a, b in zip(ref_ids, ids)]
                row[f"{label}_equal"] = f"{sum(eq)}/{len(eq)}"
                if not all(eq):
                    k = eq.index(False)
                    row[f"{label}_first_mismatch"] = dict(image=os.path.basename(str(imgs[k])), cpu=ref_ids[k],
                                                          other=ids[k])
                    if asserted:
                        self.fail(f"ids {name}: {dev} batch {batch} differs from cpu on {len(eq) - sum(eq)} image(s)")
                        all_ok = False
            exp = model / "expected.json"
            if exp.is_file():  # transformers' own greedy ids, recorded when the fixture was made
                ej = json.loads(exp.read_text())
                want = {os.path.basename(im["file"]): im["cases"]["greedy"]["ids"][0] for im in ej["images"]}
                got = {os.path.basename(str(p)): i for p, i in zip(imgs, ref_ids)}
                same = [got.get(k) == v for k, v in want.items()]
                row["cpu_equals_transformers_expected_json"] = f"{sum(same)}/{len(same)}"
            row["all_equal"] = all(row.get(f"{l}_equal") == f"{len(imgs)}/{len(imgs)}" for l in ("batch1", "batchN"))
            rows.append(row)
            log(f"  ids {name}: batch1 {row.get('batch1_equal')}, batchN {row.get('batchN_equal')}")
        e["fixtures"] = "see top-level ids_equal"
        self.res["ids_equal"] = {"all_asserted_equal": all_ok, "device": dev, "fixtures": rows}

    def image_list(self, b, extra):
        return list(itertools.islice(itertools.cycle(self.images), b + extra))

    def sec_transformers(self, e):
        dev = "cpu" if self.dry else "cuda"
        out = self.data / "hf-result.json"
        if out.exists():
            out.unlink()
        cmd = [self.py, __file__, "hf", "--model", str(self.bench_model), "--device", dev,
               "--dtypes", ",".join(self.a.dtypes), "--batches", ",".join(map(str, self.a.batches)),
               "--extras", ",".join(str(self.a.extra[b]) for b in self.a.batches),
               "--tokens", str(self.a.tokens), "--vision-batch", str(self.a.vision_batch),
               "--vision-iters", str(self.a.vision_iters), "--matmul", str(self.a.matmul),
               "--out", str(out)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        cmd += [str(p) for p in self.images]
        t = max(30.0, min(360.0, self.left() - (60 if self.dry else 150)))
        r = run_child(cmd, timeout=t, env=self.env, tee_stderr=True)
        e["cmd"] = short_cmd(cmd)
        e["rc"] = r["rc"]
        self.hf = json.loads(out.read_text()) if out.exists() else {}
        if r["rc"] != 0 or r["timed_out"] or not self.hf.get("complete"):
            e["stderr_tail"] = r["stderr"][-3000:]
            self.fail(f"transformers run failed or incomplete (rc={r['rc']}, timed_out={r['timed_out']})")
        e["image_processor"] = self.hf.get("image_processor")
        e["attn_implementation"] = self.hf.get("attn_implementation")
        e["load_s"] = self.hf.get("load_s")

    def marginal(self, model, dtype, b, extra, tokens, min_tokens, tag):
        dev = "cpu" if self.dry else "cuda"
        imgs = self.image_list(b, extra)
        r1 = self.caption(model, imgs[:b], dev, dtype, b, tokens, min_tokens)
        r2 = self.caption(model, imgs, dev, dtype, b, tokens, min_tokens, poll=not self.dry)
        m = dict(dtype=dtype, batch=b, images_first_run=b, images_second_run=b + extra,
                 wall_s_first=rnd(r1["wall_s"]), wall_s_second=rnd(r2["wall_s"]),
                 maxrss_mib=r2["maxrss_mib"], gpu_mem=r2.get("gpu_mem"))
        for r, k in ((r1, "first"), (r2, "second")):
            if not r["ok"]:
                m[f"error_{k}"] = r["why"]
                n = b if k == "first" else b + extra
                self.fail(f"{tag}: capstream --device {dev} --dtype {dtype} --batch-size {b} ({n} images) failed")
        dt = r2["wall_s"] - r1["wall_s"]
        m["marginal_s"] = rnd(dt)
        if r1["ok"] and r2["ok"]:
            if dt > 0:
                m["images_per_s"] = sig(extra / dt)
                m["s_per_image"] = dt / extra
            else:
                self.warn(f"{tag} {dtype} b{b}: second run not slower than the first ({dt:.3f}s); no rate")
            m["images_per_s_whole_process"] = sig((b + extra) / r2["wall_s"])
            m["ids"] = [strip_pad(x["token_ids"]) for x in r2["rows"][b:]]
        return m

    def sec_throughput(self, e):
        e["method"] = ("capstream: marginal images/s = E / (wall(B+E images) - wall(B images)), two whole "
                       "`capstream caption` processes, greedy, exactly --tokens new tokens (min = max). "
                       "transformers: one process, model on device, one warm-up batch, then E images timed "
                       "(PIL open + image processor + generate, torch.cuda.synchronize at the end). "
                       "Both sides include image decode and preprocessing.")
        e["tokens"] = self.a.tokens
        dev_label = "cpu" if self.dry else "cuda"
        rows = []
        self.cs_rows = {}
        for dtype in self.a.dtypes:
            for b in self.a.batches:
                extra = self.a.extra[b]
                need = 8 if self.dry else 25
                if self.left() < need:
                    self.res["skipped"].append(f"throughput {dtype} batch {b}: time budget")
                    self.warn(f"skipping throughput {dtype} batch {b}: {self.left():.0f}s of budget left")
                    continue
                m = self.marginal(self.bench_model, dtype, b, extra, self.a.tokens, self.a.tokens, "throughput")
                self.cs_rows[(dtype, b)] = m
                hf = (self.hf.get("throughput") or {}).get(f"{dtype}/{b}", {}) if hasattr(self, "hf") else {}
                cs_ips, hf_ips = m.get("images_per_s"), hf.get("images_per_s")
                row = dict(dtype=dtype, batch=b, device=dev_label, timed_images=extra,
                           capstream_images_per_s=cs_ips, transformers_images_per_s=hf_ips,
                           ratio_capstream_over_transformers=sig(cs_ips / hf_ips, 3) if cs_ips and hf_ips else None,
                           capstream_images_per_s_whole_process=m.get("images_per_s_whole_process"),
                           capstream_wall_s=[m["wall_s_first"], m["wall_s_second"]],
                           transformers_timed_s=hf.get("timed_s"),
                           capstream_peak_gpu_mib=_cs_gpu_mib(m.get("gpu_mem")),
                           capstream_gpu_mem=m.get("gpu_mem"),
                           capstream_peak_rss_mib=m.get("maxrss_mib"),
                           transformers_max_allocated_mib=hf.get("max_allocated_mib"),
                           transformers_max_reserved_mib=hf.get("max_reserved_mib"),
                           transformers_gpu_mem=hf.get("gpu_mem"))
                for k in ("error_first", "error_second"):
                    if k in m:
                        row["capstream_" + k] = m[k]
                if hf.get("error"):
                    row["transformers_error"] = hf["error"]
                if m.get("ids") and hf.get("ids"):
                    eq = [a == strip_pad(x) for a, x in zip(m["ids"], hf["ids"])]
                    row["ids_capstream_vs_transformers"] = f"{sum(eq)}/{len(eq)} (informational, not asserted)"
                rows.append(row)
                log(f"  {dtype} b{b}: capstream {cs_ips} img/s, transformers {hf_ips} img/s, "
                    f"ratio {row['ratio_capstream_over_transformers']}, capstream gpu peak "
                    f"{row['capstream_peak_gpu_mib']} MiB")
        e["rows"] = "see top-level throughput"
        self.res["throughput"] = rows

    def sec_vision(self, e):
        cfg = json.loads((self.bench_model / "config.json").read_text())
        fl = vision_flops_per_image(cfg)
        name = self.res.get("device", {}).get("name")
        key, peaks = peak_for(name if not self.dry else None)
        e["flops_per_image"] = fl["flops"]
        e["shapes"] = {k: v for k, v in fl.items() if k != "flops"}
        e["peak_source"] = "vendor datasheet, dense tensor-core TFLOP/s (no sparsity), table in benches/gpu/gpu_check.py"
        e["peak_table_entry"] = key
        hfv = (getattr(self, "hf", {}) or {}).get("vision", {})
        mm = (getattr(self, "hf", {}) or {}).get("matmul", {})
        out = []
        b = self.a.vision_batch
        extra = self.a.vision_extra
        for dtype in self.a.dtypes:
            peak = peaks.get(dtype) if peaks else None
            h = hfv.get(dtype, {})
            mmd = mm.get(dtype, {})
            row = dict(dtype=dtype, batch=b, peak_tflops=peak,
                       transformers_vision_ms_per_batch=h.get("ms_per_batch"),
                       transformers_vision_tflops=h.get("tflops"),
                       transformers_fraction_of_peak=sig(h["tflops"] / peak) if peak and h.get("tflops") else None,
                       measured_matmul_tflops=mmd.get("tflops"), matmul_shape=mmd.get("shape"),
                       transformers_fraction_of_measured_matmul=sig(h["tflops"] / mmd["tflops"])
                       if h.get("tflops") and mmd.get("tflops") else None)
            if self.left() < (8 if self.dry else 25):
                self.res["skipped"].append(f"vision capstream estimate {dtype}: time budget")
            else:
                m = self.marginal(self.bench_model, dtype, b, extra, 1, 1, "vision estimate")
                if m.get("s_per_image"):
                    tf = fl["flops"] / m["s_per_image"] / 1e12
                    row["capstream_lower_bound_tflops"] = sig(tf)
                    row["capstream_lower_bound_fraction_of_peak"] = sig(tf / peak) if peak else None
                    row["capstream_s_per_image_incl_preprocess_and_1_token"] = sig(m["s_per_image"])
                row["capstream_run"] = {k: m.get(k) for k in ("images_first_run", "images_second_run", "wall_s_first",
                                                                "wall_s_second", "marginal_s", "gpu_mem")}
                for k in ("error_first", "error_second"):
                    if k in m:
                        row["capstream_" + k] = m[k]
            out.append(row)
            log(f"  vision {dtype}: transformers {row['transformers_vision_tflops']} TFLOP/s, capstream >= "
                f"{row.get('capstream_lower_bound_tflops')} TFLOP/s, peak {peak}, matmul {row['measured_matmul_tflops']}")
        e["rows"] = "see top-level vision"
        self.res["vision"] = {"flops_per_image": fl["flops"], "gpu_peak_table_entry": key,
                              "note": "capstream figure is a lower bound; see unsupported.vision_tower_timing",
                              "rows": out}

    def summarize_memory(self):
        rows = self.res.get("throughput") or []
        cs = [(r["capstream_peak_gpu_mib"], r["dtype"], r["batch"]) for r in rows if r.get("capstream_peak_gpu_mib")]
        hf = [(r["transformers_max_allocated_mib"], r["dtype"], r["batch"]) for r in rows
              if r.get("transformers_max_allocated_mib")]
        hfn = [(_cs_gpu_mib(r.get("transformers_gpu_mem")), r["dtype"], r["batch"]) for r in rows
               if _cs_gpu_mib(r.get("transformers_gpu_mem"))]
        hf_proc = (getattr(self, "hf", {}) or {}).get("gpu_mem_process")
        method = next((r["capstream_gpu_mem"].get("method") for r in rows if r.get("capstream_gpu_mem")), None)
        self.res["peak_gpu_memory"] = {
            "capstream_mib": max(cs)[0] if cs else None,
            "capstream_at": dict(dtype=max(cs)[1], batch=max(cs)[2]) if cs else None,
            "capstream_method": (method + " (process used memory, else device delta; includes CUDA context)")
            if method else ("not measured (dry run on CPU)" if self.dry else "not measured: no NVML/nvidia-smi"),
            "transformers_max_allocated_mib": max(hf)[0] if hf else None,
            "transformers_max_allocated_at": dict(dtype=max(hf)[1], batch=max(hf)[2]) if hf else None,
            "transformers_nvml_mib": max(hfn)[0] if hfn else None,
            "transformers_nvml_at": dict(dtype=max(hfn)[1], batch=max(hfn)[2]) if hfn else None,
            "transformers_nvml_whole_process": hf_proc,
            "capstream_peak_rss_mib": max((r.get("capstream_peak_rss_mib") or 0) for r in rows) if rows else None,
        }

    def run(self) -> int:
        try:
            self.section("env", self.sec_env)
            if not self.dry and not self.res.get("cuda_found"):
                self.res["skipped"].append("prepare, ids, transformers, throughput, vision: CUDA not found")
                return self.finish()
            self.section("prepare", self.sec_prepare)
            if not hasattr(self, "bench_model"):
                self.fail("no benchmark model/images; stopping")
                return self.finish()
            self.section("ids", self.sec_ids)
            self.section("transformers", self.sec_transformers)
            self.section("throughput", self.sec_throughput)
            self.section("vision_capstream_estimate", self.sec_vision)
            self.summarize_memory()
        except KeyboardInterrupt:
            self.fail("interrupted")
        return self.finish()

    def finish(self) -> int:
        self.res["finished"] = now_iso()
        self.write()
        try:
            self.print_summary()
        except Exception as e:  # the file is what counts
            log(f"(summary printing failed: {e})")
        log(f"wrote {self.a.out} in {self.elapsed():.1f}s: " + ("OK" if not self.failures else
                                                                  f"{len(self.failures)} check(s) FAILED"))
        for f in self.failures:
            log("  FAILED: " + f)
        return 0 if not self.failures else 1


    def print_summary(self):
        r = self.res
        p = lambda s="": print(s, file=sys.stderr)
        p()
        p(f"device {r.get('device', {}).get('name')}  cuda_found {r.get('cuda_found')}  dry_run {r['dry_run']}  "
          f"torch {r.get('versions', {}).get('torch')}  transformers {r.get('versions', {}).get('transformers')}")
        for f in (r.get("ids_equal") or {}).get("fixtures", []):
            p(f"ids {f['fixture']}: batch1 {f.get('batch1_equal')}  batchN {f.get('batchN_equal')}"
              f"{'' if f['asserted'] else '  (not asserted)'}")
        if r.get("throughput"):
            p(f"{'dtype':>5} {'batch':>5} {'capstream img/s':>16} {'transformers img/s':>19} {'ratio':>6} "
              f"{'cs GPU MiB':>10} {'hf alloc MiB':>12}")
            for t in r["throughput"]:
                p(f"{t['dtype']:>5} {t['batch']:>5} {str(t['capstream_images_per_s']):>16} "
                  f"{str(t['transformers_images_per_s']):>19} {str(t['ratio_capstream_over_transformers']):>6} "
                  f"{str(t['capstream_peak_gpu_mib']):>10} {str(t['transformers_max_allocated_mib']):>12}")
        for v in (r.get("vision") or {}).get("rows", []):
            p(f"vision {v['dtype']} batch {v['batch']}: transformers {v['transformers_vision_tflops']} TFLOP/s "
              f"({v['transformers_fraction_of_peak']} of peak {v['peak_tflops']}), capstream >= "
              f"{v.get('capstream_lower_bound_tflops')}, matmul {v['measured_matmul_tflops']}")
        secs = {k: v.get("wall_s") for k, v in r.get("sections", {}).items()}
        p(f"sections (s): {secs}; total {r.get('wall_s_total')}s")
        p()


def _cs_gpu_mib(mem):
    if not mem:
        return None
    return mem.get("process_peak_mib") or mem.get("device_delta_peak_mib")


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) or None
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------
# `env`: versions and the device, in its own process.

def cmd_env(_a) -> int:
    info = {"python": platform.python_version(), "python_executable": sys.executable}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    import torch
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    info["device_count"] = torch.cuda.device_count() if info["cuda_available"] else 0
    if info["cuda_available"]:
        p = torch.cuda.get_device_properties(0)
        info.update(device_name=p.name, capability=f"{p.major}.{p.minor}",
                    total_memory_mib=round(p.total_memory / 2**20), multiprocessors=p.multi_processor_count)
        try:
            info["cudnn"] = torch.backends.cudnn.version()
        except Exception:
            pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            info["driver"] = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=20).stdout.strip() or None
        except Exception as e:
            info["driver"] = f"nvidia-smi failed: {e}"
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except Exception as e:
        info["transformers"] = f"ERROR {type(e).__name__}: {e}"
    for mod in ("PIL", "numpy", "tokenizers", "safetensors"):
        try:
            info[mod.lower()] = __import__(mod).__version__
        except Exception:
            info[mod.lower()] = None
    print(json.dumps(info))
    return 0


# ---------------------------------------------------------------------------------------------
# `hf`: transformers on the same device.

def cmd_hf(a) -> int:
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import transformers
    from PIL import Image
    from transformers import BlipForConditionalGeneration
    try:  # the PIL backend preprocesses as capstream does (bicubic, alpha onto white)
        from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil as Proc
    except ImportError:
        from transformers import BlipImageProcessor as Proc

    transformers.utils.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except Exception:
        pass
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
    out_path = Path(a.out)
    res = dict(torch=torch.__version__, transformers=transformers.__version__, device=str(dev),
               image_processor=Proc.__name__, throughput={}, vision={}, matmul={}, complete=False)

    def save():
        out_path.write_text(json.dumps(res) + "\n")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    # NVML on our own pid for the whole process (baseline before any CUDA work); reset per row.
    poller = MemPoller(os.getpid()).start() if cuda else None
    proc = Proc.from_pretrained(a.model)
    images = [str(p) for p in a.images]
    batches = [int(x) for x in a.batches.split(",")]
    extras = [int(x) for x in a.extras.split(",")]
    gen = dict(max_new_tokens=a.tokens, min_new_tokens=a.tokens, do_sample=False, num_beams=1)

    def timer_ms(fn, iters, warm):
        for _ in range(warm):
            fn()
        sync()
        if cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(iters):
                fn()
            e.record()
            torch.cuda.synchronize()
            return s.elapsed_time(e) / iters
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t) * 1000 / iters

    # A large matmul: the ceiling this GPU reaches through torch today (cf. the datasheet peak).
    for name in a.dtypes.split(","):
        dt = dtypes[name]
        n = a.matmul if cuda else 256
        try:
            x = torch.randn(n, n, device=dev, dtype=dt)
            y = torch.randn(n, n, device=dev, dtype=dt)
            ms = timer_ms(lambda: x @ y, iters=10 if cuda else 2, warm=3 if cuda else 1)
            res["matmul"][name] = dict(shape=[n, n, n], ms=sig(ms, 5), tflops=sig(2 * n ** 3 / ms / 1e9))
            del x, y
        except Exception as e:
            res["matmul"][name] = dict(error=f"{type(e).__name__}: {e}")
    if cuda:
        torch.cuda.empty_cache()
    save()

    def pixels(paths, dt):
        pics = [Image.open(p).convert("RGB") for p in paths]
        return proc(images=pics, return_tensors="pt")["pixel_values"].to(dev, dt)

    for name in a.dtypes.split(","):
        dt = dtypes[name]
        t0 = time.perf_counter()
        model = BlipForConditionalGeneration.from_pretrained(a.model, dtype=dt).to(dev).eval()
        sync()
        res.setdefault("load_s", {})[name] = round(time.perf_counter() - t0, 2)
        res["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
        for b, extra in zip(batches, extras):
            seq = list(itertools.islice(itertools.cycle(images), b + extra))
            key = f"{name}/{b}"
            try:
                if cuda:  # per-row peaks: drop the cache of earlier rows, count from here
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                    time.sleep(0.1)
                    poller.reset_peak()
                with torch.no_grad():
                    model.generate(pixel_values=pixels(seq[:b], dt), **gen)  # warm-up batch
                    sync()
                    ids = []
                    t = time.perf_counter()
                    for k in range(b, b + extra, b):
                        out = model.generate(pixel_values=pixels(seq[k:k + b], dt), **gen)
                        ids.extend(out.tolist())
                    sync()
                    timed = time.perf_counter() - t
                    if cuda:
                        time.sleep(0.05)
                    mem = poller.snapshot() if poller else None
                row = dict(batch=b, dtype=name, timed_images=extra, timed_s=round(timed, 4),
                           images_per_s=sig(extra / timed), gpu_mem=mem, ids=ids)
                if cuda:
                    row["max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
                    row["max_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
            except Exception as e:
                row = dict(batch=b, dtype=name, error=f"{type(e).__name__}: {e}")
            res["throughput"][key] = row
            print(f"[hf] {key}: {row.get('images_per_s')} img/s {row.get('error', '')}", file=sys.stderr, flush=True)
            save()
        # Vision tower alone, at vision_batch.
        try:
            fl = vision_flops_per_image(json.loads((Path(a.model) / "config.json").read_text()))
            vb = a.vision_batch
            pv = pixels(list(itertools.islice(itertools.cycle(images), vb)), dt)
            with torch.no_grad():
                ms = timer_ms(lambda: model.vision_model(pixel_values=pv), iters=a.vision_iters,
                              warm=3 if cuda else 1)
            res["vision"][name] = dict(batch=vb, ms_per_batch=sig(ms, 5), flops_per_image=fl["flops"],
                                       tflops=sig(fl["flops"] * vb / ms / 1e9))
        except Exception as e:
            res["vision"][name] = dict(error=f"{type(e).__name__}: {e}")
        save()
        del model
        if cuda:
            torch.cuda.empty_cache()
    if poller:
        res["gpu_mem_process"] = poller.stop()
    res["complete"] = True
    save()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--mode", choices=["full", "dry"], required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--capstream", required=True)
    r.add_argument("--data", required=True)
    r.add_argument("--budget-s", type=float, default=None)
    sub.add_parser("env")
    h = sub.add_parser("hf")
    h.add_argument("--model", required=True)
    h.add_argument("--device", default="cuda")
    h.add_argument("--dtypes", default="bf16,f16")
    h.add_argument("--batches", default="1,8,32,64")
    h.add_argument("--extras", default="32,64,128,192")
    h.add_argument("--tokens", type=int, default=20)
    h.add_argument("--vision-batch", type=int, default=64)
    h.add_argument("--vision-iters", type=int, default=10)
    h.add_argument("--matmul", type=int, default=8192)
    h.add_argument("--threads", type=int, default=None)
    h.add_argument("--out", required=True)
    h.add_argument("images", nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "env":
        return cmd_env(a)
    if a.cmd == "hf":
        return cmd_hf(a)
    # `run`: sizes per mode.
    if a.mode == "dry":
        a.dtypes, a.batches, a.extra = ["f32", "bf16"], [1, 2], {1: 2, 2: 4}
        a.images, a.tokens, a.threads = 4, 20, int(os.environ.get("GPU_BENCH_THREADS", "2"))
        a.vision_batch, a.vision_extra, a.vision_iters, a.matmul = 2, 4, 3, 256
        a.budget_s = a.budget_s or 110.0
    else:
        a.dtypes, a.batches, a.extra = ["bf16", "f16"], [1, 8, 32, 64], {1: 32, 8: 64, 32: 128, 64: 192}
        a.images, a.tokens = 64, 20
        a.threads = int(os.environ["GPU_BENCH_THREADS"]) if os.environ.get("GPU_BENCH_THREADS") else None
        a.vision_batch, a.vision_extra, a.vision_iters, a.matmul = 64, 192, 10, 8192
        a.budget_s = a.budget_s or 450.0
    return Runner(a).run()


if __name__ == "__main__":
    sys.exit(main())
