"""worker.channel.JobChannel against a real redis-server: the first text goes out at once, later ones coalesce,
a stop reaches the generation thread as an Event, and a Redis that hangs never blocks the caller."""

from __future__ import annotations

import time

import pytest

from common import events, keys
from scripts.stack import RedisServer, wait_for
from tests.conftest import ARTIFACTS
from worker.channel import JobChannel

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_pair(tmp_path):
    server = RedisServer(tmp_path / "redis", log=ARTIFACTS / "logs" / "redis-channel.log").start()
    yield server, events.connect(server.url)
    server.stop()


def partials(client, job_id: str) -> list[events.JobEvent]:
    return [e for e in events.read_events(client, job_id, "0", block_ms=10) if e.type == "partial"]


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
    assert [e.type for e in evs][:2] == ["started", "partial"] and evs[0].text == "worker-x"
    assert evs[1].text == "a"
    assert 2 <= len(partials(client, "j1")) <= 3 and partials(client, "j1")[-1].text == "a" * 49


def test_a_stop_or_a_vanished_caller_sets_the_event(redis_pair):
    _, client = redis_pair
    client.set(keys.watchers("j2"), "1")
    with JobChannel(client, "j2", "w", poll_s=0.05) as ch:
        time.sleep(0.1)
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
