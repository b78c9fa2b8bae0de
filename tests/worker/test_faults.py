"""Worker faults with real processes: killed with -9 mid-job, model missing offline."""

from __future__ import annotations

import time

import pytest

from common import events, keys
from common.errors import ErrorCode
from common.queue import TASK_NAME
from common.schemas import ChatRequest, EventType, JobState, JobStatus, OcrRequest, WorkerState
from common.store import MediaStore
from scripts import jobs, samples
from scripts.stack import RedisServer, wait_for
from tests.conftest import ARTIFACTS, make_settings, start_worker
from web.queue.client import JobClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory, test_model):
    """A private redis-server, so these workers never compete with the session worker."""
    root = tmp_path_factory.mktemp("faults")
    server = RedisServer(root / "redis", log=ARTIFACTS / "logs" / "redis-faults.log").start()
    settings = make_settings(server.url, root, test_model)
    store = MediaStore(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
    client = JobClient(settings)
    client.server = server  # for the Redis-down test
    yield settings, client, store
    server.stop()


def stack_server(stack) -> RedisServer:
    return stack[1].server


def _wait_started(client, job_id: str, timeout: float = 30, until: str = "started") -> str:
    """The name of the worker that started the job, once the event `until` has been seen."""
    last, name = "0", ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in events.read_events(client.redis, job_id, last, block_ms=50):
            last = ev.id
            name = ev.text if ev.type == EventType.started else name
            if ev.type == until:
                return name
    raise TimeoutError("the job never started")


def test_job_of_a_killed_worker_is_redelivered(stack, tmp_path):
    settings, client, store = stack
    doomed = start_worker(settings, name="doomed", MAX_NEW_TOKENS="3000")
    ref = store.save_upload(samples.text_image(tmp_path / "t.png"))
    req = ChatRequest(media=ref, question="Describe the image.", max_new_tokens=3000)
    client.submit(req)
    name = _wait_started(client, req.job_id, until="partial")
    assert f"-{doomed.proc.pid}-" in name
    doomed.kill()  # SIGKILL mid-generation (text is streaming): no ack, no result
    assert events.get_result(client.redis, req.job_id) is None
    assert client.redis.hlen(keys.INFLIGHT) >= 1
    t_killed = time.monotonic()
    restarted = start_worker(settings, name="restarted")
    try:
        result = jobs.result(client, req)
        assert result.status == JobStatus.ok, result.error
        assert f"-{restarted.proc.pid}-" in result.worker
        assert time.monotonic() - t_killed < 30
        assert int(client.redis.get(keys.attempts(req.job_id))) == 2
        wait_for(lambda: client.redis.hlen(keys.INFLIGHT) == 0, 5, "the in-flight record cleared after the answer")
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
        assert info.state == WorkerState.error and model_id in info.error
        ref = store.save_upload(samples.text_image(tmp_path / "t.png"))
        for _ in range(2):  # the worker keeps serving after a failed job
            res = jobs.run(client, OcrRequest(media=ref))
            assert res.status == JobStatus.error
            assert model_id in res.error and "HF_HUB_OFFLINE" in res.error
        assert svc.alive
        log = svc.log_tail(400)
        assert "GPU недоступен" in log  # MODEL_DEVICE=cuda on a machine without one: warned, CPU used
    finally:
        svc.stop()


def test_unreachable_hub_fails_fast_with_cause_and_remedies(stack, tmp_path):
    """HF_HUB_OFFLINE=0, no network, no cache: within 15 s the worker knows, every job gets the Russian message
    with the cause and the remedies, and the log has no retry spam."""
    from scripts.stack import free_port

    settings, client, store = stack
    model_id = "HuggingFaceTB/SmolVLM2-2.2B-Instruct"
    t0 = time.monotonic()
    svc = start_worker(settings, name="no-hub", SMOLVLM2_MODEL_ID=model_id, HF_HUB_OFFLINE="0",
                       HF_ENDPOINT=f"http://127.0.0.1:{free_port()}", HF_HOME=str(tmp_path / "empty-cache"))
    try:
        info = next(w for w in events.list_workers(client.redis) if w.model_id == model_id)
        assert info.state == WorkerState.error and time.monotonic() - t0 < 15
        res = jobs.run(client, OcrRequest(media=store.save_upload(samples.text_image(tmp_path / "t.png"))))
        assert res.status == JobStatus.error and res.error_code == ErrorCode.model_unavailable
        assert res.error.startswith("Нет доступа к Hugging Face Hub") and model_id in res.error
        assert "HF_HUB_OFFLINE=1" in res.error and "SMOLVLM2_MODEL_ID" in res.error
        log = svc.log_tail(400)
        assert "retry" not in log.lower() and "Traceback" not in log
    finally:
        svc.stop()


class _Evil:
    """Unpickling this creates a marker file: proof that a pickled message was never loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _ok_job(client, store, tmp_path) -> None:
    ref = store.save_upload(samples.scene_image(tmp_path / "s.png"))
    res = jobs.run(client, ChatRequest(media=ref, question="What is this?", max_new_tokens=4))
    assert res.status == JobStatus.ok, res.error


def test_pickled_message_is_rejected_and_never_loaded(stack, tmp_path):
    settings, client, store = stack
    svc = start_worker(settings, name="pickle")
    try:
        marker = tmp_path / "pwned"
        client.app.send_task(TASK_NAME, args=[_Evil(str(marker))], task_id="evil", serializer="pickle",
                             queue=client.app.conf.task_default_queue)
        wait_for(lambda: "disallowed" in svc.log_tail(200).lower(), 20, "the worker refusing pickle")
        assert not marker.exists()
        assert not client.redis.exists(keys.result("evil"))
        assert client.redis.llen(client.app.conf.task_default_queue) == 0  # dropped, not requeued forever
        _ok_job(client, store, tmp_path)  # still serving
    finally:
        svc.stop()


def test_time_limit_gives_a_russian_message_and_the_worker_goes_on(stack, tmp_path, endless_env):
    settings, client, store = stack
    svc = start_worker(settings, name="slow", **endless_env, JOB_TIME_LIMIT="1", MAX_NEW_TOKENS="100000",
                       MODEL_DTYPE="float32")
    try:
        ref = store.save_upload(samples.text_image(tmp_path / "t.png"))
        res = jobs.run(client, ChatRequest(media=ref, question="Describe.", max_new_tokens=100000))
        assert res.status == JobStatus.error and "Превышено время обработки (1 с)" in res.error
        assert res.processing_s < 5
        _ok_job(client, store, tmp_path)
        assert svc.alive
    finally:
        svc.stop()


def test_no_worker_the_job_waits_then_gets_a_message(stack, tmp_path):
    _settings, client, store = stack
    ref = store.save_upload(samples.scene_image(tmp_path / "s.png"))
    req = ChatRequest(media=ref, question="What is this?")
    client.submit(req)
    updates = list(jobs.follow(client, req, queue_wait_s=1.5))
    queued = [u for u in updates if u.state == JobState.queued]
    assert queued and queued[0].position == 1 and queued[0].workers == 0
    assert "Нет доступных обработчиков" in updates[-1].result.error
    assert client.redis.llen(client.app.conf.task_default_queue) == 0  # withdrawn: no late surprise answer


def test_a_message_the_broker_lost_is_sent_again_and_run_once(stack, tmp_path):
    settings, _client, store = stack
    client = JobClient(settings, verify_every_s=0.5)
    parked = "smolvlm2.parked"  # a queue no worker reads: a message there is waiting, not lost
    ref = store.save_upload(samples.text_image(tmp_path / "t.png"))
    kept, lost = OcrRequest(media=ref), OcrRequest(media=ref)
    client.submit(kept, queue=parked)
    client.submit(lost, queue=parked)
    # `lost` vanishes from the broker, as when a worker's connection drops while it pops the message.
    client.redis.lrem(parked, 1, next(m for m in client.redis.lrange(parked, 0, -1) if lost.job_id in m))
    svc = start_worker(settings, name="lost-message")
    try:
        res = jobs.result(client, lost, queue_wait_s=30)
        assert res.status == JobStatus.ok and res.answer.strip()
        assert int(client.redis.get(keys.attempts(lost.job_id))) == 1
        res = jobs.result(client, kept, queue_wait_s=2)
        assert res.error_code == "no_worker"  # found where it waited, never sent twice
        assert client.redis.get(keys.attempts(kept.job_id)) is None and client.redis.llen(parked) == 0
    finally:
        svc.stop()
        client.redis.delete(parked)


def test_restarting_workers_loses_and_repeats_nothing(stack, tmp_path):
    settings, client, store = stack
    ref = store.save_upload(samples.scene_image(tmp_path / "s.png"))
    reqs = [ChatRequest(media=ref, question=f"Question {i}?") for i in range(6)]
    for req in reqs:
        client.submit(req)
    first = start_worker(settings, name="first")
    wait_for(lambda: events.get_result(client.redis, reqs[1].job_id), 30, "two answers")
    first.stop()  # SIGTERM: warm shutdown while jobs are still queued
    second = start_worker(settings, name="second")
    try:
        results = [jobs.result(client, r) for r in reqs]
        assert all(r.status == JobStatus.ok for r in results), [r.error for r in results]
        assert len({r.job_id for r in results}) == 6
        for req in reqs:  # each job ran exactly once
            assert int(client.redis.get(keys.attempts(req.job_id))) == 1
            started = [e for e in events.read_events(client.redis, req.job_id, "0", 10) if e.type == "started"]
            assert len(started) == 1
    finally:
        second.stop()


def test_redis_down_is_a_russian_message_and_recovers(stack, tmp_path):
    from common.errors import QueueUnavailable

    _settings, client, store = stack
    ref = store.save_upload(samples.scene_image(tmp_path / "s.png"))
    server = stack_server(stack)
    server.stop()
    try:
        with pytest.raises(QueueUnavailable, match="Очередь недоступна"):
            client.submit(ChatRequest(media=ref, question="What is this?"))
        with pytest.raises(QueueUnavailable):
            client.workers()
    finally:
        server.start()
    req = ChatRequest(media=ref, question="What is this?")
    client.submit(req)  # reconnects by itself
    assert client.redis.llen(client.app.conf.task_default_queue) == 1
    assert client.cancel(req.job_id)  # withdrawn: out of the queue and its index, ended as cancelled
    assert client.redis.llen(client.app.conf.task_default_queue) == 0 and client.redis.zcard(keys.WAITING) == 0
    assert events.get_result(client.redis, req.job_id).status == JobStatus.cancelled


def test_worker_deletes_expired_media_and_results(stack, tmp_path):
    import os

    settings, _client, store = stack
    store.ensure_dirs()
    old_upload = store.resolve(store.save_upload(samples.scene_image(tmp_path / "old.png", (64, 48))))
    new_upload = store.resolve(store.save_upload(samples.scene_image(tmp_path / "new.png", (48, 64))))
    old_result, new_result = store.write_result("old"), store.write_result("new")
    past = time.time() - 2 * 3600
    for path in (old_upload, old_result):
        os.utime(path, (past, past))
    svc = start_worker(settings, name="cleanup", MEDIA_TTL_HOURS="1", MEDIA_CLEANUP_INTERVAL_S="0.5")
    try:
        wait_for(lambda: not old_upload.exists() and not old_result.exists(), 15, "expired files deleted")
        assert new_upload.exists() and new_result.exists()
    finally:
        svc.stop()


def first_queued(gen):
    return next(u for u in gen if u.state == JobState.queued and not u.reconnecting)


def test_queue_position_counts_from_the_head_and_is_bounded(stack, tmp_path, monkeypatch):
    """Positions come from the queue index (no payload is read); beyond the window: «дальше N-го». A follower
    that goes away takes its queued job with it."""
    import web.queue.watcher

    _settings, client, store = stack
    ref = store.save_upload(samples.scene_image(tmp_path / "s.png"))
    reqs = [ChatRequest(media=ref, question=f"q{i}") for i in range(4)]
    for req in reqs:
        client.submit(req)
    follows = [jobs.follow(client, r) for r in reqs]
    assert [first_queued(f).position for f in follows] == [1, 2, 3, 4]
    monkeypatch.setattr(web.queue.watcher, "POSITION_WINDOW", 2)
    late = jobs.follow(client, reqs[3])
    assert first_queued(late).position == 3  # "more than 2"
    for f in [*follows, late]:
        f.close()  # the callers went away: their queued jobs are withdrawn, never run
    assert client.redis.llen(client.app.conf.task_default_queue) == 0
    assert client.redis.zcard(keys.WAITING) == 0
    assert {events.get_result(client.redis, r.job_id).status for r in reqs} == {JobStatus.cancelled}
