"""The job contract both processes enforce: which inputs each job kind takes, question and history
limits, and the UI's default questions. The web checks early (a clear message before anything is
queued); the worker checks again (the queue is a trust boundary too)."""

from __future__ import annotations

from common.errors import MediaError, UserError
from common.schemas import MediaKind, Turn

NEED_IMAGE = "Сначала загрузите изображение."
NEED_MEDIA = "Сначала загрузите изображение или видео."
IMAGE_ONLY = "Для этой вкладки нужно изображение, а не видео."
EMPTY_QUESTION = "Вопрос пустой: введите текст вопроса."
# History beyond this many characters per allowed question is dropped, oldest turns first.
HISTORY_CHARS_PER_QUESTION = 8

# The questions the UI offers, and how the (English-only) model is asked them.
UI_QUESTIONS = {
    "Опиши изображение": "Describe this image in detail.",
    "Опиши видео": "Describe this video in detail.",
    "Что на изображении?": "What is shown in this image?",
    "Что происходит на видео?": "What happens in this video?",
}
DEFAULT_QUESTION = {MediaKind.image: "Опиши изображение", MediaKind.video: "Опиши видео"}


def _normal(question: str) -> str:
    return question.strip().lower().rstrip(" .!?")


_BY_NORMAL = {_normal(q): prompt for q, prompt in UI_QUESTIONS.items()}


def model_question(question: str) -> str:
    """The English prompt for one of the UI's questions (case and final punctuation ignored), else the question."""
    return _BY_NORMAL.get(_normal(question), question.strip())


def check_question(question: str | None, max_chars: int) -> str:
    q = (question or "").strip()
    if not q:
        raise UserError(EMPTY_QUESTION)
    if len(q) > max_chars:
        raise UserError(f"Вопрос слишком длинный: {len(q)} символов при ограничении {max_chars}.")
    return q


def trim_history(turns: list[Turn], max_turns: int, max_question_chars: int) -> list[Turn]:
    """The most recent turns that fit: at most max_turns, then at most
    HISTORY_CHARS_PER_QUESTION × max_question_chars characters (an API caller may send huge turns)."""
    history = list(turns[-max_turns:]) if max_turns else []
    budget = HISTORY_CHARS_PER_QUESTION * max_question_chars
    size = sum(len(t.question) + len(t.answer) for t in history)
    while history and size > budget:
        size -= len(history[0].question) + len(history[0].answer)
        history.pop(0)
    return history


def require_image(kind: MediaKind) -> None:
    if kind != MediaKind.image:
        raise MediaError(IMAGE_ONLY)
