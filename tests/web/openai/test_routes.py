"""The OpenAI-compatible API (/v1) through the official openai client against real stacks on the test model:
the session's web and worker (MAX_NEW_TOKENS=12, no API key); a web with API_KEY, MAX_UPLOAD_MB=1 and its own
worker for long answers on Redis database 7; a web whose queue (database 8) no worker serves."""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest
from PIL import Image

from common import events, keys
from common.schemas import JobStatus, WorkerState
from scripts.stack import wait_for
from tests.conftest import start_worker
from tests.web.conftest import start_web
from web.queue.client import JobClient

pytestmark = pytest.mark.integration
KEY = "test-key-0123456789"
LONG_TOKENS = 3000


def data_url(path: Path, mime: str | None = None) -> str:
    mime = mime or {".png": "image/png", ".mp4": "video/mp4", ".jpg": "image/jpeg"}[path.suffix]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def ask(url: str, question: str = "What is in this picture?") -> list[dict]:
    return [{"role": "user", "content": [image_part(url), {"type": "text", "text": question}]}]


def job_id(completion_id: str) -> str:
    assert completion_id.startswith("chatcmpl-")
    return completion_id.removeprefix("chatcmpl-")


def client_for(url: str, key: str = "any") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}v1", api_key=key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def oa(web_url) -> openai.OpenAI:
    return client_for(web_url)


@pytest.fixture(scope="module")
def scene_url(media) -> str:
    return data_url(media["scene"])


def other_db(settings, db: int, **update):
    return settings.model_copy(update={"redis_url": settings.redis_url.rsplit("/", 1)[0] + f"/{db}", **update})


@pytest.fixture(scope="module")
def special(settings, redis_server, tmp_path_factory, media):
    """A web with API_KEY and MAX_UPLOAD_MB=1, and its own worker answering up to LONG_TOKENS tokens."""
    s = other_db(settings, 7, max_new_tokens=LONG_TOKENS)
    worker = start_worker(s, "worker-openai", MAX_NEW_TOKENS=str(LONG_TOKENS), MODEL_DTYPE="float32")
    try:
        web, url = start_web(s, tmp_path_factory.mktemp("web-openai"), "web-openai",
                             MAX_NEW_TOKENS=str(LONG_TOKENS), API_KEY=KEY, MAX_UPLOAD_MB="1")
    except BaseException:
        worker.stop()
        raise
    yield SimpleNamespace(url=url, oa=client_for(url, KEY), client=JobClient(s), image=media["scene"])
    web.stop()
    worker.stop()


@pytest.fixture(scope="module")
def idle(settings, redis_server, tmp_path_factory):
    """A web whose queue no worker serves: one waiting job fills it, a job waits 2 s for a worker."""
    s = other_db(settings, 8)
    web, url = start_web(s, tmp_path_factory.mktemp("web-openai-idle"), "web-openai-idle", MAX_QUEUE_LENGTH="1",
                         QUEUE_WAIT_TIMEOUT="2")
    yield SimpleNamespace(url=url, oa=client_for(url), client=JobClient(s))
    web.stop()


# ------------------------------------------------------------------ answers


def test_models_lists_the_workers_model(oa, web_url, settings):
    models = oa.models.list()
    assert [m.id for m in models.data] == [settings.smolvlm2_model_id]
    assert models.data[0].object == "model" and models.data[0].owned_by
    assert oa.models.retrieve(settings.smolvlm2_model_id).id == settings.smolvlm2_model_id
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("gpt-4o")
    r = httpx.get(f"{web_url}v1/nothing-here", timeout=10)  # OpenAI's error JSON, not Gradio's page
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_image_question(oa, scene_url, client, settings):
    r = oa.chat.completions.create(model=settings.smolvlm2_model_id, messages=ask(scene_url))
    assert r.object == "chat.completion" and r.model == settings.smolvlm2_model_id
    answer = r.choices[0].message.content
    assert isinstance(answer, str) and answer.strip() and r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    result = events.get_result(client.redis, job_id(r.id))
    assert result.status == JobStatus.ok and result.answer == answer
    assert r.usage.prompt_tokens == result.prompt_tokens > 0
    assert r.usage.completion_tokens == result.generated_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].finish_reason == ("length" if result.truncated else "stop")


def test_plain_string_content_and_system_message_and_max_tokens(oa, scene_url, client):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": [image_part(scene_url)]},  # only the file: «Опиши изображение»
                {"role": "assistant", "content": "A picture."},
                {"role": "user", "content": "And the colours?"}]
    r = oa.chat.completions.create(model="anything", messages=messages, max_tokens=3, temperature=0.7, top_p=0.9,
                                   seed=1, n=1)
    assert r.usage.completion_tokens <= 3
    result = events.get_result(client.redis, job_id(r.id))
    assert result.status == JobStatus.ok and result.generated_tokens <= 3


