"""One thread per web process follows every job its users wait on: a single blocking XREAD over all their
event streams, and twice a second one read of the queue index and the heartbeats for every queued job at once.
So a waiting user costs Redis nothing of its own, and a Redis outage is seen (and survived) in one place."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid

import redis

from common import events, keys
from common.events import REDIS_ERRORS
from common.schemas import EventType, JobKind, JobResult, WorkerState
from web.queue.tracker import POSITION_WINDOW, Outage, QueueStatus, Recovered

log = logging.getLogger(__name__)

STATUS_EVERY_S = 0.5
RESULTS_EVERY_S = 5.0  # a result whose done event was lost is still found
WATCH_EVERY_S = 10.0  # renew keys.watchers: while followed, a queued job is worth running
WATCH_TTL_S = 120


class Subscription:
    """What the watcher saw for one job: JobEvent, QueueStatus, Outage, Recovered or a JobResult, in order, read
    with await aget() on the follower's event loop."""

    def __init__(self, job_id: str, kind: JobKind, loop: asyncio.AbstractEventLoop) -> None:
        self.job_id, self.kind, self.loop = job_id, kind, loop
        self.last_id = "0"
        self.started = False
        self._items: asyncio.Queue = asyncio.Queue()

    def put(self, item) -> None:
        """From the watcher's thread."""
        if isinstance(item, events.JobEvent) and item.type in (EventType.started, EventType.partial):
            self.started = True
        self.loop.call_soon_threadsafe(self._items.put_nowait, item)

    async def aget(self, timeout: float):
        try:
            return await asyncio.wait_for(self._items.get(), timeout)
        except TimeoutError:
            return None


class Watcher:
    def __init__(self, client: redis.Redis, block_ms: int = 200) -> None:
        self.client, self.block_ms = client, block_ms
        self._wake_key = keys.web_wake(uuid.uuid4().hex[:12])
        self._wake_id = "$"
        self._subs: dict[str, list[Subscription]] = {}
        self._lock = threading.Lock()
        self._has_subs = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage: Outage | None = None
        self._last = {"status": 0.0, "results": 0.0, "watch": 0.0}
        self._eta: dict[str, float] = {}
        self._eta_at = 0.0

    def subscribe(self, job_id: str, kind: JobKind, loop: asyncio.AbstractEventLoop) -> Subscription:
        sub = Subscription(job_id, kind, loop)
        with self._lock:
            self._subs.setdefault(job_id, []).append(sub)
            self._has_subs.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="job-watcher", daemon=True)
                self._thread.start()
        self._last["status"] = 0.0  # a new waiter sees its place at once
        if self._outage is not None:
            sub.put(self._outage)
        else:
            self._wake()
        return sub

    def _wake(self) -> None:
        """Interrupt the blocking read, so the new job's stream is read from now on (not after block_ms)."""
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xadd(self._wake_key, {"w": 1}, maxlen=10, approximate=True)
            pipe.expire(self._wake_key, 3600)
            pipe.execute()
        except REDIS_ERRORS:
            pass  # the watcher sees the outage itself

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.job_id, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._subs.pop(sub.job_id, None)
            if not self._subs:
                self._has_subs.clear()

    def _all(self) -> list[Subscription]:
        with self._lock:
            return [s for subs in self._subs.values() for s in subs]

    def _send(self, job_id: str, item) -> None:
        with self._lock:
            subs = list(self._subs.get(job_id, []))
        for sub in subs:
            sub.put(item)

    # ------------------------------------------------------------ the thread

    def _loop(self) -> None:
        delay = 0.2
        while True:
            self._has_subs.wait()
            try:
                self._tick()
                if self._outage is not None:
                    log.info("Redis is back after %.1f s", time.monotonic() - self._outage.since)
                    self._outage = None
                    for sub in self._all():
                        sub.put(Recovered())
                delay = 0.2
            except REDIS_ERRORS as exc:
                if self._outage is None:
                    log.warning("Redis unavailable (%s): the waiting jobs are followed again when it is back",
                                type(exc).__name__)
                    self._outage = Outage(time.monotonic())
                    for sub in self._all():
                        sub.put(self._outage)
                time.sleep(delay)
                delay = min(2.0, delay * 2)
            except Exception:
                log.exception("job watcher tick failed")
                time.sleep(0.5)

    def _tick(self) -> None:
        subs = self._all()
        if not subs:
            return
        streams = {self._wake_key: self._wake_id, **{keys.events(s.job_id): s.last_id for s in subs}}
        for key, entries in self.client.xread(streams, block=self.block_ms, count=100) or []:
            if key == self._wake_key:
                self._wake_id = entries[-1][0]
                continue
            job_id = key.split(":")[-2]
            for entry_id, fields in entries:
                for sub in self._subs_of(job_id):
                    sub.last_id = entry_id
                self._send(job_id, events.parse_entry(entry_id, fields))
        now = time.monotonic()
        if now - self._last["status"] >= STATUS_EVERY_S and any(not s.started for s in subs):
            self._last["status"] = now
            self._queue_status([s for s in subs if not s.started])
        if now - self._last["results"] >= RESULTS_EVERY_S:
            self._last["results"] = now
            self._lost_results(subs)
        if now - self._last["watch"] >= WATCH_EVERY_S:
            self._last["watch"] = now
            pipe = self.client.pipeline(transaction=False)
            for job_id in {s.job_id for s in subs}:
                pipe.set(keys.watchers(job_id), "1", ex=WATCH_TTL_S)
            pipe.execute()

    def _subs_of(self, job_id: str) -> list[Subscription]:
        with self._lock:
            return list(self._subs.get(job_id, []))

    def _queue_status(self, waiting_subs: list[Subscription]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(keys.WAITING, 0, POSITION_WINDOW - 1)
        pipe.zcard(keys.WAITING)
        head, total = pipe.execute()
        rank = {job_id: i + 1 for i, job_id in enumerate(head)}
        workers = [w for w in events.list_workers(self.client) if w.state != WorkerState.error]
        self._refresh_eta()
        for sub in waiting_subs:
            position = rank.get(sub.job_id, POSITION_WINDOW + 1 if total > POSITION_WINDOW else 0)
            if sub.job_id not in rank and total <= POSITION_WINDOW:
                position = 0
            per_job = self._eta.get(sub.kind)
            eta = None
            if per_job is not None and workers and position:
                eta = -(-position // len(workers)) * per_job  # ceil: rounds of the workers ahead of it
            sub.put(QueueStatus(position, int(total), len(workers), eta))

    def _refresh_eta(self) -> None:
        if time.monotonic() - self._eta_at < RESULTS_EVERY_S:
            return
        self._eta_at = time.monotonic()
        pipe = self.client.pipeline(transaction=False)
        kinds = tuple(JobKind)
        for kind in kinds:
            pipe.lrange(keys.recent(kind), 0, 19)
        for kind, values in zip(kinds, pipe.execute(), strict=True):
            xs = sorted(float(v) for v in values)
            if xs:
                self._eta[kind] = xs[len(xs) // 2]

    def _lost_results(self, subs: list[Subscription]) -> None:
        job_ids = sorted({s.job_id for s in subs})
        for job_id, raw in zip(job_ids, self.client.mget([keys.result(j) for j in job_ids]), strict=True):
            if raw:
                self._send(job_id, JobResult.model_validate_json(raw))
