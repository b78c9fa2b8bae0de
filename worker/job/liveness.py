"""A worker's liveness thread: its heartbeat (state, model, device), redelivery of jobs held by dead
workers, and the hard time limit.

Kombu restores an unacknowledged message only after the visibility timeout, which must stay above
the job time limit. So each worker records the delivery tag of the job it runs; when a worker's
heartbeat lapses, any live worker puts that job back at the head of the queue at once."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from common import events, keys
from common.queue import QUEUE, worker_queue
from common.schemas import WorkerInfo, WorkerState
from worker.job.channel import retry

log = logging.getLogger(__name__)


def instance_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class RunningJob:
    """The handle of one job inside Liveness.job()."""

    def __init__(self, liveness: Liveness) -> None:
        self.liveness, self.freed = liveness, False

    def free(self) -> None:
        """The job's answer is about to go out: from now on this worker counts as free (said once, at once)."""
        if not self.freed:
            self.freed = True
            self.liveness._free()
            retry("job answered", self.liveness.beat)


class Liveness:
    def __init__(self, app, settings, redis_client, runtime) -> None:
        self.app, self.settings, self.redis, self.runtime = app, settings, redis_client, runtime
        self.name = instance_name()
        self.queue = worker_queue(self.name)
        self.state = WorkerState.loading
        self.job_id: str | None = None
        self.job_started: float | None = None
        self._connected_since: float | None = None  # since when our own heartbeats have reached Redis
        # A heartbeat is read and sent under this lock, and the state changes under it: a beat of the thread can
        # never send "busy" after the job's own "ready" (the one "ready" of a job is the last word).
        self._said = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="liveness", daemon=True)

    @property
    def ttl_s(self) -> float:
        return self.settings.worker_heartbeat_s * 3

    # ------------------------------------------------------------ around each job

    @contextmanager
    def job(self, job_id: str, delivery_tag: str | None, queued_at: float | None = None) -> Iterator[RunningJob]:
        """Wraps one job: on entry the worker is busy with it and its delivery is recorded (a dead worker's job is
        put back by the others); on exit the record goes and the worker is free. Call free() on the handle before
        the answer goes out: the heartbeat then says "ready" before a follow-up can be routed here, and the exit
        says nothing more (one "ready" per job)."""
        with self._said:
            self.job_id, self.job_started, self.state = job_id, time.time(), WorkerState.busy
        record = {"instance": self.name, "job_id": job_id, "since": self.job_started, "queued_at": queued_at}

        def begin() -> None:
            pipe = self.redis.pipeline()
            pipe.zrem(keys.WAITING, job_id)
            if delivery_tag:
                pipe.hset(keys.INFLIGHT, delivery_tag, json.dumps(record))
            pipe.execute()
            self.beat()

        retry(f"job {job_id}: begin", begin)
        running = RunningJob(self)
        try:
            yield running
        finally:
            said_free = running.freed
            self._free()
            self.job_started = None  # the hard time limit watched the job to here (its answer going out included)

            def end() -> None:
                if delivery_tag:
                    self.redis.hdel(keys.INFLIGHT, delivery_tag)
                if not said_free:
                    self.beat()

            retry("job end", end)

    def _free(self) -> None:
        with self._said:
            self.job_id = None
            self.state = WorkerState.ready if self.runtime.model is not None else WorkerState.error

    # ------------------------------------------------------------ background

    def start(self) -> None:
        self.redis.sadd(keys.WORKER_QUEUES, self.queue)
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            events.remove_heartbeat(self.redis, self.name)
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass

    def beat(self) -> None:
        rt = self.runtime
        with self._said:
            entries, nbytes = rt.cache.stats()
            info = WorkerInfo(
                name=self.name, model_id=rt.model_id, device=rt.device, dtype=rt.dtype_name,
                state=self.state, job_id=self.job_id, error=rt.load_error, detail=rt.detail, queue=self.queue,
                backlog=int(self.redis.llen(self.queue)), cache_entries=entries, cache_bytes=nbytes,
            )
            events.publish_heartbeat(self.redis, info, self.ttl_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.worker_heartbeat_s):
            self._watchdog()
            try:
                t0 = time.monotonic()
                self.beat()
                now = time.monotonic()
                # A beat held up by a frozen Redis still succeeds when it thaws, though every heartbeat may have
                # lapsed meanwhile: a slow beat counts as an outage, like a failed one.
                if self._connected_since is None or now - t0 > self.settings.worker_heartbeat_s / 2:
                    self._connected_since = now
            except Exception:  # noqa: BLE001 - Redis away: say so once a tick, try again
                self._connected_since = None
                log.warning("heartbeat failed: Redis unavailable")
                continue
            try:
                # After an outage every heartbeat has lapsed at once: trust a missing one only when we
                # have been back long enough for its worker to have beaten again.
                if time.monotonic() - self._connected_since > self.ttl_s:
                    self.reap()
            except Exception:
                log.warning("liveness tick failed", exc_info=True)

    def reap(self) -> int:
        """Put back the jobs of workers whose heartbeat has lapsed (first the one each was running, then those
        waiting in its own queue, at the head of the shared queue); returns how many."""
        return self._restore_running() + self._move_orphaned_queues()

    def _move_orphaned_queues(self) -> int:
        moved = 0
        for queue in self.redis.smembers(keys.WORKER_QUEUES):
            instance = queue.removeprefix(f"{QUEUE}.w.")
            if queue == self.queue or self.redis.exists(keys.worker(instance)):
                continue
            # Kombu pushes on the left and takes from the right: moving newest-first onto the right end of the
            # shared queue keeps their order, oldest next in line.
            while self.redis.lmove(queue, QUEUE, "LEFT", "RIGHT") is not None:
                moved += 1
            if self.redis.llen(queue) == 0:
                self.redis.srem(keys.WORKER_QUEUES, queue)
                self.redis.srem(keys.WORKERS, instance)
                self.redis.delete(f"_kombu.binding.{queue}")
            if moved:
                log.warning("%d job(s) waiting for dead worker %s moved to the shared queue", moved, instance)
        return moved

    def _restore_running(self) -> int:
        restored = 0
        for tag, raw in self.redis.hgetall(keys.INFLIGHT).items():
            try:
                rec = json.loads(raw)
            except ValueError:
                rec = {}
            instance = rec.get("instance", "")
            if instance == self.name or self.redis.exists(keys.worker(instance)):
                continue
            if time.time() - float(rec.get("since", 0)) < self.ttl_s:
                continue  # just taken: its worker may not have beaten yet
            with self.app.connection_for_write() as conn:
                conn.default_channel.qos.restore_by_tag(tag)
            pipe = self.redis.pipeline()
            pipe.hdel(keys.INFLIGHT, tag)
            pipe.zadd(keys.WAITING, {rec.get("job_id", ""): float(rec.get("queued_at") or time.time())})
            pipe.execute()
            restored += 1
            log.warning("job %s of dead worker %s put back on the queue", rec.get("job_id"), instance)
        return restored

    def _watchdog(self) -> None:
        started = self.job_started
        if started and time.time() - started > self.settings.job_hard_time_limit:
            # Generation cannot be interrupted inside a forward pass: end the process; the job is
            # redelivered and, past MAX_ATTEMPTS, answered with a message.
            log.error("job %s exceeded the hard time limit: exiting", self.job_id)
            os._exit(70)