def test_streaming_sends_chunks_before_the_end(special):
    arrived: list[tuple[float, object]] = []
    stream = special.oa.chat.completions.create(
        model="m", messages=ask(data_url(special.image)), stream=True, max_tokens=200,
        stream_options={"include_usage": True})
    for chunk in stream:
        arrived.append((time.time(), chunk))
    chunks = [c for _, c in arrived]
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [(t, c.choices[0].delta.content) for t, c in arrived if c.choices and c.choices[0].delta.content]
    assert len(content) >= 2, f"one content chunk only: {content}"
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    ends = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert ends in (["stop"], ["length"])
    assert not chunks[-1].choices and chunks[-1].usage is not None  # include_usage: the last chunk
    result = events.get_result(special.client.redis, job_id(chunks[0].id))
    assert result.status == JobStatus.ok and result.generated_tokens > 12
    assert content[0][0] < result.finished_at, "the first text came only after the job had ended"
    assert chunks[-1].usage.completion_tokens == result.generated_tokens
    text = "".join(c for _, c in content)
    assert result.answer and text.startswith(result.answer)  # the whole answer (a collapsed loop: longer)


def test_video_question(oa, media, client):
    messages = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": data_url(media["video"])}},
                                             {"type": "text", "text": "What happens in this video?"}]}]
    r = oa.chat.completions.create(model="m", messages=messages)
    assert r.choices[0].message.content.strip()
    result = events.get_result(client.redis, job_id(r.id))
    assert result.status == JobStatus.ok and result.frames  # decoded as a video: sampled frames


def test_three_turn_conversation_carries_the_history(oa, scene_url):
    messages = ask(scene_url, "Describe this image.")
    prompt_tokens = []
    for follow_up in ("What colour is the sky?", "And the ground?", None):
        r = oa.chat.completions.create(model="m", messages=messages)
        prompt_tokens.append(r.usage.prompt_tokens)
        if follow_up:
            messages = [*messages, {"role": "assistant", "content": r.choices[0].message.content},
                        {"role": "user", "content": follow_up}]
    assert prompt_tokens[0] < prompt_tokens[1] < prompt_tokens[2]  # the earlier turns reach the model


def test_two_megabyte_image(oa, tmp_path, client):
    path = tmp_path / "noise.png"
    Image.frombytes("RGB", (840, 840), os.urandom(840 * 840 * 3)).save(path)
    assert path.stat().st_size > 2_000_000
    r = oa.chat.completions.create(model="m", messages=ask(data_url(path)))
    assert r.choices[0].message.content.strip()
    assert events.get_result(client.redis, job_id(r.id)).status == JobStatus.ok


# ------------------------------------------------------------------ refusals


def bad(url: str, text: str = "Что это?") -> list[dict]:
    return [{"role": "user", "content": [image_part(url), {"type": "text", "text": text}]}]


def two_images(scene: str) -> list[dict]:
    other = "data:image/png;base64," + base64.b64encode(b"\x89PNG other").decode()
    return [{"role": "user", "content": [image_part(scene), image_part(other), {"type": "text", "text": "?"}]}]


