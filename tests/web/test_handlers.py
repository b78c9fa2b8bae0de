"""Handlers in-process, on the paths that need no model: Redis unreachable, no worker running, and
validation that happens before anything is enqueued. The UI gets a Russian status line, the API a gr.Error."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import gradio as gr
import pytest

from common.contract import NEED_IMAGE, NEED_MEDIA
from common.errors import QueueUnavailable
from common.storage import MediaStore
from scripts.stack import free_port
from tests.conftest import make_settings
from web.api import Api
from web.handlers import Handlers
from web.jobs import JobClient

pytestmark = pytest.mark.integration
REDIS_DOWN = QueueUnavailable().message


REQUEST = SimpleNamespace(session_hash="session-1", client=SimpleNamespace(host="127.0.0.1"), headers={})


def handlers_for(redis_url: str, root, model, **overrides) -> Handlers:
    settings = make_settings(redis_url, root, model, redis_outage_grace_s=1, **overrides)
    store = MediaStore(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
    store.ensure_dirs()
    return Handlers(settings, JobClient(settings), store)


@pytest.fixture(scope="module")
def dead(tmp_path_factory) -> Handlers:
    return handlers_for(f"redis://127.0.0.1:{free_port()}/0", tmp_path_factory.mktemp("dead"), "unused")


@pytest.fixture(scope="module")
def no_worker(redis_server, tmp_path_factory) -> Handlers:
    # Another Redis database: no worker consumes its queue and no heartbeat lives there.
    url = redis_server.url.rsplit("/", 1)[0] + "/7"
    return handlers_for(url, tmp_path_factory.mktemp("noworker"), "unused", queue_wait_timeout=2)


def run_async(awaitable):
    """asyncio.run in a fresh thread: the session-wide Playwright (sync API) keeps a loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, awaitable).result()


def last(agen):
    """Run an async generator handler to its end: (every update, the last one)."""
    async def collect():
        return [item async for item in agen]

    items = run_async(collect())
    assert items, "the handler yielded nothing"
    return items, items[-1]


def call(awaitable):
    """An async handler's result: a coroutine's value, or an async generator's last value."""
    if hasattr(awaitable, "__anext__"):
        return last(awaitable)[1]
    return run_async(awaitable)


def test_redis_unreachable_api_raises_the_russian_message(dead, media):
    with pytest.raises(gr.Error) as info:
        call(Api(dead).vqa(str(media["scene"]), "Опиши изображение", [], REQUEST))
    assert info.value.message == REDIS_DOWN
    with pytest.raises(gr.Error, match="Очередь недоступна"):
        call(Api(dead).describe_region(str(media["scene"]), "80,160,208,288", REQUEST))


def test_redis_unreachable_ui_shows_it_in_the_status_line(dead, media):
    updates, (_text, _download, status, *_) = last(dead.ocr_ui(str(media["text"]), REQUEST))
    assert status.endswith(REDIS_DOWN)
    assert any("переподключение" in u[2] for u in updates)  # it kept trying for REDIS_OUTAGE_GRACE_S first
    state, *_ = call(dead.chat_file(str(media["scene"]), "", REQUEST))
    _, (chat, _state, _question, status, _send, _stop, _frames, failed) = last(dead.chat_ui("Что это?", state,
                                                                                         REQUEST))
    assert status.endswith(REDIS_DOWN)
    assert failed == "Что это?"  # given back for a retry (the page puts it in the box unless another is typed)
    assert all(REDIS_DOWN not in str(m["content"]) for m in chat)  # the error is said once: in the status line
    assert call(dead.model_status()).endswith(REDIS_DOWN)


def test_no_worker_ends_with_the_russian_message(no_worker, media):
    updates, (_text, status, *_) = last(no_worker.region_ui(str(media["scene"]), "80,160,208,288", REQUEST))
    statuses = [u[1] for u in updates]
    assert any(s.startswith("Ваше место в очереди: 1 (впереди 0) · обработчиков: 0") for s in statuses), statuses
    assert "Нет доступных обработчиков" in status
    with pytest.raises(gr.Error, match="Нет доступных обработчиков: задание не взято в работу за 2 с"):
        call(Api(no_worker).ocr(str(media["text"]), REQUEST))
    assert "Обработчики не запущены" in call(no_worker.model_status())


def test_validation_happens_before_the_queue(dead, media):
    """Even with Redis down, input mistakes get their own message: nothing was enqueued."""
    _, (_t, status, _run, _stop, hint) = last(dead.region_ui(str(media["scene"]), "1,2,3", REQUEST))
    assert "ровно четыре целых числа" in hint and status == ""  # said once: under the box
    _, (_t, status, *_) = last(dead.region_ui(None, "1,2,30,40", REQUEST))
    assert status.endswith(NEED_IMAGE)
    _, (_c, _s, _q, status, *_) = last(dead.chat_ui("Что это?", None, REQUEST))
    assert status.endswith(NEED_MEDIA)
    with pytest.raises(gr.Error, match="Для этой вкладки нужно изображение, а не видео"):
        call(Api(dead).describe_region(str(media["video"]), "1,2,30,40", REQUEST))


def test_chat_file_sets_the_default_question_by_media_type(dead, media, tmp_path):
    state, chat, question, status = call(dead.chat_file(str(media["video"]), "", REQUEST))
    assert question == "Опиши видео" and state["media"]["kind"] == "video"
    assert chat == [{"role": "user", "content": {"path": str(media["video"])}}]
    assert status.startswith("Видео загружено")
    _, _, question, _ = call(dead.chat_file(str(media["scene"]), "Опиши видео", REQUEST))
    assert question == "Опиши изображение"  # a default follows the media type
    _, _, question, _ = call(dead.chat_file(str(media["scene"]), "Сколько тут фигур?", REQUEST))
    assert question == "Сколько тут фигур?"  # a question the user typed is kept
    notes = tmp_path / "notes.txt"
    notes.write_text("text", encoding="utf-8")
    state, chat, _, status = call(dead.chat_file(str(notes), "", REQUEST))
    assert state["media"] is None and chat == [] and "Неподдерживаемый тип файла" in status


def test_the_same_upload_is_copied_once(dead, media):
    a = dead.save(str(media["scene"]))
    b = dead.save(str(media["scene"]))
    assert a == b
    assert dead.store.resolve(a).read_bytes() == media["scene"].read_bytes()
