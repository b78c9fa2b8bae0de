"""worker.job.runner without a model (a stand-in runtime) against a real redis-server: a job runs to its one JobResult,
which nothing publishes until publish(); a duplicate delivery is not run; a stopped job, too many attempts, a bad
payload and each tier of error end in their own result, and a stage that fails leaves nothing of its own behind."""

from __future__ import annotations

import pytest

from common import events, keys
from common.errors import GENERIC_FAILURE, ErrorCode, MediaError
from common.schemas import ChatRequest, FrameInfo, JobKind, JobStatus, MediaKind, MediaRef, OcrRequest
from common.settings import Settings
from worker.job import runner

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(own_redis):
    return events.connect(own_redis.url)


class Runtime:
    """What the runner needs of worker.runtime.Runtime; predict answers, or fails as told."""

    model_id, device, dtype_name = "m", "cpu", "float32"

    def __init__(self, settings: Settings, fail: Exception | None = None) -> None:
        self.settings, self.fail, self.calls = settings, fail, 0

    def predict(self, req, path, result, on_text=None, stop=None):
        self.calls += 1
        result = result.model_copy(update={"frames": [FrameInfo(index=0, timestamp=0.0)]})
        if self.fail is not None:
            raise self.fail
        on_text("отв", 1)
        return result.model_copy(update={"answer": f"ответ о {path.name}", "generated_tokens": 2})


@pytest.fixture
def settings(tmp_path) -> Settings:
    (tmp_path / "media" / "uploads").mkdir(parents=True)
    (tmp_path / "media" / "uploads" / "a.png").write_bytes(b"png")
    return Settings(_env_file=None, media_dir=tmp_path / "media", results_dir=tmp_path / "results")


def payload(client, req=None) -> dict:
    req = req or ChatRequest(media=MediaRef(path="uploads/a.png", kind=MediaKind.image), question="Что это?")
    client.set(keys.watchers(req.job_id), "1")  # followed by a web
    return req.model_dump(mode="json")


def test_a_job_runs_to_its_one_result_which_goes_out_on_publish(client, settings):
    job = payload(client)
    result = runner.run(job, Runtime(settings), client, "w1")
    assert (result.status, result.kind, result.answer, result.generated_tokens) == (
        JobStatus.ok, JobKind.chat, "ответ о a.png", 2)
    assert (result.worker, result.model_id, result.queued_at) == ("w1", "m", job["queued_at"])
    assert result.started_at <= result.finished_at
    assert events.get_result(client, job["job_id"]) is None  # not out yet: the worker says "ready" first
    runner.publish(client, result, 60)
    assert events.get_result(client, job["job_id"]) == result
    assert client.get(keys.owner(job["job_id"])) is None  # the lease went with it
    assert runner.run(job, Runtime(settings), client, "w2") is None  # delivered again: answered already


def test_a_job_stopped_before_it_ran_is_cancelled_without_running(client, settings):
    job = payload(client)
    events.request_cancel(client, job["job_id"])
    runtime = Runtime(settings)
    assert runner.run(job, runtime, client, "w1").status == JobStatus.cancelled and runtime.calls == 0


def test_too_many_attempts_end_the_job_with_a_message(client, settings):
    job = payload(client)
    client.set(keys.attempts(job["job_id"]), runner.MAX_ATTEMPTS)
    result = runner.run(job, Runtime(settings), client, "w1")
    assert result.status == JobStatus.error and result.error == runner.TOO_MANY_ATTEMPTS.format(n=runner.MAX_ATTEMPTS)


def test_a_bad_payload_is_a_bad_request(client, settings):
    result = runner.run({"job_id": "x1", "kind": "ocr", "media": {"path": "../etc/passwd", "kind": "image"}},
                        Runtime(settings), client, "w1")
    assert (result.kind, result.status, result.error, result.error_code) == (
        JobKind.ocr, JobStatus.error, runner.BAD_REQUEST, ErrorCode.bad_request)


@pytest.mark.parametrize(("fail", "message", "code"), [
    (MediaError("Файл повреждён."), "Файл повреждён.", ErrorCode.bad_media),
    (RuntimeError("boom"), GENERIC_FAILURE, ErrorCode.internal),
])
def test_a_failed_stage_is_the_jobs_result_and_leaves_nothing_of_its_own(client, settings, fail, message, code):
    result = runner.run(payload(client), Runtime(settings, fail), client, "w1")
    assert (result.status, result.error, result.error_code) == (JobStatus.error, message, code)
    assert result.frames == [] and result.answer == ""  # what predict had filled before it failed is not kept


def test_the_workers_own_checks_run_before_the_model(client, settings):
    video = MediaRef(path="uploads/a.png", kind=MediaKind.video)
    runtime = Runtime(settings)
    result = runner.run(payload(client, OcrRequest(media=video)), runtime, client, "w1")
    assert result.status == JobStatus.error and result.error_code == ErrorCode.bad_media and runtime.calls == 0
