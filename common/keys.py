"""Every Redis key the processes share, in one place (the Celery queue lists are named in common.queue)."""

from __future__ import annotations

PREFIX = "smolvlm2"
INFLIGHT = f"{PREFIX}:inflight"  # delivery tag → {instance, job_id, since} of each running job
WAITING = f"{PREFIX}:waiting"  # sorted set: queued job id → enqueue time (positions without reading payloads)
METRICS = f"{PREFIX}:metrics"  # hash: Prometheus counters and histogram buckets, written once per job
WORKERS = f"{PREFIX}:workers"  # set: the instance names of started workers (heartbeats are read by name)
WORKER_QUEUES = f"{PREFIX}:worker-queues"  # set: the own queue of every worker that has started
CACHE_DROPS = f"{PREFIX}:cache-drops"  # stream: conversations whose prompt cache workers should forget
KOMBU_UNACKED = "unacked"  # kombu's Redis transport: delivery tag → payload of each message a worker has taken


def job(job_id: str, what: str) -> str:
    return f"{PREFIX}:job:{job_id}:{what}"


def events(job_id: str) -> str:
    """The job's event stream: started, partial text, done (with the result)."""
    return job(job_id, "events")


def result(job_id: str) -> str:
    """The job's final JobResult (JSON), written once: whoever writes it first ends the job."""
    return job(job_id, "result")


def cancel(job_id: str) -> str:
    """Set when the user stops the job (or its caller went away)."""
    return job(job_id, "cancel")


def owner(job_id: str) -> str:
    """The worker running the job, while it runs (a lease the worker keeps renewing)."""
    return job(job_id, "owner")


def attempts(job_id: str) -> str:
    """How many times a worker has begun this job (a redelivered job counts again)."""
    return job(job_id, "attempts")


def claim(job_id: str) -> str:
    """The token of the claim that counted the last attempt: the same claim sent again (a retry after a timeout,
    while the first copy still waited in the server's socket) is no new attempt."""
    return job(job_id, "claim")


def watchers(job_id: str) -> str:
    """Renewed while a web process follows the job; a queued job nobody follows any more is not run."""
    return job(job_id, "watched")


def worker(name: str) -> str:
    """A worker's heartbeat (its WorkerInfo as JSON, with a TTL)."""
    return f"{PREFIX}:worker:{name}"


def web_wake(instance: str) -> str:
    """A web process's wake-up stream: a new follower interrupts the watcher's blocking read."""
    return f"{PREFIX}:web:{instance}:wake"


def client_jobs(client: str) -> str:
    """Sorted set: the unanswered jobs of one client (an IP address) → submit time."""
    return f"{PREFIX}:client:{client}"


def recent(kind: str) -> str:
    """List: processing seconds of the latest jobs of a kind, newest first (queue time estimates)."""
    return f"{PREFIX}:recent:{kind}"


def affinity(media: str) -> str:
    """The worker that last answered about this media and may hold its prompt cache."""
    return f"{PREFIX}:affinity:{media}"


def original(digest: str) -> str:
    """The model's own English behind a text shown translated (sha1 of the shown text): common.originals."""
    return f"{PREFIX}:original:{digest}"
