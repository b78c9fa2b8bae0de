"""Load check through the public API: N concurrent /vqa calls against a running web + workers.

Prints p50 / p95 end-to-end latency and checks every call got exactly one answer and every job
ran exactly once (Redis: one result key and one attempt per job). Bounded: N calls, a timeout.

    python scripts/load_test.py --url http://127.0.0.1:7860/ --redis redis://localhost:6379/0 -n 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import redis
from gradio_client import Client, handle_file

from common import events, keys
from common.schemas import WorkerState
from scripts import samples
from scripts.stack import wait_for

# A caller waits as a browser does. gradio_client's requests keep httpx's default of 5 s per read: in a burst of
# 150 callers started at once on a 2-core machine, a few of them read nothing back within it (seen once in CI, 8
# of 150), and were counted as failed answers, a wait no browser gives up on. The event streams get the same read
# limit, well above Gradio's 15-s heartbeat on them.
HTTP_TIMEOUT_S = 60.0


def api_client(url: str) -> Client:
    return Client(url, verbose=False, httpx_kwargs={"timeout": HTTP_TIMEOUT_S})


@dataclass
class LoadReport:
    submitted: int
    answered: int
    failed: list[str]
    latencies_s: list[float]
    results: int  # result keys written (one per job)
    attempts_total: int
    wall_s: float

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_s) if self.latencies_s else float("nan")

    @property
    def p95(self) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def lost(self) -> int:
        return self.submitted - self.answered - len(self.failed)

    @property
    def duplicates(self) -> int:
        return max(0, self.attempts_total - self.results)

    def as_dict(self) -> dict:
        return {
            "submitted": self.submitted, "answered": self.answered, "failed": len(self.failed),
            "lost": self.lost, "duplicates": self.duplicates, "p50_s": round(self.p50, 3),
            "p95_s": round(self.p95, 3), "wall_s": round(self.wall_s, 2),
            "jobs_per_s": round(self.answered / self.wall_s, 2) if self.wall_s else 0.0,
        }


def _count(r: redis.Redis, pattern: str) -> list[str]:
    return list(r.scan_iter(match=pattern, count=1000))


def run_load(url: str, redis_url: str, n: int, concurrency: int | None = None, timeout_s: float = 600,
             question: str = "Question number {i}: what is shown?", fault=None) -> LoadReport:
    """n /vqa calls (concurrency at once, default all). fault(): called once, as soon as a worker is busy with one
    of them (a fault injected mid-load). A call with no outcome after timeout_s counts as lost."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    before_results = set(_count(r, keys.result("*")))
    before_attempts = set(_count(r, keys.attempts("*")))
    image = samples.scene_image(Path(tempfile.mkdtemp()) / "scene.png")
    # One gradio_client Client per caller thread, as real users have their own sessions: hundreds of threads
    # sharing one Client lose a few answers inside gradio_client (its shared event-stream reader), never here.
    local = threading.local()

    def one(i: int) -> tuple[float, str | None]:
        t0 = time.perf_counter()
        try:
            client = local.client = getattr(local, "client", None) or api_client(url)
            answer = client.predict(handle_file(str(image)), question.format(i=i), [], api_name="/vqa")
        except Exception as exc:  # noqa: BLE001 - counted as a failure with its message
            return time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
        return time.perf_counter() - t0, None if isinstance(answer, str) else f"not a string: {answer!r}"

    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=concurrency or n)
    try:
        futures = [pool.submit(one, i) for i in range(n)]
        if fault is not None:
            wait_for(lambda: any(w.state == WorkerState.busy for w in events.list_workers(r)), 60, "a busy worker")
            fault()
        done, _ = wait(futures, timeout=max(0.0, timeout_s - (time.perf_counter() - t0)))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a call still hanging is reported lost, not waited for
    outcomes = [f.result() for f in futures if f in done]
    wall = time.perf_counter() - t0
    new_results = set(_count(r, keys.result("*"))) - before_results
    new_attempts = set(_count(r, keys.attempts("*"))) - before_attempts
    attempts_total = sum(int(r.get(k) or 0) for k in new_attempts)
    return LoadReport(
        submitted=n, answered=sum(1 for _, err in outcomes if err is None),
        failed=[err for _, err in outcomes if err is not None],
        latencies_s=[lat for lat, err in outcomes if err is None],
        results=len(new_results), attempts_total=attempts_total, wall_s=wall,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("-n", type=int, default=50)
    args = parser.parse_args()
    report = run_load(args.url, args.redis, args.n)
    print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    for err in report.failed[:5]:
        print("failed:", err, file=sys.stderr)
    return 0 if report.answered == report.submitted and report.duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
