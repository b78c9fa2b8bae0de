"""Queue overhead: sequential jobs through the web API (gradio_client → `python -m web` → Redis → one
`python -m worker`) minus the compute time the worker reports (JobResult finished_at − started_at); the same
jobs through JobClient alone (Redis, no HTTP) and, as the baseline, called in-process on the Runtime.

The API returns only the answer, so each call's JobResult is read from Redis: the one new result key
(common.keys.result) after the call (calls are sequential)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from bench.gradio_http import GradioHTTP
from bench.harness import TEST_MODEL, WORK, put_media, stack
from bench.results import Result, summary_ms
from common import events, keys
from common.schemas import JobStatus
from scripts import jobs
from scripts.stack import Stack

NAME = "queue_overhead"
QUESTION = "What is in this picture?"
log = logging.getLogger(__name__)


def _image() -> Path:
    from scripts import samples

    path = WORK / "media" / "scene-320.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        samples.scene_image(path, (320, 240))
    return path


def in_process(settings, ref, n: int) -> list[float]:
    """The baseline: Runtime.predict in this process, the same request n times."""
    from common.schemas import ChatRequest
    from common.store import store_from_settings
    from worker.runtime import Runtime

    rt = Runtime(settings)
    assert rt.setup(), rt.load_error
    path = store_from_settings(settings).resolve(ref)
    times = []
    for i in range(n + 3):
        t0 = time.perf_counter()
        rt.predict(ChatRequest(media=ref, question=QUESTION), path)
        if i >= 3:  # warm-up
            times.append(time.perf_counter() - t0)
    del rt
    return times


def via_jobclient(settings, ref, n: int) -> tuple[list[float], list[float]]:
    """(end-to-end, worker processing) seconds per job through JobClient.run."""
    from common.schemas import ChatRequest
    from web.queue.client import JobClient

    client = JobClient(settings)
    e2e, proc = [], []
    for i in range(n + 3):
        req = ChatRequest(media=ref, question=QUESTION)
        t0 = time.perf_counter()
        res = jobs.run(client, req)
        dt = time.perf_counter() - t0
        assert res.status == JobStatus.ok, res.error
        if i >= 3:
            e2e.append(dt)
            proc.append(res.processing_s)
    return e2e, proc


def _new_results(rc, seen: set[str]) -> list[dict]:
    """JobResults of the jobs finished since the last call (a key is only marked seen once finished)."""
    out = []
    for key in rc.scan_iter(match=keys.result("*"), count=1000):
        if key in seen:
            continue
        seen.add(key)
        out.append(json.loads(rc.get(key) or "{}"))
    return out


def _next_result(rc, seen: set[str], timeout_s: float = 5.0) -> dict:
    """The one job finished since the last call."""
    deadline = time.monotonic() + timeout_s
    new: list[dict] = []
    while not new and time.monotonic() < deadline:
        new = _new_results(rc, seen)
        if not new:
            time.sleep(0.005)
    assert len(new) == 1, f"expected one new result, got {len(new)}: another stack on this Redis?"
    return new[0]


def _through_web(stack: Stack, n: int, call) -> tuple[list[float], list[float]]:
    """(end-to-end, worker processing) seconds per call(); the processing time is read from the one new
    Celery result after each call."""
    rc = events.connect(stack.redis.url)
    seen: set[str] = set()
    _new_results(rc, seen)
    e2e, proc = [], []
    for i in range(n + 3):
        t0 = time.perf_counter()
        call()
        dt = time.perf_counter() - t0
        res = _next_result(rc, seen)
        if i >= 3:
            e2e.append(dt)
            proc.append(res["finished_at"] - res["started_at"])
    return e2e, proc


def via_api(stack: Stack, image: Path, n: int, shared_tls: bool = False) -> tuple[list[float], list[float]]:
    """/vqa through gradio_client (it uploads the file on every call, as a client script does). The library
    opens a new httpx client, with a fresh TLS context, for each HTTP request; shared_tls hands it one
    ssl.SSLContext to reuse instead (verification stays on)."""
    import ssl

    from gradio_client import Client, handle_file

    tls = {"ssl_verify": ssl.create_default_context()} if shared_tls else {}
    client = Client(stack.url, verbose=False, **tls)
    try:
        return _through_web(stack, n, lambda: client.predict(handle_file(str(image)), QUESTION, [], api_name="/vqa"))
    finally:
        client.close()


def via_http(stack: Stack, image: Path, n: int) -> tuple[list[float], list[float]]:
    """/vqa through Gradio's REST API with httpx (upload + POST /gradio_api/call/vqa + its event stream):
    the server's share without the gradio_client library."""
    g = GradioHTTP(stack.url)
    try:
        return _through_web(stack, n, lambda: g.call("vqa", [g.upload(image), QUESTION, []]))
    finally:
        g.close()


