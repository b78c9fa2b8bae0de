"""The web's side of the queue: admit and send a job, follow it (queue position, partial text, the result),
stop it. Talks to the workers only through Redis: Celery messages, event streams, heartbeats, the result key.

Every follow ends in a done update with a result: the answer, an error in Russian, or «остановлено». A Redis
outage shorter than REDIS_OUTAGE_GRACE_S costs no answer: following goes on when Redis is back."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import redis

from common import events, keys, metrics, originals
from common.errors import QueueUnavailable, UserError, queue_full, too_many_jobs
from common.events import REDIS_ERRORS
from common.queue import QUEUE, TASK_NAME, make_celery
from common.schemas import JobKind, JobRequest, JobResult, JobState, JobStatus, Turn, WorkerInfo, WorkerState
from common.settings import Settings
from web.queue.tracker import Tracker, Update
from web.queue.watcher import WATCH_TTL_S, Watcher

log = logging.getLogger(__name__)

# KEYS: waiting, client jobs, watchers, metrics. ARGV: job id, now, max queue, max per client, stale before,
# watch TTL, the job's jobs_total|<kind>|rejected field (a refusal is counted in the same atomic step).
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
local waiting = redis.call('ZCARD', KEYS[1])
redis.call('SET', KEYS[3], '1', 'EX', ARGV[6])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {1, waiting} end  -- admitted already: a retried submit
if tonumber(ARGV[3]) > 0 and waiting >= tonumber(ARGV[3]) then
  redis.call('HINCRBYFLOAT', KEYS[4], ARGV[7], 1)
  return {-1, waiting}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if tonumber(ARGV[4]) > 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  redis.call('HINCRBYFLOAT', KEYS[4], ARGV[7], 1)
  return {-2, waiting}
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], 86400)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return {1, waiting}
"""


