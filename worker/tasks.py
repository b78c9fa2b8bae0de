"""Celery wiring: the app, the one task, and the worker's start-up. Job logic lives in worker.runner."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from celery import signals

from common import events, keys
from common.queue import TASK_NAME, make_celery
from common.schemas import WorkerState
from common.settings import Settings
from worker.housekeeping import Housekeeping
from worker.liveness import Liveness
from worker.runner import execute
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
    tag = (self.request.properties or {}).get("delivery_tag")  # kombu's id of this delivery
    job_id = str(payload.get("job_id", "")) if isinstance(payload, dict) else ""
    _parts.liveness.job_begun(job_id, tag, payload.get("queued_at") if isinstance(payload, dict) else None)
    try:
        execute(payload, _parts.runtime, _parts.redis, _parts.liveness.name,
                before_finish=lambda result: answered(_parts, payload, result))
    finally:
        _parts.liveness.job_finished()


def answered(parts: Parts, payload: dict, result) -> None:
    """Just before the answer goes out: say "ready" (a follow-up may be routed at once), and for a chat answer
    record this worker as the holder of the media's prompt cache."""
    parts.liveness.answered()
    media = (payload.get("media") or {}).get("path")
    if media and result.kind == "chat" and result.status == "ok" and parts.runtime.cache.enabled:
        parts.redis.set(keys.affinity(media), parts.liveness.name, ex=AFFINITY_TTL_S)
