"""OpenAI-compatible API overhead: sequential jobs through POST /v1/chat/completions (the openai SDK, plain and
stream=true, and bare httpx) minus the compute time the worker reports (JobResult finished_at − started_at),
next to the same question through gradio_client (/vqa) and through JobClient alone (Redis, no HTTP), all on
one stack in one run (bench/queue_overhead.py measures the Gradio paths in more detail).

Each OpenAI call carries the image as a data: URL (base64, encoded once: a client's own cost is not the
server's); the server decodes and saves it on every call, as it does for any caller. The call's JobResult is
read from Redis by the job id in the response id (chatcmpl-<job id>)."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

from bench.harness import TEST_MODEL, put_media, stack
from bench.queue_overhead import QUESTION, _image, via_api, via_jobclient
from bench.results import Result, summary_ms
from common import events
from common.schemas import JobStatus
from scripts.stack import Stack

NAME = "openai_overhead"
log = logging.getLogger(__name__)


def _messages(image: Path) -> list[dict]:
    url = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": QUESTION}]}]


def _timed(stack: Stack, n: int, call) -> tuple[list[float], list[float], list[float]]:
    """(end-to-end, worker processing, time to the first content byte) seconds per call(); call() returns the
    job id and the seconds to its first content (None: not streamed)."""
    rc = events.connect(stack.redis.url)
    e2e, proc, first = [], [], []
    for i in range(n + 3):
        t0 = time.perf_counter()
        job, ttfc = call()
        dt = time.perf_counter() - t0
        res = events.get_result(rc, job)
        assert res is not None and res.status == JobStatus.ok, res
        if i >= 3:  # warm-up
            e2e.append(dt)
            proc.append(res.processing_s)
            if ttfc is not None:
                first.append(ttfc)
    return e2e, proc, first


def via_openai(stack: Stack, image: Path, n: int, stream: bool = False):
    import openai

    client = openai.OpenAI(base_url=f"{stack.url}v1", api_key="bench", max_retries=0, timeout=60)
    messages = _messages(image)

    def plain():
        r = client.chat.completions.create(model="m", messages=messages)
        return r.id.removeprefix("chatcmpl-"), None

    def streamed():
        t0, job, ttfc = time.perf_counter(), None, None
        for chunk in client.chat.completions.create(model="m", messages=messages, stream=True):
            job = chunk.id.removeprefix("chatcmpl-")
            if ttfc is None and chunk.choices and chunk.choices[0].delta.content:
                ttfc = time.perf_counter() - t0
        return job, ttfc

    try:
        return _timed(stack, n, streamed if stream else plain)
    finally:
        client.close()


def via_httpx(stack: Stack, image: Path, n: int):
    """The same request with bare httpx (no SDK): the server's share."""
    import httpx

    http = httpx.Client(base_url=f"{stack.url}v1/", timeout=60)
    body = {"model": "m", "messages": _messages(image)}

    def call():
        r = http.post("chat/completions", json=body)
        r.raise_for_status()
        return r.json()["id"].removeprefix("chatcmpl-"), None

    try:
        return _timed(stack, n, call)
    finally:
        http.close()


def _overhead(e2e: list[float], proc: list[float]) -> dict:
    return summary_ms([a - b for a, b in zip(e2e, proc, strict=True)])


def run(quick: bool = False, n: int | None = None) -> list[Result]:
    n = n or (50 if quick else 200)
    image = _image()
    details: dict = {"jobs": n, "max_new_tokens": 4, "model": "tiny (data/test-model)",
                     "image_bytes": image.stat().st_size}
    with stack("openai", TEST_MODEL, workers=1, web=True, MAX_NEW_TOKENS="4", TORCH_THREADS="1") as st:
        settings = st.settings_for(torch_threads=1, max_new_tokens=4, queue_wait_timeout=120)
        ref = put_media(settings, image)
        paths = {
            "openai": via_openai(st, image, n),
            "openai_stream": via_openai(st, image, n, stream=True),
            "httpx": via_httpx(st, image, n),
            "gradio_client": (*via_api(st, image, n), []),
            "jobclient": (*via_jobclient(settings, ref, n), []),
        }
    for key, (e2e, proc, first) in paths.items():
        details[key] = {"end_to_end": summary_ms(e2e), "worker_processing": summary_ms(proc),
                        "overhead": _overhead(e2e, proc)}
        if first:
            details[key]["first_content"] = summary_ms(first)
    oa, st_, hx, gc, jc = (details[k]["overhead"] for k in ("openai", "openai_stream", "httpx", "gradio_client",
                                                              "jobclient"))
    e2e = details["openai"]["end_to_end"]["p50_ms"]
    return [
        Result("OpenAI API: накладные расходы (openai SDK), p50", oa["p50_ms"], "мс", "≤ 15 мс",
               oa["p50_ms"] <= 15, f"{n} заданий /v1/chat/completions подряд; e2e p50 {e2e:.0f} мс", NAME, details),
        Result("OpenAI API: накладные расходы (openai SDK), p95", oa["p95_ms"], "мс", "≤ 40 мс",
               oa["p95_ms"] <= 40, "e2e − (finished_at − started_at) обработчика", NAME),
        Result("OpenAI API: stream=true (openai SDK), p50", st_["p50_ms"], "мс", "", None,
               f"p95 {st_['p95_ms']:.1f} мс; до [DONE]", NAME),
        Result("OpenAI API: без SDK (httpx), p50", hx["p50_ms"], "мс", "", None,
               f"p95 {hx['p95_ms']:.1f} мс; доля сервера", NAME),
        Result("OpenAI API: для сравнения gradio_client /vqa, p50", gc["p50_ms"], "мс", "", None,
               f"p95 {gc['p95_ms']:.1f} мс; тот же стек, тот же прогон", NAME),
        Result("OpenAI API: для сравнения JobClient (без HTTP), p50", jc["p50_ms"], "мс", "", None,
               f"p95 {jc['p95_ms']:.1f} мс; OpenAI − JobClient = {oa['p50_ms'] - jc['p50_ms']:.1f} мс", NAME),
    ]


if __name__ == "__main__":
    from bench.harness import standalone

    logging.basicConfig(level=logging.WARNING)
    standalone(run, takes_n=True)
