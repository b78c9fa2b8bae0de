"""The real stack on the GPU machine, started by the project's own harness (scripts/stack.py): redis-server, one
`python -m worker` with MODEL_DEVICE=cuda, `python -m web`. Its public APIs answer all three job kinds and a
video (gradio_client: /vqa, /ocr, /describe_region; the OpenAI-compatible /v1/chat/completions), and the
status line the page shows names the device the worker really runs on."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from pathlib import Path

from bench.harness import WORK


def _timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - t0, 2)


def _openai(url: str, image: Path) -> dict:
    data = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    body = {"model": "smolvlm2", "max_tokens": 16, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data}}, {"type": "text", "text": "What is in the picture?"}]}]}
    req = urllib.request.Request(url + "v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def check(model: Path, media: dict[str, Path], device: str) -> dict:
    from gradio_client import Client, handle_file

    from common import events
    from scripts.stack import Stack

    root = WORK / "stacks" / "gpu"
    out: dict = {"ok": False}
    st = Stack(root, model, log_dir=root / "logs", MODEL_DEVICE=device, MAX_NEW_TOKENS="16", TORCH_THREADS="0")
    try:
        st.start_redis()
        _, out["worker_start_s"] = _timed(lambda: st.start_worker(timeout=300))
        _, out["web_start_s"] = _timed(lambda: st.start_web(timeout=180, GRADIO_ANALYTICS_ENABLED="False",
                                                            NO_PROXY="127.0.0.1,localhost"))
        workers = events.list_workers(events.connect(st.redis.url))
        out["heartbeat"] = [{"device": w.device, "dtype": w.dtype, "state": str(w.state)} for w in workers]
        from web.ui.render import workers_line

        out["status_line"] = workers_line(workers)
        client = Client(st.url, verbose=False)
        answers = {}
        answers["vqa_image"], t1 = _timed(lambda: client.predict(
            handle_file(str(media["image"])), "Опиши изображение", [], api_name="/vqa"))
        answers["vqa_video"], t2 = _timed(lambda: client.predict(
            handle_file(str(media["video"])), "Опиши видео", [], api_name="/vqa"))
        ocr, t3 = _timed(lambda: client.predict(handle_file(str(media["text"])), api_name="/ocr"))
        answers["ocr"] = ocr[0] if isinstance(ocr, list | tuple) else ocr
        answers["region"], t4 = _timed(lambda: client.predict(
            handle_file(str(media["image"])), "400,300,880,660", api_name="/describe_region"))
        completion, t5 = _timed(lambda: _openai(st.url, media["image"]))
        answers["openai"] = completion["choices"][0]["message"]["content"]
        out["seconds"] = {"vqa_image": t1, "vqa_video": t2, "ocr": t3, "region": t4, "openai": t5}
        out["answers"] = {k: str(v)[:160] for k, v in answers.items()}
        out["all_answered"] = all(isinstance(v, str) and v.strip() for v in answers.values())
        out["on_cuda"] = bool(workers) and all(w.device == "cuda" for w in workers) and "cuda" in out["status_line"]
        out["ok"] = out["all_answered"] and (out["on_cuda"] or device != "cuda")
    finally:
        out["worker_log_tail"] = st.workers[0].log_tail(15) if st.workers else ""
        st.stop()
    return out