GARBAGE_PNG = "data:image/png;base64," + base64.b64encode(b"not a png at all" * 64).decode()
CASES = {
    "no media": ({"messages": [{"role": "user", "content": "Привет"}]}, "no_media", "Нужен файл"),
    "remote url": ({"messages": bad("https://example.com/cat.jpg")}, "remote_url_not_supported",
                   "сервер не загружает файлы по ссылкам"),
    "file url": ({"messages": bad("file:///etc/passwd")}, "invalid_media_url", "ожидается data:-URL"),
    "not base64": ({"messages": bad("data:image/png,rawbytes")}, "invalid_media_url", "ожидается data:-URL"),
    "bad base64": ({"messages": bad("data:image/png;base64,@@@@not*base64")}, "invalid_base64", "base64"),
    "unsupported type": ({"messages": bad("data:text/plain;base64,aGVsbG8=")}, "bad_media",
                         "Неподдерживаемый тип файла («text/plain»)"),
    "not an image": ({"messages": bad(GARBAGE_PNG)}, "bad_media", "Не удалось прочитать"),  # by the worker
    "assistant first": ({"messages": [{"role": "assistant", "content": "Hi"}, *bad("{scene}")]}, "bad_request",
                        "Неверный порядок сообщений"),
    "two users in a row": ({"messages": [*bad("{scene}"), {"role": "user", "content": "again"}]}, "bad_request",
                           "Неверный порядок сообщений"),
    "ends with assistant": ({"messages": [*bad("{scene}"), {"role": "assistant", "content": "Hm"}]},
                            "bad_request", "Неверный порядок сообщений"),
    "tool role": ({"messages": [*bad("{scene}"), {"role": "tool", "content": "42"}]}, "bad_request",
                  "Роль сообщения «tool» не поддерживается"),
    "two files": ({"messages": "two"}, "bad_request", "только один файл"),
    "empty question": ({"messages": [*bad("{scene}"), {"role": "assistant", "content": "A."},
                                     {"role": "user", "content": "   "}]}, "bad_request", "Вопрос пустой"),
    "long question": ({"messages": bad("{scene}", "x" * 2001)}, "bad_request", "Вопрос слишком длинный"),
    "audio part": ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
                   "bad_request", "Неподдерживаемый тип части сообщения («input_audio»)"),
    "n=2": ({"messages": bad("{scene}"), "n": 2}, "unsupported_parameter", "n = 2 не поддерживается"),
    "max_tokens=0": ({"messages": bad("{scene}"), "max_tokens": 0}, "bad_request", "max_tokens"),
    "no messages": ({"messages": []}, "bad_request", "messages"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_requests_are_400_with_openai_error_json(oa, scene_url, case):
    body, code, message = CASES[case]
    if body["messages"] == "two":
        body = {**body, "messages": two_images(scene_url)}
    body = {"model": "m", **eval_scene(body, scene_url)}
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(**body)
    err = info.value
    assert err.status_code == 400 and err.code == code, err.body
    assert message in err.message and set(err.body) == {"message", "type", "code", "param"}
    assert err.type == "invalid_request_error"
    assert err.response.headers["x-should-retry"] == "false"


def eval_scene(body: dict, scene_url: str) -> dict:
    """Put the scene's data URL where a case says {scene}."""
    def fix(v):
        if isinstance(v, str):
            return scene_url if v == "{scene}" else v
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v
    return fix(body)


def test_error_json_shape_and_invalid_json(web_url):
    r = httpx.post(f"{web_url}v1/chat/completions", content=b"{not json", timeout=10,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"error": {"message": "Тело запроса — некорректный JSON.", "type": "invalid_request_error",
                                  "code": "invalid_json", "param": None}}
    r = httpx.get(f"{web_url}v1/chat/completions", timeout=10)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_api_key(special, web_url, scene_url):
    for key in (None, "wrong-key"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        for method, path in (("GET", "models"), ("POST", "chat/completions")):
            r = httpx.request(method, f"{special.url}v1/{path}", headers=headers, json={}, timeout=10)
            assert r.status_code == 401, (key, path, r.text)
            assert r.json()["error"]["code"] == "invalid_api_key" and "API_KEY" in r.json()["error"]["message"]
            assert r.headers["www-authenticate"] == "Bearer"
    with pytest.raises(openai.AuthenticationError):
        client_for(special.url, "wrong-key").models.list()
    assert special.oa.models.list().data  # the right key
    r = special.oa.chat.completions.create(model="m", messages=ask(scene_url), max_tokens=5)
    assert r.choices[0].message.content.strip()
    assert httpx.get(f"{special.url}metrics", timeout=10).status_code == 200  # metrics need no key
    # No API_KEY: open, with or without a header.
    assert httpx.get(f"{web_url}v1/models", timeout=10).status_code == 200
    assert httpx.get(f"{web_url}v1/models", headers={"Authorization": "Bearer x"}, timeout=10).status_code == 200


def test_too_large_is_413(special, tmp_path):
    """MAX_UPLOAD_MB=1: a 1.5 MB file (body 2 MB) is refused after decoding's size check; a body over
    1.4 × 1 + 1 MB is refused while it is read, with Content-Length or chunked."""
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(1_500_000))
    with pytest.raises(openai.APIStatusError) as info:
        special.oa.chat.completions.create(model="m", messages=ask(data_url(big)))
    assert info.value.status_code == 413 and info.value.code == "file_too_large"
    assert "Файл слишком большой: 1,4 МБ при ограничении 1 МБ" in info.value.message

    huge = os.urandom(2_700_000)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    body = b'{"messages": [{"role": "user", "content": "' + base64.b64encode(huge) + b'"}]}'
    r = httpx.post(f"{special.url}v1/chat/completions", content=body, headers=headers, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert "Запрос слишком большой" in r.json()["error"]["message"]

    def chunked():
        for i in range(0, len(body), 256 * 1024):
            yield body[i:i + 256 * 1024]

    r = httpx.post(f"{special.url}v1/chat/completions", content=chunked(), headers=headers, timeout=30)
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_queue_full_429_and_no_worker_503(idle, scene_url):
    out: dict = {}

    def waiting_job() -> None:
        try:
            idle.oa.chat.completions.create(model="m", messages=ask(scene_url))
        except openai.APIStatusError as exc:
            out["error"] = exc

    t0 = time.monotonic()
    caller = threading.Thread(target=waiting_job)
    caller.start()
    wait_for(lambda: idle.client.queue_length() == 1, 20, "one waiting job")
    with pytest.raises(openai.RateLimitError) as info:
        idle.oa.chat.completions.create(model="m", messages=ask(scene_url))
    assert info.value.status_code == 429 and info.value.code == "busy"
    assert "Очередь переполнена" in info.value.message
    assert info.value.response.headers["retry-after"] == "10"
    assert info.value.response.headers["x-should-retry"] == "true"
    caller.join(30)
    err = out["error"]
    assert err.status_code == 503 and err.code == "no_worker" and err.type == "service_unavailable_error"
    assert "Нет доступных обработчиков" in err.message and err.response.headers["x-should-retry"] == "false"
    assert time.monotonic() - t0 < 15
    # stream=true: nothing was sent before the job ended, so the 503 keeps its status
    with pytest.raises(openai.APIStatusError) as info:
        idle.oa.chat.completions.create(model="m", messages=ask(scene_url), stream=True)
    assert info.value.status_code == 503 and info.value.code == "no_worker"
    # the refusal is counted once
    hits = idle.client.redis.hget(keys.METRICS, "jobs_total|chat|rejected")
    assert float(hits) == 1


def test_caller_gone_while_queued_withdraws_the_job(idle, scene_url):
    """A caller that gives up while its job waits (plain or stream=true: no byte sent yet) stops the job at once:
    it ends as cancelled, not as «no worker» 2 s later."""
    def cancelled() -> float:
        return float(idle.client.redis.hget(keys.METRICS, "jobs_total|chat|cancelled") or 0)

    impatient = openai.OpenAI(base_url=f"{idle.url}v1", api_key="x", max_retries=0, timeout=0.5)
    before = cancelled()
    for n, stream in enumerate((False, True), 1):
        t0 = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model="m", messages=ask(scene_url), stream=stream)
        wait_for(lambda n=n: cancelled() == before + n, 5, "the job withdrawn as cancelled", interval=0.02)
        assert time.monotonic() - t0 < 1.8  # before QUEUE_WAIT_TIMEOUT=2 would have ended it
        wait_for(lambda: idle.client.queue_length() == 0, 5, "an empty queue")


def test_disconnect_mid_stream_stops_the_job(special):
    stream = special.oa.chat.completions.create(model="m", messages=ask(data_url(special.image)), stream=True,
                                                max_tokens=LONG_TOKENS)
    first = next(iter(stream))
    job = job_id(first.id)
    assert events.get_result(special.client.redis, job) is None, "the job ended before the test could stop it"
    stream.close()  # drop the connection after one chunk
    t0 = time.monotonic()
    result = wait_for(lambda: events.get_result(special.client.redis, job), 20, "the job's result", interval=0.05)
    assert result.status == JobStatus.cancelled
    assert result.generated_tokens < LONG_TOKENS
    assert time.monotonic() - t0 < 5
    wait_for(lambda: all(w.state == WorkerState.ready for w in special.client.workers()), 10, "the worker free again")


def test_a_translated_stream_sends_only_finished_russian_text(special):
    """Answers are Russian (ANSWER_LANGUAGE=ru): while the English is written, only what is translated goes out
    (a delta never takes text back); the deltas add up to the answer; the last chunk carries the English."""
    deltas, extra = [], {}
    stream = special.oa.chat.completions.create(model="m", messages=ask(data_url(special.image), "Опиши изображение"),
                                                stream=True, max_tokens=800)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            deltas.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            extra = chunk.choices[0].delta.model_extra or {}
    content = "".join(deltas)
    cyrillic, latin = (len(re.findall(p, content)) for p in ("[А-Яа-яЁё]", "[A-Za-z]"))
    assert len(deltas) > 1 and cyrillic > 4 * latin, deltas
    assert re.search("[A-Za-z]", extra["original_content"]) and extra["original_language"] == "en"
