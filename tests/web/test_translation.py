"""Answers in Russian through the web's three front-ends against the session stack (web + worker on the tiny test
model and the tiny test translators, ANSWER_LANGUAGE=ru): the Gradio API keeps its signatures and answers in
Russian, the Russian history a caller sends back is mapped to the model's own English (its prompt cache hits); the
OpenAI API gives Russian content with the English in an extra field, streams only finished Russian text, and takes
answer_language; OCR is never translated."""

from __future__ import annotations

import re

import openai
import pytest
from gradio_client import Client, handle_file

from tests.web.openai.test_routes import ask, client_for, data_url

pytestmark = pytest.mark.integration
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
LATIN = re.compile(r"[A-Za-z]")


def russian(text: str) -> bool:
    """Translated: Cyrillic letters, and Latin only where the English had something kept as it is (code, a URL)."""
    return len(CYRILLIC.findall(text)) > 4 * len(LATIN.findall(text))


@pytest.fixture(scope="module")
def api(web_url, tmp_path_factory) -> Client:
    return Client(web_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def oa(web_url) -> openai.OpenAI:
    return client_for(web_url)


def test_gradio_api_answers_in_russian_and_ocr_stays_as_it_is(api, media):
    answer = api.predict(handle_file(str(media["scene"])), "Что на картинке?", [], api_name="/vqa")
    assert russian(answer), answer
    region = api.predict(handle_file(str(media["scene"])), "80,160,208,288", api_name="/describe_region")
    assert russian(region), region
    text, path = api.predict(handle_file(str(media["text"])), api_name="/ocr")
    assert not CYRILLIC.search(text) and open(path, encoding="utf-8").read() == text


def test_openai_content_is_russian_with_the_english_original_in_an_extra_field(oa, media):
    reply = oa.chat.completions.create(model="m", messages=ask(data_url(media["scene"]), "Что на картинке?"))
    message = reply.choices[0].message
    assert russian(message.content), message.content
    extra = message.model_extra
    assert extra["original_language"] == "en" and LATIN.search(extra["original_content"])
    assert "translation_note" not in extra
    english = oa.chat.completions.create(model="m", messages=ask(data_url(media["scene"]), "Что на картинке?"),
                                         extra_body={"answer_language": "en"})
    assert not CYRILLIC.search(english.choices[0].message.content)
    assert "original_content" not in (english.choices[0].message.model_extra or {})
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(model="m", messages=ask(data_url(media["scene"])),
                                   extra_body={"answer_language": "de"})
    assert "answer_language" in str(info.value)


def test_russian_history_sent_back_is_the_models_own_english_and_hits_the_prompt_cache(oa, media):
    """Three OpenAI turns, each sending back the Russian history as it was shown: the web maps it to the model's
    English, so the whole previous prompt comes from the worker's prompt cache."""
    url = data_url(media["scene"])
    messages = ask(url, "Что на картинке?")
    previous = None
    for question in ("Какого цвета фон?", "А что слева?", None):
        reply = oa.chat.completions.create(model="m", messages=messages)
        content = reply.choices[0].message.content
        assert russian(content), content
        if previous is not None:
            assert reply.usage.prompt_tokens_details.cached_tokens >= previous.usage.prompt_tokens
        previous = reply
        if question:
            messages += [{"role": "assistant", "content": content}, {"role": "user", "content": question}]
