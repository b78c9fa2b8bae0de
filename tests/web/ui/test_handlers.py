"""Handlers in-process, on the paths that need no model: Redis unreachable, no worker running, and
validation that happens before anything is enqueued. The UI gets a Russian status line, the API a gr.Error."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import gradio as gr
import pytest

from common.contract import NEED_IMAGE, NEED_MEDIA
from common.errors import QueueUnavailable
from common.schemas import JobResult, JobState, JobStatus, MediaKind
from common.store import MediaStore
from scripts.stack import free_port
from tests.conftest import make_settings
from web.http import uploads
from web.queue.client import JobClient
from web.queue.tracker import Update
from web.ui.chat import FILE, RESET, SEND
from web.ui.layout import Handlers
from web.ui.tab import SKIP

pytestmark = pytest.mark.integration
REDIS_DOWN = QueueUnavailable().message


REQUEST = SimpleNamespace(session_hash="session-1", client=SimpleNamespace(host="127.0.0.1"), headers={})


def handlers_for(redis_url: str, root, model, **overrides) -> Handlers:
    settings = make_settings(redis_url, root, model, redis_outage_grace_s=1, **overrides)
    store = MediaStore(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
    store.ensure_dirs()
    return Handlers.build(settings, JobClient(settings), store)


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
        call(dead.api.vqa(str(media["scene"]), "Опиши изображение", [], REQUEST))
    assert info.value.message == REDIS_DOWN
    with pytest.raises(gr.Error, match="Очередь недоступна"):
        call(dead.api.describe_region(str(media["scene"]), "80,160,208,288", REQUEST))


def test_redis_unreachable_ui_shows_it_in_the_status_line(dead, media):
    updates, (_text, _download, status, *_) = last(dead.ocr.run(str(media["text"]), REQUEST))
    assert status.endswith(REDIS_DOWN)
    assert any("переподключение" in u[2] for u in updates)  # it kept trying for REDIS_OUTAGE_GRACE_S first
    state, *_ = call(dead.chat.file_changed(str(media["scene"]), "", REQUEST))
    _, (chat, _state, _question, status, _send, _stop, _frames, failed) = last(dead.chat.send("Что это?", state,
                                                                                         REQUEST))
    assert status.endswith(REDIS_DOWN)
    assert failed == "Что это?"  # given back for a retry (the page puts it in the box unless another is typed)
    assert all(REDIS_DOWN not in str(m["content"]) for m in chat)  # the error is said once: in the status line
    assert call(dead.status.line()).endswith(REDIS_DOWN)


def test_no_worker_ends_with_the_russian_message(no_worker, media):
    updates, (_text, status, *_) = last(no_worker.region.run(str(media["scene"]), "80,160,208,288", REQUEST))
    statuses = [u[1] for u in updates]
    assert any(s.startswith("Ваше место в очереди: 1 (впереди 0) · обработчиков: 0") for s in statuses), statuses
    assert "Нет доступных обработчиков" in status
    with pytest.raises(gr.Error, match="Нет доступных обработчиков: задание не взято в работу за 2 с"):
        call(no_worker.api.ocr(str(media["text"]), REQUEST))
    assert "Обработчики не запущены" in call(no_worker.status.line())


def test_validation_happens_before_the_queue(dead, media):
    """Even with Redis down, input mistakes get their own message: nothing was enqueued."""
    _, (_t, status, _run, _stop, hint, *_) = last(dead.region.run(str(media["scene"]), "1,2,3", REQUEST))
    assert "ровно четыре целых числа" in hint and status == ""  # said once: under the box
    _, (_t, status, *_) = last(dead.region.run(None, "1,2,30,40", REQUEST))
    assert status.endswith(NEED_IMAGE)
    _, (_c, _s, _q, status, *_) = last(dead.chat.send("Что это?", None, REQUEST))
    assert status.endswith(NEED_MEDIA)
    with pytest.raises(gr.Error, match="Для этой вкладки нужно изображение, а не видео"):
        call(dead.api.describe_region(str(media["video"]), "1,2,30,40", REQUEST))


def test_chat_file_sets_the_default_question_by_media_type(dead, media, tmp_path):
    state, chat, question, status = call(dead.chat.file_changed(str(media["video"]), "", REQUEST))
    assert question == "Опиши видео" and state.media.kind == MediaKind.video
    assert chat == [{"role": "user", "content": {"path": str(media["video"])}}]
    assert status.startswith("Видео загружено")
    _, _, question, _ = call(dead.chat.file_changed(str(media["scene"]), "Опиши видео", REQUEST))
    assert question == "Опиши изображение"  # a default follows the media type
    _, _, question, _ = call(dead.chat.file_changed(str(media["scene"]), "Сколько тут фигур?", REQUEST))
    assert question == gr.skip()  # a question the user typed is kept: the box is left alone (it may be on its way)
    notes = tmp_path / "notes.txt"
    notes.write_text("text", encoding="utf-8")
    state, chat, _, status = call(dead.chat.file_changed(str(notes), "", REQUEST))
    assert state.media is None and chat == [] and "Неподдерживаемый тип файла" in status


def test_a_send_that_left_before_its_clear_came_back_waits_for_the_next_file(dead, media):
    # The upload-race test lost a question (1 round in 20): ✕, a video set and the question sent at once. The send
    # reached the server with the page's old state (the image) before the video's upload began, so it went with
    # the image; the video's change then stopped it and cleared the chat. Now it waits for the video.
    req = SimpleNamespace(session_hash="session-race", client=SimpleNamespace(host="10.9.8.7"), headers={})
    session, who = dead.chat.session_of(req), dead.chat.client_of(req)

    async def scenario():
        uploads.upload_started(who)
        uploads.upload_ended(who, True)  # the image's upload, then its change
        old = (await dead.chat.file_changed(str(media["scene"]), "", req))[0]
        await dead.chat.file_changed(None, "", req)  # the ✕, seen by the server before the send

        async def page():  # the video's upload begins a moment after the send, then its change arrives
            await asyncio.sleep(0.3)
            uploads.upload_started(who)
            await asyncio.sleep(0.2)
            uploads.upload_ended(who, True)
            await dead.chat.file_changed(str(media["video"]), "Видео?", req)

        task = asyncio.create_task(page())
        steps = [step async for step in dead.chat.after_upload(session, who, old, time.monotonic())]
        await task
        return old, steps

    old, steps = run_async(scenario())
    assert old.media.kind == MediaKind.image
    assert steps[0] is None  # «waiting for the upload» on the page
    assert steps[-1].media is not None and steps[-1].media.kind == MediaKind.video, steps  # before: the image


def test_a_send_that_left_before_the_new_file_came_back_goes_with_the_new_file(dead, media):
    # A file dropped over the old one (no ✕): its upload ended and the server handled its change, but the page's
    # new state had not come back when the question left, so it carried the old file. The chat had already been
    # cleared for the new file: the answer about the old one would have appeared under the new one.
    req = SimpleNamespace(session_hash="session-swap", client=SimpleNamespace(host="10.9.8.6"), headers={})
    session, who = dead.chat.session_of(req), dead.chat.client_of(req)

    async def scenario():
        uploads.upload_started(who)
        uploads.upload_ended(who, True)
        old = (await dead.chat.file_changed(str(media["scene"]), "", req))[0]
        uploads.upload_started(who)
        uploads.upload_ended(who, True)
        new = (await dead.chat.file_changed(str(media["video"]), "", req))[0]
        steps = [step async for step in dead.chat.after_upload(session, who, old, time.monotonic())]
        return old, new, steps

    old, new, steps = run_async(scenario())
    assert old.media.kind == MediaKind.image and new.media.kind == MediaKind.video
    assert steps[-1].media == new.media, steps  # before: the image, the page's stale state
    # The page's own state, when it is the server's latest, goes as it is.
    _, sent = last(dead.chat.after_upload(session, who, new, time.monotonic()))
    assert sent is new


def test_the_same_upload_is_copied_once(dead, media):
    a = dead.chat.save(str(media["scene"]))
    b = dead.chat.save(str(media["scene"]))
    assert a == b
    assert dead.chat.store.resolve(a).read_bytes() == media["scene"].read_bytes()


def streaming_job(handlers: Handlers, monkeypatch, words: int) -> list[str]:
    """The chat's job followed as if a worker streamed `words` words (0.02 s apart) and then answered; a cancel ends
    it at the next word, cancelled. Returns the list of cancelled job ids."""
    stopped: list[str] = []

    async def progress(job, request):
        text = ""
        for i in range(words):
            if stopped:
                yield Update(state=JobState.done, text=text,
                             result=JobResult(job_id=job.job_id, kind=job.kind, status=JobStatus.cancelled))
                return
            text += f" word{i}"
            yield Update(state=JobState.running, text=text)
            await asyncio.sleep(0.02)
        yield Update(state=JobState.done, text=text, result=JobResult(job_id=job.job_id, kind=job.kind,
                                                                      status=JobStatus.ok, answer=text.strip()))

    monkeypatch.setattr(handlers.chat, "progress", progress)
    monkeypatch.setattr(handlers.chat.client, "cancel", lambda job_id, kind: stopped.append(job_id))
    return stopped


def test_a_reset_reaches_the_page_after_the_last_partial_of_the_answer_it_stopped(dead, media, monkeypatch):
    # The reset-during-generation browser test kept an old bot message on the page after «Новый диалог» (1 CI
    # rehearsal in 3): a partial answer yielded just before the reset was still being sent while the reset's
    # cleared chat went out first, and nothing repainted the chat after it. Here the page is modelled as Gradio
    # feeds it: each yield is processed (0.2 s) before the next one is pulled, a returned handler's outputs are
    # sent at once; the chat the page ends with is the last chat sent.
    req = SimpleNamespace(session_hash="session-reset", client=SimpleNamespace(host="10.9.8.5"), headers={})

    stopped = streaming_job(dead, monkeypatch, words=200)
    chat_at = SEND.names.index("chatbot")

    async def scenario():
        state = (await dead.chat.file_changed(str(media["scene"]), "", req))[0]
        page: list = []  # every chat value sent to the page, in order
        pulled = asyncio.Event()

        async def gradio():
            async for out in dead.chat.send("Describe it", state, req):
                if out[chat_at] != SKIP():
                    pulled.set()
                await asyncio.sleep(0.2)  # postprocessed and diffed before it is sent
                if out[chat_at] != SKIP():
                    page.append(out[chat_at])

        task = asyncio.create_task(gradio())
        for _ in range(3):  # a partial answer is being processed
            pulled.clear()
            await pulled.wait()
        cleared = (await dead.chat.reset(state, req))[RESET.names.index("chatbot")]
        page.append(cleared)
        await asyncio.wait_for(task, 10)
        return page, cleared

    page, cleared = run_async(scenario())
    assert stopped, "the reset did not stop the running answer"
    assert page[-1] == cleared, page[-1]  # before: the last partial answer stayed


def test_a_second_change_event_for_the_same_file_leaves_the_conversation_alone(dead, media, monkeypatch):
    # The upload-race browser test lost a question (CI, 1 round in 40): Gradio's File fires `change` twice for one
    # upload at times (measured: 6 video uploads in 20, 60-100 ms apart). When the second one came after the question
    # had gone with the file, it stopped that answer and cleared the chat, as a new file does.
    req = SimpleNamespace(session_hash="session-twice", client=SimpleNamespace(host="10.9.8.4"), headers={})

    stopped = streaming_job(dead, monkeypatch, words=100)

    async def scenario():
        first = await dead.chat.file_changed(str(media["video"]), "", req)
        outs = []

        async def ask():
            async for out in dead.chat.send("What happens?", first[0], req):
                outs.append(out)

        task = asyncio.create_task(ask())
        await asyncio.sleep(0.3)  # the answer is streaming
        again = await dead.chat.file_changed(str(media["video"]), "", req)
        await asyncio.wait_for(task, 10)
        return again, outs

    again, outs = run_async(scenario())
    assert not stopped, "the second event stopped the answer"
    assert all(v == SKIP() for v in again), again  # nothing on the page changes
    assert outs[-1][SEND.names.index("status")].startswith("Готово"), outs[-1]
    # A ✕ sent twice is the same: the second one changes nothing.
    none_1 = run_async(dead.chat.file_changed(None, "", req))
    none_2 = run_async(dead.chat.file_changed(None, "", req))
    assert none_1[FILE.names.index("chatbot")] == [] and all(v == SKIP() for v in none_2)
