"""worker.job.channel against a real redis-server: the claim (one round trip: answered, running on a live worker, a
dead worker's job, the attempt count, a stop before it ran); JobChannel: the first text goes out at once, later
ones coalesce, a stop reaches the generation thread as an Event, and a Redis that hangs never blocks the caller."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from common import events, keys
from common.schemas import EventType
from scripts.stack import RedisServer, wait_for
from tests.conftest import ARTIFACTS
from worker.job.channel import Claim, JobChannel, claim

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_pair(tmp_path):
    server = RedisServer(tmp_path / "redis", log=ARTIFACTS / "logs" / "redis-channel.log").start()
    yield server, events.connect(server.url)
    server.stop()


class Counting(redis.Redis):
    """A client that counts its round trips."""

    calls = 0

    def execute_command(self, *args, **options):
        self.calls += 1
        return super().execute_command(*args, **options)


@pytest.fixture
def counting(redis_pair):
    server, _ = redis_pair
    return Counting.from_url(server.url, decode_responses=True)


def test_a_fresh_job_is_claimed_in_one_round_trip_and_counts_its_attempts(redis_pair, counting):
    _, client = redis_pair
    client.set(keys.watchers("c1"), "1")
    assert claim(counting, "c1", "w1") == Claim(ours=True, attempt=1, abandoned=False)
    assert counting.calls == 1
    assert client.get(keys.owner("c1")) == "w1" and 0 < client.ttl(keys.attempts("c1")) <= 86400
    assert claim(client, "c1", "w1").attempt == 2  # redelivered to the same worker: its own lease, a new attempt


def test_a_job_answered_or_running_on_a_live_worker_is_not_claimed(redis_pair):
    _, client = redis_pair
    client.set(keys.watchers("c2"), "1")
    client.set(keys.result("c2"), "{}")
    assert claim(client, "c2", "w1") == Claim(ours=False)
    client.set(keys.watchers("c3"), "1")
    client.set(keys.owner("c3"), "w-live")
    client.set(keys.worker("w-live"), "{}")  # its heartbeat
    assert claim(client, "c3", "w1") == Claim(ours=False)
    assert client.get(keys.attempts("c3")) is None  # a duplicate delivery is no attempt
    client.delete(keys.worker("w-live"))  # that worker died: the job is ours now
    assert claim(client, "c3", "w1") == Claim(ours=True, attempt=1, abandoned=False)
    assert client.get(keys.owner("c3")) == "w1"


def test_a_job_stopped_or_unfollowed_before_it_ran_is_claimed_as_abandoned(redis_pair):
    _, client = redis_pair
    client.set(keys.watchers("c4"), "1")
    events.request_cancel(client, "c4")
    assert claim(client, "c4", "w1") == Claim(ours=True, attempt=1, abandoned=True)
    assert claim(client, "c5", "w1").abandoned  # nobody follows it (no watchers key)


def test_a_claim_retried_through_a_frozen_redis_counts_one_attempt(redis_pair):
    """A claim sent into a frozen Redis times out and is sent again; the first copy still sits in the server's
    socket and runs when it thaws. Each copy must not count an attempt (the CI once saw 9 attempts for 8 jobs after
    a 12-s freeze, and MAX_ATTEMPTS would end a job early on such phantom attempts)."""
    server, client = redis_pair
    client.set(keys.watchers("c6"), "1")
    quick = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=0.3)
    quick.ping()  # a pooled connection, as in the worker: the first copy goes out on it, whole
    got: list[Claim] = []
    server.pause()
    try:
        worker = threading.Thread(target=lambda: got.append(claim(quick, "c6", "w1")))
        worker.start()
        time.sleep(1.2)  # the first copy times out and waits in the server's socket; the retries follow
    finally:
        server.resume()
    worker.join(10)
    assert got == [Claim(ours=True, attempt=1, abandoned=False)]
    assert client.get(keys.attempts("c6")) == "1" and client.get(keys.owner("c6")) == "w1"
    client.set(keys.worker("w1"), "{}")  # w1 alive: the lease is its own
    assert claim(client, "c6", "w2") == Claim(ours=False)


def partials(client, job_id: str) -> list[events.JobEvent]:
    return [e for e in events.read_events(client, job_id, "0", block_ms=10) if e.type == EventType.partial]


def test_first_text_at_once_then_coalesced(redis_pair):
    _, client = redis_pair
    client.set(keys.watchers("j1"), "1")
    with JobChannel(client, "j1", "worker-x", min_interval_s=0.2) as ch:
        ch.started()
        ch.partial("a", 1)
        wait_for(lambda: partials(client, "j1"), 1, "the first text")
        for i in range(2, 50):  # 48 updates within the interval: at most one more event
            ch.partial("a" * i, i)
        wait_for(lambda: partials(client, "j1")[-1].text == "a" * 49, 1, "the latest text, coalesced")
    evs = events.read_events(client, "j1", "0", block_ms=10)
    assert [e.type for e in evs][:2] == [EventType.started, EventType.partial] and evs[0].text == "worker-x"
    assert evs[1].text == "a"
    assert 2 <= len(partials(client, "j1")) <= 3 and partials(client, "j1")[-1].text == "a" * 49


def test_a_stop_or_a_vanished_caller_sets_the_event(redis_pair):
    _, client = redis_pair
    client.set(keys.watchers("j2"), "1")
    with JobChannel(client, "j2", "w", poll_s=0.05) as ch:
        wait_for(lambda: ch.polls >= 2, 2, "the cancel flag read twice")
        assert not ch.cancelled.is_set()
        events.request_cancel(client, "j2")
        assert ch.cancelled.wait(1)
    with JobChannel(client, "j3", "w", poll_s=0.05) as ch:  # nobody follows j3 (no watchers key)
        assert ch.cancelled.wait(1)


def test_a_hanging_redis_never_blocks_generation(redis_pair):
    server, client = redis_pair
    client.set(keys.watchers("j4"), "1")
    with JobChannel(client, "j4", "w", poll_s=0.05) as ch:
        server.pause()  # SIGSTOP: every call would hang until its socket timeout
        try:
            t0 = time.monotonic()
            for i in range(1000):
                ch.partial(str(i), i)
            assert time.monotonic() - t0 < 0.5
        finally:
            server.resume()
