"""A running job's Redis I/O, kept off the generation thread. Partial text is best effort (the latest text wins;
Redis slow or away never stalls generation), the cancel flag is polled into a threading.Event the stopping
criteria read without I/O, and the owner lease is renewed. Only the final result waits for Redis (retry)."""

from __future__ import annotations

import logging
import threading
import time

import redis

from common import events, keys
from common.schemas import EventType, JobResult

log = logging.getLogger(__name__)

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
OWNER_TTL_S = 60
FINISH_GIVE_UP_S = 900  # past this the message stays unacknowledged and is redelivered


def retry(what: str, fn, give_up_s: float = FINISH_GIVE_UP_S):
    """fn() until Redis answers (backoff 0.2 → 2 s); the last error past give_up_s."""
    deadline, delay = time.monotonic() + give_up_s, 0.2
    while True:
        try:
            return fn()
        except REDIS_ERRORS as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("%s: Redis unavailable (%s), retrying in %.1f s", what, type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(2.0, delay * 2)


def finish(client: redis.Redis, result: JobResult, result_ttl: int) -> bool:
    """The job's final result, written once; waits through a Redis outage."""
    return retry(f"job {result.job_id}: result", lambda: events.finish(client, result, result_ttl))


class JobChannel:
    def __init__(self, client: redis.Redis, job_id: str, owner: str, min_interval_s: float = 0.05,
                 poll_s: float = 0.1) -> None:
        self.client, self.job_id, self.owner = client, job_id, owner
        self.min_interval_s, self.poll_s = min_interval_s, poll_s
        self.cancelled = threading.Event()
        self._wake = threading.Condition()
        self._started = False  # "started" waiting to be sent
        self._partial: tuple[str, int] | None = None  # the latest text not yet sent
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"job-{job_id[:8]}", daemon=True)

    def __enter__(self) -> JobChannel:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(2)  # a partial still in flight must not land after the done event

    def started(self) -> None:
        with self._wake:
            self._started = True
            self._wake.notify()

    def partial(self, text: str, tokens: int) -> None:
        with self._wake:
            self._partial = (text, tokens)
            self._wake.notify()

    def _next(self, last_sent: float) -> tuple[EventType, str, int] | None:
        """The next event to send: "started", then the first text at once (streaming lag), later texts at most
        every min_interval_s (last_sent: when the previous text went)."""
        if self._started:
            self._started = False
            return EventType.started, self.owner, 0
        if self._partial is not None and time.monotonic() - last_sent >= self.min_interval_s:
            (text, tokens), self._partial = self._partial, None
            return EventType.partial, text, tokens
        return None

    def _loop(self) -> None:
        last_sent = last_poll = last_lease = 0.0
        while True:
            with self._wake:
                if not self._closed and not self._started and self._partial is None:
                    self._wake.wait(self.poll_s)
                if self._closed:
                    return  # the final text travels with the result
                item = self._next(last_sent)
                if item is None and self._partial is not None:
                    self._wake.wait(max(0.0, self.min_interval_s - (time.monotonic() - last_sent)))
            try:
                if item is not None:
                    events.add_event(self.client, self.job_id, *item)
                    if item[0] == EventType.partial:
                        last_sent = time.monotonic()
                now = time.monotonic()
                if now - last_poll >= self.poll_s:
                    last_poll = now
                    # Stopped by the user; or every follower gone for WATCH_TTL_S (e.g. the web died).
                    pipe = self.client.pipeline(transaction=False)
                    pipe.exists(keys.cancel(self.job_id))
                    pipe.exists(keys.watchers(self.job_id))
                    cancel, watched = pipe.execute()
                    if cancel or not watched:
                        self.cancelled.set()
                if now - last_lease >= OWNER_TTL_S / 6:
                    last_lease = now
                    self.client.set(keys.owner(self.job_id), self.owner, ex=OWNER_TTL_S)
            except REDIS_ERRORS:
                time.sleep(self.poll_s)  # best effort: generation goes on; the final result is retried
