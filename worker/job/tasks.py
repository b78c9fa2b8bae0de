"""Celery wiring: the app, the one task, and the worker's start-up. Job logic lives in worker.job.runner."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from celery import signals

from common import events, keys
from common.queue import TASK_NAME, make_celery
from common.schemas import JobKind, JobResult, JobStatus, WorkerState
from common.settings import Settings
from worker.job import runner
from worker.job.housekeeping import Housekeeping
from worker.job.liveness import Liveness
from worker.runtime import Runtime

log = logging.getLogger(__name__)

app = make_celery()
AFFINITY_TTL_S = 3600


@dataclass
class Parts:
    """What one worker process owns, built once by start()."""

    settings: Settings
    runtime: Runtime
    redis: redis.Redis
    liveness: Liveness
    housekeeping: Housekeeping


_parts: Parts | None = None


def start(settings: Settings) -> Parts:
    """Build the worker's parts before Celery starts; the model loads later, in worker_process_init."""
    global _parts
    client = events.connect(settings.redis_url)
    runtime = Runtime(settings)
    _parts = Parts(settings, runtime, client, Liveness(app, settings, client, runtime),
                   Housekeeping(settings, client, runtime))
    return _parts


@signals.worker_init.connect
def _on_worker_init(**_: object) -> None:
    _parts.liveness.start()  # the heartbeat says "loading" while the model loads
    _parts.housekeeping.start()


@signals.worker_process_init.connect
def _on_process_init(**_: object) -> None:
    # Solo pool: this runs in the worker process itself, never in a forked child.
    _parts.liveness.state = WorkerState.ready if _parts.runtime.setup() else WorkerState.error
    _parts.liveness.beat()


@signals.worker_shutdown.connect
def _on_shutdown(**_: object) -> None:
    _parts.housekeeping.stop()
    _parts.liveness.stop()


@app.task(name=TASK_NAME, bind=True)
def run_job(self, payload: dict) -> None:
    parts = _parts
    tag = (self.request.properties or {}).get("delivery_tag")  # kombu's id of this delivery
    fields = payload if isinstance(payload, dict) else {}
    with parts.liveness.job(str(fields.get("job_id", "")), tag, fields.get("queued_at")) as job:
        result = runner.run(payload, parts.runtime, parts.redis, parts.liveness.name)
        if result is None:
            return  # answered already, or running on another worker
        job.free()  # "ready" before the answer goes out: a follow-up it brings may be routed here at once
        remember_cache(parts, fields, result)
        runner.publish(parts.redis, result, parts.settings.result_ttl)


def remember_cache(parts: Parts, payload: dict, result: JobResult) -> None:
    """A chat answer leaves the media's prompt cache here: follow-ups about it are routed to this worker."""
    media = (payload.get("media") or {}).get("path")
    if media and result.kind == JobKind.chat and result.status == JobStatus.ok and parts.runtime.cache.enabled:
        try:
            parts.redis.set(keys.affinity(media), parts.liveness.name, ex=AFFINITY_TTL_S)
        except Exception:  # a missed follow-up route is a cache miss, never an error
            log.warning("job %s: prompt cache holder not recorded", result.job_id, exc_info=True)
