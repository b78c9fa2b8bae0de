"""Session-scoped real services: redis-server, the test model, a worker process (scripts/stack.py)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from common import events
from common.settings import Settings
from common.store import MediaStore
from scripts.s3server import S3Server
from scripts.stack import ROOT, RedisServer, Service, child_env, wait_for, worker_ready

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def test_model() -> Path:
    """The tiny random-weight SmolVLM2 model (built once; `make test` builds it beforehand)."""
    from scripts.build_test_model import build

    path = Path(os.environ.get("TEST_MODEL_DIR", ROOT / "data" / "test-model"))
    return build(path, size="tiny")


@pytest.fixture(scope="session")
def endless_env(test_model, tmp_path_factory) -> dict[str, str]:
    """A worker's environment whose answers end only at MAX_NEW_TOKENS, a stop or the time limit, on any CPU: the
    tiny model with an end-of-answer id past its vocabulary (it can never write it), and no loop cut. For tests that
    need a job still running when something happens to it: the tiny model's own answers end after 500–1300 tokens
    (cut as a loop; which tokens, each CPU's rounding decides), and a fast CPU writes those in half a second."""
    import json
    import shutil

    out = tmp_path_factory.mktemp("endless") / "model"
    shutil.copytree(test_model, out)
    vocab = json.loads((out / "config.json").read_text())["text_config"]["vocab_size"]
    gen = json.loads((out / "generation_config.json").read_text())
    (out / "generation_config.json").write_text(json.dumps({**gen, "eos_token_id": vocab + 1}))
    return {"SMOLVLM2_MODEL_ID": str(out), "LOOP_REPEATS": "0"}


@pytest.fixture(scope="session")
def test_translators() -> dict[str, Path]:
    """The tiny random-weight MarianMT translators, by direction ("ru-en", "en-ru"); `make setup` builds them."""
    from scripts.build_test_translation import build_all

    ru_en, en_ru = build_all(Path(os.environ.get("TEST_TRANSLATION_DIR", ROOT / "data")))
    return {"ru-en": ru_en, "en-ru": en_ru}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"), log=ARTIFACTS / "logs" / "redis-session.log").start()
    yield server
    server.stop()


@contextmanager
def running_s3(tmp_path_factory, name: str):
    """A real S3-compatible server (SeaweedFS `weed mini`) in a folder of its own, stopped afterwards."""
    server = S3Server(tmp_path_factory.mktemp(name), log=ARTIFACTS / "logs" / f"{name}.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One S3 server for the whole session; tests that stop it start their own (running_s3) so faults stay
    contained."""
    with running_s3(tmp_path_factory, "s3-session") as server:
        yield server


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory, request) -> RedisServer:
    """A redis-server of the test module's own: no worker of the session takes jobs or beats there."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    server = RedisServer(tmp_path_factory.mktemp("redis"), log=ARTIFACTS / "logs" / f"redis-{name}.log").start()
    yield server
    server.stop()


def make_settings(redis_url: str, root: Path, model: Path, **overrides) -> Settings:
    """Settings for a test stack rooted at root (media and results dirs are created)."""
    dirs = {"media_dir": root / "media", "results_dir": root / "results"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    values = dict(redis_url=redis_url, smolvlm2_model_id=str(model), max_new_tokens=12, queue_wait_timeout=60,
                  translation_model_ru_en=str(ROOT / "data" / "test-translation-ru-en"),
                  translation_model_en_ru=str(ROOT / "data" / "test-translation-en-ru"))
    values.update(dirs)
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def settings(redis_server, tmp_path_factory, test_model, test_translators) -> Settings:
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
    from web.queue.client import JobClient

    return JobClient(settings)
