"""A private stack per module: its own redis-server, workers and web, so faults stay contained."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common.settings import Settings
from common.storage import MediaStore
from tests.conftest import make_settings, start_worker
from tests.procs import RedisServer, Service
from tests.web.conftest import start_web
from web.jobs import JobClient


@dataclass
class Stack:
    root: Path
    redis: RedisServer
    settings: Settings
    client: JobClient
    store: MediaStore
    workers: list[Service] = field(default_factory=list)
    web: Service | None = None
    url: str = ""

    def add_worker(self, name: str, **env: str) -> Service:
        svc = start_worker(self.settings, name=name, **env)
        self.workers.append(svc)
        return svc

    def start_web(self, **env: str) -> str:
        self.web, self.url = start_web(self.settings, self.root / "web", name=f"web-{self.root.name}", **env)
        return self.url

    def stop(self) -> None:
        for svc in [self.web, *self.workers]:
            if svc is not None:
                svc.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def make_stack(tmp_path_factory, test_model):
    stacks: list[Stack] = []

    def make(**overrides) -> Stack:
        root = tmp_path_factory.mktemp("stack")
        server = RedisServer(root / "redis").start()
        settings = make_settings(server.url, root, test_model, **overrides)
        store = MediaStore(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
        store.ensure_dirs()
        stack = Stack(root, server, settings, JobClient(settings), store)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()
