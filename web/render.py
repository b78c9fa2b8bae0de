"""Status lines and chat messages, in Russian: pure functions of the queue's updates and results."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from common.schemas import JobResult, JobStatus, MediaKind, WorkerInfo
from web.jobs import POSITION_WINDOW

STATE_NAMES = {"ready": "готов", "busy": "занят", "loading": "загружает модель", "error": "ошибка"}
WARN = "⚠️"


def seconds(value: float | None) -> str:
    """1.234 → "1,2 с" (Russian decimal comma); None → "—"."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} с".replace(".", ",")
    return f"{value:.0f} с"


def number(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def error_line(message: str) -> str:
    return f"{WARN} {message}"


def queued_line(position: int, workers: int) -> str:
    if position > POSITION_WINDOW:
        where = f"В очереди: более {POSITION_WINDOW}"
    else:
        where = f"В очереди: {position}" if position > 0 else "Задание передаётся обработчику…"
    line = f"{where} · обработчиков: {workers}"
    if workers == 0:
        line += f" · {WARN} ни один обработчик не запущен, задание ждёт"
    return line


def running_line(kind: str) -> str:
    what = {"ocr": "распознаёт текст", "region": "описывает область"}.get(kind, "генерирует ответ")
    return f"Обработчик {what}…"


def submitted_line() -> str:
    return "Задание отправлено в очередь…"


def done_line(result: JobResult) -> str:
    """Queue wait, processing time, tokens per second and, for a video, the frames used."""
    if result.status != JobStatus.ok:
        return error_line(result.error or "Не удалось обработать запрос.")
    parts = [
        "Готово",
        f"ожидание в очереди: {seconds(result.queue_wait_s)}",
        f"обработка: {seconds(result.processing_s)}",
    ]
    tokens = f"токенов: {result.generated_tokens}"
    if result.tokens_per_s is not None:
        tokens += f" ({number(result.tokens_per_s)} ток/с)"
    parts.append(tokens)
    if result.frames:
        parts.append(f"кадров видео: {len(result.frames)}")
    return " · ".join(parts)


def workers_line(workers: Sequence[WorkerInfo]) -> str:
    """The model line: model id, device and dtype, workers online by state, load errors."""
    if not workers:
        return (
            f"{WARN} Обработчики не запущены: задания будут ждать в очереди. "
            "Запустите worker (`python -m worker`)."
        )
    models = sorted({w.model_id for w in workers if w.model_id})
    devices = sorted({f"{w.device} ({w.dtype})" if w.dtype else w.device for w in workers if w.device})
    states = Counter(w.state for w in workers)
    by_state = ", ".join(f"{STATE_NAMES[s]}: {states[s]}" for s in ("ready", "busy", "loading", "error") if states[s])
    parts = [
        "Модель: " + (", ".join(f"`{m}`" for m in models) or "—"),
        "устройство: " + (", ".join(devices) or "—"),
        f"обработчиков: {len(workers)} ({by_state})",
    ]
    line = " · ".join(parts)
    errors = [w for w in workers if w.state == "error"]
    for w in errors:
        line += f"  \n{WARN} Обработчик {w.name}: {w.error or 'модель не загрузилась'}"
    return line


# ---------------------------------------------------------------- chat

def chat_messages(display_path: str | None, turns: Sequence[Sequence[str]], pending: str | None = None,
                  partial: str | None = None) -> list[dict]:
    """Messages for gr.Chatbot: the media first, then each turn; a pending question with its partial answer."""
    messages: list[dict] = []
    if display_path:
        messages.append({"role": "user", "content": {"path": display_path}})
    for question, answer in turns:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    if pending is not None:
        messages.append({"role": "user", "content": pending})
        messages.append({"role": "assistant", "content": partial or "…"})
    return messages


def uploaded_line(kind: MediaKind) -> str:
    what = "Видео загружено" if kind == MediaKind.video else "Изображение загружено"
    return f"{what}. Задайте вопрос и нажмите «Отправить»."
