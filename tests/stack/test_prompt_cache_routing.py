"""Follow-ups reach the worker holding their prompt cache (its own Celery queue), and fall back to the shared
queue when it is busy or dead; a follow-up waiting in a killed worker's own queue is still answered, once.
Real redis-server and two worker processes on the tiny model, jobs through JobClient."""

from __future__ import annotations

import time

import pytest

from common import events, keys
from common.queue import QUEUE
from common.schemas import ChatRequest, JobStatus, Turn, WorkerState
from scripts import jobs, samples
from scripts.stack import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(make_stack, tmp_path_factory, endless_env):
    st = make_stack(max_new_tokens=3000)
    st.endless = endless_env  # long_job runs its 3000 tokens on any CPU
    for name in ("cache-a", "cache-b"):
        st.start_worker(name, **st.endless, MAX_NEW_TOKENS="3000", MODEL_DTYPE="float32")
    d = tmp_path_factory.mktemp("cache-media")
    st.image = st.store.save_upload(samples.scene_image(d / "scene.png", (320, 240)))
    st.other = st.store.save_upload(samples.text_image(d / "text.png"))
    return st


def worker_of(stack, name: str):
    return next(s for s in stack.workers if f"-{s.pid}-" in name)


def ask(stack, history, question, ref=None, **kw):
    return jobs.run(stack.client, ChatRequest(media=ref or stack.image, question=question, history=history,
                                        max_new_tokens=kw.pop("max_new_tokens", 8), **kw))


def long_job(stack, queue: str = QUEUE) -> ChatRequest:
    """A job that keeps its worker busy for seconds (an endless worker writes all 3000 tokens); the tests act while
    it runs and then stop it."""
    req = ChatRequest(media=stack.image, question="Describe the image.", max_new_tokens=3000)
    stack.client.submit(req, queue=queue)
    return req


def busy_with(stack, req, timeout=30) -> str:
    return wait_for(lambda: next((w.name for w in events.list_workers(stack.client.redis)
                                  if w.job_id == req.job_id), None), timeout, f"job {req.job_id} running")


def test_five_follow_ups_land_on_the_worker_holding_the_cache(stack):
    first = ask(stack, [], "Describe it.", conversation="five")
    assert first.status == JobStatus.ok, first.error
    history = [Turn(question="Describe it.", answer=first.answer)]
    holders = set()
    for i in range(5):
        res = ask(stack, history, f"Follow-up {i}?", conversation="five")
        assert res.status == JobStatus.ok and res.cached_tokens > 0, (res.error, res.cached_tokens)
        holders.add(res.worker)
        history.append(Turn(question=f"Follow-up {i}?", answer=res.answer))
    assert holders == {first.worker}
    info = next(w for w in events.list_workers(stack.client.redis) if w.name == first.worker)
    assert info.cache_entries >= 1 and info.cache_bytes > 0  # the heartbeat reports the cache


def test_a_busy_holder_leaves_the_follow_up_to_the_free_worker(stack):
    first = ask(stack, [], "Describe it.", conversation="busy")
    holder = first.worker
    follow_up = ChatRequest(media=stack.image, question="And then?", conversation="busy", max_new_tokens=8,
                            history=[Turn(question="Describe it.", answer=first.answer)])
    own = stack.client.route(follow_up)
    assert own.endswith(holder)  # idle holder: its own queue
    blocker = long_job(stack, queue=own)
    assert busy_with(stack, blocker) == holder
    assert stack.client.route(follow_up) == QUEUE  # busy holder, a free worker: the shared queue
    stack.client.submit(follow_up)
    res = jobs.result(stack.client, follow_up)
    assert res.status == JobStatus.ok and res.worker != holder and res.cached_tokens == 0  # a miss, not an error
    assert stack.client.cancel(blocker.job_id)


def test_a_dead_holder_leaves_the_follow_up_to_the_other_worker(stack):
    first = ask(stack, [], "Describe it.", conversation="dead")
    holder = worker_of(stack, first.worker)
    holder.kill()  # idle, killed -9: its heartbeat lapses
    stack.workers.remove(holder)
    res = ask(stack, [Turn(question="Describe it.", answer=first.answer)], "And then?", conversation="dead")
    assert res.status == JobStatus.ok and res.worker != first.worker
    stack.start_worker("cache-c", **stack.endless, MAX_NEW_TOKENS="3000", MODEL_DTYPE="float32")


def test_a_follow_up_queued_for_a_killed_worker_is_answered_exactly_once(stack):
    first = ask(stack, [], "Describe it.", conversation="killed")
    holder = first.worker
    # Both workers busy: the follow-up waits in the holder's own queue (the cache is worth the wait).
    blockers = [long_job(stack) for _ in range(2)]
    wait_for(lambda: all(w.state == WorkerState.busy for w in events.list_workers(stack.client.redis)), 30, "both busy")
    follow_up = ChatRequest(media=stack.image, question="And then?", conversation="killed", max_new_tokens=8,
                            history=[Turn(question="Describe it.", answer=first.answer)])
    stack.client.workers_snapshot(max_age_s=0)  # route() reads the others' states at most 0.5 s old: now
    own_queue = stack.client.submit(follow_up)
    assert own_queue != QUEUE and stack.client.redis.llen(own_queue) == 1
    victim = worker_of(stack, holder)
    killed_at = time.monotonic()
    victim.kill()
    stack.workers.remove(victim)
    survivor = next(b for b in blockers if busy_with(stack, b) != holder)
    stack.client.cancel(survivor.job_id)  # free the other worker: it must answer the moved follow-up
    res = jobs.result(stack.client, follow_up)
    assert res.status == JobStatus.ok, res.error
    assert res.worker != holder and time.monotonic() - killed_at < 30
    assert stack.client.redis.llen(own_queue) == 0
    assert int(stack.client.redis.get(keys.attempts(follow_up.job_id))) == 1  # ran once
    started = [e for e in events.read_events(stack.client.redis, follow_up.job_id, "0", 10) if e.type == "started"]
    assert len(started) == 1
    for b in blockers:
        stack.client.cancel(b.job_id)
