"""Runs one job, from queue payload to its one final result: claim, checks, media, generation, the two tiers
of errors. A redelivered job that already has a result, or runs on a live worker, is left alone."""

from __future__ import annotations

import logging
import time

from pydantic import ValidationError

from common import contract, keys
from common.errors import GENERIC_FAILURE, UserError
from common.schemas import JobKind, JobResult, JobStatus, parse_request
from common.storage import store_from_settings
from worker.channel import OWNER_TTL_S, JobChannel, finish, retry
from worker.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
TOO_MANY_ATTEMPTS = (
    "Задание прерывалось {n} раза подряд (обработчик перезапускался или превысил лимит времени). "
    "Попробуйте файл поменьше или более короткий вопрос."
)
BAD_REQUEST = "Некорректный запрос: проверьте файл и параметры."


def check_request(req, settings) -> None:
    """The contract again on the worker's side: the queue is a trust boundary too."""
    if req.kind == "chat":
        contract.check_question(req.question, settings.max_question_chars)
        req.history = contract.trim_history(req.history, settings.max_history_turns, settings.max_question_chars)
    else:
        contract.require_image(req.media.kind)


def claim(client, job_id: str, me: str) -> bool:
    """Take the job unless it is answered already or running on a live worker (a duplicate delivery)."""
    if client.exists(keys.result(job_id)):
        return False
    if client.set(keys.owner(job_id), me, nx=True, ex=OWNER_TTL_S):
        return True
    holder = client.get(keys.owner(job_id))
    if holder and holder != me and client.exists(keys.worker(holder)):
        return False
    client.set(keys.owner(job_id), me, ex=OWNER_TTL_S)  # its worker died: ours now
    return True


def abandoned(client, job_id: str) -> bool:
    """Stopped by the user, or nobody follows it any more (its caller went away)."""
    return bool(client.exists(keys.cancel(job_id))) or not client.exists(keys.watchers(job_id))


def execute(payload: dict, runtime: Runtime, client, worker_name: str, before_finish=None) -> JobResult | None:
    """Run one job and end it with its result; None when the job was not ours to run. Never raises for a job's
    own failure: each becomes a result with a Russian message. before_finish(result) runs just before the
    result is published (a caller may act on it at once: the worker's state must already say so)."""
    started = time.time()
    job_id = str(payload.get("job_id", "?")) if isinstance(payload, dict) else "?"
    kind = payload.get("kind") if isinstance(payload, dict) else None
    base = {
        "job_id": job_id, "kind": kind if kind in JobKind.__members__ else JobKind.chat,
        "model_id": runtime.model_id, "device": runtime.device, "dtype": runtime.dtype_name,
        "worker": worker_name, "started_at": started,
    }
    try:
        req = parse_request(payload)
    except ValidationError as exc:
        log.warning("job %s: invalid request: %s", job_id, exc)
        return _end(client, runtime, base, before_finish, error=BAD_REQUEST)
    base["queued_at"] = req.queued_at
    if not retry(f"job {job_id}: claim", lambda: claim(client, job_id, worker_name)):
        log.warning("job %s: already answered or running elsewhere: not run again", job_id)
        return None
    try:
        attempt = retry(f"job {job_id}: attempts", lambda: int(client.incr(keys.attempts(job_id))))
        client.expire(keys.attempts(job_id), 86400)
        if retry(f"job {job_id}: cancel flag", lambda: abandoned(client, job_id)):
            log.info("job %s: stopped before it ran", job_id)
            return _end(client, runtime, base, before_finish, status=JobStatus.cancelled)
        with JobChannel(client, job_id, worker_name) as channel:
            channel.started()
            if attempt > MAX_ATTEMPTS:
                raise UserError(TOO_MANY_ATTEMPTS.format(n=attempt - 1))
            check_request(req, runtime.settings)
            path = store_from_settings(runtime.settings).resolve(req.media)
            pred = runtime.predict(req, path, on_text=channel.partial, started_at=started, stop=channel.cancelled)
    except UserError as exc:
        log.info("job %s: %s", job_id, exc.message)
        return _end(client, runtime, base, before_finish, error=exc.message, code=exc.code)
    except Exception:  # the second tier: logged with the job id, generic message to the user
        log.exception("job %s failed", job_id)
        return _end(client, runtime, base, before_finish, error=GENERIC_FAILURE, code="internal")
    base.update(
        answer=pred.answer, prompt_tokens=pred.prompt_tokens, generated_tokens=pred.generated_tokens,
        first_token_at=pred.first_token_at, frames=pred.frames, truncated=pred.truncated,
        cached_tokens=pred.cached_tokens, device=runtime.device, dtype=runtime.dtype_name,
    )
    return _end(client, runtime, base, before_finish, status=JobStatus.cancelled if pred.stopped else JobStatus.ok)


def _end(client, runtime: Runtime, base: dict, before_finish=None, error: str | None = None,
         status: JobStatus = JobStatus.ok, code: str | None = None) -> JobResult:
    result = JobResult(**base, status=JobStatus.error if error else status, error=error,
                       error_code=(code or "bad_request") if error else None, finished_at=time.time())
    if before_finish is not None:
        try:
            before_finish(result)
        except Exception:
            log.warning("job %s: bookkeeping before the result failed", result.job_id, exc_info=True)
    if not finish(client, result, runtime.settings.result_ttl):
        log.info("job %s: ended already (withdrawn or answered)", result.job_id)
    try:
        client.delete(keys.owner(result.job_id))
    except Exception:  # noqa: BLE001 - the lease expires by itself
        pass
    return result
