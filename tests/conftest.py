"""Session-scoped real services: redis-server, the test model, a worker process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common import events
from common.settings import Settings
from common.storage import MediaStore
from tests.procs import ROOT, RedisServer, Service, base_env, wait_for

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def test_model() -> Path:
    """The tiny random-weight SmolVLM2 model (built once; `make test` builds it beforehand)."""
    from scripts.build_test_model import build

    path = Path(os.environ.get("TEST_MODEL_DIR", ROOT / "data" / "test-model"))
    return build(path, size="tiny")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):  # noqa: ANN001, ANN201
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack_dirs(tmp_path_factory) -> dict[str, Path]:  # noqa: ANN001
    root = tmp_path_factory.mktemp("stack")
    dirs = {"media": root / "media", "results": root / "results"}
    for d in dirs.values():
        d.mkdir()
    return dirs


@pytest.fixture(scope="session")
def settings(redis_server, stack_dirs, test_model) -> Settings:  # noqa: ANN001
    return Settings(
        _env_file=None, redis_url=redis_server.url, media_dir=stack_dirs["media"],
        results_dir=stack_dirs["results"], smolvlm2_model_id=str(test_model), max_new_tokens=12,
        queue_wait_timeout=60,
    )


@pytest.fixture(scope="session")
def store(settings) -> MediaStore:  # noqa: ANN001
    s = MediaStore(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
    s.ensure_dirs()
    return s


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return base_env(settings.redis_url, Path(settings.smolvlm2_model_id), settings.media_dir,
                    settings.results_dir, **extra)


def start_worker(settings: Settings, name: str = "worker", **extra: str) -> Service:
    """Start `python -m worker` and wait until its heartbeat says the model is ready."""
    svc = Service("worker", worker_env(settings, **extra), ARTIFACTS / "logs" / f"{name}.log").start()
    client = events.connect(settings.redis_url)

    def ready() -> bool:
        if not svc.alive:
            raise RuntimeError(f"worker exited:\n{svc.log_tail()}")
        tag = f"-{svc.proc.pid}-"
        return any(tag in w.name and w.state in ("ready", "error") for w in events.list_workers(client))

    wait_for(ready, 120, "worker ready", interval=0.1)
    return svc


@pytest.fixture(scope="session")
def worker(settings):  # noqa: ANN001, ANN201
    svc = start_worker(settings)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def client(settings, worker):  # noqa: ANN001, ANN201
    from web.jobs import JobClient

    return JobClient(settings)
