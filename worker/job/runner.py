"""Runs one job, from queue payload to its one result. The claim comes first (worker.job.channel: one Lua script): a
redelivered job that already has a result, or runs on a live worker, is left alone. Then the job's stages, each
taking the JobResult and returning it filled further (stages(), below). Every failure of a stage is the job's
result: a UserError's Russian message as is, anything else logged with the job id and shown as GENERIC_FAILURE.
Nothing here says "ready" or publishes: worker.job.tasks does, in that order (publish())."""

from __future__ import annotations

import logging
import time

from pydantic import ValidationError

from common import contract
from common.errors import GENERIC_FAILURE, ErrorCode, UserError
from common.schemas import JobKind, JobRequest, JobResult, JobStatus, parse_request
from worker.job import channel
from worker.job.channel import JobChannel
from worker.media import cache as media_cache
from worker.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
TOO_MANY_ATTEMPTS = (
    "Задание прерывалось {n} раза подряд (обработчик перезапускался или превысил лимит времени). "
    "Попробуйте файл поменьше или более короткий вопрос."
)
BAD_REQUEST = "Некорректный запрос: проверьте файл и параметры."


def check_request(req: JobRequest, settings) -> JobRequest:
    """The contract again on the worker's side (the queue is a trust boundary too); the history trimmed."""
    if req.kind == JobKind.chat:
        contract.check_question(req.question, settings.max_question_chars)
        history = contract.trim_history(req.history, settings.max_history_turns, settings.max_question_chars)
        return req.model_copy(update={"history": history})
    contract.require_image(req.media.kind)
    return req


def stages(req: JobRequest, runtime: Runtime, result: JobResult, job: JobChannel) -> JobResult:
    """The job's steps once it is ours: checks, the file, the answer (a stage added later goes in this order)."""
    req = check_request(req, runtime.settings)
    path = media_cache.for_settings(runtime.settings).path(req.media)  # the shared volume's, or a local copy
    return runtime.predict(req, path, result, on_text=job.partial, stop=job.cancelled)


def first_result(payload: object, runtime: Runtime, worker_name: str) -> JobResult:
    """The result as it stands when a job begins: who runs it, when, on what (the payload may be invalid)."""
    fields = payload if isinstance(payload, dict) else {}
    kind = fields.get("kind")
    return JobResult(
        job_id=str(fields.get("job_id", "?")), kind=kind if kind in JobKind.__members__ else JobKind.chat,
        status=JobStatus.ok, model_id=runtime.model_id, device=runtime.device, dtype=runtime.dtype_name,
        worker=worker_name, started_at=time.time(),
    )


def failed(result: JobResult, message: str, code: ErrorCode) -> JobResult:
    return result.model_copy(update={"status": JobStatus.error, "error": message, "error_code": code})


def run(payload: object, runtime: Runtime, client, worker_name: str) -> JobResult | None:
    """The job's one final result (not yet published); None when the job was not ours to run. Never raises for a
    job's own failure."""
    result = first_result(payload, runtime, worker_name)
    job_id = result.job_id
    try:
        req = parse_request(payload)
    except ValidationError as exc:
        log.warning("job %s: invalid request: %s", job_id, exc)
        return _ended(failed(result, BAD_REQUEST, ErrorCode.bad_request))
    result = result.model_copy(update={"queued_at": req.queued_at})
    claim = channel.claim(client, job_id, worker_name)
    if not claim.ours:
        log.warning("job %s: already answered or running elsewhere: not run again", job_id)
        return None
    if claim.abandoned:
        log.info("job %s: stopped before it ran", job_id)
        return _ended(result.model_copy(update={"status": JobStatus.cancelled}))
    try:
        with JobChannel(client, job_id, worker_name) as job:
            job.started()
            if claim.attempt > MAX_ATTEMPTS:
                raise UserError(TOO_MANY_ATTEMPTS.format(n=claim.attempt - 1))
            result = stages(req, runtime, result, job)
    except UserError as exc:
        log.info("job %s: %s", job_id, exc.message)
        result = failed(result, exc.message, exc.code)
    except Exception:  # the second tier: logged with the job id, generic message to the user
        log.exception("job %s failed", job_id)
        result = failed(result, GENERIC_FAILURE, ErrorCode.internal)
    return _ended(result)


def _ended(result: JobResult) -> JobResult:
    return result.model_copy(update={"finished_at": time.time()})


def publish(client, result: JobResult, result_ttl: int) -> None:
    """End the job with its result, once (a web that withdrew it, or another delivery, may have ended it first)."""
    if not channel.finish(client, result, result_ttl):
        log.info("job %s: ended already (withdrawn or answered)", result.job_id)