class JobClient:
    def __init__(self, settings: Settings, verify_every_s: float = 30.0) -> None:
        self.settings, self.verify_every_s = settings, verify_every_s
        self.app = make_celery(settings)
        self.redis = events.connect(settings.redis_url, settings.redis_max_connections)
        self.watcher = Watcher(self.redis)
        self._admit = self.redis.register_script(_ADMIT)
        self._queues: dict[str, str] = {}  # job id → the queue it was sent to (to withdraw it)
        self._snapshot: tuple[float, list] = (0.0, [])
        self._listings: dict[str, tuple[float, set[str]]] = {}  # queue → (read at, job ids in it)

    # ------------------------------------------------------------ status

    def workers(self):
        try:
            return events.list_workers(self.redis)
        except REDIS_ERRORS as exc:
            raise QueueUnavailable() from exc

    def queue_length(self) -> int:
        """Jobs waiting for a worker (not counting running ones)."""
        try:
            return int(self.redis.zcard(keys.WAITING))
        except REDIS_ERRORS as exc:
            raise QueueUnavailable() from exc

    # ------------------------------------------------------------ jobs

    def workers_snapshot(self, max_age_s: float = 0.5) -> list:
        """The heartbeats, read at most every max_age_s (many submits share one read)."""
        at, workers = self._snapshot
        if time.monotonic() - at > max_age_s:
            workers = events.list_workers(self.redis)
            self._snapshot = (time.monotonic(), workers)
        return workers

    def route(self, req: JobRequest) -> str:
        """The queue for a job: a chat job goes to the worker that last answered about the same media (its
        prompt cache spares the vision encoder and the old turns) while that worker is alive and not backed up;
        anything else to the shared queue, where any worker answers it (a cache miss, never an error)."""
        if req.kind != JobKind.chat:
            return QUEUE
        holder = self.redis.get(keys.affinity(req.media.path))
        if not holder:
            return QUEUE
        raw = self.redis.get(keys.worker(holder))  # the holder's own state fresh; the others' may be 0.5 s old
        info = WorkerInfo.model_validate_json(raw) if raw else None
        workers = self.workers_snapshot()
        if info is None or not info.queue or info.state not in (WorkerState.ready, WorkerState.busy):
            return QUEUE
        # A worker takes its own queue first (common.queue, queue_order_strategy "priority"): one job waiting
        # there delays a follow-up by that job (cached: a tenth of a miss). The heartbeat sent just before an
        # answer goes out still counts the job the worker takes next, so one waiting job is normal.
        if info.backlog > 1:
            return QUEUE
        if info.state == WorkerState.busy and any(w.state == WorkerState.ready for w in workers if w.name != holder):
            return QUEUE  # another worker can answer now, without the cache
        return info.queue

    def admissible(self, kind: JobKind, client: str | None) -> None:
        """Busy now if submit() would refuse this job (the queue full, the client at its limit), counted as a refusal:
        checked before a request's file is stored, so a refused caller leaves nothing on disk. submit() checks again,
        atomically."""
        s = self.settings
        stale = time.time() - (s.queue_wait_timeout + s.job_hard_time_limit + 60)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcount(keys.WAITING, stale, "+inf")
            pipe.zcount(keys.client_jobs(client or "-"), stale, "+inf")
            waiting, mine = pipe.execute()
            busy = None
            if s.max_queue_length and waiting >= s.max_queue_length:
                busy = queue_full(int(waiting), s.max_queue_length)
            elif client and s.max_jobs_per_client and mine >= s.max_jobs_per_client:
                busy = too_many_jobs(s.max_jobs_per_client)
            if busy is not None:
                self.redis.hincrbyfloat(keys.METRICS, metrics.field("jobs_total", str(kind), metrics.REJECTED), 1)
                raise busy
        except REDIS_ERRORS as exc:
            raise QueueUnavailable() from exc

    def submit(self, req: JobRequest, client: str | None = None, queue: str | None = None) -> str:
        """Admit (queue length, the client's jobs) and send; returns the queue it went to. QueueUnavailable at
        once if Redis is away; Busy if the queue or the client is over its limit."""
        s = self.settings
        stale = time.time() - (s.queue_wait_timeout + s.job_hard_time_limit + 60)
        try:
            code, waiting = self._admit(
                keys=[keys.WAITING, keys.client_jobs(client or "-"), keys.watchers(req.job_id), keys.METRICS],
                args=[req.job_id, req.queued_at, s.max_queue_length, s.max_jobs_per_client if client else 0,
                      stale, WATCH_TTL_S, metrics.field("jobs_total", str(req.kind), metrics.REJECTED)],
            )
            if code == -1:
                raise queue_full(int(waiting), s.max_queue_length)  # counted already: jobs_total{status="rejected"}
            if code == -2:
                raise too_many_jobs(s.max_jobs_per_client)
            queue = queue or self.route(req)
            self._send(req, queue)
        except UserError:
            raise
        except REDIS_ERRORS as exc:
            raise QueueUnavailable() from exc
        except redis.exceptions.ResponseError as exc:  # e.g. OOM: maxmemory reached, nothing is evicted
            log.error("Redis refused job %s: %s", req.job_id, exc)
            raise QueueUnavailable("Очередь переполнена: в Redis кончилась память. Попробуйте позже.") from exc
        return queue

    def _send(self, req: JobRequest, queue: str) -> None:
        self._queues[req.job_id] = queue
        s = self.settings
        self.app.send_task(TASK_NAME, args=[req.model_dump(mode="json")], task_id=req.job_id, queue=queue,
                           expires=s.queue_wait_timeout + s.job_hard_time_limit)

    def queued_ids(self, queue: str, max_age_s: float = 1.0) -> set[str]:
        """The job ids of the messages in a queue, read at most every max_age_s: the trackers checked at once
        after an outage share one read of each queue."""
        at, ids = self._listings.get(queue, (0.0, set()))
        if time.monotonic() - at > max_age_s:
            at, ids = time.monotonic(), set()
            for raw in self.redis.lrange(queue, 0, -1):
                try:
                    ids.add(json.loads(raw)["headers"]["id"])
                except (ValueError, KeyError, TypeError):
                    continue
            self._listings[queue] = (at, ids)
        return ids

    def resend_if_lost(self, tr: Tracker) -> bool:
        """A queued job whose message is nowhere — not in its queue or the shared one, not taken by a worker
        (kombu's unacked), not begun — was lost by the broker: a worker's connection dropped while it popped the
        message (seen around a Redis restart). Send it again to the shared queue; a copy that does turn up later
        is not run twice (the worker's claim). Lists are read before unacked: a message moves that way."""
        tr.verify_at = time.monotonic() + self.verify_every_s
        job_id = tr.req.job_id
        try:
            if self.redis.zscore(keys.WAITING, job_id) is None:
                return False  # begun or withdrawn
            for queue in dict.fromkeys((self._queues.get(job_id, QUEUE), QUEUE)):
                if job_id in self.queued_ids(queue):
                    return False
            if any(job_id in raw for raw in self.redis.hvals(keys.KOMBU_UNACKED)):
                return False
            if self.redis.exists(keys.result(job_id), keys.owner(job_id)):
                return False
            log.warning("job %s: its queue message was lost (a broker connection dropped); sent again", job_id)
            self._send(tr.req, QUEUE)
            return True
        except REDIS_ERRORS:
            return False  # looked at again after the outage

    def release(self, req: JobRequest, client: str | None) -> None:
        """The client no longer waits on this job."""
        self._queues.pop(req.job_id, None)
        if client:
            try:
                self.redis.zrem(keys.client_jobs(client), req.job_id)
            except REDIS_ERRORS:
                pass  # stale entries expire in the admission script

    def cancel(self, job_id: str, kind: JobKind = JobKind.chat) -> bool:
        """Stop a job: a queued one is withdrawn and ends as cancelled; a running one stops at its next token
        (the worker ends it, keeping the partial answer). False if it had ended already."""
        try:
            events.request_cancel(self.redis, job_id)
            if self.redis.zscore(keys.WAITING, job_id) is not None:
                return self.withdraw(job_id, JobResult(job_id=job_id, kind=kind, status=JobStatus.cancelled))
            return not self.redis.exists(keys.result(job_id))
        except REDIS_ERRORS as exc:
            raise QueueUnavailable() from exc

    def abandon(self, job_id: str, kind: JobKind = JobKind.chat) -> bool:
        """Stop a job nobody will read (its caller never opened its event stream), counted as abandoned."""
        stopped = self.cancel(job_id, kind)
        if stopped:
            try:
                self.redis.hincrbyfloat(keys.METRICS, metrics.field("jobs_abandoned_total", str(kind), ""), 1)
            except REDIS_ERRORS:
                pass
        return stopped

    def withdraw(self, job_id: str, result: JobResult) -> bool:
        """Take a queued job out of its queue and end it with result; False if a worker answered it first."""
        queue = self._queues.get(job_id, QUEUE)
        for raw in self.redis.lrange(queue, 0, self.settings.max_queue_length or -1):
            try:
                if json.loads(raw).get("headers", {}).get("id") == job_id:
                    self.redis.lrem(queue, 1, raw)
                    break
            except ValueError:
                continue
        return events.finish(self.redis, result, self.settings.result_ttl)

    # ------------------------------------------------------------ following

    def _tracker(self, req: JobRequest, queue_wait_s: float | None) -> Tracker:
        wait_s = self.settings.queue_wait_timeout if queue_wait_s is None else queue_wait_s
        return Tracker(req, wait_s, self.settings.redis_outage_grace_s, verify_every_s=self.verify_every_s)

    def _overdue(self, tr: Tracker) -> list[Update]:
        try:
            if self.withdraw(tr.req.job_id, tr.no_worker()):
                return tr.feed(tr.no_worker())
        except REDIS_ERRORS:
            pass
        tr.give_up = time.monotonic() + 1  # a worker took it meanwhile, or Redis blinked: look again
        return []

    @staticmethod
    def _timed_due(tr: Tracker) -> bool:
        now = time.monotonic()
        return tr.verify_due(now) or tr.overdue(now)

    def _timed(self, tr: Tracker) -> list[Update]:
        """The time-driven steps of a follow (they read Redis): look for a lost message, withdraw an overdue job."""
        if tr.verify_due(time.monotonic()):
            self.resend_if_lost(tr)
        return self._overdue(tr) if tr.overdue(time.monotonic()) else []

    async def afollow(self, req: JobRequest, queue_wait_s: float | None = None, client: str | None = None,
                      heartbeat_s: float | None = None) -> AsyncIterator[Update]:
        """Updates of a submitted job until its result; no thread is held while waiting, and cancellation or closing
        early stops the job. heartbeat_s: yield a heartbeat update when nothing happened for that long (Gradio
        notices a caller that went away only when a generator yields)."""
        tr = self._tracker(req, queue_wait_s)
        sub = self.watcher.subscribe(req.job_id, req.kind, asyncio.get_running_loop())
        last = time.monotonic()
        try:
            while not tr.done:
                updates = tr.feed(await sub.aget(timeout=0.25))
                if self._timed_due(tr):
                    updates += await asyncio.to_thread(self._timed, tr)
                if not updates and heartbeat_s is not None and time.monotonic() - last >= heartbeat_s:
                    state = JobState.running if tr.started else JobState.queued
                    updates = [Update(state, text=tr.text, heartbeat=True)]
                for update in updates:
                    last = time.monotonic()
                    yield update
        finally:
            self.watcher.unsubscribe(sub)
            await asyncio.to_thread(self._end_follow, tr, client)

    def _end_follow(self, tr: Tracker, client: str | None) -> None:
        if tr.result is not None:
            self.remember_originals(tr.req, tr.result)
        if not tr.done:  # the caller went away (closed page, cancelled call): the job is not worth running
            try:
                self.cancel(tr.req.job_id, tr.req.kind)
            except UserError:
                log.warning("job %s: could not be stopped (Redis unavailable)", tr.req.job_id)
        self.release(tr.req, client)

    def remember_originals(self, req: JobRequest, result: JobResult) -> None:
        """A translated answer: what was shown → what the model saw and wrote, for API callers who send the history
        back as they were shown it (common.originals). Best effort: without it a turn is translated back."""
        if result.answer_en is None and result.question_en is None:
            return
        pairs = {result.answer: result.answer_en or ""}
        if getattr(req, "question", None) and result.question_en:
            pairs[req.question] = result.question_en
        try:
            originals.remember(self.redis, pairs, int(self.settings.media_ttl_hours * 3600))
        except REDIS_ERRORS:
            log.warning("job %s: its English original not kept (Redis unavailable)", req.job_id)

    def originals(self, turns: list[Turn]) -> list[Turn]:
        """A caller's history as it was shown to it, mapped back to the model's own turns where known."""
        try:
            return originals.recall(self.redis, turns)
        except REDIS_ERRORS:
            return turns  # the worker translates them back: a prompt cache miss, not an error

    def forget_conversation(self, conversation: str) -> None:
        """«Новый диалог»: the workers drop the prompt cache of this conversation."""
        try:
            self.redis.xadd(keys.CACHE_DROPS, {"conversation": conversation}, maxlen=1000, approximate=True)
        except REDIS_ERRORS as exc:
            raise QueueUnavailable() from exc
