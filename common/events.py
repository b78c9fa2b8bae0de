"""Redis side channels shared by web and worker: per-job event streams (partial text while
generating) and worker heartbeats. The final result goes through Celery's result backend."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from common import keys
from common.schemas import EventType, WorkerInfo

STREAM_TTL_S = 3600


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30
    )


@dataclass
class JobEvent:
    id: str
    type: EventType | str
    text: str
    tokens: int
    t: float
    result: str = ""  # done: the JobResult as JSON, so the web need not wait for the result backend


class EventPublisher:
    """Worker side: publishes a job's progress; partial events carry the whole text so far."""

    def __init__(self, client: redis.Redis, job_id: str, min_interval_s: float = 0.05) -> None:
        self.client = client
        self.key = keys.events(job_id)
        self.min_interval_s = min_interval_s
        self._last_sent = 0.0
        self._pending: tuple[str, int] | None = None

    def _add(self, type_: str, text: str = "", tokens: int = 0, result: str = "") -> None:
        pipe = self.client.pipeline()
        fields = {"type": type_, "text": text, "tokens": tokens, "t": f"{time.time():.6f}"}
        if result:
            fields["result"] = result
        pipe.xadd(self.key, fields, maxlen=64, approximate=True)
        pipe.expire(self.key, STREAM_TTL_S)
        pipe.execute()

    def started(self, worker: str) -> None:
        self._add(EventType.started, worker)

    def partial(self, text: str, tokens: int) -> None:
        # The first token goes out at once (streaming lag); later ones at most every min_interval_s.
        now = time.monotonic()
        if self._last_sent and now - self._last_sent < self.min_interval_s:
            self._pending = (text, tokens)
            return
        self._pending = None
        self._last_sent = now
        self._add(EventType.partial, text, tokens)

    def done(self, result_json: str = "") -> None:
        if self._pending is not None:
            self._add(EventType.partial, *self._pending)
        self._add(EventType.done, result=result_json)


def read_events(client: redis.Redis, job_id: str, last_id: str = "0", block_ms: int = 200) -> list[JobEvent]:
    """Web side: events after last_id, waiting up to block_ms for the first one."""
    reply = client.xread({keys.events(job_id): last_id}, block=block_ms, count=100)
    events: list[JobEvent] = []
    for _key, entries in reply or []:
        for entry_id, f in entries:
            events.append(JobEvent(
                entry_id, f.get("type", ""), f.get("text", ""), int(f.get("tokens", 0)), float(f.get("t", 0)),
                f.get("result", ""),
            ))
    return events


def publish_heartbeat(client: redis.Redis, info: WorkerInfo, ttl_s: float) -> None:
    info.updated_at = time.time()
    client.set(keys.worker(info.name), info.model_dump_json(), px=int(ttl_s * 1000))


def remove_heartbeat(client: redis.Redis, name: str) -> None:
    client.delete(keys.worker(name))


def list_workers(client: redis.Redis) -> list[WorkerInfo]:
    found = sorted(client.scan_iter(match=keys.worker("*"), count=100))
    if not found:
        return []
    workers = []
    for raw in client.mget(found):
        if raw:
            try:
                workers.append(WorkerInfo.model_validate(json.loads(raw)))
            except ValueError:
                continue
    return workers
