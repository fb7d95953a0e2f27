#!/usr/bin/env python3
"""The peer for benches/serve/bench.sh: a minimal captioning HTTP server in Python.

    .venv/bin/python benches/serve/peer.py --model DIR --port PORT [--host 127.0.0.1]
                     [--threads 2] [--max-new-tokens N]

transformers' BlipForConditionalGeneration behind FastAPI + uvicorn, the way a small
service is usually written:

  POST /v1/caption   body = the image bytes (any format PIL opens). 200 JSON:
                     {"id", "status": "ok", "caption", "token_ids", "model", "timings"}
                     400 JSON {"status": "error", "error"} when the body is not an image.
  GET  /readyz       200 {"status": "ready"} (the model is loaded before the port opens).

One uvicorn worker (one process), no batching: each request is one `generate` call on
one image, greedy (num_beams=1, do_sample=False), `max_new_tokens` passed explicitly
(BLIP's generate hands over to its text decoder, which ignores the folder's
generation_config.json; default: that file's max_new_tokens, else 20, the rule capstream
uses). BLIP's generate stops at [SEP] (sep_token_id) as capstream does.

Concurrency: the endpoint is `async`; it reads the body on the event loop, then runs
decode + preprocess + generate in Starlette's thread pool under one `threading.Lock`, so
exactly one generate runs at a time on torch's 2 intra-op threads (torch.set_num_threads,
OMP_NUM_THREADS). Without the lock, the pool would run up to 40 generates at once, each
asking for 2 threads on 2 cores: oversubscribed and slower, not faster. The event loop
stays free to accept connections and read bodies while the model works; requests wait
for the lock in arrival order (roughly: threading.Lock is not strictly FIFO).

Nothing is downloaded: the model folder must hold config.json, model.safetensors,
preprocessor_config.json and the tokenizer files.
"""

import argparse
import io
import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path


def build_app(model_dir: Path, threads: int, max_new_tokens: int | None):
    import torch
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from PIL import Image
    from starlette.concurrency import run_in_threadpool
    from transformers import AutoTokenizer, BlipForConditionalGeneration, BlipImageProcessor

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = BlipForConditionalGeneration.from_pretrained(model_dir).eval()
    # transformers 5 without torchvision answers with its PIL-based processor (BlipImageProcessorPil).
    processor = BlipImageProcessor.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if max_new_tokens is None:
        gc = model_dir / "generation_config.json"
        max_new_tokens = (json.loads(gc.read_text()).get("max_new_tokens") if gc.exists() else None) or 20
    gen = dict(max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
    load_s = time.perf_counter() - t0
    print(f"peer: loaded {model_dir} in {load_s:.2f}s; {type(processor).__name__}, "
          f"torch {torch.__version__} on {torch.get_num_threads()} threads, max_new_tokens {max_new_tokens}",
          file=sys.stderr, flush=True)

    lock = threading.Lock()
    ids = itertools.count(1)
    name = model_dir.name

    def caption(body: bytes) -> dict:
        t_wait = time.perf_counter()
        with lock:
            t_start = time.perf_counter()
            image = Image.open(io.BytesIO(body)).convert("RGB")
            pixels = processor(images=[image], return_tensors="pt")["pixel_values"]
            t_pre = time.perf_counter()
            with torch.no_grad():
                out = model.generate(pixel_values=pixels, **gen)[0].tolist()
            t_end = time.perf_counter()
        return dict(
            caption=tokenizer.decode(out, skip_special_tokens=True).strip(),
            token_ids=out,
            timings=dict(queue_ms=round((t_start - t_wait) * 1e3, 3),
                         preprocess_ms=round((t_pre - t_start) * 1e3, 3),
                         generate_ms=round((t_end - t_pre) * 1e3, 3)),
        )

    app = FastAPI(title="capstream bench peer", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/readyz")
    async def readyz():
        return {"status": "ready"}

    @app.post("/v1/caption")
    async def post_caption(request: Request):
        rid = f"peer-{next(ids)}"
        body = await request.body()
        try:
            res = await run_in_threadpool(caption, body)
        except Exception as e:  # an undecodable body; anything else is a bug worth seeing too
            return JSONResponse({"id": rid, "status": "error", "error": f"{type(e).__name__}: {e}"},
                                status_code=400)
        return {"id": rid, "status": "ok", "caption": res["caption"], "token_ids": res["token_ids"],
                "model": name, "timings": res["timings"]}

    return app


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--max-new-tokens", type=int, default=None)
    a = ap.parse_args(argv)

    import uvicorn

    app = build_app(a.model, a.threads, a.max_new_tokens)
    # One worker process; access log off (it would cost the peer CPU on every request).
    uvicorn.run(app, host=a.host, port=a.port, workers=1, log_level="warning", access_log=False,
                timeout_graceful_shutdown=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
