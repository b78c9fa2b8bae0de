"""Two tiers of errors: UserError carries a Russian message for the user; anything else is
logged with the job id and shown as GENERIC_FAILURE."""

from __future__ import annotations

GENERIC_FAILURE = "Не удалось обработать запрос: внутренняя ошибка обработчика. Попробуйте ещё раз."


class UserError(Exception):
    """An error whose message (Russian) can be shown to the user as is; code names its kind for API callers."""

    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MediaError(UserError):
    """The uploaded file cannot be used."""

    code = "bad_media"


class ModelUnavailable(UserError):
    """The worker has no model (weights missing, hub unreachable): the message names cause and remedy."""

    code = "model_unavailable"


class QueueUnavailable(UserError):
    code = "queue_unavailable"

    def __init__(self, message: str = "Очередь недоступна: нет связи с Redis. Попробуйте позже.") -> None:
        super().__init__(message)


class JobTimeout(UserError):
    """The job ran past JOB_TIME_LIMIT (checked between tokens and while decoding media)."""

    code = "timeout"

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"Превышено время обработки ({limit_s:g} с). Попробуйте более короткое видео или вопрос.")


class Busy(UserError):
    """Refused at once to protect the service (HTTP 429): the queue is full, or one client waits on too many jobs."""

    code = "busy"


def queue_full(waiting: int, limit: int) -> Busy:
    return Busy(f"Очередь переполнена: ждут {waiting} заданий (предел {limit}). Попробуйте через минуту.")


def too_many_jobs(limit: int) -> Busy:
    return Busy(
        f"У вас уже выполняется {limit} заданий одновременно (больше нельзя). "
        "Дождитесь их окончания или остановите одно из них."
    )
