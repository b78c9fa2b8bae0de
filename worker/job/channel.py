"""A job's Redis I/O on the worker: its claim (one Lua script), then, kept off the generation thread while it runs,
partial text (best effort: the latest text wins; Redis slow or away never stalls generation), the cancel flag
polled into a threading.Event the stopping criteria read without I/O, and the owner lease renewed. Only the claim
and the final result wait for Redis (retry)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import NamedTuple

import redis

from common import events, keys
from common.events import REDIS_ERRORS
from common.schemas import EventType, JobResult

log = logging.getLogger(__name__)

OWNER_TTL_S = 60
ATTEMPTS_TTL_S = 86400
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


# KEYS: result, owner, attempts, cancel, watchers, claim token. ARGV: this worker, owner TTL, heartbeat key prefix,
# attempts TTL, this claim's token. Not ours: answered already, or its owner is another worker whose heartbeat
# lives (a duplicate delivery). Ours (a fresh job, or its worker died): the lease taken, the attempt counted once
# per claim (a retried copy of the same claim finds its token), and whether it is still worth running.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0, 0} end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. holder) == 1 then return {0, 0, 0} end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local attempt
if redis.call('GET', KEYS[6]) == ARGV[5] then
  attempt = tonumber(redis.call('GET', KEYS[3]) or '1')
else
  attempt = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
  redis.call('SET', KEYS[6], ARGV[5], 'EX', ARGV[4])
end
local abandoned = redis.call('EXISTS', KEYS[4]) == 1 or redis.call('EXISTS', KEYS[5]) == 0
return {1, attempt, abandoned and 1 or 0}
"""


class Claim(NamedTuple):
    ours: bool  # False: answered already or running on a live worker; leave it alone
    attempt: int = 0  # how many times a worker has begun it, this time included
    abandoned: bool = False  # stopped by the user, or nobody follows it any more (its caller went away)


def claim(client: redis.Redis, job_id: str, me: str) -> Claim:
    """Take the job, in one round trip; waits through a Redis outage. The script may run more than once (a copy
    that timed out still runs when the server thaws): one token per call makes the copies count one attempt."""
    job_keys = [keys.result(job_id), keys.owner(job_id), keys.attempts(job_id), keys.cancel(job_id),
                keys.watchers(job_id), keys.claim(job_id)]
    args = [me, OWNER_TTL_S, keys.worker(""), ATTEMPTS_TTL_S, uuid.uuid4().hex]
    ours, attempt, abandoned = retry(f"job {job_id}: claim", lambda: client.eval(_CLAIM, len(job_keys), *job_keys,
                                                                                 *args))
    return Claim(bool(ours), int(attempt), bool(abandoned))


def finish(client: redis.Redis, result: JobResult, result_ttl: int) -> bool:
    """The job's final result, written once (waits through a Redis outage); the owner lease goes with it. False
    when the job had ended already (withdrawn by the web, or answered by another delivery)."""
    ended = retry(f"job {result.job_id}: result", lambda: events.finish(client, result, result_ttl))
    try:
        client.delete(keys.owner(result.job_id))
    except REDIS_ERRORS:
        pass  # the lease expires by itself
    return ended


class JobChannel:
    def __init__(self, client: redis.Redis, job_id: str, owner: str, min_interval_s: float = 0.05,
                 poll_s: float = 0.1) -> None:
        self.client, self.job_id, self.owner = client, job_id, owner
        self.min_interval_s, self.poll_s = min_interval_s, poll_s
        self.cancelled = threading.Event()
        self.polls = 0  # cancel-flag reads done so far (how a test knows a stop would have been seen)
        self._wake = threading.Condition()
        self._started = False  # "started" waiting to be sent
        self._partial: tuple[str, int, int | None] | None = None  # the latest text not yet sent
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

    def partial(self, text: str, tokens: int, stable: int | None = None) -> None:
        """The answer so far; stable: how much of it will not change (a translated answer, common.events)."""
        with self._wake:
            self._partial = (text, tokens, stable)
            self._wake.notify()

    def _next(self, last_sent: float) -> tuple[EventType, str, int, int | None] | None:
        """The next event to send: "started", then the first text at once (streaming lag), later texts at most
        every min_interval_s (last_sent: when the previous text went)."""
        if self._started:
            self._started = False
            return EventType.started, self.owner, 0, None
        if self._partial is not None and time.monotonic() - last_sent >= self.min_interval_s:
            (text, tokens, stable), self._partial = self._partial, None
            return EventType.partial, text, tokens, stable
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
                    self.polls += 1
                if now - last_lease >= OWNER_TTL_S / 6:
                    last_lease = now
                    self.client.set(keys.owner(self.job_id), self.owner, ex=OWNER_TTL_S)
            except REDIS_ERRORS:
                time.sleep(self.poll_s)  # best effort: generation goes on; the final result is retried
