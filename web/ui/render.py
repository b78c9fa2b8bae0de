"""Status lines, in Russian: pure functions of the queue's updates, results and heartbeats."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence

from common import fmt
from common.schemas import JobKind, JobResult, JobStatus, MediaKind, WorkerInfo, WorkerState
from web.queue.kinds import STOPPED
from web.queue.tracker import POSITION_WINDOW

STATE_NAMES = {
    WorkerState.ready: "готов", WorkerState.busy: "занят", WorkerState.loading: "загружает модель",
    WorkerState.error: "ошибка",
}
WARN = "⚠️"

ORIGINAL_TITLE = "Ответ модели (англ.)"  # the model's own English, collapsed under a translated answer


def original_block(english: str | None) -> str:
    """The model's own English under a translated chat answer, collapsed (one message: a <details> in its
    Markdown; escaped, so the model's text is never markup)."""
    if english is None:
        return ""
    return f"\n\n<details><summary>{ORIGINAL_TITLE}</summary>\n\n{html.escape(english)}\n\n</details>"


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


RUNNING = {JobKind.chat: "генерирует ответ", JobKind.ocr: "распознаёт текст", JobKind.region: "описывает область"}


def running_line(kind: JobKind) -> str:
    what = RUNNING[kind]
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
    parts += [f"ожидание в очереди: {fmt.seconds(result.queue_wait_s)}",
              f"обработка: {fmt.seconds(result.processing_s)}"]
    tokens = f"токенов: {result.generated_tokens}"
    if result.tokens_per_s is not None:
        tokens += f" ({fmt.number(result.tokens_per_s)} ток/с)"
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


def frames_caption(result: JobResult) -> str:
    """Under a video answer: which moments the model saw."""
    times = ", ".join(f"{fmt.number(f.timestamp)} с" for f in result.frames)
    return f"Кадры, которые видела модель ({len(result.frames)}): {times}"


def uploaded_line(kind: MediaKind) -> str:
    what = "Видео загружено" if kind == MediaKind.video else "Изображение загружено"
    return f"{what}. Задайте вопрос и нажмите «Отправить»."
