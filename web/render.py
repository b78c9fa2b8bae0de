"""Status lines and chat messages, in Russian: pure functions of the queue's updates and results."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from common import fmt
from common.schemas import JobResult, JobStatus, MediaKind, WorkerInfo, WorkerState
from web.watcher import POSITION_WINDOW

STATE_NAMES = {
    WorkerState.ready: "готов", WorkerState.busy: "занят", WorkerState.loading: "загружает модель",
    WorkerState.error: "ошибка",
}
WARN = "⚠️"
STOPPED = "остановлено"


def seconds(value: float | None) -> str:
    return fmt.seconds(value)


def number(value: float, digits: int = 1) -> str:
    return fmt.number(value, digits)


def error_line(message: str) -> str:
    return f"{WARN} {message}"


def queued_line(position: int, workers: int, eta_s: float | None = None) -> str:
    """«Ваше место в очереди: 3 (впереди 2) · обработчиков: 1 · примерно 40 с»."""
    if position > POSITION_WINDOW:
        where = f"Ваше место в очереди: дальше {POSITION_WINDOW}-го"
    elif position > 0:
        where = f"Ваше место в очереди: {position} (впереди {position - 1})"
    else:
        where = "Задание передаётся обработчику…"
    parts = [where, f"обработчиков: {workers}"]
    if workers == 0:
        parts.append(f"{WARN} ни один обработчик не запущен, задание ждёт")
    elif eta_s is not None and position > 0:
        parts.append(f"примерно {fmt.duration(eta_s)}")
    return " · ".join(parts)


def reconnecting_line() -> str:
    return f"{WARN} Нет связи с очередью, переподключение…"


def running_line(kind: str) -> str:
    what = {"ocr": "распознаёт текст", "region": "описывает область"}.get(kind, "генерирует ответ")
    return f"Обработчик {what}…"


def submitted_line() -> str:
    return "Задание отправлено в очередь…"


def busy_line() -> str:
    return f"{WARN} Дождитесь ответа на предыдущий запрос или нажмите «Остановить»."


def done_line(result: JobResult, max_new_tokens: int | None = None) -> str:
    """Queue wait, processing time, tokens per second; a stop, a cut answer and video frames are said."""
    if result.status == JobStatus.error:
        return error_line(result.error or "Не удалось обработать запрос.")
    parts = ["Готово" if result.status == JobStatus.ok else f"Остановлено: {STOPPED} по вашей команде"]
    if result.started_at is None:  # withdrawn from the queue before any worker took it
        return parts[0]
    parts += [f"ожидание в очереди: {seconds(result.queue_wait_s)}", f"обработка: {seconds(result.processing_s)}"]
    tokens = f"токенов: {result.generated_tokens}"
    if result.tokens_per_s is not None:
        tokens += f" ({number(result.tokens_per_s)} ток/с)"
    parts.append(tokens)
    if result.cached_tokens:
        parts.append(f"из кэша: {result.cached_tokens} ток. запроса")
    if result.frames:
        parts.append(f"кадров видео: {len(result.frames)}")
    if result.truncated:
        limit = f" в {max_new_tokens} токенов" if max_new_tokens else ""
        parts.append(f"{WARN} ответ обрезан: достигнут предел{limit} (MAX_NEW_TOKENS)")
    return " · ".join(parts)


def workers_line(workers: Sequence[WorkerInfo], waiting: int | None = None) -> str:
    """The model line: model id, device and dtype, workers by state, the queue, loading progress, load errors."""
    if not workers:
        return (
            f"{WARN} Обработчики не запущены: задания будут ждать в очереди. "
            "Запустите worker (`python -m worker`)."
        )
    models = sorted({w.model_id for w in workers if w.model_id})
    devices = sorted({f"{w.device} ({w.dtype})" if w.dtype else w.device for w in workers if w.device})
    states = Counter(w.state for w in workers)
    by_state = ", ".join(f"{STATE_NAMES[s]}: {states[s]}" for s in STATE_NAMES if states[s])
    parts = [
        "Модель: " + (", ".join(f"`{m}`" for m in models) or "—"),
        "устройство: " + (", ".join(devices) or "—"),
        f"обработчиков: {len(workers)} ({by_state})",
    ]
    if waiting:
        parts.append(f"в очереди: {waiting}")
    cache = sum(w.cache_bytes for w in workers)
    if cache:
        parts.append(f"кэш диалогов: {sum(w.cache_entries for w in workers)} ({fmt.size(cache)})")
    line = " · ".join(parts)
    for w in workers:
        if w.state == WorkerState.loading and w.detail:
            line += f"  \n{w.detail}"
        elif w.state == WorkerState.error:
            line += f"  \n{WARN} Обработчик {w.name}: {w.error or 'модель не загрузилась'}"
    return line


# ---------------------------------------------------------------- chat


def answer_with_note(answer: str, note: str | None) -> str:
    return f"{answer}\n\n*— {note}*".strip() if note else answer


def chat_messages(display_path: str | None, turns: Sequence[Sequence[str]], pending: str | None = None,
                  partial: str | None = None) -> list[dict]:
    """Messages for gr.Chatbot: the media first, then each turn (question, answer[, note]); a pending question
    with its partial answer."""
    messages: list[dict] = []
    if display_path:
        messages.append({"role": "user", "content": {"path": display_path}})
    for question, answer, *note in turns:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer_with_note(answer, note[0] if note else None)})
    if pending is not None:
        messages.append({"role": "user", "content": pending})
        messages.append({"role": "assistant", "content": partial or "…"})
    return messages


def frames_caption(result: JobResult) -> str:
    """Under a video answer: which moments the model saw."""
    times = ", ".join(f"{number(f.timestamp)} с" for f in result.frames)
    return f"Кадры, которые видела модель ({len(result.frames)}): {times}"


def uploaded_line(kind: MediaKind) -> str:
    what = "Видео загружено" if kind == MediaKind.video else "Изображение загружено"
    return f"{what}. Задайте вопрос и нажмите «Отправить»."
