"""The Celery app shared by web (sends jobs) and worker (runs them): Redis broker, JSON only, at-least-once
delivery. No result backend: a job's one result is written by common.events.finish."""

from __future__ import annotations

from celery import Celery

from common.settings import Settings, get_settings

TASK_NAME = "smolvlm2.run_job"
QUEUE = "smolvlm2"  # the shared queue: any worker takes its jobs


def worker_queue(instance: str) -> str:
    """A worker's own queue: follow-ups go there, to the worker holding their prompt cache."""
    return f"{QUEUE}.w.{instance}"


def make_celery(settings: Settings | None = None) -> Celery:
    s = settings or get_settings()
    app = Celery("smolvlm2", broker=s.redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],  # a pickled message is rejected, never loaded
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_acks_late=True,  # a job is acknowledged only once it has an answer
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        # No task_soft_time_limit / task_time_limit: the solo pool does not enforce them. JOB_TIME_LIMIT is
        # enforced by the worker itself: checked between generated tokens and while decoding media
        # (worker.runtime), and past the hard limit the liveness watchdog ends the process (worker.job.liveness).
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        # Fail fast when Redis is away: the web says so in Russian instead of hanging.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        broker_transport_options={
            # Safety net above the hard limit, so a running job is never handed out twice;
            # a dead worker's job is restored much sooner by the liveness reaper (worker/job/liveness.py).
            "visibility_timeout": s.job_hard_time_limit + 60,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 3,
            # A worker's -Q order is its priority: its own queue (follow-ups for its prompt cache) first.
            "queue_order_strategy": "priority",
        },
        redis_socket_connect_timeout=3,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


