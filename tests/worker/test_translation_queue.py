"""Answers in Russian through the real queue: redis-server + `python -m worker` on the tiny test model and the tiny
test translators (ANSWER_LANGUAGE=ru, the default). The random-weight SmolVLM2 writes Latin pseudo-words and the
en→ru test translator writes only Cyrillic, so a translated answer is told from the model's own by its script."""

from __future__ import annotations

import contextlib
import re

import pytest

from common import events
from common.schemas import Box, ChatRequest, JobStatus, MediaRef, OcrRequest, RegionRequest, Turn, WorkerState
from scripts import jobs, samples
from scripts.stack import RedisServer
from tests.conftest import ARTIFACTS, make_settings, start_worker

pytestmark = pytest.mark.integration
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
LATIN = re.compile(r"[A-Za-z]")


@pytest.fixture(scope="module")
def image_ref(store, tmp_path_factory) -> MediaRef:
    return store.save_upload(samples.text_image(tmp_path_factory.mktemp("img") / "text.png"))


def test_chat_answer_is_russian_with_the_models_english_kept(client, image_ref):
    res = jobs.run(client, ChatRequest(media=image_ref, question="Что на картинке?", max_new_tokens=24))
    assert res.status == JobStatus.ok, res.error
    assert CYRILLIC.search(res.answer) and not LATIN.search(res.answer), res.answer
    assert res.answer_en and LATIN.search(res.answer_en) and res.answer_en != res.answer
    assert res.question_en and not CYRILLIC.search(res.question_en)  # the model got English
    assert res.translation_note is None


def test_the_uis_questions_keep_their_exact_english_prompts(client, image_ref):
    res = jobs.run(client, ChatRequest(media=image_ref, question="Опиши изображение"))
    assert res.status == JobStatus.ok and res.question_en == "Describe this image in detail."
    english = jobs.run(client, ChatRequest(media=image_ref, question="What is this?"))
    assert english.question_en == "What is this?" and CYRILLIC.search(english.answer)


def test_region_is_translated_and_ocr_never(client, image_ref):
    region = jobs.run(client, RegionRequest(media=image_ref, box=Box(x1=460, y1=200, x2=600, y2=330)))
    assert region.status == JobStatus.ok and CYRILLIC.search(region.answer) and LATIN.search(region.answer_en)
    ru, en = (jobs.run(client, OcrRequest(media=image_ref, answer_language=lang)) for lang in ("ru", "en"))
    assert ru.status == en.status == JobStatus.ok
    assert ru.answer == en.answer and ru.answer_en is None and en.answer_en is None and not CYRILLIC.search(ru.answer)


def test_english_asked_per_request_is_the_models_own(client, image_ref):
    res = jobs.run(client, ChatRequest(media=image_ref, question="Что на картинке?", answer_language="en"))
    assert res.status == JobStatus.ok and not CYRILLIC.search(res.answer) and res.answer_en is None
    assert res.question_en is None  # sent as it is, as before translation existed


def test_three_turns_keep_hitting_the_prompt_cache_with_translation_on(client, image_ref):
    """The history the model sees is its own English (question_en, answer_en): each follow-up reuses the whole
    previous prompt from the cache, and the vision encoder does not run again."""
    history: list[Turn] = []
    previous = None
    for question in ("Что на картинке?", "Какого цвета круг?", "Есть ли текст?"):
        res = jobs.run(client, ChatRequest(media=image_ref, question=question, history=history, conversation="tr3",
                                     max_new_tokens=16))
        assert res.status == JobStatus.ok and CYRILLIC.search(res.answer), res.error
        if previous is not None:
            assert res.cached_tokens >= previous.prompt_tokens, (res.cached_tokens, previous.prompt_tokens)
        history.append(Turn(question=res.question_en, answer=res.answer_en, original=True))
        previous = res
    # A Russian history the web could not map back is translated (a back-translation): the cache misses the turn.
    shown = [Turn(question=q, answer="Это ответ модели.") for q in ("Что на картинке?", "Какого цвета круг?")]
    miss = jobs.run(client, ChatRequest(media=image_ref, question="А ещё?", history=shown, conversation="tr3"))
    assert miss.status == JobStatus.ok and 0 < miss.cached_tokens < previous.prompt_tokens


@contextlib.contextmanager
def private_stack(tmp_path_factory, test_model, name: str, **env: str):
    """A redis-server and a worker of its own (these jobs never reach the session worker): (client, image ref)."""
    from common.store import MediaStore
    from web.queue.client import JobClient

    root = tmp_path_factory.mktemp(name)
    server = RedisServer(root / "redis", log=ARTIFACTS / "logs" / f"redis-{name}.log").start()
    s = make_settings(server.url, root, test_model)
    svc = start_worker(s, f"worker-{name}", **env)
    try:
        ref = MediaStore(s.media_dir, s.results_dir, s.max_upload_bytes).save_upload(
            samples.text_image(root / "t.png"))
        yield JobClient(s), ref
    finally:
        svc.stop()
        server.stop()


def test_stop_mid_translation_keeps_the_translated_part(tmp_path_factory, test_model):
    """A private worker allowed long answers: the random model writes one endless sentence, translated in parts as
    it passes the translator's input limit; stopped once Russian shows, the answer keeps it."""
    with private_stack(tmp_path_factory, test_model, "stop-translation", MAX_NEW_TOKENS="2000") as (client, ref):
        req = ChatRequest(media=ref, question="Опиши подробно.", max_new_tokens=2000)
        client.submit(req)
        russian, res = None, None
        for update in jobs.follow(client, req):
            if update.result is not None:
                res = update.result
                break
            if russian is None and update.stable and CYRILLIC.search(update.text[: update.stable]):
                russian = update.text[: update.stable]  # translated, shown as done
                client.cancel(req.job_id, req.kind)
        assert russian is not None and res.status == JobStatus.cancelled, (res.status, res.generated_tokens)
        assert res.generated_tokens < 2000 and res.answer_en and LATIN.search(res.answer_en)
        # What was shown translated stays; the English written after it is kept as it was (not translated).
        assert res.answer.startswith(russian.strip()) and LATIN.search(res.answer[len(russian):])


def test_a_missing_translator_gives_english_and_one_russian_note(tmp_path_factory, test_model):
    """A private redis-server and worker whose en→ru model cannot be had (offline, not cached)."""
    with private_stack(tmp_path_factory, test_model, "no-translator",
                       TRANSLATION_MODEL_EN_RU="nobody/opus-mt-en-ru-missing") as (client, ref):
        [info] = events.list_workers(client.redis)
        assert info.state == WorkerState.ready  # translation never keeps a worker from serving
        res = jobs.run(client, ChatRequest(media=ref, question="Что на картинке?"))
        assert res.status == JobStatus.ok and res.answer and not CYRILLIC.search(res.answer)
        assert res.question_en and not CYRILLIC.search(res.question_en)  # ru→en is there: the question went English
        note = res.translation_note
        assert note.startswith("Ответ на английском: перевод недоступен.") and "TRANSLATION_MODEL_EN_RU" in note
        assert "HF_HUB_OFFLINE=1" in note and "ANSWER_LANGUAGE=en" in note
        ocr = jobs.run(client, OcrRequest(media=ref))
        assert ocr.status == JobStatus.ok and ocr.translation_note is None  # OCR never needs a translator
