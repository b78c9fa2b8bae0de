"""Worker scaling: jobs per second with one and then two `python -m worker` processes (TORCH_THREADS=1 each)
on the same queue, the same CPU-bound jobs (the 256M-size model, an image question, 8 new tokens: compute
dominates; the prompt cache off, else the repeated question would be a cached follow-up routed to one worker).
Both phases run in one stack: the second worker joins after the first phase."""

from __future__ import annotations

import sys
import time

from bench.harness import WORK, put_media, stack
from bench.machine import busy_processes
from bench.real_size import ensure_model
from bench.results import Result
from common.schemas import JobStatus
from scripts import jobs

NAME = "scaling"
NEW_TOKENS = 8


def _batch(client, ref, n: int) -> tuple[float, list]:
    """Submit n jobs at once; seconds from the first job's start to the last one's end, and the results."""
    from common.schemas import ChatRequest

    reqs = [ChatRequest(media=ref, question="What is in this picture?") for _ in range(n)]
    t0 = time.perf_counter()
    for r in reqs:
        client.submit(r)
    results = []
    for r in reqs:
        for upd in jobs.follow(client, r):
            if upd.result is not None:
                results.append(upd.result)
    wall = time.perf_counter() - t0
    bad = [r.error for r in results if r.status != JobStatus.ok]
    assert not bad, bad
    # Throughput from the workers' own clocks (first start → last finish): the client's submit and
    # result polling at the edges are not the workers' capacity.
    span = max(r.finished_at for r in results) - min(r.started_at for r in results)
    return span or wall, results


def run(quick: bool = False, n: int | None = None) -> list[Result]:
    from scripts import samples
    from web.queue.client import JobClient

    n = n or (4 if quick else 12)
    model = ensure_model("256M")
    image = WORK / "media" / "scene-640.png"
    if not image.exists():
        image.parent.mkdir(parents=True, exist_ok=True)
        samples.scene_image(image, (640, 480))
    rates, per_worker, busy = {}, {}, []
    # PROMPT_CACHE_MB=0: the same question about the same picture would be a cache hit after the first, and
    # every job would be routed to the worker holding it (web/queue/client.py JobClient.route) — not compute scaling.
    with stack("scaling", model, workers=1, MAX_NEW_TOKENS=str(NEW_TOKENS), TORCH_THREADS="1",
               JOB_TIME_LIMIT="600", PROMPT_CACHE_MB="0") as st:
        settings = st.settings_for(max_new_tokens=NEW_TOKENS, queue_wait_timeout=120)
        client = JobClient(settings)
        ref = put_media(settings, image)
        for workers in (1, 2):
            if workers == 2:
                st.start_worker()
            _batch(client, ref, workers)  # warm-up: one job per worker
            busy += busy_processes()
            print(f"  {workers} worker(s): {n} jobs …", file=sys.stderr, flush=True)
            dt, results = _batch(client, ref, n)
            rates[workers] = n / dt
            per_worker[workers] = sorted({r.worker: sum(1 for x in results if x.worker == r.worker)
                                          for r in results}.values())
            per_worker[f"{workers}_processing_s"] = round(sum(r.processing_s for r in results) / n, 2)
    ratio = rates[2] / rates[1]
    details = {"jobs": n, "model": "256M (random weights), dtype auto", "max_new_tokens": NEW_TOKENS,
               "jobs_per_s_1": round(rates[1], 3), "jobs_per_s_2": round(rates[2], 3),
               "jobs_per_worker": per_worker, "other_busy_processes": busy}
    return [
        Result("Масштабирование: 2 обработчика / 1", round(ratio, 2), "×", "≥ 1.8×", ratio >= 1.8,
               f"{rates[1]:.3f} → {rates[2]:.3f} заданий/с; {n} заданий 256M; TORCH_THREADS=1; "
               f"среднее время задания {per_worker['1_processing_s']} → {per_worker['2_processing_s']} с",
               NAME, details, {"torch_threads": 1}),
    ]


if __name__ == "__main__":
    from bench.harness import standalone

    standalone(run)
