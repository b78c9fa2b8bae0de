"""web.ui.render: the Russian status lines built from queue updates, results and worker heartbeats."""

from common.schemas import FrameInfo, JobKind, JobResult, JobStatus, WorkerInfo
from web.queue.tracker import POSITION_WINDOW
from web.ui import render
from web.ui.locale import SCRIPT, inject


def result(**kw) -> JobResult:
    base = dict(job_id="j", kind="chat", status=JobStatus.ok, answer="ok", queued_at=100.0, started_at=100.5,
                first_token_at=101.0, finished_at=103.0, generated_tokens=11)
    base.update(kw)
    return JobResult(**base)


def worker(name="w1", state="ready", **kw) -> WorkerInfo:
    base = dict(name=name, model_id="HuggingFaceTB/SmolVLM2-2.2B-Instruct", device="cuda", dtype="bfloat16",
                state=state)
    base.update(kw)
    return WorkerInfo(**base)


def test_queued_line():
    assert render.queued_line(3, 1, 40.2) == "Ваше место в очереди: 3 (впереди 2) · обработчиков: 1 · примерно 40 с"
    assert render.queued_line(3, 2) == "Ваше место в очереди: 3 (впереди 2) · обработчиков: 2"
    assert render.queued_line(0, 1, 5.0) == "Задание передаётся обработчику… · обработчиков: 1"
    line = render.queued_line(1, 0, 12.0)
    assert line.startswith("Ваше место в очереди: 1 (впереди 0) · обработчиков: 0") and "ни один обработчик" in line
    assert "примерно" not in line  # no estimate without a worker


def test_done_line_has_wait_processing_and_speed():
    line = render.done_line(result())
    assert line == "Готово · ожидание в очереди: 0,5 с · обработка: 2,5 с · токенов: 11 (5 ток/с)"


def test_done_line_for_a_video_counts_frames():
    frames = [FrameInfo(index=i, timestamp=i / 2) for i in range(8)]
    assert render.done_line(result(frames=frames)).endswith("· кадров видео: 8")


def test_done_line_without_speed():
    line = render.done_line(result(generated_tokens=1, first_token_at=None))
    assert line.endswith("токенов: 1")
    assert "ток/с" not in line


def test_done_line_says_a_stop_and_a_cut_answer():
    stopped = render.done_line(result(status=JobStatus.cancelled))
    assert stopped.startswith("Остановлено") and "ожидание в очереди: 0,5 с" in stopped
    assert render.done_line(result(status=JobStatus.cancelled, started_at=None)) == (
        "Остановлено: остановлено по вашей команде")
    cut = render.done_line(result(truncated=True), max_new_tokens=512)
    assert cut.endswith("ответ обрезан: достигнут предел в 512 токенов (MAX_NEW_TOKENS)")
    assert "обрезан" not in render.done_line(result())


def test_frames_caption():
    res = result(frames=[FrameInfo(index=0, timestamp=0.0), FrameInfo(index=10, timestamp=1.5)])
    assert render.frames_caption(res) == "Кадры, которые видела модель (2): 0 с, 1,5 с"


def test_done_line_for_an_error_shows_the_workers_message():
    msg = "Видео слишком длинное: 700 с при ограничении 600 с."
    assert render.done_line(result(status=JobStatus.error, error=msg, answer="")) == f"{render.WARN} {msg}"


def test_running_lines_by_kind():
    assert render.running_line(JobKind.chat) == "Обработчик генерирует ответ…"
    assert render.running_line(JobKind.ocr) == "Обработчик распознаёт текст…"
    assert render.running_line(JobKind.region) == "Обработчик описывает область…"


def test_workers_line_none():
    line = render.workers_line([])
    assert line.startswith(render.WARN) and "Обработчики не запущены" in line


def test_workers_line_model_device_and_states():
    line = render.workers_line([worker("w1", "ready"), worker("w2", "busy"), worker("w3", "loading")])
    assert line == ("Модель: `HuggingFaceTB/SmolVLM2-2.2B-Instruct` · устройство: cuda (bfloat16) · "
                    "обработчиков: 3 (готов: 1, занят: 1, загружает модель: 1)")


def test_workers_line_shows_a_load_error():
    err = "Модель «x» не найдена в локальном кэше"
    line = render.workers_line([worker("w1", "error", error=err, device="cpu", dtype="float32")])
    assert "устройство: cpu (float32)" in line
    assert "ошибка: 1" in line
    assert f"Обработчик w1: {err}" in line


def test_locale_script_goes_first_in_head():
    page = b"<!doctype html><html><head><meta charset='utf-8'><script src='app.js'></script></head></html>"
    out = inject(page)
    assert out.index(SCRIPT) < out.index(b"app.js") and out.count(SCRIPT) == 1
    assert inject(b"{}") == b"{}"


def test_queued_line_beyond_the_position_window():
    assert render.queued_line(POSITION_WINDOW + 1, 2, 30).startswith(
        f"Ваше место в очереди: дальше {POSITION_WINDOW}-го · обработчиков: 2")


def test_workers_line_shows_the_queue_the_cache_and_a_download():
    line = render.workers_line([worker("w1", "busy", cache_entries=3, cache_bytes=5 * 1024 * 1024)], waiting=4)
    assert line.endswith("обработчиков: 1 (занят: 1) · в очереди: 4 · кэш диалогов: 3 (5 МБ)")
    loading = worker("w2", "loading", detail="загрузка модели: 37 % — 1,6 из 4,5 ГБ")
    assert render.workers_line([loading]).endswith("\nзагрузка модели: 37 % — 1,6 из 4,5 ГБ")
