"""Nothing lost under load or a Redis blink, and refusals at once when full — through the public API of a real
stack (redis-server with its AOF, two workers, the web). Each scenario counts submitted / answered / errored and
checks that every job ran exactly once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from common import events, keys
from common.errors import queue_full, too_many_jobs
from common.schemas import WorkerState
from scripts import samples
from scripts.load_test import api_client, run_load
from scripts.stack import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(make_stack, tmp_path_factory):
    st = make_stack(max_queue_length=0, max_jobs_per_client=0)
    st.redis.stop()
    st.redis.appendonly = True  # as in compose: the queue survives a Redis restart
    st.redis.start()
    for name in ("dur-1", "dur-2"):
        st.start_worker(name)
    st.start_web(MAX_QUEUE_LENGTH="0", MAX_JOBS_PER_CLIENT="0", REDIS_OUTAGE_GRACE_S="60")
    st.image = samples.scene_image(tmp_path_factory.mktemp("dur") / "scene.png", (320, 240))
    return st


def ran_once(stack, since: set[str]) -> tuple[int, int]:
    """(results, attempts) written for the jobs that appeared after `since` (result keys seen before)."""
    r = stack.client.redis
    new = [k for k in r.scan_iter(match=keys.result("*"), count=1000) if k not in since]
    attempts = sum(int(r.get(keys.attempts(k.split(":")[2])) or 0) for k in new)
    return len(new), attempts


def callers(stack, n: int, question: str = "What is it?") -> tuple[list[threading.Thread], dict]:
    out: dict = {"answers": [], "errors": []}
    lock = threading.Lock()

    def ask(i: int) -> None:
        try:
            api = api_client(stack.url)
            answer = api.predict(handle_file(str(stack.image)), f"{question} {i}", [], api_name="/vqa")
            with lock:
                out["answers"].append(answer)
        except Exception as exc:  # noqa: BLE001 - counted
            with lock:
                out["errors"].append(str(exc))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, out


def test_more_waiting_users_than_a_redis_pool_are_all_answered(stack):
    """150 callers at once (redis-py's default pool used to be 100 connections, shared by every waiting user)."""
    before = set(stack.client.redis.scan_iter(match=keys.result("*"), count=1000))
    report = run_load(stack.url, stack.settings.redis_url, n=150, concurrency=150)
    assert report.failed == [], report.failed[:3]
    assert report.answered == 150 and report.lost == 0 and report.duplicates == 0
    assert ran_once(stack, before) == (150, 150)


@pytest.mark.parametrize("fault", ["restart", "pause"])
def test_a_redis_blink_costs_no_answer(stack, fault):
    """A restart (the AOF keeps the queue) or a freeze longer than the clients' socket timeout (10 s): every caller
    still gets its answer, and no job runs twice."""
    before = set(stack.client.redis.scan_iter(match=keys.result("*"), count=1000))
    threads, out = callers(stack, 8, "Describe")
    wait_for(lambda: any(w.state == WorkerState.busy for w in events.list_workers(stack.client.redis)), 30,
             "jobs running")
    in_flight = 8 - len(out["answers"])
    if fault == "restart":
        stack.redis.stop()
        stack.redis.start()
    else:
        stack.redis.pause()
        time.sleep(12)  # the outage itself: longer than the 10 s socket timeout of every client
        stack.redis.resume()
    for t in threads:
        t.join(120)
    assert in_flight >= 4  # the fault hit jobs queued and running, not a finished batch
    assert not out["errors"], out["errors"][:3]
    assert len(out["answers"]) == 8
    assert ran_once(stack, before) == (8, 8)
    assert all(w.alive for w in stack.workers)


def test_a_full_queue_and_a_busy_client_are_refused_at_once(make_stack, tmp_path):
    """No worker serves this Redis: jobs wait. MAX_QUEUE_LENGTH=2: the third caller is refused at once with the
    Russian message; MAX_JOBS_PER_CLIENT likewise for one client."""
    image = samples.scene_image(tmp_path / "s.png", (64, 48))
    st = make_stack()
    st.start_web(MAX_QUEUE_LENGTH="2", MAX_JOBS_PER_CLIENT="0", QUEUE_WAIT_TIMEOUT="30")
    api = Client(st.url, verbose=False)
    jobs = [api.submit(handle_file(str(image)), f"q{i}", [], api_name="/vqa") for i in range(2)]
    wait_for(lambda: st.client.queue_length() == 2, 20, "two jobs queued")
    t0 = time.monotonic()
    with pytest.raises(AppError) as info:
        api.predict(handle_file(str(image)), "third", [], api_name="/vqa")
    assert str(info.value) == queue_full(2, 2).message and time.monotonic() - t0 < 5
    for job in jobs:
        job.cancel()
    wait_for(lambda: st.client.queue_length() == 0, 20, "cancelled callers' jobs withdrawn")
    st.web.stop()

    st.start_web(MAX_QUEUE_LENGTH="0", MAX_JOBS_PER_CLIENT="2", QUEUE_WAIT_TIMEOUT="30")
    api = Client(st.url, verbose=False)
    with ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(api.predict, handle_file(str(image)), f"mine {i}", [], api_name="/vqa")
                   for i in range(2)]
        wait_for(lambda: st.client.queue_length() == 2, 20, "two jobs of one client queued")
        with pytest.raises(AppError) as info:
            api.predict(handle_file(str(image)), "one too many", [], api_name="/vqa")
        assert str(info.value) == too_many_jobs(2).message
        for job_id in st.client.redis.zrange(keys.WAITING, 0, -1):
            st.client.cancel(job_id)
        for f in waiting:
            with pytest.raises(AppError):
                f.result(30)
    refused = st.client.redis.hgetall(keys.METRICS)
    assert float(refused.get("jobs_total|chat|rejected", 0)) == 2  # both refusals counted, once each
