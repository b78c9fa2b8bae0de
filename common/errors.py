"""Two tiers of errors: UserError carries a Russian message for the user; anything else is
logged with the job id and shown as GENERIC_FAILURE."""

from __future__ import annotations

GENERIC_FAILURE = "Не удалось обработать запрос: внутренняя ошибка обработчика. Попробуйте ещё раз."


class UserError(Exception):
    """An error whose message (Russian) can be shown to the user as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MediaError(UserError):
    """The uploaded file cannot be used."""


class QueueUnavailable(UserError):
    def __init__(self, message: str = "Очередь недоступна: нет связи с Redis. Попробуйте позже.") -> None:
        super().__init__(message)


class JobTimeout(UserError):
    """The job ran past JOB_TIME_LIMIT (checked between tokens and while decoding media)."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"Превышено время обработки ({limit_s:g} с). Попробуйте более короткое видео или вопрос.")
