"""A private stack per module: its own redis-server, workers and web, so faults stay contained."""

from __future__ import annotations

import time

import pytest

from common import events
from common.schemas import JobResult, JobStatus, WorkerState
from common.store import MediaStore
from scripts.stack import Stack, wait_for
from tests.conftest import ARTIFACTS
from web.queue.client import JobClient


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MB: what one request added shows as its growth."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def running_job(stack) -> str:
    """The id of the job a worker of the stack runs now (waits up to 30 s for one)."""
    return wait_for(lambda: next((w.job_id for w in events.list_workers(stack.client.redis) if w.job_id), None),
                    30, "a job running")


def cancelled_and_freed(stack, job_id: str, t0: float, wait_s: float) -> tuple[JobResult, float]:
    """The job ended as cancelled and every worker is ready again: (its result, seconds since t0)."""
    result = wait_for(lambda: events.get_result(stack.client.redis, job_id), wait_s, "the job ended")
    wait_for(lambda: all(w.state == WorkerState.ready for w in events.list_workers(stack.client.redis)), wait_s,
             "worker free")
    assert result.status == JobStatus.cancelled, (result.status, result.error)
    return result, time.monotonic() - t0


@pytest.fixture(scope="module")
def make_stack(tmp_path_factory, test_model):
    """make(**settings) → a started redis-server plus what tests read: .settings, .client (JobClient), .store."""
    stacks: list[Stack] = []

    def make(**overrides) -> Stack:
        root = tmp_path_factory.mktemp("stack")
        stack = Stack(root, test_model, log_dir=ARTIFACTS / "logs" / root.name)
        stacks.append(stack)
        stack.start_redis()
        stack.settings = stack.settings_for(**{"max_new_tokens": 12, "queue_wait_timeout": 60, **overrides})
        stack.client = JobClient(stack.settings)
        stack.store = MediaStore(stack.media_dir, stack.results_dir, stack.settings.max_upload_bytes)
        stack.store.ensure_dirs()
        return stack

    yield make
    for stack in stacks:
        stack.stop()
