"""Celery wiring: the one task and the worker's lifecycle signals. Logic lives in handler."""

from __future__ import annotations

import logging

from celery import signals

from common import events
from common.settings import get_settings
from worker.celery_app import TASK_NAME, app
from worker.handler import handle
from worker.liveness import Liveness
from worker.runtime import Runtime

log = logging.getLogger(__name__)

_settings = get_settings()
runtime = Runtime(_settings)
_redis = events.connect(_settings.redis_url)
liveness = Liveness(app, _settings, _redis, runtime)


@signals.worker_init.connect
def _on_worker_init(**_: object) -> None:
    liveness.start()  # heartbeat says "loading" while the model loads


@signals.worker_process_init.connect
def _on_process_init(**_: object) -> None:
    # Solo pool: this runs in the worker process itself, never in a forked child.
    liveness.state = "ready" if runtime.setup() else "error"
    liveness.beat()


@signals.worker_shutdown.connect
def _on_shutdown(**_: object) -> None:
    liveness.stop()


@app.task(name=TASK_NAME, bind=True)
def run_job(self, payload: dict) -> dict:
    tag = (self.request.properties or {}).get("delivery_tag")  # kombu's id of this delivery
    liveness.job_begun(str(payload.get("job_id", "")), tag)
    try:
        return handle(payload, runtime, _redis, liveness.name)
    finally:
        liveness.job_finished()
