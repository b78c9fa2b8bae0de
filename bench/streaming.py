"""Streaming lag: from the worker's first generated token (JobResult.first_token_at) to the first partial
text an API client sees.

The public API endpoints (/vqa, /ocr, /describe_region) block until the final answer, so there is no
streaming through gradio_client; the UI's events do stream. The measure runs the «Описание области» UI event
(region_ui) the way the browser does (Gradio queue protocol, bench.gradio_http) against a real `python -m web`,
and the same jobs through JobClient.follow (the queue alone). The worker's own share (first_token_at → the
first "partial" event's t in the job's Redis stream) is reported too."""

from __future__ import annotations

import time

from bench.gradio_http import GradioHTTP, text_of
from bench.harness import TEST_MODEL, put_media, stack
from bench.queue_overhead import _image, _new_results, _next_result
from bench.results import Result, summary_ms
from common import events
from common.schemas import EventType, JobState
from scripts import jobs
from scripts.stack import Stack

NAME = "streaming"
MAX_NEW_TOKENS = 150  # ≈ 0.5 s of generation with the tiny model: the job is still running at the first partial
BOX = "10,10,200,200"


def _first_partial_t(rc, job_id: str) -> float | None:
    for ev in events.read_events(rc, job_id, "0", block_ms=None):
        if ev.type == EventType.partial:
            return ev.t
    return None


def via_ui(stack: Stack, n: int) -> list[dict]:
    g = GradioHTTP(stack.url)
    rc = events.connect(stack.redis.url)
    file = g.upload(_image())
    seen: set[str] = set()
    _new_results(rc, seen)
    rows = []
    for _ in range(n):
        first = None
        for now, kind, out in g.stream("region_ui", [file, BOX]):
            if kind == "process_generating" and out and first is None and text_of(out[0]).strip():
                first = now
        res = _next_result(rc, seen)
        rows.append({"client": first, "first_token_at": res["first_token_at"], "finished_at": res["finished_at"],
                     "event": _first_partial_t(rc, res["job_id"]), "tokens": res["generated_tokens"]})
    g.close()
    return rows


def via_jobclient(stack: Stack, n: int) -> list[dict]:
    from common.schemas import Box, RegionRequest
    from web.queue.client import JobClient

    settings = stack.settings_for(max_new_tokens=MAX_NEW_TOKENS, queue_wait_timeout=120)
    client = JobClient(settings)
    ref = put_media(settings, _image())
    rows = []
    for _ in range(n):
        req = RegionRequest(media=ref, box=Box(x1=10, y1=10, x2=200, y2=200))
        client.submit(req)
        first, res = None, None
        for upd in jobs.follow(client, req):
            if upd.state == JobState.running and upd.text.strip() and first is None:
                first = time.time()
            if upd.result is not None:
                res = upd.result
        rows.append({"client": first, "first_token_at": res.first_token_at, "finished_at": res.finished_at,
                     "event": _first_partial_t(client.redis, req.job_id), "tokens": res.generated_tokens})
    return rows


def _lags(rows: list[dict]) -> tuple[list[float], int]:
    ok = [r for r in rows if r["client"] is not None and r["first_token_at"] is not None]
    running = sum(1 for r in ok if r["client"] < r["finished_at"])
    return [r["client"] - r["first_token_at"] for r in ok], running


def run(quick: bool = False, n: int | None = None) -> list[Result]:
    n = n or (8 if quick else 25)
    with stack("streaming", TEST_MODEL, workers=1, web=True, MAX_NEW_TOKENS=str(MAX_NEW_TOKENS),
               TORCH_THREADS="1") as st:
        via_ui(st, 2)  # warm-up
        ui = via_ui(st, n)
        jc = via_jobclient(st, n)
    ui_lag, ui_running = _lags(ui)
    jc_lag, jc_running = _lags(jc)
    pub = [r["event"] - r["first_token_at"] for r in ui + jc if r["event"] and r["first_token_at"]]
    s_ui, s_jc, s_pub = summary_ms(ui_lag), summary_ms(jc_lag), summary_ms(pub)
    gen_ms = summary_ms([r["finished_at"] - r["first_token_at"] for r in ui])
    details = {"jobs": n, "max_new_tokens": MAX_NEW_TOKENS, "ui_sse": s_ui, "jobclient_follow": s_jc,
               "worker_publish": s_pub, "generation_after_first_token": gen_ms,
               "ui_still_generating": f"{ui_running}/{len(ui_lag)}", "jobclient_still_generating":
               f"{jc_running}/{len(jc_lag)}"}
    return [
        Result("Стриминг: первый токен → первый текст в UI, p95", s_ui["p95_ms"], "мс", "≤ 150 мс",
               s_ui["p95_ms"] <= 150,
               f"p50 {s_ui['p50_ms']:.1f} мс; {n} заданий, событие UI region_ui по протоколу очереди Gradio "
               f"(в публичном API стриминга нет); генерация ещё шла в {ui_running}/{len(ui_lag)}", NAME, details),
        Result("Стриминг: первый токен → JobClient.follow, p50", s_jc["p50_ms"], "мс", "", None,
               f"p95 {s_jc['p95_ms']:.0f} мс; только Redis; публикация в обработчике p50 {s_pub['p50_ms']:.1f} мс",
               NAME),
    ]


if __name__ == "__main__":
    from bench.harness import standalone

    standalone(run, takes_n=True)
