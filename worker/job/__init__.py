"""The job's life on a worker: Celery task, runner, Redis channel, liveness, housekeeping, health."""
