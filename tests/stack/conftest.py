"""A private stack per module: its own redis-server, workers and web, so faults stay contained."""

from __future__ import annotations

import pytest

from common.storage import MediaStore
from scripts.stack import Stack
from tests.conftest import ARTIFACTS
from web.jobs import JobClient


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
