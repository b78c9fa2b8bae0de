"""Worker faults with real processes: killed with -9 mid-job, model missing offline."""

from __future__ import annotations

import time

import pytest

from common import events
from common.schemas import ChatRequest, JobStatus, OcrRequest
from common.storage import MediaStore
from scripts import samples
from tests.conftest import make_settings, start_worker
from tests.procs import RedisServer, wait_for
from web.jobs import JobClient
from worker.handler import attempts_key
from worker.liveness import INFLIGHT_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory, test_model):
    """A private redis-server, so these workers never compete with the session worker."""
    root = tmp_path_factory.mktemp("faults")
    server = RedisServer(root / "redis").start()
    settings = make_settings(server.url, root, test_model)
    store = MediaStore(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
    yield settings, JobClient(settings), store
    server.stop()


def _wait_started(client, job_id: str, timeout: float = 30) -> str:
    last = "0"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in events.read_events(client.redis, job_id, last, block_ms=50):
            last = ev.id
            if ev.type == "started":
                return ev.text  # the worker's instance name
    raise TimeoutError("the job never started")


def test_job_of_a_killed_worker_is_redelivered(stack, tmp_path):
    settings, client, store = stack
    doomed = start_worker(settings, name="doomed", MAX_NEW_TOKENS="3000")
    ref = store.save_upload(samples.text_image(tmp_path / "t.png"))
    req = ChatRequest(media=ref, question="Describe the image.", max_new_tokens=3000)
    client.submit(req)
    name = _wait_started(client, req.job_id)
    assert f"-{doomed.proc.pid}-" in name
    time.sleep(0.05)
    doomed.kill()  # SIGKILL mid-job: no ack, no result
    assert client.app.backend.get_task_meta(req.job_id)["status"] in ("PENDING", "STARTED")
    assert client.redis.hlen(INFLIGHT_KEY) >= 1
    t_killed = time.monotonic()
    restarted = start_worker(settings, name="restarted")
    try:
        result = next(u.result for u in client.follow(req) if u.result is not None)
        assert result.status == JobStatus.ok, result.error
        assert f"-{restarted.proc.pid}-" in result.worker
        assert time.monotonic() - t_killed < 30
        assert int(client.redis.get(attempts_key(req.job_id))) == 2
        assert client.redis.hlen(INFLIGHT_KEY) == 0
    finally:
        restarted.stop()


def test_missing_model_offline_fails_jobs_with_a_remedy(stack, tmp_path):
    settings, client, store = stack
    model_id = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
    svc = start_worker(settings, name="offline", SMOLVLM2_MODEL_ID=model_id, MODEL_DEVICE="cuda",
                       HF_HOME=str(tmp_path / "empty-cache"))
    try:
        info = wait_for(lambda: [w for w in events.list_workers(client.redis) if w.model_id == model_id], 10,
                        "offline worker heartbeat")[0]
        assert info.state == "error" and model_id in info.error
        ref = store.save_upload(samples.text_image(tmp_path / "t.png"))
        for _ in range(2):  # the worker keeps serving after a failed job
            res = client.run(OcrRequest(media=ref))
            assert res.status == JobStatus.error
            assert model_id in res.error and "HF_HUB_OFFLINE" in res.error
        assert svc.alive
        log = svc.log_tail(400)
        assert "GPU недоступен" in log  # MODEL_DEVICE=cuda on a machine without one: warned, CPU used
    finally:
        svc.stop()
