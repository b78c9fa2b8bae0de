"""Runs one job, from queue payload to JobResult: checks, media, events, the two tiers of errors."""

from __future__ import annotations

import json
import logging
import time

from pydantic import ValidationError

from common import contract, events, keys
from common.errors import GENERIC_FAILURE, UserError
from common.schemas import JobResult, JobStatus, parse_request
from common.storage import store_from_settings
from worker.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
TOO_MANY_ATTEMPTS = (
    "Задание прерывалось {n} раза подряд (обработчик перезапускался или превысил лимит времени). "
    "Попробуйте файл поменьше или более короткий вопрос."
)


def check_request(req, settings) -> None:
    """The contract again on the worker's side: the queue is a trust boundary too."""
    if req.kind == "chat":
        contract.check_question(req.question, settings.max_question_chars)
        req.history = contract.trim_history(req.history, settings.max_history_turns, settings.max_question_chars)
    else:
        contract.require_image(req.media.kind)


def execute(payload: dict, runtime: Runtime, redis_client, worker_name: str) -> dict:
    """Run one job; never raises: every failure becomes a result with a Russian message."""
    started = time.time()
    job_id = str(payload.get("job_id", "?")) if isinstance(payload, dict) else "?"
    kind = payload.get("kind") if isinstance(payload, dict) else None
    base = {
        "job_id": job_id, "kind": kind if kind in ("chat", "ocr", "region") else "chat",
        "model_id": runtime.model_id, "device": runtime.device, "dtype": runtime.dtype_name,
        "worker": worker_name, "started_at": started,
    }
    try:
        req = parse_request(payload)
    except ValidationError as exc:
        log.warning("job %s: invalid request: %s", job_id, exc)
        return _result(base, error="Некорректный запрос: проверьте файл и параметры.")
    base["queued_at"] = req.queued_at
    publisher = events.EventPublisher(redis_client, req.job_id)
    try:
        attempt = int(redis_client.incr(keys.attempts(req.job_id)))
        redis_client.expire(keys.attempts(req.job_id), 86400)
        if attempt > MAX_ATTEMPTS:
            raise UserError(TOO_MANY_ATTEMPTS.format(n=attempt - 1))
        publisher.started(worker_name)
        check_request(req, runtime.settings)
        path = store_from_settings(runtime.settings).resolve(req.media)
        pred = runtime.predict(req, path, on_text=publisher.partial, started_at=started)
    except UserError as exc:
        log.info("job %s: %s", job_id, exc.message)
        return _finish(publisher, base, error=exc.message)
    except Exception:  # the second tier: logged with the job id, generic message to the user
        log.exception("job %s failed", job_id)
        return _finish(publisher, base, error=GENERIC_FAILURE)
    base.update(
        answer=pred.answer, prompt_tokens=pred.prompt_tokens, generated_tokens=pred.generated_tokens,
        first_token_at=pred.first_token_at, frames=pred.frames,
        device=runtime.device, dtype=runtime.dtype_name,
    )
    return _finish(publisher, base)


def _finish(publisher: events.EventPublisher, base: dict, error: str | None = None) -> dict:
    result = _result(base, error)
    try:
        publisher.done(json.dumps(result, ensure_ascii=False))
    except Exception:  # noqa: BLE001 - the result still goes through the backend
        log.warning("job %s: could not publish the done event", base["job_id"])
    return result


def _result(base: dict, error: str | None = None) -> dict:
    status = JobStatus.error if error else JobStatus.ok
    res = JobResult(**base, status=status, error=error, finished_at=time.time())
    return res.model_dump(mode="json")
