"""Every Redis key the processes share, in one place (the Celery queue lists are named in common.queue)."""

from __future__ import annotations

PREFIX = "smolvlm2"
INFLIGHT = f"{PREFIX}:inflight"  # delivery tag → {instance, job_id, since} of each running job


def job(job_id: str, what: str) -> str:
    return f"{PREFIX}:job:{job_id}:{what}"


def events(job_id: str) -> str:
    """The job's event stream: started, partial text, done (with the result)."""
    return job(job_id, "events")


def attempts(job_id: str) -> str:
    """How many times a worker has begun this job (a redelivered job counts again)."""
    return job(job_id, "attempts")


def worker(name: str) -> str:
    """A worker's heartbeat (its WorkerInfo as JSON, with a TTL)."""
    return f"{PREFIX}:worker:{name}"

