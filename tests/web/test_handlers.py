"""Handlers in-process, on the paths that need no model: Redis unreachable, no worker running, and
validation that happens before anything is enqueued. The UI gets a Russian status line, the API a gr.Error."""

from __future__ import annotations

import gradio as gr
import pytest

from common.contract import NEED_IMAGE, NEED_MEDIA
from common.errors import QueueUnavailable
from common.storage import MediaStore
from scripts.stack import free_port
from tests.conftest import make_settings
from web.handlers import Handlers
from web.jobs import JobClient

pytestmark = pytest.mark.integration
REDIS_DOWN = QueueUnavailable().message


def handlers_for(redis_url: str, root, model, **overrides) -> Handlers:
    settings = make_settings(redis_url, root, model, **overrides)
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


def last(gen):
    items = list(gen)
    assert items, "the handler yielded nothing"
    return items, items[-1]


def test_redis_unreachable_api_raises_the_russian_message(dead, media):
    with pytest.raises(gr.Error) as info:
        dead.api_vqa(str(media["scene"]), "Опиши изображение", [])
    assert info.value.message == REDIS_DOWN
    with pytest.raises(gr.Error, match="Очередь недоступна"):
        dead.api_describe_region(str(media["scene"]), "80,160,208,288")


def test_redis_unreachable_ui_shows_it_in_the_status_line(dead, media):
    _, (_text, _download, status) = last(dead.ocr_ui(str(media["text"])))
    assert status.endswith(REDIS_DOWN)
    state, *_ = dead.chat_file(str(media["scene"]), "")
    _, (chat, _state, question, status) = last(dead.chat_ui("Что это?", state))
    assert status.endswith(REDIS_DOWN)
    assert question == "Что это?"  # given back for a retry
    assert chat[-1]["content"].endswith(REDIS_DOWN)
    assert dead.model_status().endswith(REDIS_DOWN)


def test_no_worker_ends_with_the_russian_message(no_worker, media):
    updates, (_text, status) = last(no_worker.region_ui(str(media["scene"]), "80,160,208,288"))
    statuses = [u[1] for u in updates]
    assert any(s.startswith("В очереди: 1 · обработчиков: 0") for s in statuses), statuses
    assert "Нет доступных обработчиков" in status
    with pytest.raises(gr.Error, match="Нет доступных обработчиков: задание не взято в работу за 2 с"):
        no_worker.api_ocr(str(media["text"]))
    assert "Обработчики не запущены" in no_worker.model_status()


def test_validation_happens_before_the_queue(dead, media):
    """Even with Redis down, input mistakes get their own message: nothing was enqueued."""
    _, (_t, status) = last(dead.region_ui(str(media["scene"]), "1,2,3"))
    assert "ровно четыре целых числа" in status
    _, (_t, status) = last(dead.region_ui(None, "1,2,30,40"))
    assert status.endswith(NEED_IMAGE)
    _, (*_, status) = last(dead.chat_ui("Что это?", None))
    assert status.endswith(NEED_MEDIA)
    with pytest.raises(gr.Error, match="Для этой вкладки нужно изображение, а не видео"):
        dead.api_describe_region(str(media["video"]), "1,2,30,40")


def test_chat_file_sets_the_default_question_by_media_type(dead, media, tmp_path):
    state, chat, question, status = dead.chat_file(str(media["video"]), "")
    assert question == "Опиши видео" and state["media"]["kind"] == "video"
    assert chat == [{"role": "user", "content": {"path": str(media["video"])}}]
    assert status.startswith("Видео загружено")
    _, _, question, _ = dead.chat_file(str(media["scene"]), "Опиши видео")
    assert question == "Опиши изображение"  # a default follows the media type
    _, _, question, _ = dead.chat_file(str(media["scene"]), "Сколько тут фигур?")
    assert question == "Сколько тут фигур?"  # a question the user typed is kept
    notes = tmp_path / "notes.txt"
    notes.write_text("text", encoding="utf-8")
    state, chat, _, status = dead.chat_file(str(notes), "")
    assert state["media"] is None and chat == [] and "Неподдерживаемый тип файла" in status


def test_the_same_upload_is_copied_once(dead, media):
    a = dead.save(str(media["scene"]))
    b = dead.save(str(media["scene"]))
    assert a == b
    assert dead.store.resolve(a).read_bytes() == media["scene"].read_bytes()