def _overhead(e2e: list[float], proc: list[float]) -> dict:
    return summary_ms([a - b for a, b in zip(e2e, proc, strict=True)])


def run(quick: bool = False, n: int | None = None) -> list[Result]:
    n = n or (50 if quick else 200)
    image = _image()
    with stack("queue", TEST_MODEL, workers=1, web=True, MAX_NEW_TOKENS="4", TORCH_THREADS="1") as st:
        settings = st.settings_for(torch_threads=1, max_new_tokens=4, queue_wait_timeout=120)
        ref = put_media(settings, image)
        paths = {
            "api": via_api(st, image, n),
            "api_shared_tls": via_api(st, image, n, shared_tls=True),
            "http": via_http(st, image, n),
            "jobclient": via_jobclient(settings, ref, n),
        }
    base = summary_ms(in_process(settings, ref, n))
    details: dict = {"jobs": n, "max_new_tokens": 4, "model": "tiny (data/test-model)", "in_process_runtime": base}
    for key, (e2e, proc) in paths.items():
        details[key] = {"end_to_end": summary_ms(e2e), "worker_processing": summary_ms(proc),
                        "overhead": _overhead(e2e, proc)}
    api, http, jc = (details[k]["overhead"] for k in ("api", "http", "jobclient"))
    e2e_api = details["api"]["end_to_end"]["p50_ms"]
    worker_p50 = details["jobclient"]["worker_processing"]["p50_ms"]
    return [
        Result("Очередь: накладные расходы API (gradio_client), p50", api["p50_ms"], "мс", "≤ 15 мс",
               api["p50_ms"] <= 15, f"{n} заданий /vqa подряд; e2e p50 {e2e_api:.0f} мс", NAME, details),
        Result("Очередь: накладные расходы API (gradio_client), p95", api["p95_ms"], "мс", "≤ 40 мс",
               api["p95_ms"] <= 40, "e2e − (finished_at − started_at) обработчика", NAME),
        Result("Очередь: gradio_client с общим SSLContext, p50", details["api_shared_tls"]["overhead"]["p50_ms"],
               "мс", "", None, f"p95 {details['api_shared_tls']['overhead']['p95_ms']:.1f} мс; "
               "Client(url, ssl_verify=ssl.create_default_context())", NAME),
        Result("Очередь: API через HTTP (httpx, без gradio_client), p50", http["p50_ms"], "мс", "", None,
               f"p95 {http['p95_ms']:.1f} мс; загрузка файла + /gradio_api/call/vqa + SSE", NAME),
        Result("Очередь: только JobClient (без HTTP), p50", jc["p50_ms"], "мс", "", None,
               f"p95 {jc['p95_ms']:.1f} мс; Redis + Celery без Gradio", NAME),
        Result("Очередь: вычисление в процессе (база), p50", base["p50_ms"], "мс", "", None,
               f"Runtime.predict без очереди; в обработчике p50 {worker_p50:.0f} мс", NAME),
    ]


if __name__ == "__main__":
    from bench.harness import standalone

    logging.basicConfig(level=logging.WARNING)
    standalone(run, takes_n=True)
