"""worker.job.liveness.Liveness.job against a real redis-server: a job makes the worker busy and records its delivery;
free() says "ready" before the answer goes out, and the job's end says nothing more (one "ready" per job); a job
that ends without free() (not ours, or it raised) still frees the worker, once."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest

from common import events, keys
from common.queue import make_celery
from common.schemas import WorkerState
from common.settings import Settings
from scripts.stack import wait_for
from worker.job.liveness import Liveness

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(own_redis):
    return events.connect(own_redis.url)


class Recording(Liveness):
    """Liveness whose heartbeats are also kept in a list: (state, job id) of each."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.said: list[tuple[WorkerState, str | None]] = []

    def beat(self) -> None:
        self.said.append((self.state, self.job_id))
        super().beat()


def fake_runtime() -> SimpleNamespace:
    """What Liveness reads of the worker's Runtime: a loaded model, no prompt cache entries."""
    return SimpleNamespace(model=object(), model_id="m", device="cpu", dtype_name="float32", load_error=None,
                           detail=None, cache=SimpleNamespace(stats=lambda: (0, 0)))


@pytest.fixture
def liveness(client) -> Recording:
    return Recording(None, Settings(_env_file=None), client, fake_runtime())


def heartbeat(client, name: str):
    return next(w for w in events.list_workers(client) if w.name == name)


def test_a_job_is_busy_then_ready_once_before_its_answer_goes_out(client, liveness):
    client.zadd(keys.WAITING, {"j1": 1.0})
    with liveness.job("j1", "tag-1", 1.0) as job:
        assert client.zscore(keys.WAITING, "j1") is None  # begun: no longer waiting
        assert json.loads(client.hget(keys.INFLIGHT, "tag-1"))["instance"] == liveness.name
        assert heartbeat(client, liveness.name).state == WorkerState.busy
        job.free()
        assert heartbeat(client, liveness.name).state == WorkerState.ready
        assert client.hget(keys.INFLIGHT, "tag-1") is not None  # until the answer is out: a death now redelivers
    assert client.hget(keys.INFLIGHT, "tag-1") is None
    assert liveness.said == [(WorkerState.busy, "j1"), (WorkerState.ready, None)]


def test_a_job_that_ends_without_an_answer_frees_the_worker_once(client, liveness):
    with pytest.raises(RuntimeError), liveness.job("j2", "tag-2"):
        raise RuntimeError("the task failed")
    assert client.hget(keys.INFLIGHT, "tag-2") is None
    assert liveness.said == [(WorkerState.busy, "j2"), (WorkerState.ready, None)]
    assert heartbeat(client, liveness.name).state == WorkerState.ready and liveness.job_started is None


def test_the_heartbeat_thread_never_says_busy_after_a_job_said_ready(client):
    """The thread beats all the time here (every millisecond) while jobs come and go: once a job's free() has said
    "ready", no beat the thread had begun before can bring back "busy"."""
    liveness = Liveness(None, Settings(_env_file=None, worker_heartbeat_s=0.001), client, fake_runtime())
    liveness.start()
    try:
        stale = 0
        for i in range(300):
            with liveness.job(f"r{i}", None) as job:
                job.free()
                said = [w.state for w in events.list_workers(client) if w.name == liveness.name]
                stale += said != [WorkerState.ready] and said != []  # [] : this beat's 3-ms TTL ran out
        assert stale == 0
    finally:
        liveness.stop()


def test_a_freeze_shorter_than_the_socket_timeout_takes_no_live_worker_for_dead(own_redis, client):
    """Redis frozen (SIGSTOP) longer than the heartbeats' TTL but shorter than the clients' 10-s socket timeout: no
    call fails, every heartbeat lapses at once, and the reaper's own beat, held up by the freeze, comes back as if
    nothing happened. It must not put back the job of a worker whose next beat is a moment late (that job would run
    twice): the freeze counts as an outage, and the reaper waits a TTL after it."""
    s = Settings(_env_file=None, redis_url=own_redis.url, worker_heartbeat_s=0.2)  # heartbeat TTL 0.6 s
    reaper = Liveness(make_celery(s), s, client, fake_runtime())
    other, beating, done = "w-other", threading.Event(), threading.Event()

    def beat_other() -> None:  # the other worker's liveness thread, every 0.2 s while `beating`
        while not done.wait(0.2):
            if beating.is_set():
                client.set(keys.worker(other), "{}", px=600)

    record = {"instance": other, "job_id": "frozen-1", "since": time.time() - 100, "queued_at": time.time() - 100}
    client.hset(keys.INFLIGHT, "tag-frozen-1", json.dumps(record))
    beating.set()
    beater = threading.Thread(target=beat_other, daemon=True)
    beater.start()
    reaper.start()
    try:
        time.sleep(1.2)  # the reaper on line for two TTLs: it reaps now
        assert client.hexists(keys.INFLIGHT, "tag-frozen-1")  # the other one beats: alive
        beating.clear()
        own_redis.pause()
        time.sleep(1.5)  # 2.5 TTLs; far below the 10-s socket timeout
        own_redis.resume()
        time.sleep(0.3)  # the other worker's first beat after the thaw comes half a TTL late
        beating.set()
        time.sleep(1.0)
        assert client.hexists(keys.INFLIGHT, "tag-frozen-1")
        assert client.zscore(keys.WAITING, "frozen-1") is None
        done.set()
        beater.join(2)
        client.delete(keys.worker(other))  # now it is dead: its job goes back within a TTL and a beat or two
        wait_for(lambda: not client.hexists(keys.INFLIGHT, "tag-frozen-1"), 5, "the dead worker's job put back")
        assert client.zscore(keys.WAITING, "frozen-1") is not None
    finally:
        done.set()
        reaper.stop()
