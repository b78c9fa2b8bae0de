"""The worker's Celery app: the shared queue config plus the worker's tasks and signals."""

from __future__ import annotations

from common.queue import QUEUE, TASK_NAME, make_celery

app = make_celery()
app.conf.include = ["worker.tasks"]

__all__ = ["QUEUE", "TASK_NAME", "app"]
