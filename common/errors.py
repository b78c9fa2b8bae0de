"""Two tiers of errors: UserError carries a Russian message for the user; anything else is
logged with the job id and shown as GENERIC_FAILURE."""

from __future__ import annotations

from enum import StrEnum

GENERIC_FAILURE = "Не удалось обработать запрос: внутренняя ошибка обработчика. Попробуйте ещё раз."


class ErrorCode(StrEnum):
    """What kind of error ended a job or refused a request (JobResult.error_code, UserError.code): API callers map
    it to a status (the OpenAI API: web/openai/response.py, a test checks every code has one)."""

    bad_request = "bad_request"  # the request or its input cannot be used
    bad_media = "bad_media"  # the file cannot be used
    model_unavailable = "model_unavailable"  # the worker has no model
    queue_unavailable = "queue_unavailable"  # Redis away
    no_worker = "no_worker"  # no worker took the job in time
    busy = "busy"  # refused to protect the service: the queue is full, one client waits on too many jobs
    timeout = "timeout"  # the job ran past JOB_TIME_LIMIT
    store_unavailable = "store_unavailable"  # the media store (S3) did not answer within S3_OUTAGE_GRACE_S
    store_denied = "store_denied"  # the media store refused our keys or has no such bucket: the operator's to fix
    internal = "internal"  # anything else: logged with the job id, shown as GENERIC_FAILURE


class UserError(Exception):
    """An error whose message (Russian) can be shown to the user as is; code names its kind for API callers."""

    code = ErrorCode.bad_request

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MediaError(UserError):
    """The uploaded file cannot be used."""

    code = ErrorCode.bad_media


class ModelUnavailable(UserError):
    """The worker has no model (weights missing, hub unreachable): the message names cause and remedy."""

    code = ErrorCode.model_unavailable


class QueueUnavailable(UserError):
    code = ErrorCode.queue_unavailable

    def __init__(self, message: str = "Очередь недоступна: нет связи с Redis. Попробуйте позже.") -> None:
        super().__init__(message)


class JobTimeout(UserError):
    """The job ran past JOB_TIME_LIMIT (checked between tokens and while decoding media)."""

    code = ErrorCode.timeout

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"Превышено время обработки ({limit_s:g} с). Попробуйте более короткое видео или вопрос.")


class Busy(UserError):
    """Refused at once to protect the service (HTTP 429): the queue is full, or one client waits on too many jobs."""

    code = ErrorCode.busy


def queue_full(waiting: int, limit: int) -> Busy:
    return Busy(f"Очередь переполнена: ждут {waiting} заданий (предел {limit}). Попробуйте через минуту.")


def too_many_jobs(limit: int) -> Busy:
    return Busy(
        f"У вас уже выполняется {limit} заданий одновременно (больше нельзя). "
        "Дождитесь их окончания или остановите одно из них."
    )


class StoreUnavailable(UserError):
    """The media store (MEDIA_STORE=s3) did not answer (down, unreachable, too slow) within the outage grace."""

    code = ErrorCode.store_unavailable


class StoreDenied(UserError):
    """The media store refused us (keys, bucket): an operator's mistake, not retried."""

    code = ErrorCode.store_denied
