"""Session-scoped real services: redis-server, the test model, a worker process (scripts/stack.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common import events
from common.settings import Settings
from common.storage import MediaStore
from scripts.stack import ROOT, RedisServer, Service, child_env, wait_for, worker_ready

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def test_model() -> Path:
    """The tiny random-weight SmolVLM2 model (built once; `make test` builds it beforehand)."""
    from scripts.build_test_model import build

    path = Path(os.environ.get("TEST_MODEL_DIR", ROOT / "data" / "test-model"))
    return build(path, size="tiny")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"), log=ARTIFACTS / "logs" / "redis-session.log").start()
    yield server
    server.stop()


def make_settings(redis_url: str, root: Path, model: Path, **overrides) -> Settings:
    """Settings for a test stack rooted at root (media and results dirs are created)."""
    dirs = {"media_dir": root / "media", "results_dir": root / "results"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    values = dict(redis_url=redis_url, smolvlm2_model_id=str(model), max_new_tokens=12, queue_wait_timeout=60)
    values.update(dirs)
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def settings(redis_server, tmp_path_factory, test_model) -> Settings:
    return make_settings(redis_server.url, tmp_path_factory.mktemp("stack"), test_model)


@pytest.fixture(scope="session")
def store(settings) -> MediaStore:
    s = MediaStore(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
    s.ensure_dirs()
    return s


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return child_env(settings.redis_url, settings.smolvlm2_model_id, settings.media_dir, settings.results_dir,
                     **extra)


def start_worker(settings: Settings, name: str = "worker", **extra: str) -> Service:
    """Start `python -m worker` and wait until its heartbeat says the model is ready (or failed to load)."""
    svc = Service.module(name, "worker", worker_env(settings, **extra), ARTIFACTS / "logs" / f"{name}.log").start()
    client = events.connect(settings.redis_url)
    wait_for(lambda: worker_ready(client, svc), 120, "worker ready", interval=0.1)
    return svc


@pytest.fixture(scope="session")
def worker(settings):
    svc = start_worker(settings)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def client(settings, worker):
    from web.jobs import JobClient

    return JobClient(settings)
